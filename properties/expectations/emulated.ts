/**
 * Known divergences of today's perf-based vPMU (model/kvm/emulated) from bare metal, each with the
 * kernel code it comes from. A program whose first divergence matches one of these is a known
 * divergence, not a failure; anything else is a finding.
 */

import {
  describeObservation,
  diverges,
  gpOutcome,
  valueOutcome,
  type Observation,
  pmisOf,
  readValue,
  showOutcome,
} from '../../scenarios/observation.js';
import {
  ANYTHREAD_RESERVED,
  lbrFreezeEffect,
  lostOnly,
  DEBUGCTL_SUBSET,
  FIXED_CTR_WIDTH,
  LVTPC_RESERVED_DROPPED,
  LVTPC_STATUS_KEPT,
  guestHasLbr,
  isLegacyLbrMsr,
  lbrEventReleasedAt,
  legacyLbrFreeze,
  lbrEventLost,
  wipeLbrRecords,
  truncateLbrAtEmptyFrom,
  P6_PERFCTR_QUIRK,
  EMULATED_INSN_SKIPS_IN_TXCP,
  OVERFLOW_LOST_AT_SAVE,
  readZeroOrAccepted,
  STATUS_BITS_V2,
  VERSION_NOT_CLAMPED,
  version,
  readsGlobalStatus,
  acceptedWrite,
} from './common.js';
import type { DivergenceContext, KnownDivergence } from './types.js';
import {
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_P6_EVNTSEL0,
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_EVENT,
  ARCH_PERFMON_EVENTSEL_UMASK,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_INT,
} from '../../model/hw/msr/counters.js';
import { GLOBAL_STATUS_PERF_METRICS_OVF_BIT, MSR_CORE_PERF_GLOBAL_CTRL } from '../../model/hw/msr/global.js';
import { APIC_LVT_MASKED, X2APIC_LVTPC } from '../../model/hw/msr/apic.js';
import { DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import type { Access } from '../../model/hw/access.js';
import { counterIndexOf, type MsrAttempt, type WorldFacts } from '../../scenarios/world.js';
import { isLbrInfoMsr, LBR_INFO_CYC_CNT, MSR_LBR_TOS } from '../../model/hw/msr/lbr_legacy.js';
import { ARCH_LBR_LBREN, isArchLbrInfoMsr, MSR_ARCH_LBR_CTL } from '../../model/hw/msr/lbr_arch.js';
import { PERF_COUNT_HW_INSTRUCTIONS } from '../../model/kvm/common/pmu.h.js';
/**
 * The last value written to `msr` of `upTo`'s vCPU before observation `upTo` and taken (the guest's WRMSR, or the VMM's
 * KVM_SET_MSRS, which takes the same path), if any.
 */
function lastWrite(history: readonly Observation[], msr: number, upTo: Observation): bigint | null {
  let v: bigint | null = null;
  for (const h of history) {
    if (h === upTo) break;
    if (h.vcpu !== upTo.vcpu) continue;
    const w = acceptedWrite(h);
    if (w !== null && w.msr === msr) v = w.value;
  }
  return v;
}

/** GLOBAL_CTRL's GP bits at reset (KVM sets every GP counter's enable at refresh, as the hardware's reset value). */
const RESET_GLOBAL_CTRL_GP = 0xffn;

/**
 * A WRMSR to a selector or FIXED_CTR_CTRL that flipped a counter's INT (PMI) bit while bare metal held that counter
 * at -1 just before it (so the write's own retirement overflowed it), and the PMIs around it differ.
 */
function staleIntOverflow(o: Observation, history: readonly Observation[]): boolean {
  if (pmisOf(o.sut).length === pmisOf(o.oracle).length) return false;
  return staleIntWrite(history, history.indexOf(o) - 1) !== null;
}

/** Counter `field` (null: the selector `msr` names) enabled by `value` of its control (EN, or a fixed field's rings). */
const enabledBy = (value: bigint, field: number | null) =>
  field === null ? (value & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n : ((value >> BigInt(4 * field)) & 3n) !== 0n;
/** Its INT (PMI) bit in `value`. */
const intOf = (value: bigint, field: number | null) =>
  field === null ? (value & ARCH_PERFMON_EVENTSEL_INT) !== 0n : ((value >> BigInt(4 * field)) & 8n) !== 0n;

/**
 * The INT (PMI) bit KVM's perf event of a counter was last created with (pmc->intr, set by pmc_reprogram_counter):
 * reprogram_counter creates it only for a counter both its control and GLOBAL_CTRL enable, so at a control write that
 * enables the counter while GLOBAL_CTRL does, or at a GLOBAL_CTRL write that sets the counter's bit while its control
 * enables it; false if neither happened before `upTo`. A disabling write keeps it. A save/restore makes a fresh vCPU
 * (pmc->intr false), whose first VM-entry creates the event only of a counter its restored controls enable.
 */
function createdInt(history: readonly Observation[], msr: number, field: number | null, upTo: Observation): boolean {
  let int = false;
  let control: bigint | null = null;
  let global: bigint | null = null;
  const idx = field === null ? msr - MSR_P6_EVNTSEL0 : 32 + field;
  for (const h of history) {
    if (h === upTo) break;
    if (h.vcpu !== upTo.vcpu) continue;
    if (h.vmm?.op === 'save-restore') {
      // GLOBAL_CTRL the guest never wrote holds its reset value: every GP counter enabled, no fixed one.
      const g = global ?? (field === null ? RESET_GLOBAL_CTRL_GP : 0n);
      const on = control !== null && enabledBy(control, field) && ((g >> BigInt(idx)) & 1n) === 1n;
      int = on && intOf(control!, field);
      continue;
    }
    if (h.kind !== 'wrmsr' || h.sut.kind !== 'accepted' || h.value === null) continue;
    // GLOBAL_CTRL the guest never wrote holds its reset value (a v1 guest has none: every counter counts).
    const on = (g: bigint | null) => (((g ?? (field === null ? RESET_GLOBAL_CTRL_GP : 0n)) >> BigInt(idx)) & 1n) === 1n;
    if (h.target === MSR_CORE_PERF_GLOBAL_CTRL) {
      // reprogram_counters: only a bit that changed; the event is made of the control as it stands.
      if (!on(global) && on(h.value) && control !== null && enabledBy(control, field)) int = intOf(control, field);
      global = h.value;
    }
    if (h.target !== msr) continue;
    control = h.value;
    if (enabledBy(h.value, field) && on(global)) int = intOf(h.value, field);
  }
  return int;
}

/**
 * history[at] is an accepted WRMSR that enabled a counter bare metal held at -1 just before it with an INT bit other
 * than the one KVM's perf event of it was last created with: that new INT (bare metal's PMI request), else null.
 */
function staleIntWrite(history: readonly Observation[], at: number): boolean | null {
  const w = history[at];
  if (w === undefined || w.kind !== 'wrmsr' || w.target === null || w.value === null) return null;
  // The counters at -1 right before the write: after the last instruction before it, or the end of a run after that.
  let before: readonly number[] = [];
  for (let k = at - 1; k >= 0; k--) {
    const h = history[k]!;
    if (h.kind === 'run') {
      before = h.oracleAtMinusOneAtEnd ?? [];
      break;
    }
    if (h.kind === 'rdmsr' || h.kind === 'wrmsr' || h.kind === 'rdpmc') {
      before = h.oracleAtMinusOne ?? [];
      break;
    }
  }
  if (w.target >= MSR_P6_EVNTSEL0 && w.target < MSR_P6_EVNTSEL0 + 8) {
    const i = w.target - MSR_P6_EVNTSEL0;
    const int = (w.value & ARCH_PERFMON_EVENTSEL_INT) !== 0n;
    return before.includes(i) &&
      (w.value & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n &&
      int !== createdInt(history, w.target, null, w)
      ? int
      : null;
  }
  if (w.target === MSR_CORE_PERF_GLOBAL_CTRL) {
    // The enabling GLOBAL_CTRL write of a counter its control enables: KVM counts the write in software.
    for (const i of before) {
      if (((w.value >> BigInt(i)) & 1n) === 0n) continue;
      const [msr, field] = i < 32 ? [MSR_P6_EVNTSEL0 + i, null] : [MSR_CORE_PERF_FIXED_CTR_CTRL, i - 32];
      const control = lastWrite(history, msr, w);
      if (control === null || !enabledBy(control, field)) continue;
      if (intOf(control, field) !== createdInt(history, msr, field, w)) return intOf(control, field);
    }
    return null;
  }
  if (w.target !== MSR_CORE_PERF_FIXED_CTR_CTRL) return null;
  for (const i of before) {
    if (i < 32) continue;
    const f = (w.value >> BigInt(4 * (i - 32))) & 0xfn;
    if ((f & 3n) !== 0n && ((f & 8n) !== 0n) !== createdInt(history, w.target, i - 32, w)) return (f & 8n) !== 0n;
  }
  return null;
}

/**
 * The LBR freeze a stale-INT write made or skipped, read at `o`: the last such write before it, with the freeze on the
 * side that requested a PMI (bare metal if the new INT is set, KVM if the old one was). A read of the freeze control
 * (DEBUGCTL.LBR, LBR_CTL.LBREn, an XSAVES image's LBR_CTL) must differ that way, with no guest write of either control
 * (nor an XRSTORS) since, which would set both sides alike; the records stay excused, what one side recorded the other
 * not.
 */
function staleIntFreeze(o: Observation, history: readonly Observation[]): boolean {
  if (o.kind === 'vmm' || !lbrFreezeEffect(o, history)) return false;
  const end = history.indexOf(o);
  let at = -1;
  let int: boolean | null = null;
  for (let k = (end < 0 ? history.length : end) - 1; k >= 0 && int === null; k--) {
    const h = history[k]!;
    if (h.kind === 'wrmsr' && h.sut.kind === 'accepted') {
      int = staleIntWrite(history, k);
      at = k;
    }
  }
  if (int === null) return false;
  const control = (bit: bigint, sut: bigint, oracle: bigint) =>
    (sut ^ oracle) === bit &&
    ((int ? oracle : sut) & bit) === 0n &&
    ((int ? sut : oracle) & bit) !== 0n &&
    !history
      .slice(at + 1, end < 0 ? undefined : end)
      .some(
        (h) =>
          h.kind === 'xrstors' ||
          (h.kind === 'wrmsr' &&
            h.sut.kind === 'accepted' &&
            (h.target === MSR_IA32_DEBUGCTLMSR || h.target === MSR_ARCH_LBR_CTL)),
      );
  if (o.kind === 'xsaves')
    return (
      o.sut.kind === 'xsave' &&
      o.oracle.kind === 'xsave' &&
      control(ARCH_LBR_LBREN, o.sut.area.lbrCtl, o.oracle.area.lbrCtl)
    );
  const bit =
    o.target === MSR_IA32_DEBUGCTLMSR ? DEBUGCTLMSR_LBR : o.target === MSR_ARCH_LBR_CTL ? ARCH_LBR_LBREN : null;
  if (bit === null) return true; // a record: what one side recorded and the other did not
  return o.sut.kind === 'value' && o.oracle.kind === 'value' && control(bit, o.sut.value, o.oracle.value);
}

/** A host user's event with a branch stack that perf accepted: it takes the LBRs. */
const hostBranchStackOpened = (h: Observation) =>
  h.host?.op === 'open' && h.host.accepted && h.host.attr.branchSample !== undefined;
const hostOpened = (h: Observation) => h.host?.op === 'open' && h.host.accepted;

/**
 * Was the counter written by `w` enabled, and had guest work run since it was last enabled? Only
 * then does its perf event hold a count that the stale period leaves out.
 */
function runningWithCounts(history: readonly Observation[], w: Observation, version: number, m = w.target!): boolean {
  const fixed = m >= MSR_CORE_PERF_FIXED_CTR0 && m < MSR_CORE_PERF_FIXED_CTR0 + 4;
  const idx = fixed
    ? 32 + (m - MSR_CORE_PERF_FIXED_CTR0)
    : m >= MSR_IA32_PMC0
      ? m - MSR_IA32_PMC0
      : m - MSR_IA32_PERFCTR0;
  const enabledNow = (upTo: Observation) => {
    const local = fixed
      ? (((lastWrite(history, MSR_CORE_PERF_FIXED_CTR_CTRL, upTo) ?? 0n) >> BigInt(4 * (idx - 32))) & 3n) !== 0n
      : ((lastWrite(history, MSR_P6_EVNTSEL0 + idx, upTo) ?? 0n) & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n;
    const global =
      version < 2 ||
      (((lastWrite(history, MSR_CORE_PERF_GLOBAL_CTRL, upTo) ?? (fixed ? 0n : RESET_GLOBAL_CTRL_GP)) >> BigInt(idx)) &
        1n) ===
        1n;
    return local && global;
  };
  if (!enabledNow(w)) return false;
  // Some guest work ran while it was enabled, before the write.
  for (let i = history.indexOf(w) - 1; i >= 0; i--) {
    const h = history[i]!;
    if (h.kind === 'run' && enabledNow(h)) return true;
  }
  return false;
}

/** Did the counter written by `w` count that WRMSR (instructions retired at CPL 0)? */
function countsOwnWrmsr(history: readonly Observation[], w: Observation): boolean {
  const m = w.target!;
  if (m >= MSR_CORE_PERF_FIXED_CTR0) {
    const ctrl = lastWrite(history, MSR_CORE_PERF_FIXED_CTR_CTRL, w) ?? 0n;
    return m === MSR_CORE_PERF_FIXED_CTR0 && (ctrl & 1n) === 1n; // FC0 counts instructions; OS enable is bit 0
  }
  const i = m >= MSR_IA32_PMC0 ? m - MSR_IA32_PMC0 : m - MSR_IA32_PERFCTR0;
  const sel = lastWrite(history, MSR_P6_EVNTSEL0 + i, w) ?? 0n;
  return (
    (sel & (ARCH_PERFMON_EVENTSEL_EVENT | ARCH_PERFMON_EVENTSEL_UMASK)) === PERF_COUNT_HW_INSTRUCTIONS &&
    (sel & ARCH_PERFMON_EVENTSEL_OS) !== 0n &&
    (sel & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n
  );
}

/** What a bare-metal read returned (0 for a #GP). */
const valueOf = (a: Access) => (a.ok ? a.value : 0n);

/**
 * Null when `o` is an LBR_INFO read that differs from bare metal only in CYC_CNT (bits 15:0), by more cycles, or by
 * any after a reschedule moved the vCPU's LBRs (the timer is the pCPU's); otherwise what else differs.
 */
function cyclesOnly(o: Observation, history: readonly Observation[]): string | null {
  const moved = () =>
    history.some((h) => h.vmm?.op === 'migrate' || h.vmm?.op === 'preempt' || h.vmm?.op === 'save-restore');
  // INFO pairs (guest, bare metal) that must differ in CYC_CNT alone: an LBR_INFO read, or the records of an XSAVES.
  const infos = infoPairs(o);
  if (infos !== null) {
    const sameElse = infos.every(([a, b]) => (a & ~LBR_INFO_CYC_CNT) === (b & ~LBR_INFO_CYC_CNT));
    const more = infos.every(([a, b]) => (a & LBR_INFO_CYC_CNT) >= (b & LBR_INFO_CYC_CNT));
    if (sameElse && (more || moved())) return null;
  }
  return `${describeObservation(o)}: guest saw ${showOutcome(o.sut)}, bare metal shows ${showOutcome(o.oracle)}`;
}

/** A read both sides answered, as the observation it makes (what cyclesOnly judges). */
function readObservation(a: MsrAttempt & { readonly oracle: Access }): Observation {
  const outcome = (x: Access) => (x.ok ? valueOutcome(x.value) : gpOutcome(x.gp));
  return {
    step: -1,
    vcpu: -1,
    kind: 'rdmsr',
    target: a.msr,
    value: null,
    sut: outcome(a.sut),
    oracle: outcome(a.oracle),
  };
}

/** The record MSRs holding LBR_INFO: legacy MSR_LBR_INFO_0.., Arch IA32_LBR_x_INFO. */
const isInfoMsr = (m: number) => isLbrInfoMsr(m) || isArchLbrInfoMsr(m);

/**
 * The INFO values of `o` on both sides, where everything else it shows is the same: an INFO read's value, or every
 * record's INFO of an XSAVES image whose other fields are equal; null for anything else.
 */
function infoPairs(o: Observation): [bigint, bigint][] | null {
  if (o.kind === 'rdmsr' && o.target !== null && isInfoMsr(o.target)) {
    const sut = readValue(o.sut);
    const bare = readValue(o.oracle);
    return sut === null || bare === null ? null : [[sut, bare]];
  }
  if (o.kind !== 'xsaves' || o.sut.kind !== 'xsave' || o.oracle.kind !== 'xsave') return null;
  const a = o.sut.area;
  const b = o.oracle.area;
  const same =
    a.lbrCtl === b.lbrCtl &&
    a.lbrDepth === b.lbrDepth &&
    a.entries.length === b.entries.length &&
    a.entries.every((e, i) => e.from === b.entries[i]!.from && e.to === b.entries[i]!.to);
  return same ? a.entries.map((e, i) => [e.info, b.entries[i]!.info]) : null;
}

/** `o` is an LBR_INFO read, or an XSAVES image, whose two sides differ in the INFO cycle counts (CYC_CNT) alone. */
export function infoCyclesOnly(o: Observation): boolean {
  const infos = infoPairs(o);
  return (
    infos !== null &&
    infos.some(([a, b]) => a !== b) &&
    infos.every(([a, b]) => (a & ~LBR_INFO_CYC_CNT) === (b & ~LBR_INFO_CYC_CNT))
  );
}

/** Every counter a guest can have: GP 0..7, fixed 0..2 (as 32 + j). */
/** Every counter a guest may have: GP 0-7, fixed 0-3 (FIXED_CTR3 where a series gives it). */
const COUNTERS = [0, 1, 2, 3, 4, 5, 6, 7, 32, 33, 34, 35];
const statusBit = (idx: number) => 1n << BigInt(idx);
/** What a counter's overflow sets in GLOBAL_STATUS: FIXED_CTR3's also sets bit 48 with GLOBAL_CTRL[48] set (decision D11). */
const overflowBits = (idx: number) =>
  idx === 35 ? statusBit(idx) | statusBit(GLOBAL_STATUS_PERF_METRICS_OVF_BIT) : statusBit(idx);

/**
 * `o` shows only that the counters of `bits` (GLOBAL_STATUS bits) overflowed at another time than on bare metal.
 * `late`: later only: a run or PMI observation with fewer PMIs or as many each after the same or a later unit,
 * GLOBAL_STATUS lacking some of their bits. `later-unit`: as many PMIs, each after the same or a later unit.
 * `any`: earlier or later: any PMI difference, GLOBAL_STATUS differing in their bits only. `late` and `any` also
 * take what the legacy LBR freeze changes while FREEZE_LBRS_ON_PMI is armed; all but `later-unit` take LVTPC differing
 * in its mask bit alone, which the PMI's delivery sets (`late`: not yet set on the guest). Counter values never.
 */
function overflowMovedOnly(
  o: Observation,
  bits: bigint,
  history: readonly Observation[],
  how: 'late' | 'later-unit' | 'any',
): boolean {
  if (o.kind === 'run' || o.kind === 'pmi') {
    if (how === 'any') return true;
    const a = pmisOf(o.sut);
    const b = pmisOf(o.oracle);
    if (a.length < b.length) return how === 'late';
    return a.length === b.length && a.every((p, i) => p.vector === b[i]!.vector && p.afterUnit >= b[i]!.afterUnit);
  }
  if (how === 'later-unit') return false;
  // The PMI's delivery masks LVTPC: a moved PMI moves when the mask bit is set, and nothing else of LVTPC.
  if (o.kind === 'rdmsr' && o.target === X2APIC_LVTPC) {
    const sut = readValue(o.sut);
    const bare = readValue(o.oracle);
    return (
      sut !== null &&
      bare !== null &&
      (sut ^ bare) === APIC_LVT_MASKED &&
      (how === 'any' || (sut & APIC_LVT_MASKED) === 0n)
    );
  }
  // The guest's RDMSR, or the VMM's KVM_GET_MSRS: both read the status a moved overflow leaves.
  if (readsGlobalStatus(o)) {
    const sut = readValue(o.sut);
    const bare = readValue(o.oracle);
    if (sut === null || bare === null || ((sut ^ bare) & ~bits) !== 0n) return false;
    return how === 'any' || (sut & ~bare) === 0n;
  }
  // Of the VMM's ioctls, only its read of GLOBAL_STATUS shows a moved overflow.
  return o.kind !== 'vmm' && lbrFreezeEffect(o, history);
}

/**
 * perf-min-period's overflow, late past an unmasking of LVTPC: bare metal's counter, armed at -1, wrapped while LVTPC was
 * masked and its PMI was dropped (D7); KVM's wraps one event later, when LVTPC may be unmasked, and the guest gets a PMI
 * bare metal never sent. True where, in guest work (perf's counter overflows there; an instruction KVM counts in software
 * never signals the wrap, see pmc_pause_counter), bare metal has no PMI, the design at most one for each such counter,
 * and LVTPC is unmasked: nothing in guest work unmasks it, so a PMI under a mask that stayed is never this.
 */
function pmiMaskDropped(o: Observation, f: WorldFacts): boolean {
  if (o.kind !== 'run') return false;
  if (pmisOf(o.oracle).length > 0) return false;
  let n = 0;
  for (const idx of COUNTERS) {
    const x = f.oracleCounter(o.vcpu, idx);
    if (x !== null && x.armedAtMinusOne && x.pmiDropped) n++;
  }
  const lvtpc = f.oracleLvtpc(o.vcpu);
  return n >= pmisOf(o.sut).length && lvtpc !== null && (lvtpc & APIC_LVT_MASKED) === 0n;
}

/**
 * Null when `o` differs from bare metal only as a moved overflow of a counter write-period-from-base left with a
 * stale period: PMIs while one's period is stale; GLOBAL_STATUS in the bits of counters whose period ever was (a
 * missed overflow stays missed); what the legacy LBR freeze changes (a missed freeze stays missed). Else what differs.
 */
function stalePeriodOnly(o: Observation, history: readonly Observation[], v: number): string | null {
  // The PMIs around an instruction come as it retires: the counters stale before it count, though it may reprogram
  // one (a selector write: KVM finds the late overflow as it pauses the event).
  const { now, ever } = stalePeriodCounters(history, v, o.kind === 'pmi' ? o.step : null);
  const excused =
    ((o.kind === 'run' || o.kind === 'pmi') && now !== 0n && overflowMovedOnly(o, now, history, 'any')) ||
    (o.kind !== 'run' && o.kind !== 'pmi' && ever !== 0n && overflowMovedOnly(o, ever, history, 'any')) ||
    (ever !== 0n && (unmaskedPastDrop(o, history) || maskedPastMove(o, history)));
  return excused || !diverges(o)
    ? null
    : `${describeObservation(o)}: guest saw ${showOutcome(o.sut)}, bare metal shows ${showOutcome(o.oracle)}`;
}

/**
 * write-period-from-base between two runs of one program, one with a save/restore inserted (property 4): the restore
 * makes the perf events anew from the counters' values, so a period one run left stale is fresh in the other. True
 * where `o` differs between them only as such a moved overflow does: PMIs while a counter's period is stale, GLOBAL_STATUS
 * and LVTPC where one ever was. `history` is the run with the insertion; a save/restore reprograms nothing the stale
 * periods are computed from, so it gives the plain run's too.
 */
export function stalePeriodMovedBetweenRuns(o: Observation, history: readonly Observation[], v: number): boolean {
  const { now, ever } = stalePeriodCounters(history, v, o.kind === 'pmi' ? o.step : null);
  if (o.kind === 'run' || o.kind === 'pmi') return now !== 0n;
  return ever !== 0n && overflowMovedOnly(o, ever, history, 'any');
}

/**
 * A PMI moved off bare metal's side leaves the LVTPC masks apart (a delivery masks LVTPC; masked, it latches nothing:
 * pmu-semantics.md §4.4, D7): bare metal's masked, the design's not. True where `o`'s one PMI is the design's alone, of
 * an overflow whose PMI bare metal's mask dropped there, and since the guest last unmasked LVTPC bare metal delivered a
 * PMI and the design none.
 */
function unmaskedPastDrop(o: Observation, history: readonly Observation[]): boolean {
  if (o.kind !== 'run' && o.kind !== 'pmi') return false;
  if ((o.oracleDroppedPmis ?? 0n) === 0n || pmisOf(o.oracle).length !== 0 || pmisOf(o.sut).length !== 1) return false;
  return onlySideSinceUnmask(o, history, 'oracle');
}

/**
 * Since the guest last unmasked LVTPC (before `o`), `side` delivered a PMI and the other side none: `side`'s LVTPC is
 * masked, the other's not.
 */
function onlySideSinceUnmask(o: Observation, history: readonly Observation[], side: 'sut' | 'oracle'): boolean {
  const other = side === 'sut' ? 'oracle' : 'sut';
  let n = 0;
  for (let i = history.length - 1; i >= 0; i--) {
    const h = history[i]!;
    if (h === o) continue;
    if (h.kind === 'wrmsr' && h.target === X2APIC_LVTPC && h.sut.kind === 'accepted' && h.value !== null)
      return (h.value & APIC_LVT_MASKED) === 0n && n > 0;
    if (h.kind !== 'run' && h.kind !== 'pmi') continue;
    if (pmisOf(h[other]).length > 0) return false;
    n += pmisOf(h[side]).length;
  }
  return false;
}

/**
 * The mirror of unmaskedPastDrop: a PMI moved onto the design's side (early) masked its LVTPC where bare metal's stayed
 * unmasked, so a PMI bare metal then delivers, the design's mask drops (pmu-semantics.md §4.4). True where `o` has no
 * PMI of the design's and bare metal's, and since the guest last unmasked LVTPC the design delivered a PMI and bare
 * metal none.
 */
function maskedPastMove(o: Observation, history: readonly Observation[]): boolean {
  if (o.kind !== 'run' && o.kind !== 'pmi') return false;
  if (pmisOf(o.sut).length !== 0 || pmisOf(o.oracle).length === 0) return false;
  return onlySideSinceUnmask(o, history, 'sut');
}

/**
 * The counters (as GLOBAL_STATUS bits) whose perf period write-period-from-base left stale: the last write to the
 * counter found its event running with counts, and the counter did not count that write (a guest WRMSR it does not
 * count, or the VMM's KVM_SET_MSRS, which takes the same pmc_write_counter); nothing reprogrammed it since (a changed
 * selector, fixed field or GLOBAL_CTRL bit). `now`: as the history stood before step `cutoff` (its observations come
 * last), or at its end; `ever`: the counters any write of the whole history ever left so. One pass gives both.
 */
function stalePeriodCounters(
  history: readonly Observation[],
  v: number,
  cutoff: number | null,
): { now: bigint; ever: bigint } {
  let stale = 0n;
  let ever = 0n;
  let now: bigint | null = null;
  const last = new Map<number, bigint>();
  for (const h of history) {
    if (now === null && h.step === cutoff) now = stale;
    const byVmm = h.vmm?.op === 'set-msr' && h.sut.kind === 'ok' ? h.vmm.msr : null;
    const written = byVmm ?? (h.kind === 'wrmsr' && h.sut.kind === 'accepted' ? h.target : null);
    const counter = written === null ? null : counterIndexOf(written);
    if (counter !== null) {
      stale &= ~statusBit(counter);
      // The VMM's write retires no guest instruction, so the counter never counts it.
      const counted = byVmm === null && countsOwnWrmsr(history, h);
      if (!counted && runningWithCounts(history, h, v, written!)) stale |= statusBit(counter);
      ever |= stale;
      continue;
    }
    // A control write reprograms what it changes, the VMM's as the guest's: the period is armed afresh.
    const w = acceptedWrite(h);
    if (w === null) continue;
    const m = w.msr;
    const before = last.get(m) ?? (m === MSR_CORE_PERF_GLOBAL_CTRL ? 0xffn : 0n);
    last.set(m, w.value);
    if (m >= MSR_P6_EVNTSEL0 && m < MSR_P6_EVNTSEL0 + 8) {
      if (before !== w.value) stale &= ~statusBit(m - MSR_P6_EVNTSEL0);
    } else if (m === MSR_CORE_PERF_GLOBAL_CTRL) stale &= ~(before ^ w.value);
    else if (m === MSR_CORE_PERF_FIXED_CTR_CTRL)
      for (let j = 0; j < 3; j++) if (((before ^ w.value) >> BigInt(4 * j)) & 0xfn) stale &= ~statusBit(32 + j);
  }
  return { now: now ?? stale, ever };
}

/**
 * Whether a host user's event (with a branch stack, if `lbr`) was open where vCPU `v`'s events run: on the pCPU its
 * thread was on at the time, or on its thread. `now`: at the end of the history only, else at any point of it.
 */
export function hostCompeted(c: DivergenceContext, v: number, lbr: boolean, now = false): boolean {
  const cpus = c.facts?.cpus ?? 2;
  let cpu = c.facts?.initialCpu(v) ?? v % cpus;
  const open = new Map<number, { cpu: number } | { vcpu: number }>();
  const competes = () => [...open.values()].some((on) => ('cpu' in on ? on.cpu === cpu : on.vcpu === v));
  let ever = false;
  for (const h of c.history) {
    const op = h.host;
    if (h.vcpu === v && (h.vmm?.op === 'migrate' || h.vmm?.op === 'save-restore'))
      cpu = ((h.vmm.cpu % cpus) + cpus) % cpus;
    else if (op?.op === 'open' && op.accepted && op.index !== null && (!lbr || op.attr.branchSample !== undefined))
      open.set(op.index, op.on);
    else if (op?.op === 'close') open.delete(op.index);
    if (!now && competes()) ever = true;
  }
  return now ? competes() : ever;
}

/**
 * A guest LBR MSR access KVM makes "dummy" without an ACTIVE guest LBR event: a read shows 0, a write does not fault
 * (W3: accepted) where bare metal may #GP it.
 */
const dummyLbrAccess = (o: Observation) =>
  (o.kind === 'rdmsr' || o.kind === 'wrmsr') && o.target !== null && isLegacyLbrMsr(o.target) && readZeroOrAccepted(o);

/**
 * The guest LBR event of vCPU `v` is in ERROR, and KVM has not released it since: a host user's CPU-pinned event
 * (of the kind `holds` opens: a branch-stack one takes the LBRs, any one a counter a guest event before it needs) was
 * open on the vCPU's pCPU while the event existed (any guest LBR MSR access, or DEBUGCTL.LBR set, creates it), or a
 * pinned one on the vCPU's thread was open when the event was created. perf schedules CPU-pinned events before
 * task-pinned ones, task-pinned ones in the order they were made, and never schedules an ERROR event in again
 * (kernel/events/core.c: ctx_sched_in, perf_event_groups_cmp's group_index order, merge_sched_in's
 * PERF_EVENT_STATE_ERROR).
 */
function lbrEventInError(c: DivergenceContext, v: number, holds: (h: Observation) => boolean): boolean {
  const cpus = c.facts?.cpus ?? 2;
  let cpu = c.facts?.initialCpu(v) ?? v % cpus;
  const pinned = new Map<number, number>();
  const onThread = new Set<number>();
  let exists = false;
  let error = false;
  c.history.forEach((h, i) => {
    const op = h.host;
    if (h.vcpu === v && lbrEventReleasedAt(c.history, i, legacyLbrFreeze(c))) exists = error = false;
    if (h.vcpu === v && (h.vmm?.op === 'migrate' || h.vmm?.op === 'save-restore'))
      cpu = ((h.vmm.cpu % cpus) + cpus) % cpus;
    else if (holds(h) && op?.op === 'open' && op.index !== null && op.attr.pinned) {
      if ('cpu' in op.on) pinned.set(op.index, op.on.cpu);
      else if (op.on.vcpu === v) onThread.add(op.index);
    } else if (op?.op === 'close') {
      pinned.delete(op.index);
      onThread.delete(op.index);
    } else if (
      h.vcpu === v &&
      h.target !== null &&
      ((h.kind === 'rdmsr' && isLegacyLbrMsr(h.target)) ||
        (h.kind === 'wrmsr' &&
          (isLegacyLbrMsr(h.target) ||
            (h.target === MSR_IA32_DEBUGCTLMSR &&
              h.sut.kind === 'accepted' &&
              ((h.value ?? 0n) & DEBUGCTLMSR_LBR) !== 0n))))
    ) {
      if (!exists && onThread.size > 0) error = true;
      exists = true;
    }
    if (exists && [...pinned.values()].includes(cpu)) error = true;
  });
  return error;
}

/** Since the guest last wrote LBR_TOS, a host branch-stack user opened or the guest LBR event was lost. */
/**
 * A record value a guest whose TOS moved may read in place of bare metal's: empty, or one of bare metal's records (an
 * LBR_INFO up to its cycle count, which lbr-cycles-include-exits lets differ).
 */
function shiftedRecord(msr: number, v: bigint, records: readonly bigint[] | null | undefined): boolean {
  if (records === null || records === undefined) return false;
  const info = isLbrInfoMsr(msr);
  const key = (x: bigint) => (info ? x & ~LBR_INFO_CYC_CNT : x);
  return v === 0n || records.some((r) => key(r) === key(v));
}

function tosMovedSinceWritten(h: readonly Observation[], freezes: boolean): boolean {
  const w = h.findLastIndex((x) => x.kind === 'wrmsr' && x.target === MSR_LBR_TOS && x.sut.kind === 'accepted');
  return h.slice(w + 1).some(hostBranchStackOpened) || lbrEventLost(h, w + 1, freezes);
}

export const EMULATED_EXPECTATIONS: readonly KnownDivergence[] = [
  P6_PERFCTR_QUIRK,
  OVERFLOW_LOST_AT_SAVE,
  EMULATED_INSN_SKIPS_IN_TXCP,
  FIXED_CTR_WIDTH,
  LVTPC_RESERVED_DROPPED,
  LVTPC_STATUS_KEPT,
  VERSION_NOT_CLAMPED,
  {
    id: 'no-v4-lbr-freeze',
    title:
      'a guest with PMU version 4 or 5 and FREEZE_LBRS_ON_PMI gets no freeze: LBR_FRZ is never set and the LBRs keep recording after the PMI (bugs.md #17, reports/filed/0002)',
    kernelRef:
      'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_deliver_pmi: freeze emulated only for 1 < version < 4; GLOBAL_STATUS bit 58 is in global_status_rsvd',
    // Adopted whole: bare metal of such a guest ignores FREEZE_LBRS_ON_PMI (W6), so what it leaves differs nowhere.
    matches: () => false,
    noLbrFreeze: (g, host) => (g.cpuid.leaf0a.eax & 0xff) >= 4 && guestHasLbr(g, host),
    filed: '0002-kvm-no-lbr-freeze-for-pmu-v4',
  },
  {
    id: 'v1-freeze-lbrs-accepted',
    title:
      'a guest with PMU version 1 and LBRs may set FREEZE_LBRS_ON_PMI, which a version-1 PMU does not have (decision D37; reports/filed/0005)',
    kernelRef:
      'arch/x86/kvm/vmx/vmx.c vmx_get_supported_debugctl: LBR and FREEZE_LBRS_ON_PMI whenever intel_pmu_lbr_is_enabled, whatever the PMU version',
    // Adopted whole: bare metal of such a guest holds the bit too, without effect, as KVM does (W6).
    matches: () => false,
    noLbrFreeze: (g, host) => (g.cpuid.leaf0a.eax & 0xff) === 1 && guestHasLbr(g, host),
    filed: '0005-kvm-no-lbr-freeze-for-pmu-v1',
  },
  {
    id: 'no-freeze-without-guest-lbr',
    title:
      'a guest KVM gives no LBRs gets no freeze on PMI, though a VMM may set FREEZE_LBRS_ON_PMI in its DEBUGCTL (a host-initiated write ignores the guest CPUID)',
    kernelRef:
      'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_deliver_pmi returns unless intel_pmu_lbr_is_enabled; vmx.c vmx_get_supported_debugctl (host_initiated, b333b8ebb85d)',
    // Adopted whole: bare metal of such a guest holds the bit without effect (a guest WRMSR of it #GPs: debugctl-subset).
    matches: () => false,
    noLbrFreeze: (g, host) => !guestHasLbr(g, host),
  },
  STATUS_BITS_V2,
  {
    id: 'write-period-from-base',
    title:
      "after a write to a running counter (a guest WRMSR, or the VMM's KVM_SET_MSRS), the perf period is armed from the pre-write base, so the overflow comes late by the events counted since the last reprogram (reports/filed/0001)",
    kernelRef:
      'arch/x86/kvm/pmu.c pmc_write_counter → pmc_update_sample_period: get_sample_period(pmc, pmc->counter), where pmc->counter is the offset base, not the value written',
    // Only a counter that does not count the WRMSR itself (an instruction at CPL 0) keeps the stale period (counting
    // it requests a reprogram, which re-arms the period correctly), until its next reprogram; only its overflow moves
    // (late by the events since the reprogram, or early where that wraps the period). Its value stays exact.
    matches: (o, c) => stalePeriodOnly(o, c.history, version(c)) === null,
    // The program goes on: later observations may differ only as a moved overflow of such a counter does.
    contract: (o, c) => stalePeriodOnly(o, c.history, version(c)),
    // The VMM's KVM_GET_MSRS of GLOBAL_STATUS reads the bit the early or late overflow set in pmu->global_status.
    vmm: true,
  },
  DEBUGCTL_SUBSET,
  {
    id: 'perf-min-period',
    title:
      'a counter preset to overflow on the next event overflows one event late, never if KVM pauses it after that event, or a whole sample period later if perf re-arms it there: perf programs a period of at least 2',
    kernelRef:
      'arch/x86/events/core.c x86_perf_event_set_period: "if (unlikely(left < 2)) left = 2", and a used-up period_left gets the period added ("left += period"); arch/x86/kvm/pmu.c pmc_pause_counter snapshots prev_counter after folding perf\'s count ("hardware (via perf) is responsible"), so a wrap perf counted without overflowing is never signalled',
    // A counter that stood at -1 when perf armed its event (written so, or re-armed by a reschedule or a control
    // write while there) overflows after its second event: before that, bare metal's counter has taken exactly one.
    // If KVM pauses the event in between (a control write, an instruction it counts), the wrap is folded in silently.
    matches: (o, c) => {
      const f = c.facts;
      if (f === undefined) return false;
      let pending = 0n; // armed at -1, one event taken: bare metal overflowed, the guest's has not
      let armed = 0n;
      // An instruction's observation (and its PMIs) says which were pending when it retired: a driver routine runs on.
      const atInstruction = o.kind !== 'run' && o.kind !== 'vmm' && o.kind !== 'host' && o.kind !== 'driver';
      for (const idx of COUNTERS) {
        const x = f.oracleCounter(o.vcpu, idx);
        if (x === null || !x.armedAtMinusOne) continue;
        armed |= overflowBits(idx);
        if (!atInstruction && x.value === 0n) pending |= overflowBits(idx);
      }
      for (const idx of o.oracleOneEventPast ?? []) pending |= overflowBits(idx);
      // A wrap KVM folded away shows in what the overflow leaves (GLOBAL_STATUS, LVTPC's mask, the LBR freeze), never
      // in PMIs: bare metal's own PMI came at the wrap, where the counter read 0 (pending above).
      if (o.kind === 'rdmsr') {
        const wraps = f.oracleArmedWrapStatus(o.vcpu);
        for (const idx of COUNTERS) if ((wraps & statusBit(idx)) !== 0n) pending |= overflowBits(idx);
      }
      return (
        (pending !== 0n && overflowMovedOnly(o, pending, c.history, 'late')) ||
        (armed !== 0n && overflowMovedOnly(o, armed, c.history, 'later-unit')) ||
        pmiMaskDropped(o, f)
      );
    },
    // Adopted where bare metal can tell when perf arms KVM's events (a reprogram, a reschedule, a restore): its counter
    // then overflows when KVM's event does, its count exact (W6); the matcher above keeps what it cannot tell.
    periodFloor: () => true,
    // The VMM's KVM_GET_MSRS of GLOBAL_STATUS reads the bit the late overflow leaves out of pmu->global_status, as the
    // guest's RDMSR does; of the VMM's ioctls the matcher takes that read alone (overflowMovedOnly).
    vmm: true,
  },
  {
    id: 'emulated-overflow-stale-int',
    title:
      "an overflow caused by an instruction KVM counts in software is signalled with the INT setting of the counter's previous perf event (none made: no PMI): the enabling WRMSR that sets or clears a counter's INT (PMI) bit and overflows it by retiring gets the PMI, and the LBR freeze, of the old setting",
    kernelRef:
      'arch/x86/kvm/pmu.c reprogram_counter: __kvm_perf_overflow(pmc, false) tests pmc->intr, set by pmc_reprogram_counter for the previous event, before the new event stores the new INT',
    // The PMIs around the write, or (LVTPC masked, no PMI to see) the LBR freeze that PMI request makes or skips.
    matches: (o, c) =>
      (o.kind === 'pmi' && o.around === 'wrmsr' && staleIntOverflow(o, c.history)) || staleIntFreeze(o, c.history),
  },
  ANYTHREAD_RESERVED,
  {
    id: 'lbr-lazy-release',
    title:
      'LBR records written while DEBUGCTL.LBR is clear are lost when the vCPU is rescheduled: the guest LBR event is released and a new one starts from reset LBRs',
    kernelRef:
      'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_cleanup: release the guest LBR event iff DEBUGCTL.LBR == 0; kvm_arch_vcpu_load sets need_cleanup; arch/x86/events/intel/lbr.c intel_pmu_lbr_add resets FROM/TO/INFO, not TOS',
    // Adopted whole: at each reschedule with DEBUGCTL.LBR clear, bare metal loses its LBR records too (W6).
    matches: () => false,
    adoptStep: (op, oracle, g, host) =>
      (op.op === 'migrate' || op.op === 'preempt') &&
      guestHasLbr(g, host) &&
      (valueOf(oracle.rdmsr(MSR_IA32_DEBUGCTLMSR)) & DEBUGCTLMSR_LBR) === 0n &&
      wipeLbrRecords(oracle),
  },
  {
    id: 'lbr-save-stops-at-empty-record',
    title:
      "when the vCPU is rescheduled with DEBUGCTL.LBR set, perf saves its guest LBR event's records only up to the first one (newest first) whose FROM is 0, and restores the rest as 0",
    kernelRef:
      'arch/x86/events/intel/lbr.c intel_pmu_lbr_save: "if (!from) break"; intel_pmu_lbr_restore writes 0 to the records past lbr_stack_state (the guest LBR event is CALL_STACK, so perf saves and restores it at each context switch)',
    // Adopted whole: at each reschedule with DEBUGCTL.LBR set, bare metal's records past the first empty one go too (W6).
    matches: () => false,
    adoptStep: (op, oracle, g, host) =>
      (op.op === 'migrate' || op.op === 'preempt') &&
      guestHasLbr(g, host) &&
      (valueOf(oracle.rdmsr(MSR_IA32_DEBUGCTLMSR)) & DEBUGCTLMSR_LBR) !== 0n &&
      truncateLbrAtEmptyFrom(oracle),
  },
  {
    id: 'host-contention',
    title:
      'while host perf events compete for the PMU, the guest counters lose counts (their perf events are scheduled out or in ERROR) and overflow late or never',
    kernelRef:
      'arch/x86/kvm/pmu.c pmc_reprogram_counter: guest counters are pinned, exclude_host perf events; kernel/events/core.c ctx_sched_in gives a pinned event that cannot get a counter PERF_EVENT_STATE_ERROR',
    // Only losses (counts, overflow bits and PMIs the guest misses, never ones it gains), and only while a host event
    // was open where the vCPU's events run: on its pCPU at the time, or on its thread.
    matches: (o, c) => hostCompeted(c, o.vcpu, false) && lostOnly(o, c) === null,
    // The weaker contract, on every later observation: the same, or another declared divergence.
    contract: (o, c) => lostOnly(o, c),
  },
  {
    id: 'lbr-host-owned',
    title:
      'while a host perf event holds the LBRs, the guest LBR event is not ACTIVE: guest LBR MSR reads return 0 and writes are dropped, even ones bare metal refuses; once a CPU-pinned host user has put it in ERROR, it stays so after that user closes, until KVM releases it',
    kernelRef:
      'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_handle_lbr_msrs_access: no active vLBR event → "dummy" access (read 0, write ignored); kernel/events/core.c merge_sched_in: a pinned event that cannot be scheduled goes to PERF_EVENT_STATE_ERROR',
    matches: (o, c) =>
      dummyLbrAccess(o) && (hostCompeted(c, o.vcpu, true, true) || lbrEventInError(c, o.vcpu, hostBranchStackOpened)),
  },
  {
    id: 'lbr-error-behind-counter',
    title:
      "while host events hold the counters of the vCPU's pCPU, a guest counter's perf event that finds none stops perf from scheduling any later pinned event of the vCPU thread in that pass: the guest LBR event goes to ERROR though the LBRs are free, guest LBR MSR reads return 0 and writes are dropped, even ones bare metal refuses, until KVM releases it",
    kernelRef:
      'kernel/events/core.c merge_sched_in: once a group fails, *can_add_hw = 0 and group_can_go_on refuses every later group, a pinned one going to PERF_EVENT_STATE_ERROR; arch/x86/kvm/vmx/pmu_intel.c intel_pmu_handle_lbr_msrs_access: no active vLBR event → "dummy" access (read 0, write ignored)',
    // While a host event of any kind (not only a branch-stack one) is open where the vCPU runs, or after a pinned one
    // was, until KVM releases the event that went to ERROR under it.
    matches: (o, c) =>
      dummyLbrAccess(o) && (hostCompeted(c, o.vcpu, false, true) || lbrEventInError(c, o.vcpu, hostOpened)),
  },
  {
    id: 'lbr-tos-not-reset',
    title:
      "the guest's LBR_TOS starts where the host's LBR user left it: branches recorded in host mode before KVM created the guest LBR event move it, though their records are wiped (reports/filed/0003)",
    kernelRef:
      'arch/x86/events/intel/lbr.c intel_pmu_lbr_add → intel_pmu_lbr_reset → intel_pmu_lbr_reset_64 zeroes FROM/TO/INFO, never MSR_LASTBRANCH_TOS; arch/x86/kvm/vmx/vmx.c vmx_passthrough_lbr_msrs passes TOS through uninitialised',
    // The TOS value, not written by the guest since a new guest LBR event may have started on LBRs a host user (or
    // another vCPU's event, or the pCPU it moved to) moved; and a record read shifted by it: a value bare metal holds
    // in some record of the same kind, or an empty one, never one bare metal does not have (a leak stays a finding).
    matches: (o, c) =>
      o.kind === 'rdmsr' &&
      o.target !== null &&
      o.sut.kind === 'value' &&
      o.oracle.kind === 'value' &&
      (o.target === MSR_LBR_TOS || shiftedRecord(o.target, o.sut.value, c.facts?.oracleLbrRecords(o.vcpu, o.target))) &&
      tosMovedSinceWritten(c.history, legacyLbrFreeze(c)),
  },
  {
    id: 'lbr-cycles-include-exits',
    title:
      "an LBR record's elapsed-cycles field counts the host's cycles too: those of VM-exits KVM handled since the previous branch, or, after the vCPU moved, the new pCPU's since it last recorded a branch (in an LBR_INFO read or, with Arch LBR, an XSAVES image)",
    kernelRef:
      'arch/x86/kvm/vmx/vmx.c: intercepted guest MSR accesses exit to the host between guest branches; LBR_INFO.CYC_CNT is a per-pCPU timer perf cannot save with the records (arch/x86/events/intel/lbr.c intel_pmu_lbr_restore); decision D23',
    matches: (o, c) => cyclesOnly(o, c.history) === null,
    // An LBR_INFO read that differs only so: bare metal reads the design's value (W6), so a guest that writes it back
    // (a call-stack restore) leaves the same record on both sides. What else shows it (an XSAVES image) keeps this.
    adoptRead: (a, history) => isInfoMsr(a.msr) && cyclesOnly(readObservation(a), history) === null,
    // The rest of the program is compared as before, LBR_INFO reads up to their cycle counts.
    contract: (o, c) => cyclesOnly(o, c.history),
  },
];
