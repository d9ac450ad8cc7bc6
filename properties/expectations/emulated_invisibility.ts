/**
 * What today's perf-based vPMU loses across a migration or a save/restore, each with the kernel
 * (or VMM) behaviour it comes from. Property 4 counts these as known divergences; conformance, on
 * the profiles that save and restore, has bare metal take them on at the save/restore (W6).
 */

import {
  guestHasLbr,
  isLegacyLbrRecord,
  lbrEventLost,
  lbrEventReleasedAt,
  legacyLbrFreeze,
  version,
  wipeLbrRecords,
} from './common.js';
import type { KnownDivergence } from './types.js';
import { stalePeriodMovedBetweenRuns } from './emulated.js';
import { DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import { readValue, type Observation } from '../../scenarios/observation.js';
import { MSR_LBR_SELECT, MSR_LBR_TOS } from '../../model/hw/msr/lbr_legacy.js';

/** The guest's last accepted DEBUGCTL write before the last save/restore set DEBUGCTL.LBR: the LBRs were recording. */
const lbrOnAtSaveRestore = (h: readonly Observation[]) => {
  const at = h.findLastIndex((x) => x.vmm?.op === 'save-restore');
  const w = h
    .slice(0, Math.max(at, 0))
    .findLast((x) => x.kind === 'wrmsr' && x.target === MSR_IA32_DEBUGCTLMSR && x.sut.kind === 'accepted');
  return w !== undefined && ((w.value ?? 0n) & DEBUGCTLMSR_LBR) !== 0n;
};

/** The history has a save/restore of the vCPU after which the guest did not write `msr` (KVM took none). */
const lostAtSaveRestore = (h: readonly Observation[], msr: number) => {
  const at = h.findLastIndex((x) => x.vmm?.op === 'save-restore');
  return at >= 0 && !h.slice(at).some((x) => x.kind === 'wrmsr' && x.target === msr && x.sut.kind === 'accepted');
};

/** DEBUGCTL is not saved: what a save/restore loses of it (shared with the mediated vPMU, whose guests set RTM_DEBUG). */
export const DEBUGCTL_NOT_SAVED: KnownDivergence = {
  id: 'debugctl-not-saved',
  title:
    'IA32_DEBUGCTL is not in KVM_GET_MSR_INDEX_LIST, so a save/restore resets it to 0, and with DEBUGCTL.LBR the LBRs stop recording (decision K4, to confirm against QEMU)',
  kernelRef: 'arch/x86/kvm/x86.c msrs_to_save_pmu / emulated_msrs: no MSR_IA32_DEBUGCTLMSR',
  // A read of 0 where the other side kept a value, with no DEBUGCTL write since the save/restore: DEBUGCTL itself, or
  // LBR_TOS when DEBUGCTL.LBR was set at the save/restore: it then moves no more (records reading 0 are lbr-not-saved's).
  matches: (o, c) =>
    o.kind === 'rdmsr' &&
    (o.target === MSR_IA32_DEBUGCTLMSR || (o.target === MSR_LBR_TOS && lbrOnAtSaveRestore(c.history))) &&
    readValue(o.sut) === 0n &&
    lostAtSaveRestore(c.history, MSR_IA32_DEBUGCTLMSR),
  adoptStep: (op, oracle) => {
    if (op.op !== 'save-restore') return false;
    const d = oracle.rdmsr(MSR_IA32_DEBUGCTLMSR);
    if (!d.ok || d.value === 0n) return false;
    oracle.wrmsr(MSR_IA32_DEBUGCTLMSR, 0n);
    return true;
  },
};

/**
 * Since the guest LBR event was last lost (a save/restore, or a reschedule with DEBUGCTL.LBR clear: lbrEventReleasedAt)
 * nothing moved LBR_TOS: the guest did not write it, and no run took an LBR record (with DEBUGCTL.LBR set again, a run
 * whose branches the LBRs took). The next LBR access makes a new event on the pCPU the vCPU is on, and TOS shows where
 * that pCPU's LBRs were left.
 */
const tosUnmovedSinceLost = (h: readonly Observation[], freezes: boolean) => {
  const at = h.findLastIndex((_, i) => lbrEventReleasedAt(h, i, freezes));
  return (
    at >= 0 &&
    !h
      .slice(at)
      .some(
        (x) =>
          (x.kind === 'run' && x.sutLbrRecorded === true) ||
          (x.kind === 'wrmsr' && x.sut.kind === 'accepted' && x.target === MSR_LBR_TOS),
      )
  );
};

export const EMULATED_INVISIBILITY_EXPECTATIONS: readonly KnownDivergence[] = [
  DEBUGCTL_NOT_SAVED,

  {
    id: 'lbr-not-saved',
    title:
      'LBR MSRs are neither saved nor restored, and a reschedule with DEBUGCTL.LBR clear releases the guest LBR event: LBR records are lost, and after either LBR_TOS reads where the LBRs of the pCPU the next event starts on were left',
    kernelRef:
      'arch/x86/kvm/x86.c msrs_to_save (no LBR MSRs); vmx/pmu_intel.c intel_pmu_cleanup; events/intel/lbr.c intel_pmu_lbr_add resets FROM/TO/INFO',
    // A record or LBR_SELECT that reads 0, after a save/restore or a reschedule with DEBUGCTL.LBR clear; or LBR_TOS
    // after either, with nothing since to move it: where the pCPU's LBRs were left, 0 on an idle one
    // (FC_SEED=147370892), the last TOS of an event that ran there before (a soak, seed 1126439008), the guest's own
    // write on a pCPU it left and came back to (a soak, seed -1260692442).
    matches: (o, c) => {
      if (o.kind !== 'rdmsr' || o.target === null || o.sut.kind !== 'value') return false;
      if (o.target === MSR_LBR_TOS)
        return o.sut.value < BigInt(c.host.legacyLbr?.depth ?? 0) && tosUnmovedSinceLost(c.history, legacyLbrFreeze(c));
      return (
        o.sut.value === 0n &&
        (isLegacyLbrRecord(o.target) || o.target === MSR_LBR_SELECT) &&
        lbrEventLost(c.history, 0, legacyLbrFreeze(c))
      );
    },
    adoptStep: (op, oracle, g, host) => op.op === 'save-restore' && guestHasLbr(g, host) && wipeLbrRecords(oracle),
  },

  {
    id: 'write-period-from-base',
    title:
      "after a write to a running counter, the perf period is armed from the pre-write base (reports/filed/0001); a save/restore in between makes the event anew from the counter's value, so its overflow comes on time in one run and late in the other",
    kernelRef:
      'arch/x86/kvm/pmu.c pmc_write_counter → pmc_update_sample_period (get_sample_period of pmc->counter, the offset base); a restored vCPU creates its perf events in reprogram_counter from the restored count',
    // Only the overflow of a counter whose period a write left stale moves (a soak, seed -1659487671); values stay exact.
    matches: (o, c) => stalePeriodMovedBetweenRuns(o, c.history, version(c)),
  },
];
