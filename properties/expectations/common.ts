/**
 * Known divergences both KVM designs share because they come from the same upstream code (one
 * pmu.c, pmu_intel.c, vmx.c and x86.c for both): each design's list takes these entries, and
 * where the mediated vPMU reaches the same code by another path it says so in its own title and
 * kernel reference, keeping the matcher.
 */

import type { DivergenceContext, KnownDivergence } from './types.js';
import {
  describeObservation,
  diverges,
  isGp,
  type Observation,
  pmisOf,
  readValue,
  reservedBitsOf,
  showOutcome,
} from '../../scenarios/observation.js';
import { counterIndexOf, type GuestConfig, type MsrAttempt, oracleProfile } from '../../scenarios/world.js';
import { PERF_CAP_LBR_FMT } from '../../model/hw/msr/capabilities.js';
import { APIC_LVT_MASKED, APIC_SEND_PENDING, LVTPC_RESERVED, X2APIC_LVTPC } from '../../model/hw/msr/apic.js';
import {
  ARCH_LBR_LBREN,
  ARCH_LBR_MAX_DEPTH,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../../model/hw/msr/lbr_arch.js';
import { isLbrInfoMsr, MSR_LBR_SELECT, MSR_LBR_TOS, MSR_LBR_NHM_FROM } from '../../model/hw/msr/lbr_legacy.js';
import {
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  INTEL_FIXED_0_ANYTHREAD,
  ARCH_PERFMON_EVENTSEL_ANY,
  ARCH_PERFMON_EVENTSEL_EVENT,
  ARCH_PERFMON_EVENTSEL_UMASK,
  HSW_IN_TX_CHECKPOINTED,
} from '../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
  MSR_CORE_PERF_GLOBAL_INUSE,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  GLOBAL_STATUS_LBRS_FROZEN,
  GLOBAL_STATUS_COUNTERS_FROZEN,
  GLOBAL_STATUS_UNC_OVF,
} from '../../model/hw/msr/global.js';
import {
  MSR_IA32_DEBUGCTLMSR,
  DEBUGCTLMSR_LBR,
  DEBUGCTLMSR_BTF,
  DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
  DEBUGCTLMSR_RTM_DEBUG,
} from '../../model/hw/msr/debugctl.js';
import { MAX_FIXED, MAX_GP, type Profile } from '../../model/hw/profile.js';
import type { Cpu } from '../../model/hw/cpu.js';
import { bitCount } from '../../model/hw/bits.js';

/** LBR_SELECT, LBR_TOS and the FROM/TO/INFO records of a legacy-LBR part (Skylake's addresses). */
export const isLegacyLbrMsr = (m: number) =>
  m === MSR_LBR_SELECT || m === MSR_LBR_TOS || (m >= MSR_LBR_NHM_FROM && m < 0x700) || isLbrInfoMsr(m);

/** The access retired as KVM's P6 quirk answers: a read of 0, or a write accepted (and dropped). */
export const readZeroOrAccepted = (o: Pick<Observation, 'kind' | 'sut'>) =>
  o.kind === 'rdmsr' ? readValue(o.sut) === 0n : o.kind === 'wrmsr' && o.sut.kind === 'accepted';

/** A GP counter (either alias) or a fixed counter a KVM design gives a guest (counterOfMsr). */
export const isCounter = (m: number) => counterOfMsr(m) !== null;

/** A host user's event that perf accepted (a refused open holds no counter). */
export const hostEventOpened = (h: Observation) => h.host?.op === 'open' && h.host.accepted;

/**
 * The counter (GP i, or fixed j as 32 + j) a counter MSR names (either GP alias; the fixed counters a KVM design gives:
 * three upstream, FIXED_CTR3 too with a topdown series, which a design without it #GPs), or null.
 */
export function counterOfMsr(m: number): number | null {
  const idx = counterIndexOf(m);
  return idx !== null && idx < 32 + 4 ? idx : null;
}

/** The counter (GP i, or fixed j as 32 + j) a counter read names: RDMSR of either alias, or RDPMC. */
export function counterOf(o: Observation): number | null {
  if (o.target === null) return null;
  const m = o.target;
  if (o.kind === 'rdpmc') return m >>> 16 === 0 ? m & 0xffff : m >>> 16 === 0x4000 ? 32 + (m & 0xffff) : null;
  return o.kind === 'rdmsr' ? counterOfMsr(m) : null;
}

/** Did the guest write DEBUGCTL with this bit set (and KVM take the write)? */
export const debugctlArmed = (history: readonly Observation[], bitNo: number) =>
  history.some(
    (h) =>
      h.kind === 'wrmsr' &&
      h.target === MSR_IA32_DEBUGCTLMSR &&
      h.sut.kind === 'accepted' &&
      h.value !== null &&
      (h.value & (1n << BigInt(bitNo))) !== 0n,
  );

/**
 * A read of what the LBR freeze changes at a PMI-enabled overflow (pmu-semantics.md §4.4), once FREEZE_LBRS_ON_PMI is
 * armed: DEBUGCTL.LBR and the records of legacy LBRs; with Arch LBR under a version-2/3 PMU (decision D41) LBR_CTL's
 * LBREn alone, the records, and an XSAVES image that differs only there. A late overflow freezes late.
 * (A delivered PMI shows first as the run's PMI observation; FREEZE_PERFMON_ON_PMI #GPs in KVM.)
 */
export function lbrFreezeEffect(o: Observation, history: readonly Observation[]): boolean {
  if (!debugctlArmed(history, 11)) return false;
  if (o.kind === 'xsaves')
    return (
      o.sut.kind === 'xsave' &&
      o.oracle.kind === 'xsave' &&
      (o.sut.area.lbrCtl ^ o.oracle.area.lbrCtl) === ARCH_LBR_LBREN &&
      o.sut.area.lbrDepth === o.oracle.area.lbrDepth
    );
  if (o.kind !== 'rdmsr' || o.target === null) return false;
  if (o.target === MSR_ARCH_LBR_CTL)
    return o.sut.kind === 'value' && o.oracle.kind === 'value' && (o.sut.value ^ o.oracle.value) === ARCH_LBR_LBREN;
  return o.target === MSR_IA32_DEBUGCTLMSR || isLegacyLbrMsr(o.target) || isArchLbrRecordMsr(o.target);
}

/** An Arch LBR record MSR: FROM, TO or INFO of some record. */
const isArchLbrRecordMsr = (m: number) =>
  [MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0].some((b) => m >= b && m < b + ARCH_LBR_MAX_DEPTH);

/**
 * Null when the observation differs from bare metal only by what contention takes away: a counter
 * that counted less since it was written, GLOBAL_STATUS missing overflow bits, fewer PMIs, a PMI
 * late (the vCPU has had no more PMIs than bare metal gave it so far), LVTPC unmasked where a PMI it
 * lost masked bare metal's.
 * Otherwise what is wrong, for the weaker contract.
 */
export function lostOnly(o: Observation, c: DivergenceContext, rawWrites = false): string | null {
  if (!diverges(o)) return null;
  const history = c.history;
  const p = progress(o, history, oracleProfile(c.host, c.guest), rawWrites);
  if (p !== null)
    return p.sut <= p.oracle
      ? null
      : `the counter counted ${p.sut} since it was written, more than bare metal's ${p.oracle}`;
  if (
    o.kind === 'rdmsr' &&
    o.target === MSR_CORE_PERF_GLOBAL_STATUS &&
    o.sut.kind === 'value' &&
    o.oracle.kind === 'value'
  )
    return (o.sut.value & ~o.oracle.value) === 0n
      ? null
      : `GLOBAL_STATUS shows bits bare metal does not set (${showOutcome(o.sut)} against ${showOutcome(o.oracle)})`;
  if ((o.kind === 'run' || o.kind === 'pmi') && pmisOf(o.sut).length < pmisOf(o.oracle).length) return null;
  if ((o.kind === 'run' || o.kind === 'pmi') && pmisSoFar(o, history, 'sut') <= pmisSoFar(o, history, 'oracle'))
    return null;
  // A PMI lost leaves LVTPC unmasked where bare metal's delivery masked it (pmu-semantics.md §4.4).
  if (
    o.kind === 'rdmsr' &&
    o.target === X2APIC_LVTPC &&
    o.sut.kind === 'value' &&
    o.oracle.kind === 'value' &&
    o.oracle.value === (o.sut.value | APIC_LVT_MASKED) &&
    o.sut.value !== o.oracle.value &&
    pmisSoFar(o, history, 'sut') < pmisSoFar(o, history, 'oracle', false)
  )
    return null;
  // A PMI lost leaves DEBUGCTL.LBR set where bare metal's, with FREEZE_LBRS_ON_PMI, cleared it (pmu-semantics.md §4.5).
  if (
    o.kind === 'rdmsr' &&
    o.target === MSR_IA32_DEBUGCTLMSR &&
    o.sut.kind === 'value' &&
    o.oracle.kind === 'value' &&
    o.sut.value === (o.oracle.value | DEBUGCTLMSR_LBR) &&
    o.sut.value !== o.oracle.value &&
    (o.sut.value & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI) !== 0n &&
    pmisSoFar(o, history, 'sut') < pmisSoFar(o, history, 'oracle', false)
  )
    return null;
  return `${describeObservation(o)}: guest saw ${showOutcome(o.sut)}, bare metal shows ${showOutcome(o.oracle)}`;
}

/**
 * The PMIs one side has given o's vCPU up to and including o: a lost overflow's PMI may come late, never extra. Bare
 * metal's count is of its overflows: those whose PMI its masked LVTPC dropped, those that rode on another counter's
 * PMI, and those of a counter without INT are each a PMI of their own where a lost count moves them (past the guest's
 * unmasking, away from the other counter's wrap, past the selector write that sets INT). Without `overflows`, bare
 * metal's delivered PMIs only (what masks LVTPC, freezes).
 */
function pmisSoFar(o: Observation, history: readonly Observation[], side: 'sut' | 'oracle', overflows = true): number {
  const of = (h: Observation) =>
    pmisOf(h[side]).length +
    (side === 'oracle' && overflows ? bitCount(h.oracleDroppedPmis ?? 0n) + (h.oracleQuietOverflows ?? 0) : 0);
  let n = of(o);
  for (const h of history) {
    if (h === o) break;
    if (h.vcpu === o.vcpu && (h.kind === 'run' || h.kind === 'pmi')) n += of(h);
  }
  return n;
}

/**
 * What a counter read shows on each side as counts since the counter was last written, modulo the
 * counter's width in the guest's CPUID (`p`, bare metal's): a lost count is a smaller progress whether
 * or not either side has wrapped. `rawWrites`: the design keeps a legacy-alias write as written (no
 * sign extension), so its count starts there.
 */
function progress(
  o: Observation,
  history: readonly Observation[],
  p: Profile,
  rawWrites: boolean,
): { sut: bigint; oracle: bigint } | null {
  const idx = counterOf(o);
  const sut = readValue(o.sut);
  const bare = readValue(o.oracle);
  if (idx === null || sut === null || bare === null) return null;
  const mask = idx < 32 ? p.gpMask : p.fixedMask;
  let base = 0n;
  let sutBase = 0n;
  for (const h of history) {
    if (h === o) break;
    if (h.kind !== 'wrmsr' || h.sut.kind !== 'accepted' || h.target === null || h.value === null) continue;
    const t = h.target;
    if (idx < 32 && t === MSR_IA32_PERFCTR0 + idx) {
      base = BigInt.asUintN(64, BigInt.asIntN(32, h.value)) & mask;
      sutBase = rawWrites ? h.value & mask : base;
    } else if ((idx < 32 && t === MSR_IA32_PMC0 + idx) || (idx >= 32 && t === MSR_CORE_PERF_FIXED_CTR0 + idx - 32))
      sutBase = base = h.value & mask;
  }
  return { sut: (sut - sutBase) & mask, oracle: (bare - base) & mask };
}

/** An LBR record: a FROM/TO pair's half (Skylake's addresses) or an LBR_INFO; not LBR_SELECT or LBR_TOS. */
export const isLegacyLbrRecord = (m: number) => (m >= MSR_LBR_NHM_FROM && m < 0x700) || isLbrInfoMsr(m);

/**
 * A reschedule at or after observation `from` after which the guest LBR event may be gone: a save/restore, or a
 * migration or preemption with DEBUGCTL.LBR clear (intel_pmu_cleanup).
 */
export const lbrEventLost = (h: readonly Observation[], from = 0, freezes = false) =>
  h.some((_, i) => i >= from && lbrEventReleasedAt(h, i, freezes));

/** Observation `i` is a reschedule after which the guest LBR event may be gone (see lbrEventLost). */
export function lbrEventReleasedAt(h: readonly Observation[], i: number, freezes = false): boolean {
  const x = h[i]!;
  return (
    x.vmm?.op === 'save-restore' ||
    ((x.vmm?.op === 'migrate' || x.vmm?.op === 'preempt') && !debugctlLbrSetAt(h, i, freezes))
  );
}

/**
 * DEBUGCTL.LBR before observation `i`: as the guest last wrote it (KVM took it), unless a PMI the guest got since froze
 * the LBRs (`freezes`: a PMU version whose freeze KVM emulates by clearing DEBUGCTL.LBR, with FREEZE_LBRS_ON_PMI set).
 */
function debugctlLbrSetAt(h: readonly Observation[], i: number, freezes = false): boolean {
  let pmi = false;
  for (let k = i - 1; k >= 0; k--) {
    const x = h[k]!;
    if (x.kind === 'wrmsr' && x.target === MSR_IA32_DEBUGCTLMSR && x.sut.kind === 'accepted') {
      const v = x.value ?? 0n;
      if (freezes && pmi && (v & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI) !== 0n) return false;
      return (v & DEBUGCTLMSR_LBR) !== 0n;
    }
    if (x.vmm?.op === 'save-restore') return false;
    if ((x.kind === 'pmi' || x.kind === 'run') && pmisOf(x.sut).length > 0) pmi = true;
  }
  return false;
}

/** KVM freezes a guest's LBRs at a PMI by clearing DEBUGCTL.LBR: PMU versions 2 and 3 (intel_pmu_deliver_pmi). */
export const legacyLbrFreeze = (c: { guest: { cpuid: { leaf0a: { eax: number } } } }) =>
  version(c) >= 2 && version(c) < 4;

/** A read of GLOBAL_STATUS: the guest's RDMSR, or the VMM's KVM_GET_MSRS (both read the status an overflow leaves). */
export const readsGlobalStatus = (o: Observation) =>
  (o.kind === 'rdmsr' && o.target === MSR_CORE_PERF_GLOBAL_STATUS) ||
  (o.kind === 'vmm' && o.vmm?.op === 'get-msr' && o.vmm.msr === MSR_CORE_PERF_GLOBAL_STATUS);

/** The PMU version guest CPUID.0AH gives the guest. */
export const version = (c: { guest: { cpuid: { leaf0a: { eax: number } } } }) => c.guest.cpuid.leaf0a.eax & 0xff;

/** A refusal that names exactly these reserved bits, or (`within`) only bits among them. */
const refusedFor = (reserved: bigint | undefined, bits: bigint) =>
  reserved !== undefined && reserved !== 0n && reserved === bits;
const refusedWithin = (reserved: bigint | undefined, bits: bigint) =>
  reserved !== undefined && reserved !== 0n && (reserved & ~bits) === 0n;

/**
 * KVM gives the guest LBRs (intel_pmu_lbr_is_enabled), from what the VMM configured: a vPMU, PDCM and an LBR format
 * (which W5 leaves only where KVM advertises one), the host's family/model (cpuid_model_is_consistent), and a host
 * whose perf manages legacy LBRs with call-stack mode (vmx_get_perf_capabilities).
 */
export function guestHasLbr(g: GuestConfig, host: Profile): boolean {
  // Arch LBR, from a design that offers it (upstream reports none): CPUID ARCH_LBR and leaf 0x1C's depth mask the
  // host's deepest depth (series.md §4.2, cpuid_enable_lbr); PERF_CAPABILITIES plays no part.
  if (g.cpuid.archLbr === true)
    return (
      (g.cpuid.leaf0a.eax & 0xff) !== 0 &&
      host.archLbr !== undefined &&
      ((g.cpuid.leaf1c?.eax ?? 0) & 0xff) === 1 << (host.archLbr.maxDepth / 8 - 1)
    );
  return (
    (g.cpuid.leaf0a.eax & 0xff) !== 0 &&
    g.cpuid.pdcm &&
    (g.perfCapabilities & PERF_CAP_LBR_FMT) !== 0n &&
    g.cpuid.family === host.family &&
    g.cpuid.model === host.model &&
    host.legacyLbr?.callStack === true
  );
}

/** vmx_get_supported_debugctl for a guest access, from the configuration: LBR|FREEZE_LBRS_ON_PMI with guest LBR, RTM_DEBUG with RTM. */
export function supportedDebugctl(g: GuestConfig, host: Profile): bigint {
  let d = 0n;
  if (guestHasLbr(g, host)) d |= DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
  if (host.tsx && g.cpuid.tsx === true) d |= DEBUGCTLMSR_RTM_DEBUG;
  return d;
}

/**
 * vmx_get_supported_debugctl for an access: a guest's as above; a host-initiated one ignores the guest's CPUID
 * (b333b8ebb85d): LBR|FREEZE_LBRS_ON_PMI wherever KVM advertises an LBR format, RTM_DEBUG wherever the host has RTM.
 */
export function supportedDebugctlOf(a: Pick<MsrAttempt, 'guest' | 'hostInitiated'>, host: Profile): bigint {
  if (a.hostInitiated === undefined) return supportedDebugctl(a.guest, host);
  let d = 0n;
  if ((a.hostInitiated.supportedPerfCapabilities & PERF_CAP_LBR_FMT) !== 0n)
    d |= DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
  if (host.tsx) d |= DEBUGCTLMSR_RTM_DEBUG;
  return d;
}

/**
 * What a new guest LBR event leaves of the LBRs (intel_pmu_lbr_add → intel_pmu_lbr_reset): every FROM/TO/INFO record
 * and LBR_SELECT zeroed, LBR_TOS kept. True if one of them was not zero already.
 */
export function wipeLbrRecords(cpu: Pick<Cpu, 'profile' | 'rdmsr' | 'wrmsr' | 'state'>): boolean {
  const g = cpu.profile.legacyLbr;
  if (g === undefined) return false;
  // Most reschedules find nothing to wipe: said from the state at once, not by reading a hundred MSRs.
  const s = cpu.state;
  const zero = (a: readonly bigint[]) => a.every((x) => x === 0n);
  if ((!g.select || s.lbrSelect === 0n) && zero(s.lbrFrom) && zero(s.lbrTo) && zero(s.lbrInfo)) return false;
  const msrs = g.select ? [MSR_LBR_SELECT] : [];
  for (let i = 0; i < g.depth; i++)
    for (const base of [g.fromBase, g.toBase, g.infoBase]) if (base !== undefined) msrs.push(base + i);
  let changed = false;
  for (const m of msrs) {
    const r = cpu.rdmsr(m);
    if (!r.ok || r.value === 0n) continue;
    cpu.wrmsr(m, 0n);
    changed = true;
  }
  return changed;
}

/**
 * What perf's save and restore of a task's LBRs leave (intel_pmu_lbr_save stops at the first record, newest first from
 * LBR_TOS, whose FROM is 0; intel_pmu_lbr_restore zero-fills the rest): every record from that one on zeroed. True if
 * one of them was not zero already.
 */
export function truncateLbrAtEmptyFrom(cpu: Pick<Cpu, 'profile' | 'rdmsr' | 'wrmsr'>): boolean {
  const g = cpu.profile.legacyLbr;
  if (g === undefined) return false;
  const tos = cpu.rdmsr(MSR_LBR_TOS);
  if (!tos.ok) return false;
  let empty = false;
  let changed = false;
  for (let i = 0; i < g.depth; i++) {
    const idx = (Number(tos.value) - i + g.depth) % g.depth;
    const from = cpu.rdmsr(g.fromBase + idx);
    if (from.ok && from.value === 0n) empty = true;
    if (!empty) continue;
    for (const base of [g.fromBase, g.toBase, g.infoBase]) {
      if (base === undefined) continue;
      const r = cpu.rdmsr(base + idx);
      if (!r.ok || r.value === 0n) continue;
      cpu.wrmsr(base + idx, 0n);
      changed = true;
    }
  }
  return changed;
}

/** The P6-era counter MSRs KVM special-cases, with the GP counter each names. */
const P6_COUNTER_MSRS = new Map([
  [MSR_IA32_PERFCTR0, 0],
  [0xc2, 1],
  [MSR_P6_EVNTSEL0, 0],
  [MSR_P6_EVNTSEL0 + 1, 1],
]);

/**
 * GP counters KVM gives a guest: none without an architectural PMU (intel_pmu_refresh), else CPUID.0AH.EAX[15:8] capped
 * at the host's.
 */
const guestGpCounters = (g: { cpuid: { leaf0a: { eax: number } } }, host: { nGP: number }) =>
  (g.cpuid.leaf0a.eax & 0xff) === 0 ? 0 : Math.min((g.cpuid.leaf0a.eax >> 8) & 0xff, host.nGP);

/**
 * The access is to a P6 counter MSR the guest does not have: the only case kvm_{get,set}_msr_common answer themselves.
 */
const absentP6 = (msr: number | null, g: { cpuid: { leaf0a: { eax: number } } }, host: { nGP: number }) => {
  const i = msr === null ? undefined : P6_COUNTER_MSRS.get(msr);
  return i !== undefined && i >= guestGpCounters(g, host);
};

/** The counter a read names: RDMSR or KVM_GET_MSRS of a counter MSR, RDPMC of a GP counter (its index), or null. */
function counterRead(o: Observation): number | null {
  const msr = o.kind === 'rdmsr' ? o.target : o.kind === 'vmm' && o.vmm?.op === 'get-msr' ? o.vmm.msr : null;
  if (msr !== null) return counterIndexOf(msr);
  return o.kind === 'rdpmc' && o.target !== null && o.target >>> 30 === 0 ? o.target & 0xffff : null;
}

/** An MSR as its last accepted write (the guest's, or KVM_SET_MSRS) left it; 0 after a new vCPU model (a reset). */
export function lastWritten(history: readonly Observation[], msr: number): bigint {
  for (let k = history.length - 1; k >= 0; k--) {
    const o = history[k]!;
    const w = acceptedWrite(o);
    if (w !== null && w.msr === msr) return w.value;
    if (o.vmm?.op === 'set-cpuid' && o.sut.kind === 'ok') return 0n;
  }
  return 0n;
}

/** The MSR write an observation made and KVM took: the guest's WRMSR or the VMM's KVM_SET_MSRS; null for any other. */
export function acceptedWrite(o: Observation): { readonly msr: number; readonly value: bigint } | null {
  if (o.kind === 'wrmsr' && o.sut.kind === 'accepted' && o.target !== null)
    return { msr: o.target, value: o.value ?? 0n };
  if (o.vmm?.op === 'set-msr' && o.sut.kind === 'ok') return { msr: o.vmm.msr, value: o.vmm.value };
  return null;
}

/** `a` is ahead of `b` modulo a `width`-bit counter, by less than half its range (a count, not a wrap back). */
export function aheadModulo(a: bigint, b: bigint, width: number): boolean {
  const d = (a - b) & ((1n << BigInt(width)) - 1n);
  return d !== 0n && d < 1n << BigInt(width - 1);
}

/**
 * An instruction or branch KVM emulates is not counted by a counter whose selector sets IN_TXCP, which bare metal counts
 * outside a transaction like any other (IN_TX counts nothing there, on both sides). Only IN_TXCP's counter 2 can hold it.
 */
export const EMULATED_INSN_SKIPS_IN_TXCP: KnownDivergence = {
  id: 'emulated-insn-skips-in-txcp',
  title:
    'an instruction or branch KVM emulates (an intercepted MSR access, a forced emulation) is not counted by counter 2 when its selector sets IN_TXCP, which outside a transaction counts every such event',
  kernelRef:
    'arch/x86/kvm/pmu.c eventsel_match_perf_hw_id: AMD64_RAW_EVENT_MASK_NB takes bits 35:32 into the match, so an Intel selector with IN_TX or IN_TXCP matches neither PERF_COUNT_HW_INSTRUCTIONS nor BRANCH_INSTRUCTIONS and kvm_pmu_recalc_pmc_emulation leaves it out of pmc_counting_instructions/branches',
  vmm: true,
  // A read of counter 2 behind bare metal (modulo its width), its selector an instructions or branches event with
  // IN_TXCP and no unit mask at some point since the counter was last written: what KVM did not count then stays out.
  matches: (o, c) => {
    if (counterRead(o) !== 2 || o.sut.kind !== 'value' || o.oracle.kind !== 'value') return false;
    if (!inTxcpSinceWritten(c.history)) return false;
    return aheadModulo(o.oracle.value, o.sut.value, (c.guest.cpuid.leaf0a.eax >> 16) & 0xff);
  },
};

/** A selector of an instructions or branches event, no unit mask, with IN_TXCP. */
const inTxcpEmulated = (sel: bigint) => {
  const event = sel & (ARCH_PERFMON_EVENTSEL_EVENT | ARCH_PERFMON_EVENTSEL_UMASK);
  return (sel & HSW_IN_TX_CHECKPOINTED) !== 0n && (event === 0xc0n || event === 0xc4n);
};

/**
 * Did counter 2's selector (the guest's WRMSR or KVM_SET_MSRS) hold such an event at some point since the counter was
 * last written (or a new vCPU model reset both)?
 */
function inTxcpSinceWritten(history: readonly Observation[]): boolean {
  let sel = 0n;
  let held = false;
  for (const o of history) {
    if (o.vmm?.op === 'set-cpuid' && o.sut.kind === 'ok') [sel, held] = [0n, false];
    const w = acceptedWrite(o);
    if (w === null) continue;
    if (w.msr === MSR_P6_EVNTSEL0 + 2) {
      sel = w.value;
      held ||= inTxcpEmulated(sel);
    } else if (counterIndexOf(w.msr) === 2) held = inTxcpEmulated(sel);
  }
  return held;
}

export const P6_PERFCTR_QUIRK: KnownDivergence = {
  id: 'p6-perfctr-quirk',
  title: 'absent MSR_P6_PERFCTR0/1 and MSR_P6_EVNTSEL0/1 read 0 and drop writes instead of #GP',
  kernelRef: 'arch/x86/kvm/x86.c kvm_get_msr_common / kvm_set_msr_common, "case MSR_P6_PERFCTR0/1, MSR_P6_EVNTSEL0/1"',
  matches: (o, c) =>
    (o.kind === 'rdmsr' || o.kind === 'wrmsr') &&
    absentP6(o.target, c.guest, c.host) &&
    isGp(o.oracle) &&
    readZeroOrAccepted(o),
  // Bare metal adopts it (W6): the access retires, a read returning 0 and a write dropped, as KVM does.
  adopt: (a, host) => {
    if (!absentP6(a.msr, a.guest, host) || a.oracle.ok || !a.sut.ok) return null;
    if (a.kind === 'rdmsr' && a.sut.value !== 0n) return null;
    return a.sut;
  },
};

export const VERSION_NOT_CLAMPED: KnownDivergence = {
  id: 'version-not-clamped',
  title: 'a guest whose CPUID says PMU version 4 or 5 gets version-2 emulation: no GLOBAL_STATUS_SET, no GLOBAL_INUSE',
  kernelRef:
    'arch/x86/kvm/pmu.c kvm_init_pmu_capability caps the version at 2; intel_pmu_refresh takes CPUID.0AH version unclamped; kvm_pmu_is_valid_msr has no 0x391/0x392',
  matches: (o, c) =>
    version(c) >= 4 &&
    (o.kind === 'rdmsr' || o.kind === 'wrmsr') &&
    (o.target === MSR_CORE_PERF_GLOBAL_STATUS_SET || o.target === MSR_CORE_PERF_GLOBAL_INUSE) &&
    isGp(o.sut) &&
    reservedBitsOf(o.sut) === undefined,
  // Bare metal faults too (W6): KVM has no such MSR, whatever the value (a refusal of a value is another mechanism).
  adoptFault: (a) =>
    version(a) >= 4 &&
    (a.msr === MSR_CORE_PERF_GLOBAL_STATUS_SET || a.msr === MSR_CORE_PERF_GLOBAL_INUSE) &&
    !a.sut.ok &&
    a.sut.reservedBits === undefined,
};

/** Ovf_Uncore (61), CTR_FRZ (59) and LBR_FRZ (58): real bits from v3/v4 on that KVM reserves. */
/** FIXED_CTR_CTRL's AnyThread bit in every counter's nibble. */
const ANYTHREAD_ALL_FIXED = Array.from(
  { length: MAX_FIXED },
  (_, i) => INTEL_FIXED_0_ANYTHREAD << BigInt(4 * i),
).reduce((a, b) => a | b, 0n);

const STATUS_BITS_RESERVED_BY_KVM = GLOBAL_STATUS_LBRS_FROZEN | GLOBAL_STATUS_COUNTERS_FROZEN | GLOBAL_STATUS_UNC_OVF;

export const STATUS_BITS_V2: KnownDivergence = {
  id: 'status-bits-v2',
  title:
    'GLOBAL_OVF_CTRL/STATUS_RESET (and a VMM restoring GLOBAL_STATUS) takes only the counter bits and 62/63: the v3+ Ovf_Uncore and v4 LBR_FRZ/CTR_FRZ bits #GP',
  kernelRef:
    'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_refresh: global_status_rsvd = global_ctrl_rsvd & ~(OVF_BUF | COND_CHGD)',
  // KVM's refusal names only bits 58/59/61 (global_status_rsvd); bare metal takes the write.
  matches: (o, c) =>
    version(c) >= 3 &&
    o.kind === 'wrmsr' &&
    o.target === MSR_CORE_PERF_GLOBAL_OVF_CTRL &&
    o.oracle.kind === 'accepted' &&
    refusedWithin(reservedBitsOf(o.sut), STATUS_BITS_RESERVED_BY_KVM),
  // The same mask refuses a VMM's KVM_SET_MSRS of GLOBAL_STATUS (kvm_pmu_set_msr, host_initiated).
  adoptFault: (a) =>
    version(a) >= 3 &&
    a.kind === 'wrmsr' &&
    (a.msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL ||
      (a.msr === MSR_CORE_PERF_GLOBAL_STATUS && a.hostInitiated !== undefined)) &&
    !a.sut.ok &&
    refusedWithin(a.sut.reservedBits, STATUS_BITS_RESERVED_BY_KVM),
};

/**
 * A write to fixed counter j that KVM takes and masks (no width check in intel_pmu_set_msr): the value the counter
 * keeps, for a counter KVM gives the guest (v2+, j below the guest's and KVM's count) and a value with bits above
 * its width; else null.
 */
export function fixedCounterMasked(msr: number, value: bigint, g: GuestConfig, host: Profile): bigint | null {
  const j = msr - MSR_CORE_PERF_FIXED_CTR0;
  const { eax, edx } = g.cpuid.leaf0a;
  // Three fixed counters upstream, four with a topdown series (a design without FIXED_CTR3 #GPs its writes).
  const n = (eax & 0xff) > 1 ? Math.min(edx & 0x1f, host.nFixedContig, 4) : 0;
  if (j < 0 || j >= n) return null;
  const mask = (1n << BigInt(Math.min((edx >>> 5) & 0xff, host.fixedWidth))) - 1n;
  return (value & ~mask) === 0n ? null : value & mask;
}

export const FIXED_CTR_WIDTH: KnownDivergence = {
  id: 'fixed-ctr-width',
  title:
    'a fixed counter write with bits above the counter width is masked, not #GP (hardware #GP is decision D2, unverified)',
  kernelRef: 'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_set_msr: get_fixed_pmc → pmc_write_counter, no width check',
  // Only a fixed counter KVM gives the guest, only a value with bits above its width.
  matches: (o, c) =>
    o.kind === 'wrmsr' &&
    o.sut.kind === 'accepted' &&
    isGp(o.oracle) &&
    o.target !== null &&
    o.value !== null &&
    fixedCounterMasked(o.target, o.value, c.guest, c.host) !== null,
  // Bare metal is written what the counter keeps (W6); every later read is compared exactly.
  adoptValue: (a, host) =>
    a.kind === 'wrmsr' && a.value !== null ? fixedCounterMasked(a.msr, a.value, a.guest, host) : null,
};

/** The reserved bits of 31:0 a guest's LVTPC write sets, which KVM drops (bits 63:32 it refuses, as bare metal does). */
function lvtpcDropped(a: { readonly msr: number | null; readonly value: bigint | null }): bigint {
  if (a.msr !== X2APIC_LVTPC || a.value === null || a.value >> 32n !== 0n) return 0n;
  return a.value & LVTPC_RESERVED;
}

export const LVTPC_RESERVED_DROPPED: KnownDivergence = {
  id: 'lvtpc-reserved-dropped',
  title:
    "a guest's x2APIC LVTPC write with reserved bits of 31:0 set is taken with those bits dropped, where bare metal #GPs (the SDM's x2APIC reserved bit checking)",
  kernelRef:
    'arch/x86/kvm/lapic.c kvm_lapic_reg_write, case APIC_LVTPC: "val &= apic_lvt_mask[index]"; kvm_lapic_msr_write refuses only bits 63:32',
  matches: (o) =>
    o.kind === 'wrmsr' &&
    o.sut.kind === 'accepted' &&
    isGp(o.oracle) &&
    lvtpcDropped({ msr: o.target, value: o.value }) !== 0n,
  // Bare metal is written what KVM keeps (W6), so the PMIs that follow and every later read are compared exactly.
  adoptValue: (a) =>
    a.kind === 'wrmsr' && a.hostInitiated === undefined && lvtpcDropped(a) !== 0n ? a.value! & ~LVTPC_RESERVED : null,
};

/** Whether vCPU `v`'s last accepted LVTPC write in `history` set the delivery status. */
function lvtpcStatusWritten(history: readonly Observation[], v: number): boolean {
  const w = history.findLast(
    (h) => h.vcpu === v && h.kind === 'wrmsr' && h.target === X2APIC_LVTPC && h.sut.kind === 'accepted',
  );
  return ((w?.value ?? 0n) & APIC_SEND_PENDING) !== 0n;
}

/** A read of LVTPC that differs from bare metal's only by a delivery status the design has. */
const onlyStatusKept = (sut: bigint, oracle: bigint) =>
  (sut ^ oracle) === APIC_SEND_PENDING && (sut & APIC_SEND_PENDING) !== 0n;

export const LVTPC_STATUS_KEPT: KnownDivergence = {
  id: 'lvtpc-status-kept',
  title:
    "a guest's x2APIC LVTPC write of the read-only delivery status (bit 12) is kept and read back, where bare metal shows the status of its own delivery (that a write of it is ignored, not refused, is decision D32, unverified)",
  kernelRef:
    'arch/x86/kvm/lapic.c: LVT_MASK includes APIC_SEND_PENDING, and kvm_lapic_reg_write keeps val & apic_lvt_mask[index]',
  // Only a read of that vCPU's LVTPC, off by bit 12 alone, after its last write set it.
  matches: (o, c) =>
    o.kind === 'rdmsr' &&
    o.target === X2APIC_LVTPC &&
    o.sut.kind === 'value' &&
    o.oracle.kind === 'value' &&
    onlyStatusKept(o.sut.value, o.oracle.value) &&
    lvtpcStatusWritten(c.history, o.vcpu),
  // Bare metal's read takes the design's value (W6); nothing else of the entry differs.
  adoptRead: (a, history) =>
    a.kind === 'rdmsr' &&
    a.msr === X2APIC_LVTPC &&
    a.sut.ok &&
    a.oracle.ok &&
    onlyStatusKept(a.sut.value, a.oracle.value) &&
    lvtpcStatusWritten(history, a.vcpu),
};

/** LBR and BTF: vmx_set_debugctl drops them when unsupported, so a write of only these never #GPs. */
const DEBUGCTL_DROPPED_NOT_REFUSED = DEBUGCTLMSR_LBR | DEBUGCTLMSR_BTF;

/** The bits of a guest DEBUGCTL write vmx_is_valid_debugctl refuses, for this guest. */
const debugctlRefused = (value: bigint, g: GuestConfig, host: Profile) =>
  value & ~supportedDebugctl(g, host) & ~DEBUGCTL_DROPPED_NOT_REFUSED;

/** Likewise for a guest WRMSR or a host-initiated KVM_SET_MSRS. */
const debugctlRefusedOf = (a: MsrAttempt & { readonly value: bigint }, host: Profile) =>
  a.value & ~supportedDebugctlOf(a, host) & ~DEBUGCTL_DROPPED_NOT_REFUSED;

export const DEBUGCTL_SUBSET: KnownDivergence = {
  id: 'debugctl-subset',
  title: 'DEBUGCTL bits other than LBR, FREEZE_LBRS_ON_PMI (with guest LBR), BTF (dropped) and RTM_DEBUG #GP',
  kernelRef: 'arch/x86/kvm/vmx/vmx.c vmx_get_supported_debugctl / vmx_is_valid_debugctl',
  // A refusal of exactly the bits this guest's supported set lacks (LBR and BTF excepted: those are dropped).
  matches: (o, c) =>
    o.kind === 'wrmsr' &&
    o.target === MSR_IA32_DEBUGCTLMSR &&
    o.oracle.kind === 'accepted' &&
    o.value !== null &&
    refusedFor(reservedBitsOf(o.sut), debugctlRefused(o.value, c.guest, c.host)),
  // Bare metal faults too (W6), before any effect; a VMM's KVM_SET_MSRS is judged on what a host write may set.
  adoptFault: (a, host) =>
    a.kind === 'wrmsr' &&
    a.msr === MSR_IA32_DEBUGCTLMSR &&
    a.value !== null &&
    !a.sut.ok &&
    refusedFor(a.sut.reservedBits, debugctlRefusedOf({ ...a, value: a.value }, host)),
  // An unsupported LBR or BTF is dropped (kvm_pr_unimpl_wrmsr): bare metal is written the value without them (W6).
  adoptValue: (a, host) => {
    if (a.kind !== 'wrmsr' || a.msr !== MSR_IA32_DEBUGCTLMSR || a.value === null) return null;
    const dropped = a.value & DEBUGCTL_DROPPED_NOT_REFUSED & ~supportedDebugctlOf(a, host);
    return dropped === 0n ? null : a.value & ~dropped;
  },
};

/** The AnyThread bits of an MSR: EVTSEL bit 21, or bit 2 of each FIXED_CTR_CTRL field; 0 for any other MSR. */
const anyThreadBits = (msr: number | null) =>
  msr !== null && msr >= MSR_P6_EVNTSEL0 && msr < MSR_P6_EVNTSEL0 + MAX_GP
    ? ARCH_PERFMON_EVENTSEL_ANY
    : msr === MSR_CORE_PERF_FIXED_CTR_CTRL
      ? ANYTHREAD_ALL_FIXED
      : 0n;

export const ANYTHREAD_RESERVED: KnownDivergence = {
  id: 'anythread-reserved',
  title: 'AnyThread (EVTSEL bit 21, FIXED_CTR_CTRL bit 2 of each field) is reserved whatever the PMU version',
  kernelRef:
    'arch/x86/kvm/pmu.c kvm_pmu_refresh reserved_bits 0xffffffff00200000; pmu_intel.c fixed_ctr_ctrl_rsvd keeps bit 2 of each field',
  // KVM's refusal names only AnyThread bits; bare metal (v3+) takes the write.
  matches: (o, c) =>
    version(c) >= 3 &&
    o.kind === 'wrmsr' &&
    o.oracle.kind === 'accepted' &&
    refusedWithin(reservedBitsOf(o.sut), anyThreadBits(o.target)),
  adoptFault: (a) =>
    version(a) >= 3 && a.kind === 'wrmsr' && !a.sut.ok && refusedWithin(a.sut.reservedBits, anyThreadBits(a.msr)),
};

/**
 * The save the VMM made at the exit of the instruction whose PMIs `o` shows (history: the instruction, the save in its
 * step, then `o`), if any: KVM_RUN had returned before re-entering the guest, with the exit handler's requests pending.
 */
export function savedAtExitOf(
  o: Observation,
  h: readonly Observation[],
): { readonly overflowed: bigint; readonly counted: bigint } | undefined {
  const s = o.kind === 'pmi' ? h.at(-2) : undefined;
  return s?.vcpu === o.vcpu && s.step === o.step && s.vmm?.op === 'save-restore' ? s.vmm.atExit : undefined;
}

/** The design's side shows no PMI around the instruction where bare metal's shows one. */
const pmiLost = (o: Observation) => pmisOf(o.sut).length === 0 && pmisOf(o.oracle).length > 0;

/** Both designs: the PMI an instruction raised is lost when the VMM saves the vCPU at its exit. */
export const PMI_LOST_AT_SAVE: KnownDivergence = {
  id: 'pmi-lost-at-save',
  title:
    'a PMI an instruction raises is lost when the VMM saves the vCPU at its exit (KVM_RUN returned to userspace before the next VM-entry): KVM_REQ_PMI is pending, and no saved state carries it',
  kernelRef:
    'arch/x86/kvm/x86.c vcpu_run: after a handled exit, kvm_xfer_to_guest_mode_handle_work returns -EINTR before vcpu_enter_guest runs kvm_pmu_deliver_pmi for KVM_REQ_PMI; kvm_vcpu_ioctl_x86_get_vcpu_events handles KVM_REQ_NMI (process_nmi) and KVM_REQ_SMI only',
  // Only the PMI of an instruction the VMM saved at, which bare metal overflowed a counter in: any other is reported.
  matches: (o, c) => (savedAtExitOf(o, c.history)?.overflowed ?? 0n) !== 0n && pmiLost(o),
};

/**
 * The GLOBAL_STATUS bits of `o`'s vCPU a save at an instruction's exit lost and nothing has settled since: bits bare
 * metal set in such an instruction, until the guest clears them (GLOBAL_OVF_CTRL), the VMM restores GLOBAL_STATUS,
 * or a read shows both sides with the bit set.
 */
function overflowsLostAtSave(o: Observation, h: readonly Observation[]): bigint {
  let lost = 0n;
  for (const x of h) {
    if (x === o) break;
    if (x.vcpu !== o.vcpu) continue;
    if (x.vmm?.op === 'save-restore' && x.vmm.atExit !== undefined) lost |= x.vmm.atExit.overflowed;
    else if (lost === 0n) continue;
    else if (x.kind === 'wrmsr' && x.target === MSR_CORE_PERF_GLOBAL_OVF_CTRL && x.sut.kind === 'accepted')
      lost &= ~(x.value ?? 0n);
    else if (x.vmm?.op === 'set-msr' && x.vmm.msr === MSR_CORE_PERF_GLOBAL_STATUS) lost = 0n;
    else if (x.kind === 'rdmsr' && x.target === MSR_CORE_PERF_GLOBAL_STATUS)
      lost &= ~((readValue(x.sut) ?? 0n) & (readValue(x.oracle) ?? 0n));
  }
  return lost;
}

/**
 * The perf-based vPMU: an emulated event that overflows a counter is folded in, and the overflow found, only at the
 * next VM-entry; a save at the instruction's exit keeps the wrapped count without its GLOBAL_STATUS bit.
 */
export const OVERFLOW_LOST_AT_SAVE: KnownDivergence = {
  id: 'overflow-lost-at-save',
  title:
    "an overflow KVM counts in software (an emulated or skipped instruction) is lost when the VMM saves the vCPU at that instruction's exit: the saved counter has wrapped, GLOBAL_STATUS has no bit for it, and no PMI comes",
  kernelRef:
    'arch/x86/kvm/pmu.c kvm_pmu_incr_counter bumps emulated_counter and requests KVM_REQ_PMU; reprogram_counter (pmc_pause_counter, __kvm_perf_overflow) finds the overflow only in kvm_pmu_handle_event from vcpu_enter_guest; pmu.h pmc_read_counter adds emulated_counter for KVM_GET_MSRS, kvm_pmu_get_msr returns pmu->global_status as it is',
  // The instruction's PMI, or a later GLOBAL_STATUS read lacking only bits such a save lost and nothing settled since.
  matches: (o, c) => {
    if (PMI_LOST_AT_SAVE.matches(o, c)) return true;
    if (o.kind !== 'rdmsr' || o.target !== MSR_CORE_PERF_GLOBAL_STATUS) return false;
    const sut = readValue(o.sut);
    const bare = readValue(o.oracle);
    if (sut === null || bare === null) return false;
    const missing = bare & ~sut;
    return missing !== 0n && (sut & ~bare) === 0n && (missing & ~overflowsLostAtSave(o, c.history)) === 0n;
  },
};
