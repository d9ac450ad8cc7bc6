/**
 * Known divergences of today's perf-based vPMU (model/kvm/emulated) from bare metal, each with the
 * kernel code it comes from. A program whose first divergence matches one of these is a known
 * divergence, not a failure; anything else is a finding.
 */

import { isGp, type Observation, pmisOf, readValue } from '../../scenarios/observation.js';
import {
  ANYTHREAD_RESERVED,
  debugctlArmed,
  hostEventOpened,
  lbrFreezeEffect,
  lostOnly,
  isCounter,
  DEBUGCTL_SUBSET,
  isLegacyLbrMsr,
  P6_PERFCTR_QUIRK,
  readZeroOrAccepted,
  STATUS_BITS_V2,
  VERSION_NOT_CLAMPED,
  version,
} from './common.js';
import type { KnownDivergence } from './types.js';
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
} from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL } from '../../model/hw/msr/global.js';
import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI, MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import { MSR_LBR_TOS, MSR_LBR_INFO_0 } from '../../model/hw/msr/lbr_legacy.js';
import { PERF_COUNT_HW_INSTRUCTIONS } from '../../model/kvm/common/pmu.h.js';
/** A write that leaves the counter at -1: all ones at 32 bits through the legacy alias, else at 48. */
const isMinusOne = (m: number, v: bigint) =>
  m >= MSR_IA32_PERFCTR0 && m < 0xc9
    ? (v & 0xffff_ffffn) === 0xffff_ffffn
    : (v & 0xffff_ffff_ffffn) === 0xffff_ffff_ffffn;
/** The last accepted value written to `msr` before observation `upTo`, if any. */
function lastWrite(history: readonly Observation[], msr: number, upTo: Observation): bigint | null {
  let v: bigint | null = null;
  for (const h of history) {
    if (h === upTo) break;
    if (h.kind === 'wrmsr' && h.target === msr && h.sut.kind === 'accepted') v = h.value;
  }
  return v;
}

/** A host user's event with a branch stack that perf accepted: it takes the LBRs. */
const hostBranchStackOpened = (h: Observation) =>
  h.host?.op === 'open' && h.host.accepted && h.host.attr.branchSample !== undefined;

/**
 * Was the counter written by `w` enabled, and had guest work run since it was last enabled? Only
 * then does its perf event hold a count that the stale period leaves out.
 */
function runningWithCounts(history: readonly Observation[], w: Observation, version: number): boolean {
  const m = w.target!;
  const fixed = m >= MSR_CORE_PERF_FIXED_CTR0 && m < MSR_CORE_PERF_FIXED_CTR0 + 3;
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
      (((lastWrite(history, MSR_CORE_PERF_GLOBAL_CTRL, upTo) ?? (fixed ? 0n : 0xffn)) >> BigInt(idx)) & 1n) === 1n;
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

export const EMULATED_EXPECTATIONS: readonly KnownDivergence[] = [
  P6_PERFCTR_QUIRK,
  {
    id: 'fixed-ctr-width',
    title:
      'a fixed counter write with bits above the counter width is masked, not #GP (hardware #GP is decision D2, unverified)',
    kernelRef: 'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_set_msr: get_fixed_pmc → pmc_write_counter, no width check',
    matches: (o) =>
      o.kind === 'wrmsr' &&
      o.target !== null &&
      o.target >= MSR_CORE_PERF_FIXED_CTR0 &&
      o.target < MSR_CORE_PERF_FIXED_CTR0 + 3 &&
      o.sut.kind === 'accepted' &&
      isGp(o.oracle),
  },
  VERSION_NOT_CLAMPED,
  {
    id: 'no-v4-lbr-freeze',
    title:
      'a guest with PMU version 4 or 5 and FREEZE_LBRS_ON_PMI gets no freeze: LBR_FRZ is never set and the LBRs keep recording after the PMI (bugs.md #17, reports/filed/0002)',
    kernelRef:
      'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_deliver_pmi: freeze emulated only for 1 < version < 4; GLOBAL_STATUS bit 58 is in global_status_rsvd',
    matches: (o, c) =>
      version(c) >= 4 &&
      debugctlArmed(c.history, 11) &&
      o.kind === 'rdmsr' &&
      o.target !== null &&
      (o.target === MSR_CORE_PERF_GLOBAL_STATUS || isLegacyLbrMsr(o.target)),
  },
  {
    id: 'v1-freeze-lbrs-accepted',
    title:
      'a guest with PMU version 1 and LBRs may set FREEZE_LBRS_ON_PMI, which a version-1 PMU does not have (decision D37; reports/filed/0005)',
    kernelRef:
      'arch/x86/kvm/vmx/vmx.c vmx_get_supported_debugctl: LBR and FREEZE_LBRS_ON_PMI whenever intel_pmu_lbr_is_enabled, whatever the PMU version',
    matches: (o, c) =>
      version(c) === 1 &&
      o.kind === 'wrmsr' &&
      o.target === MSR_IA32_DEBUGCTLMSR &&
      o.sut.kind === 'accepted' &&
      isGp(o.oracle) &&
      o.value !== null &&
      (o.value & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI) !== 0n,
  },
  STATUS_BITS_V2,
  {
    id: 'write-period-from-base',
    title:
      'after a guest write to a running counter, the perf period is armed from the pre-write base, so the overflow comes late by the events counted since the last reprogram (reports/filed/0001)',
    kernelRef:
      'arch/x86/kvm/pmu.c pmc_write_counter → pmc_update_sample_period: get_sample_period(pmc, pmc->counter), where pmc->counter is the offset base, not the value written',
    // Only a counter that does not count the WRMSR itself (an instruction at CPL 0) keeps the
    // stale period: counting it requests a reprogram, which re-arms the period correctly.
    matches: (o, c) =>
      (o.kind === 'run' ||
        o.kind === 'pmi' ||
        o.kind === 'rdpmc' ||
        (o.kind === 'rdmsr' &&
          o.target !== null &&
          (o.target === MSR_CORE_PERF_GLOBAL_STATUS || isCounter(o.target))) ||
        lbrFreezeEffect(o, c.history)) &&
      c.history.some(
        (h) =>
          h.kind === 'wrmsr' &&
          h.sut.kind === 'accepted' &&
          h.target !== null &&
          isCounter(h.target) &&
          runningWithCounts(c.history, h, version(c)) &&
          !countsOwnWrmsr(c.history, h),
      ),
  },
  DEBUGCTL_SUBSET,
  {
    id: 'perf-min-period',
    title:
      'a counter preset to overflow on the next event overflows one event late: perf programs a period of at least 2',
    kernelRef: 'arch/x86/events/core.c x86_perf_event_set_period: "if (unlikely(left < 2)) left = 2"',
    // The program set some counter to all ones (-1 at its width) before diverging, or a migration
    // re-armed the event, possibly with one event left (sched-in also goes through set_period).
    matches: (o, c) =>
      c.history.some(
        (h) =>
          h.kind === 'wrmsr' &&
          h.sut.kind === 'accepted' &&
          h.target !== null &&
          isCounter(h.target) &&
          h.value !== null &&
          isMinusOne(h.target, h.value),
      ) ||
      (o.kind === 'run' &&
        pmisOf(o.sut).length === 0 &&
        pmisOf(o.oracle).length > 0 &&
        c.history.some((h) => h.kind === 'vmm')),
  },
  ANYTHREAD_RESERVED,
  {
    id: 'lbr-lazy-release',
    title:
      'LBR records written while DEBUGCTL.LBR is clear are lost when the vCPU is rescheduled: the guest LBR event is released and a new one starts from reset LBRs',
    kernelRef:
      'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_cleanup: release the guest LBR event iff DEBUGCTL.LBR == 0; kvm_arch_vcpu_load sets need_cleanup',
    // Reads 0 from a fresh guest LBR event, or any other value once a reschedule released the old one.
    matches: (o, c) =>
      o.kind === 'rdmsr' &&
      o.target !== null &&
      isLegacyLbrMsr(o.target) &&
      ((readValue(o.sut) === 0n && readValue(o.oracle) !== 0n) || c.history.some((h) => h.kind === 'vmm')),
  },
  {
    id: 'host-contention',
    title:
      'while host perf events compete for the PMU, the guest counters lose counts (their perf events are scheduled out or in ERROR) and overflow late or never',
    kernelRef:
      'arch/x86/kvm/pmu.c pmc_reprogram_counter: guest counters are pinned, exclude_host perf events; kernel/events/core.c ctx_sched_in gives a pinned event that cannot get a counter PERF_EVENT_STATE_ERROR',
    // Only losses: counts, overflow bits and PMIs the guest misses, never ones it gains.
    matches: (o, c) => c.history.some(hostEventOpened) && lostOnly(o, c.history) === null,
    // The weaker contract, on every later observation: the same, or another declared divergence.
    contract: (o, c) => lostOnly(o, c.history),
  },
  {
    id: 'lbr-host-owned',
    title:
      'while a host perf event holds the LBRs, KVM cannot create the guest LBR event: guest LBR MSR reads return 0 and writes are dropped, even ones bare metal refuses',
    kernelRef:
      'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_handle_lbr_msrs_access: no active vLBR event → "dummy" access (read 0, write ignored)',
    // A read shows 0; a write does not fault (W3: '0x0'), where bare metal may #GP it.
    matches: (o, c) =>
      (o.kind === 'rdmsr' || o.kind === 'wrmsr') &&
      o.target !== null &&
      isLegacyLbrMsr(o.target) &&
      readZeroOrAccepted(o) &&
      c.history.some(hostBranchStackOpened),
  },
  {
    id: 'lbr-tos-not-reset',
    title:
      "the guest's LBR_TOS starts where the host's LBR user left it: branches recorded in host mode before KVM created the guest LBR event move it, though their records are wiped (reports/filed/0003)",
    kernelRef:
      'arch/x86/events/intel/lbr.c intel_pmu_lbr_add → intel_pmu_lbr_reset → intel_pmu_lbr_reset_64 zeroes FROM/TO/INFO, never MSR_LASTBRANCH_TOS; arch/x86/kvm/vmx/vmx.c vmx_passthrough_lbr_msrs passes TOS through uninitialised',
    // Only the TOS value: a shifted record read cannot be told from a leaked one here, so it stays a finding.
    matches: (o, c) =>
      o.kind === 'rdmsr' &&
      o.target === MSR_LBR_TOS &&
      o.sut.kind === 'value' &&
      o.oracle.kind === 'value' &&
      c.history.some(hostBranchStackOpened),
  },
  {
    id: 'lbr-cycles-include-exits',
    title: "an LBR record's elapsed-cycles field includes the cycles of VM-exits KVM handled since the previous branch",
    kernelRef:
      'arch/x86/kvm/vmx/vmx.c: intercepted guest MSR accesses exit to the host between guest branches; LBR_INFO.CYC_CNT counts core cycles (decision D23)',
    // Same record, same flags; only the 16-bit cycle count differs, and it is larger in the guest.
    matches: (o) => {
      if (o.kind !== 'rdmsr' || o.target === null || o.target < MSR_LBR_INFO_0 || o.target >= MSR_LBR_INFO_0 + 32)
        return false;
      const sut = readValue(o.sut);
      const bare = readValue(o.oracle);
      if (sut === null || bare === null) return false;
      return (sut & ~0xffffn) === (bare & ~0xffffn) && (sut & 0xffffn) > (bare & 0xffffn);
    },
  },
];
