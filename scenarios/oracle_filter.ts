/**
 * The oracle of KVM_SET_PMU_EVENT_FILTER: bare metal on which a counter programmed with a denied
 * event does not count (it keeps its value and the guest still reads back its own selector). The
 * filter's meaning is taken from the KVM API documentation (Documentation/virt/kvm/api.rst,
 * KVM_SET_PMU_EVENT_FILTER), not from KVM's code: legacy entries match event select and unit
 * mask; masked entries match an event select and (umask & mask) == match; the fixed-counter
 * bitmap alone decides for fixed counters.
 */

import { Cpu, type PmiDelivery } from '../model/hw/cpu.js';
import type { WorkUnit } from '../model/hw/work.js';
import type { KvmPmuEventFilter } from '../model/kvm/types.js';
import { ARCH_PERFMON_EVENTSEL_ENABLE } from '../model/hw/msr/counters.js';
import type { Access } from '../model/hw/access.js';
import { relied } from '../model/hw/relied.js';
import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI, MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';

const ALLOW = 0;
const MASKED = 1;

/** Does an entry of the filter cover this event select + unit mask? */
function covers(f: KvmPmuEventFilter, e: bigint, event: bigint, umask: bigint): { hit: boolean; exclude: boolean } {
  if ((f.flags & MASKED) === 0)
    return { hit: (e & ~0xffffn) === 0n && (e & 0xffn) === event && ((e >> 8n) & 0xffn) === umask, exclude: false };
  const mask = (e >> 56n) & 0xffn;
  const match = (e >> 8n) & 0xffn;
  return { hit: (e & 0xffn) === event && (umask & mask) === match, exclude: ((e >> 55n) & 1n) === 1n };
}

/** Whether the filter lets a GP counter with this selector count. */
export function gpEventAllowed(f: KvmPmuEventFilter, evtsel: bigint): boolean {
  const event = evtsel & 0xffn;
  const umask = (evtsel >> 8n) & 0xffn;
  let included = false;
  let excluded = false;
  for (const e of f.events) {
    const c = covers(f, e, event, umask);
    if (!c.hit) continue;
    if (c.exclude) excluded = true;
    else included = true;
  }
  return included && !excluded ? f.action === ALLOW : f.action !== ALLOW;
}

/** Whether the filter lets fixed counter `i` count. */
export function fixedCounterAllowed(f: KvmPmuEventFilter, i: number): boolean {
  const set = ((f.fixed_counter_bitmap >>> i) & 1) === 1;
  return f.action === ALLOW ? set : !set;
}

/**
 * A bare-metal CPU that honours a VMM's event filter (denied counters sit out each unit) and, where a declared
 * divergence is adopted for its guest, ignores FREEZE_LBRS_ON_PMI.
 */
export class OracleCpu extends Cpu {
  filter: KvmPmuEventFilter | null = null;
  /**
   * Set when bare metal takes on a guest PMU version without the LBR freeze: told each time that changes what it does
   * (a freeze skipped, a version-1 freeze bit held).
   */
  lbrFreezeAdopted: (() => void) | null = null;

  /**
   * Under that adoption a CPU below version 2 also holds FREEZE_LBRS_ON_PMI, a bit its DEBUGCTL lacks (D37), as KVM
   * lets a version-1 guest with LBRs hold it, and a VMM's KVM_SET_MSRS any guest: stored, never acted on.
   */
  override wrmsr(address: number, value: bigint): Access {
    const frz = value & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
    if (address !== MSR_IA32_DEBUGCTLMSR || frz === 0n || this.lbrFreezeAdopted === null || this.profile.version >= 2)
      return super.wrmsr(address, value);
    relied('D37'); // a version-1 DEBUGCTL has no freeze bits: held here only because KVM holds it
    const r = super.wrmsr(address, value & ~frz);
    if (r.ok) {
      this.state.debugctl |= frz;
      this.lbrFreezeAdopted();
    }
    return r.ok ? { ok: true, value: r.value | frz } : r;
  }

  protected override freezeLbrsOnPmi(): void {
    if (this.lbrFreezeAdopted === null) super.freezeLbrsOnPmi();
    else this.lbrFreezeAdopted();
  }

  override step(u: WorkUnit): PmiDelivery | null {
    const f = this.filter;
    if (f === null) return super.step(u);
    const s = this.state;
    const evtsel = [...s.evtsel];
    const fixedCtrl = s.fixedCtrl;
    let off = false;
    evtsel.forEach((e, i) => {
      if ((e & ARCH_PERFMON_EVENTSEL_ENABLE) === 0n || gpEventAllowed(f, e)) return;
      s.evtsel[i] = e & ~ARCH_PERFMON_EVENTSEL_ENABLE;
      off = true;
    });
    for (let i = 0; i < 8; i++) {
      const field = (fixedCtrl >> BigInt(4 * i)) & 0x3n;
      if (field === 0n || fixedCounterAllowed(f, i)) continue;
      s.fixedCtrl &= ~(0x3n << BigInt(4 * i));
      off = true;
    }
    if (!off) return super.step(u);
    s.configEpoch++;
    const d = super.step(u);
    // The guest still reads back what it programmed.
    const after = this.state;
    evtsel.forEach((e, i) => (after.evtsel[i] = e));
    after.fixedCtrl = fixedCtrl;
    after.configEpoch++;
    return d;
  }
}
