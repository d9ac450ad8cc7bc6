/**
 * The VMM's ioctls on a World: KVM_SET_CPUID2, KVM_SET_MSRS / KVM_GET_MSRS, the save-side round
 * trip, KVM_SET_PMU_EVENT_FILTER, and an external-interrupt exit. Each runs on the design and
 * tells the bare-metal oracles what changed; the commands of vmm.ts call them.
 */

import type { WorkUnit } from '../model/hw/work.js';
import type { HostAccess, KvmPmuEventFilter } from '../model/kvm/types.js';
import { sameGuestCpuid } from '../model/kvm/common/cpuid.js';
import { OracleCpu } from './oracle_filter.js';
import { type GuestConfig, impossibleEnumeration, vmSetupOf, type World } from './world.js';
import { NONE, type Observation, OK, type Outcome, REFUSED, valueOutcome } from './observation.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../model/hw/msr/capabilities.js';
import { MSR_IA32_PERFCTR0 } from '../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_OVF_CTRL } from '../model/hw/msr/global.js';

/**
 * The VMM gives the vCPU a new model, as QEMU does: KVM_SET_CPUID2, then (with PDCM)
 * KVM_SET_MSRS of PERF_CAPABILITIES. Before KVM_RUN bare metal is a freshly reset CPU of that
 * model; after it KVM must refuse any change.
 */
export function vmmSetCpuid(w: World, vcpu: number, asked: GuestConfig): Observation[] {
  const v = w.index(vcpu);
  const x = w.vcpus[v]!;
  const cur = w.guestConfig(v);
  // The VM keeps what it was created with: a new vCPU model does not undo KVM_CAP_PMU_CAPABILITY.
  const g = { ...w.withSupportedCaps(x, asked), ...vmSetupOf(cur) };
  const ran = w.vcpuHasRun(v);
  let r = x.setCpuid(g.cpuid);
  if (r.ok && g.cpuid.pdcm) r = x.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, g.perfCapabilities);
  const same = sameModel(cur, g);
  const impossible = r.ok && !ran ? impossibleEnumeration(w.config.host, g) : null; // W4
  if (r.ok && !ran && impossible === null) w.freshOracle(v, g);
  const op = {
    op: 'set-cpuid',
    cpuid: g.cpuid,
    perfCapabilities: g.cpuid.pdcm ? g.perfCapabilities : null,
    afterRun: ran,
    impossible,
  } as const;
  return w.vmmRecord(v, op, answer(r), impossible === null && (!ran || same) ? OK : REFUSED);
}

/**
 * KVM_SET_MSRS of one MSR. The only result claimed is KVM's ABI for PERF_CAPABILITIES without
 * PDCM (d75cac366f44: writes of 0 tolerated, others refused); an accepted write becomes the
 * oracle's state too, as restored state rather than as a guest WRMSR.
 */
export function vmmSetMsr(w: World, vcpu: number, msr: number, value: bigint): Observation[] {
  const v = w.index(vcpu);
  const cur = w.guestConfig(v);
  const ran = w.vcpuHasRun(v);
  const r = w.vcpus[v]!.hostSetMsr(msr, value);
  const sut = answer(r);
  const noPdcm = msr === MSR_IA32_PERF_CAPABILITIES && !cur.cpuid.pdcm;
  // W4: a PERF_CAPABILITIES no CPU of this CPUID has must be refused; bare metal has no such state.
  const impossible =
    r.ok && msr === MSR_IA32_PERF_CAPABILITIES && !noPdcm
      ? impossibleEnumeration(w.config.host, { ...cur, perfCapabilities: value })
      : null;
  const op = { op: 'set-msr', msr, value, afterRun: ran, impossible } as const;
  if (impossible !== null) return w.vmmRecord(v, op, sut, REFUSED);
  if (r.ok) mirrorHostWrite(w, v, msr, value, cur, ran);
  return w.vmmRecord(v, op, sut, noPdcm ? (value === 0n ? OK : REFUSED) : sut);
}

function mirrorHostWrite(w: World, v: number, msr: number, value: bigint, cur: GuestConfig, ran: boolean): void {
  const o = w.oracles[v]!;
  if (msr === MSR_IA32_PERF_CAPABILITIES) {
    // A new PERF_CAPABILITIES before KVM_RUN is a new model (kvm_pmu_refresh).
    if (cur.cpuid.pdcm && !ran && value !== cur.perfCapabilities) w.freshOracle(v, { ...cur, perfCapabilities: value });
    return;
  }
  const p = o.profile;
  if (msr >= MSR_IA32_PERFCTR0 && msr < MSR_IA32_PERFCTR0 + p.nGP) {
    o.state.pmc[msr - MSR_IA32_PERFCTR0] = value & p.gpMask; // host writes are not sign-extended
    return;
  }
  if (msr === MSR_CORE_PERF_GLOBAL_STATUS) {
    if (o.hasMsr(msr)) o.state.globalStatus = value;
    return;
  }
  if (msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL) return; // host writes of GLOBAL_OVF_CTRL are no-ops: it holds no state
  o.wrmsr(msr, value);
}

/** KVM_GET_MSRS of one MSR; without PDCM, PERF_CAPABILITIES must read 0 (d75cac366f44). */
export function vmmGetMsr(w: World, vcpu: number, msr: number): Observation[] {
  const v = w.index(vcpu);
  const r = w.vcpus[v]!.hostGetMsr(msr);
  const noPdcm = msr === MSR_IA32_PERF_CAPABILITIES && !w.guestConfig(v).cpuid.pdcm;
  return w.vmmRecord(v, { op: 'get-msr', msr }, showHost(r), noPdcm ? valueOutcome(0n) : showHost(r));
}

/**
 * What a VMM saving the vCPU does: KVM_GET_MSR_INDEX_LIST, KVM_GET_MSRS of each, KVM_SET_MSRS
 * of each value back. Every listed MSR must survive the round trip unchanged.
 */
export function vmmRoundTrip(w: World, vcpu: number): Observation[] {
  const v = w.index(vcpu);
  const x = w.vcpus[v]!;
  const out: Observation[] = [];
  w.beginStep();
  for (const m of x.msrIndexList()) {
    const got = x.hostGetMsr(m);
    const set = got.ok ? x.hostSetMsr(m, got.value) : got;
    const again = got.ok && set.ok ? x.hostGetMsr(m) : set;
    out.push(
      w.record({
        vcpu: v,
        kind: 'vmm',
        target: m,
        value: null,
        vmm: { op: 'round-trip', msr: m },
        sut: showHost(again),
        oracle: got.ok ? showHost(got) : { kind: 'savable' },
      }),
    );
  }
  return out;
}

/** KVM_SET_PMU_EVENT_FILTER on every VM of the world; the oracles stop counting denied events. */
export function vmmSetPmuEventFilter(w: World, filter: KvmPmuEventFilter | null): Observation[] {
  let r: HostAccess = { ok: true, value: 0n };
  for (const x of w.vcpus) {
    const one = x.setPmuEventFilter(filter);
    if (!one.ok) r = one;
  }
  if (r.ok) {
    w.oracleFilter = filter;
    for (const o of w.oracles) if (o instanceof OracleCpu) o.filter = filter;
  }
  return w.vmmRecord(0, { op: 'set-filter', filter }, answer(r), OK);
}

/**
 * KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY) on the VM of vCPU `vcpu`, which has that vCPU: KVM's rule is -EINVAL once the
 * VM has created a vCPU (kvm_vm_ioctl_enable_cap), so the VMM must be refused and nothing changes for either side.
 */
export function vmmPmuCapability(w: World, vcpu: number, args0: bigint): Observation[] {
  const v = w.index(vcpu);
  const r = w.vcpus[v]!.enablePmuCapability(args0);
  return w.vmmRecord(v, { op: 'pmu-cap', args0 }, answer(r), REFUSED);
}

/**
 * An external interrupt exits the guest and the host's IRQ handler runs `units` on the vCPU's
 * pCPU (a host PMI may arrive meanwhile). The guest sees nothing of it.
 */
export function irqExit(w: World, vcpu: number, units: readonly WorkUnit[]): void {
  const v = w.index(vcpu);
  const x = w.vcpus[v]!;
  if (x.externalInterrupt !== undefined) x.externalInterrupt(units);
  else w.host.runHost(x.cpu, units);
  w.vmmRecord(v, { op: 'irq-exit', cpu: x.cpu, units: units.length }, NONE, NONE);
}

/** A KVM_GET_MSRS answer: the value, or refused. */
function showHost(r: HostAccess): Outcome {
  return r.ok ? valueOutcome(r.value) : REFUSED;
}

/** An ioctl's answer: ok or refused. */
const answer = (r: HostAccess): Outcome => (r.ok ? OK : REFUSED);

/** The same vCPU model: what KVM accepts again after KVM_RUN. */
function sameModel(a: GuestConfig, b: GuestConfig): boolean {
  return sameGuestCpuid(a.cpuid, b.cpuid) && (!b.cpuid.pdcm || a.perfCapabilities === b.perfCapabilities);
}
