/**
 * The VMM's ioctls on a World: KVM_SET_CPUID2, KVM_SET_MSRS / KVM_GET_MSRS, the save-side round
 * trip, KVM_SET_PMU_EVENT_FILTER, and an external-interrupt exit. Each runs on the design and
 * tells the bare-metal oracles what changed; the commands of vmm.ts call them.
 */

import { isDeepStrictEqual } from 'node:util';
import type { WorkUnit } from '../model/hw/work.js';
import type { CpuidRegs, Profile } from '../model/hw/profile.js';
import type { Errno, GuestCpuid, HostAccess, KvmPmuEventFilter } from '../model/kvm/types.js';
import { OracleCpu } from './oracle_filter.js';
import { type GuestConfig, impossibleEnumeration, vmSetupOf, type World } from './world.js';
import { NONE, type Observation, OK, type Outcome, REFUSED, valueOutcome } from './observation.js';
import { type Access, gp, ok } from '../model/hw/access.js';
import { relied } from '../model/hw/relied.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_LBR_FMT } from '../model/hw/msr/capabilities.js';
import { MSR_IA32_PERFCTR0 } from '../model/hw/msr/counters.js';
import { DEBUGCTLMSR_RTM_DEBUG, MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import {
  legalizeStatusReset,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  statusBits,
} from '../model/hw/msr/global.js';

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
 * What a VMM changes when it sets a vCPU's model again: nothing (QEMU re-applies the same CPUID to a hot-plugged or
 * reset vCPU, the case c6617c61e8fe keeps working after KVM_RUN), or one field or one bit of the payload.
 */
export type CpuidChange =
  | { readonly field: 'none' | 'family' | 'model' | 'pdcm' | 'tsx' | 'archLbr' }
  | { readonly field: 'leaf0a' | 'leaf1c'; readonly reg: keyof CpuidRegs; readonly bit: number }
  | { readonly field: 'perfCapabilities'; readonly bit: number };

const flipBit = (r: CpuidRegs | undefined, reg: keyof CpuidRegs, bit: number): CpuidRegs => {
  const z = r ?? { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  return { ...z, [reg]: (z[reg] ^ (1 << bit)) >>> 0 };
};

/** The model `g` with `c` applied. */
export function changedConfig(g: GuestConfig, c: CpuidChange): GuestConfig {
  const id = g.cpuid;
  const cpuid = (x: Partial<GuestCpuid>): GuestConfig => ({ ...g, cpuid: { ...id, ...x } });
  switch (c.field) {
    case 'none':
      return g;
    case 'family':
      return cpuid({ family: id.family ^ 1 });
    case 'model':
      return cpuid({ model: id.model ^ 1 });
    case 'pdcm':
      return cpuid({ pdcm: !id.pdcm });
    case 'tsx':
      return cpuid({ tsx: !(id.tsx ?? false) });
    case 'archLbr':
      return cpuid({ archLbr: !(id.archLbr ?? false) });
    case 'leaf0a':
      return cpuid({ leaf0a: flipBit(id.leaf0a, c.reg, c.bit) });
    case 'leaf1c':
      return cpuid({ leaf1c: flipBit(id.leaf1c, c.reg, c.bit) });
    case 'perfCapabilities':
      return { ...g, perfCapabilities: g.perfCapabilities ^ (1n << BigInt(c.bit)) };
  }
}

/**
 * KVM_SET_CPUID2 after KVM_RUN of the vCPU's model with `change` applied: only an identical payload is accepted
 * (kvm_cpuid_check_equal), and then nothing changes. Before the first KVM_RUN the command does nothing: a new model
 * then is VmmSetCpuid's case.
 */
export function vmmSetCpuidAgain(w: World, vcpu: number, change: CpuidChange): Observation[] {
  const v = w.index(vcpu);
  if (!w.vcpuHasRun(v)) return [];
  return vmmSetCpuid(w, vcpu, changedConfig(w.guestConfig(v), change));
}

/**
 * KVM_SET_MSRS of one MSR, judged on bare metal of the guest's CPUID, never on KVM's answer: a value that CPU can hold
 * is restored into it and must be accepted, one it cannot hold must be refused, where KVM's ABI for host-initiated
 * writes (kvm-vpmu.md §2.15, §2.18) says nothing else. A declared divergence bare metal takes on (W6) decides as for a
 * guest WRMSR.
 */
export function vmmSetMsr(w: World, vcpu: number, msr: number, value: bigint): Observation[] {
  const v = w.index(vcpu);
  const cur = w.guestConfig(v);
  const ran = w.vcpuHasRun(v);
  const x = w.vcpus[v]!;
  const r = x.hostSetMsr(msr, value);
  const sut = answer(r);
  if (msr === MSR_IA32_PERF_CAPABILITIES) {
    // W4: a PERF_CAPABILITIES no CPU of this CPUID has must be refused; bare metal has no such state.
    const impossible =
      cur.cpuid.pdcm && !ran ? impossibleEnumeration(w.config.host, { ...cur, perfCapabilities: value }) : null;
    const op = { op: 'set-msr', msr, value, afterRun: ran, impossible } as const;
    const ok = perfCapabilitiesTaken(w, v, value, cur, ran) && impossible === null;
    // A new PERF_CAPABILITIES before KVM_RUN is a new model (kvm_pmu_refresh).
    if (ok && cur.cpuid.pdcm && !ran && value !== cur.perfCapabilities)
      w.freshOracle(v, { ...cur, perfCapabilities: value });
    return w.vmmRecord(v, op, sut, ok ? OK : REFUSED);
  }
  const op = { op: 'set-msr', msr, value, afterRun: ran, impossible: null } as const;
  const judged = restoreJudged(w, v, msr, value, r);
  return w.vmmRecord(v, op, sut, judged.expected, judged.adopted);
}

/**
 * KVM_SET_MSRS of PERF_CAPABILITIES as KVM's ABI documents it (kvm-vpmu.md §2.15): without CPUID.PDCM only 0
 * (d75cac366f44); after KVM_RUN only the value it holds (0094f62c7eaa); before it, what KVM reports it supports
 * (KVM_GET_MSRS of the feature MSR), non-zero only with a vPMU (K7), an LBR format only the host's, on the host's
 * family and model.
 */
function perfCapabilitiesTaken(w: World, v: number, value: bigint, cur: GuestConfig, ran: boolean): boolean {
  if (!cur.cpuid.pdcm) return value === 0n;
  if (ran) return value === cur.perfCapabilities;
  const supported = w.vcpus[v]!.supportedPerfCapabilities();
  if ((value & ~supported) !== 0n) return false;
  if (value !== 0n && (cur.cpuid.leaf0a.eax & 0xff) === 0) return false;
  const fmt = value & PERF_CAP_LBR_FMT;
  const host = w.config.host;
  return (
    fmt === 0n ||
    (fmt === (supported & PERF_CAP_LBR_FMT) && cur.cpuid.family === host.family && cur.cpuid.model === host.model)
  );
}

/**
 * What bare metal says of a restored value, and what it then holds. A listed MSR the CPU lacks takes 0 (do_set_msr:
 * kvm_is_advertised_msr); the design's refusal or narrowing that a declaration names is taken on first (W6), as for a
 * guest WRMSR.
 */
function restoreJudged(
  w: World,
  v: number,
  msr: number,
  value: bigint,
  r: HostAccess,
): { expected: Outcome; adopted?: Observation['adopted'] } {
  const o = w.oracles[v]!;
  const adopt = w.config.adopt;
  const sut: Access = r.ok ? ok(r.value) : gp(r.error, r.reservedBits);
  const hostInitiated = { supportedPerfCapabilities: w.vcpus[v]!.supportedPerfCapabilities() };
  const attempt = { vcpu: v, kind: 'wrmsr', msr, value, sut, guest: w.guestConfig(v), hostInitiated } as const;
  if (!o.hasMsr(msr) && value === 0n && w.vcpus[v]!.msrIndexList().includes(msr)) return { expected: OK };
  if (adopt !== undefined && !r.ok) {
    const id = adopt.fault(attempt);
    if (id !== null) return { expected: REFUSED, adopted: adopted(w, { id, bareMetal: 'does not fault' }) };
  }
  const narrowed = adopt !== undefined && r.ok ? adopt.value(attempt) : null;
  const written = narrowed !== null && narrowed.value !== value ? narrowed : null;
  const hw = restoreOnBareMetal(o, msr, written?.value ?? value, w.config.host);
  if (hw.ok) {
    w.noteWrite(v, msr);
    return written === null
      ? { expected: OK }
      : { expected: OK, adopted: adopted(w, { id: written.id, written: written.value }) };
  }
  const a = adopt !== undefined && r.ok ? adopt.result({ ...attempt, oracle: hw }) : null;
  if (a !== null && a.result.ok) return { expected: OK, adopted: adopted(w, { id: a.id, bareMetal: 'faults' }) };
  return { expected: REFUSED };
}

function adopted(w: World, a: NonNullable<Observation['adopted']>): NonNullable<Observation['adopted']> {
  relied('W6');
  w.adopted.push(a.id);
  return a;
}

/**
 * A value the VMM restores, on bare metal of the guest's CPUID: written as a WRMSR would be, but where KVM's ABI makes
 * a host-initiated write differ (kvm-vpmu.md §2.6, §2.18): GLOBAL_STATUS is writable by the host, refusing the bits no
 * status of this CPU has (30dab5c0b65e); a GLOBAL_OVF_CTRL write is checked but clears nothing; a counter's legacy
 * alias holds the value masked to the counter's width, not sign-extended from bit 31.
 */
function restoreOnBareMetal(o: OracleCpu, msr: number, value: bigint, host: Profile): Access {
  const p = o.profile;
  if (!o.hasMsr(msr)) return o.wrmsr(msr, value);
  // A host-initiated DEBUGCTL takes RTM_DEBUG wherever the host has RTM, whatever the guest's CPUID (b333b8ebb85d,
  // vmx_get_supported_debugctl): the guest then reads it back, as from a CPU that holds the bit.
  if (msr === MSR_IA32_DEBUGCTLMSR && (value & DEBUGCTLMSR_RTM_DEBUG) !== 0n && host.tsx && !p.tsx) {
    const r = o.wrmsr(msr, value & ~DEBUGCTLMSR_RTM_DEBUG);
    if (!r.ok) return r;
    o.state.debugctl |= DEBUGCTLMSR_RTM_DEBUG;
    return ok(value);
  }
  if (msr === MSR_CORE_PERF_GLOBAL_STATUS) {
    const bad = value & ~statusBits(p);
    if (bad !== 0n) return gp('IA32_PERF_GLOBAL_STATUS: bits no status of this CPU has', bad);
    o.state.globalStatus = value;
    return ok(value);
  }
  if (msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL) return legalizeStatusReset(p, value);
  const i = msr - MSR_IA32_PERFCTR0;
  if (i >= 0 && i < p.nGP) {
    o.state.pmc[i] = value & p.gpMask;
    o.counterWritten(i);
    return ok(value & p.gpMask);
  }
  const r = o.wrmsr(msr, value);
  if (r.ok) o.hostWrote();
  return r;
}

/**
 * KVM_GET_MSRS of one MSR: what bare metal of the guest's CPUID holds, and 0 for a listed MSR it lacks (do_get_msr:
 * kvm_is_advertised_msr; PERF_CAPABILITIES without PDCM, d75cac366f44).
 */
export function vmmGetMsr(w: World, vcpu: number, msr: number): Observation[] {
  const v = w.index(vcpu);
  const x = w.vcpus[v]!;
  const r = x.hostGetMsr(msr);
  const o = w.oracles[v]!;
  const held = o.hasMsr(msr) ? o.rdmsr(msr) : null;
  const expected =
    held !== null
      ? held.ok
        ? valueOutcome(held.value)
        : REFUSED
      : x.msrIndexList().includes(msr)
        ? valueOutcome(0n)
        : REFUSED;
  return w.vmmRecord(v, { op: 'get-msr', msr }, showHost(r), expected);
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
  const errno = filter === null ? null : filterAbiErrno(filter);
  if (r.ok && errno === null) {
    w.oracleFilter = filter;
    for (const o of w.oracles) if (o instanceof OracleCpu) o.filter = filter;
  }
  return w.vmmRecord(0, { op: 'set-filter', filter }, answer(r), errno === null ? OK : { kind: 'refused', errno });
}

/** The most events KVM_SET_PMU_EVENT_FILTER takes (KVM_PMU_EVENT_FILTER_MAX_EVENTS); more is -E2BIG. */
export const FILTER_MAX_EVENTS = 300;

/** A masked entry's bits on Intel: event select 7:0, unit mask match 15:8, exclude 55, unit mask mask 63:56. */
const MASKED_ENTRY_BITS = 0xff80_0000_0000_ffffn;

/**
 * How KVM_SET_PMU_EVENT_FILTER fails, in the order kvm_vm_ioctl_set_pmu_event_filter checks (kvm-vpmu.md §2.17, the
 * selftest's invalid-filter cases), or null when it succeeds: an action but ALLOW (0) or DENY (1), then a flag but
 * MASKED_EVENTS (1), are -EINVAL; more than 300 events -E2BIG; with masked events, an entry with a bit outside its
 * fields -EINVAL. A plain entry with other bits is accepted and can never match.
 */
function filterAbiErrno(f: KvmPmuEventFilter): Errno | null {
  if (f.action !== 0 && f.action !== 1) return 'EINVAL';
  if ((f.flags & ~1) !== 0) return 'EINVAL';
  if (f.events.length > FILTER_MAX_EVENTS) return 'E2BIG';
  return (f.flags & 1) === 0 || f.events.every((e) => (e & ~MASKED_ENTRY_BITS) === 0n) ? null : 'EINVAL';
}

/**
 * KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY) on the VM of vCPU `vcpu`, which has that vCPU: KVM's rule is -EINVAL once the
 * VM has created a vCPU (kvm_vm_ioctl_enable_cap), so the VMM must be refused and nothing changes for either side.
 */
export function vmmPmuCapability(w: World, vcpu: number, args0: bigint): Observation[] {
  const v = w.index(vcpu);
  const r = w.vcpus[v]!.enablePmuCapability(args0);
  return w.vmmRecord(v, { op: 'pmu-cap', args0 }, answer(r), { kind: 'refused', errno: 'EINVAL' });
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
const answer = (r: HostAccess): Outcome =>
  r.ok ? OK : r.errno === undefined ? REFUSED : { kind: 'refused', errno: r.errno };

/**
 * The same vCPU model, what KVM accepts again after KVM_RUN: kvm_cpuid_check_equal compares the payload entry by
 * entry, and PERF_CAPABILITIES after KVM_RUN takes only the value it holds (0094f62c7eaa). Judged here on the payload,
 * apart from the design's own comparison, so that a fault in that comparison shows.
 */
function sameModel(a: GuestConfig, b: GuestConfig): boolean {
  // An absent HLE/RTM or ARCH_LBR bit is a clear one; an absent leaf 0x1C is no entry, unlike an all-zero one.
  const bits = (c: GuestCpuid) => [c.family, c.model, c.pdcm, c.tsx ?? false, c.archLbr ?? false];
  return (
    isDeepStrictEqual(bits(a.cpuid), bits(b.cpuid)) &&
    isDeepStrictEqual(a.cpuid.leaf0a, b.cpuid.leaf0a) &&
    isDeepStrictEqual(a.cpuid.leaf1c, b.cpuid.leaf1c) &&
    (!b.cpuid.pdcm || a.perfCapabilities === b.perfCapabilities)
  );
}
