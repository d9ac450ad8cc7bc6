/**
 * Known divergences of the Arch LBR v2 series (model/kvm/series/arch_lbr.ts: Yang Weijiang et al., "Introduce
 * Architectural LBR for vPMU" v2, 2022, the series seed 004 reviews) from bare metal, each with the mechanism in the
 * posted patches ("patch N/15") that causes it. They come on top of what its base, today's perf-based vPMU, declares.
 * A program whose first divergence matches none is a finding against the series. The host's records it lets the guest
 * read are declared for no-leak apart (ARCH_LBR_LEAKS), one mechanism each.
 */

import { isGp, type Observation, readValue } from '../../scenarios/observation.js';
import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI, DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import type { DivergenceContext, HostLbrDifference, KnownDisturbance, KnownDivergence } from './types.js';
import { GuestRun, GuestWrmsr, GuestXrstors, HostOpen, HostWork } from '../../scenarios/commands.js';
import { EMULATED_EXPECTATIONS, hostCompeted, infoCyclesOnly } from './emulated.js';
import { EMULATED_INVISIBILITY_EXPECTATIONS } from './emulated_invisibility.js';
import { guestHasLbr } from './common.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../model/hw/msr/capabilities.js';
import {
  ARCH_LBR_CALL_STACK,
  ARCH_LBR_LBREN,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../../model/hw/msr/lbr_arch.js';

/** An Arch LBR record MSR (FROM, TO or INFO of some record). */
export const isArchLbrRecord = (m: number | null) =>
  m !== null && [MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0].some((b) => m >= b && m < b + 64);

/**
 * Was the vCPU rescheduled (migrated, preempted, saved and restored) at a time its LBR_CTL.LBREn may have been clear:
 * never set by an accepted guest WRMSR, cleared by one, or left to an XRSTORS since?
 */
function rescheduledWithLbrEnClear(c: DivergenceContext, v: number): boolean {
  let lbrEn = false;
  for (const h of c.history) {
    if (h.vcpu !== v) continue;
    if (h.kind === 'wrmsr' && h.target === MSR_ARCH_LBR_CTL && h.sut.kind === 'accepted' && h.value !== null)
      lbrEn = (h.value & ARCH_LBR_LBREN) !== 0n;
    if (h.kind === 'xrstors') lbrEn = false; // the image's LBR_CTL: unknown here
    const op = h.vmm?.op;
    if (!lbrEn && (op === 'migrate' || op === 'preempt' || op === 'save-restore')) return true;
  }
  return false;
}

/**
 * Older records lost: an Arch record read of 0 where bare metal holds one, or an XSAVES image whose records are bare
 * metal's newest ones and then only empty ones where bare metal has more.
 */
function recordsLost(o: Observation): boolean {
  if (o.kind === 'rdmsr' && isArchLbrRecord(o.target))
    return o.sut.kind === 'value' && o.sut.value === 0n && o.oracle.kind === 'value' && o.oracle.value !== 0n;
  if (o.kind !== 'xsaves' || o.sut.kind !== 'xsave' || o.oracle.kind !== 'xsave') return false;
  const a = o.sut.area.entries;
  const b = o.oracle.area.entries;
  const kept = a.findIndex((e) => e.from === 0n);
  if (o.sut.area.lbrCtl !== o.oracle.area.lbrCtl || kept < 0 || b[kept]?.from === 0n) return false;
  // The kept ones are bare metal's (their cycle counts aside: lbr-cycles-include-exits), the rest empty.
  return a.every((e, i) =>
    i < kept ? e.from === b[i]!.from && e.to === b[i]!.to : e.from === 0n && e.to === 0n && e.info === 0n,
  );
}

/** A host user opening an event with a branch stack: perf may take the LBRs from the guest's event from then on. */
const hostLbrUserOpens = (h: Observation) =>
  h.host?.op === 'open' && h.host.accepted && h.host.attr.branchSample !== undefined;

/**
 * May the vCPU have lost its guest LBR event, or never had it ACTIVE: rescheduled with LBREn clear, LBREn left to an
 * XRSTORS, or a host branch-stack user opened?
 */
function maybeNoGuestLbrEvent(c: DivergenceContext, v: number): boolean {
  return (
    rescheduledWithLbrEnClear(c, v) ||
    c.history.some((h) => (h.vcpu === v && h.kind === 'xrstors') || hostLbrUserOpens(h))
  );
}

/** The guest sees a record bare metal does not hold there: a non-zero record read, or a non-empty XSAVES record. */
function recordsNotBareMetals(o: Observation): boolean {
  if (o.kind === 'rdmsr' && isArchLbrRecord(o.target))
    return o.sut.kind === 'value' && o.sut.value !== 0n && !isGp(o.oracle);
  if (o.kind !== 'xsaves' || o.sut.kind !== 'xsave' || o.oracle.kind !== 'xsave') return false;
  const b = o.oracle.area.entries;
  return o.sut.area.entries.some((e, i) => e.from !== 0n && (e.from !== b[i]?.from || e.to !== b[i]?.to));
}

/** Did an XRSTORS of this vCPU precede an accepted WRMSR of LBR_CTL with LBREn (which creates the guest LBR event)? */
function lbrEnByXrstorsThenWrmsr(c: DivergenceContext, v: number): boolean {
  let restored = false;
  for (const h of c.history) {
    if (h.vcpu !== v) continue;
    if (h.kind === 'xrstors' && h.sut.kind === 'accepted') restored = true;
    if (
      restored &&
      h.kind === 'wrmsr' &&
      h.target === MSR_ARCH_LBR_CTL &&
      h.sut.kind === 'accepted' &&
      h.value !== null &&
      (h.value & ARCH_LBR_LBREN) !== 0n
    )
      return true;
  }
  return false;
}

/**
 * A VMM's PERF_CAPABILITIES or CPUID that KVM took though its LBR_FMT and CPUID Arch LBR disagree (0x3f without CPUID
 * Arch LBR, or CPUID Arch LBR without 0x3f), a model no CPU has (W4).
 */
export const archLbrFormatMismatch = (o: Observation) => {
  const v = o.vmm;
  if (o.kind !== 'vmm' || v === undefined || o.sut.kind !== 'ok' || o.oracle.kind !== 'refused') return false;
  if (v.op !== 'set-msr' && v.op !== 'set-cpuid') return false;
  const rule = v.impossible?.rule;
  if (rule !== 'arch-lbr-without-fmt-arch' && rule !== 'fmt-arch-without-leaf1c') return false;
  return v.op === 'set-cpuid' || v.msr === MSR_IA32_PERF_CAPABILITIES;
};

/** Did the VMM set DEBUGCTL.LBR with a KVM_SET_MSRS that KVM took, on vCPU `v`? */
const vmmSetDebugctlLbr = (c: DivergenceContext, v: number) =>
  c.history.some(
    (h) =>
      h.vcpu === v &&
      h.vmm?.op === 'set-msr' &&
      h.vmm.msr === MSR_IA32_DEBUGCTLMSR &&
      h.sut.kind === 'ok' &&
      (h.vmm.value & DEBUGCTLMSR_LBR) !== 0n,
  );

/** A read of DEBUGCTL (the guest's RDMSR, or the VMM's KVM_GET_MSRS) that shows bare metal's value without LBR. */
function debugctlLbrLost(o: Observation): boolean {
  const read = o.kind === 'rdmsr' && o.target === MSR_IA32_DEBUGCTLMSR;
  const get = o.vmm?.op === 'get-msr' && o.vmm.msr === MSR_IA32_DEBUGCTLMSR;
  const sut = readValue(o.sut);
  const bare = readValue(o.oracle);
  return (
    (read || get) &&
    sut !== null &&
    bare !== null &&
    (bare & DEBUGCTLMSR_LBR) !== 0n &&
    sut === (bare & ~DEBUGCTLMSR_LBR)
  );
}

/**
 * The last KVM_SET_CPUID2 gave the guest Arch LBR, since then the guest has not run and nothing wrote DEBUGCTL, and
 * before it the VMM set DEBUGCTL.LBR with a KVM_SET_MSRS that KVM took, on vCPU `v`.
 */
function debugctlLbrKeptAcrossCpuid(c: DivergenceContext, v: number): boolean {
  const h = c.history;
  const cpuid = h.findLastIndex((x) => x.vcpu === v && x.vmm?.op === 'set-cpuid' && x.sut.kind === 'ok');
  const model = cpuid < 0 ? undefined : h[cpuid]!.vmm;
  if (model?.op !== 'set-cpuid' || model.cpuid.archLbr !== true) return false;
  const since = h.slice(cpuid + 1);
  // The guest ran (any guest observation), or the VMM wrote DEBUGCTL since.
  const ranOrWrote = (x: Observation) =>
    x.kind !== 'vmm' || (x.vmm?.op === 'set-msr' && x.vmm.msr === MSR_IA32_DEBUGCTLMSR);
  if (since.some((x) => x.vcpu === v && ranOrWrote(x))) return false;
  return vmmSetDebugctlLbr({ ...c, history: h.slice(0, cpuid) }, v);
}

export const ARCH_LBR_DECLARED: readonly KnownDivergence[] = [
  {
    id: 'vmm-debugctl-lbr-lost',
    title:
      "on an Arch LBR host, DEBUGCTL.LBR that a VMM's KVM_SET_MSRS sets for a guest without Arch LBR is taken, then lost at the next VM-exit: the VMCS's GUEST_IA32_DEBUGCTL goes through a DEBUGCTL whose bit 0 reads 0",
    kernelRef:
      'Arch LBR v2 patch 10/15 advertises LBR_FMT 0x3f, so vmx.c vmx_get_supported_debugctl gives a host-initiated write LBR (b333b8ebb85d); patch 06/15 drops bit 0 only for an Arch LBR guest; VM-exit saves DEBUGCTL into GUEST_IA32_DEBUGCTL',
    vmm: true,
    matches: (o, c) =>
      c.host.archLbr !== undefined &&
      c.guest.cpuid.archLbr !== true &&
      debugctlLbrLost(o) &&
      vmmSetDebugctlLbr(c, o.vcpu),
  },
  {
    id: 'vmm-debugctl-lbr-kept-across-cpuid',
    title:
      "on an Arch LBR host, DEBUGCTL.LBR that a VMM's KVM_SET_MSRS set before a KVM_SET_CPUID2 giving the guest Arch LBR reads back 1 through KVM_GET_MSRS until the guest runs: KVM keeps GUEST_IA32_DEBUGCTL across a new CPUID, and the series drops bit 0 only on writes",
    kernelRef:
      'Arch LBR v2 patch 10/15 advertises LBR_FMT 0x3f, so vmx.c vmx_get_supported_debugctl gives a host-initiated write LBR; patch 06/15 drops bit 0 in vmx_set_msr for an Arch LBR guest only; kvm_vcpu_after_set_cpuid leaves GUEST_IA32_DEBUGCTL (only vmx_vcpu_reset clears it)',
    vmm: true,
    // KVM's read is bare metal's with LBR added; the first VM-exit after the guest runs takes bit 0 away.
    matches: (o, c) => {
      if (c.host.archLbr === undefined) return false;
      if (o.vmm?.op !== 'get-msr' || o.vmm.msr !== MSR_IA32_DEBUGCTLMSR) return false;
      const sut = readValue(o.sut);
      const bare = readValue(o.oracle);
      return (
        sut !== null &&
        bare !== null &&
        (bare & DEBUGCTLMSR_LBR) === 0n &&
        sut === (bare | DEBUGCTLMSR_LBR) &&
        debugctlLbrKeptAcrossCpuid(c, o.vcpu)
      );
    },
  },
  {
    id: 'lbr-fmt-arch-mismatch',
    title:
      "KVM_SET_MSRS and KVM_SET_CPUID2 take a PERF_CAPABILITIES.LBR_FMT that disagrees with the vCPU's CPUID Arch LBR (0x3f without it, or another format with it), a model no CPU has; guest LBRs follow CPUID alone",
    kernelRef:
      'Arch LBR v2 patch 05/15, cpuid_enable_lbr: with X86_FEATURE_ARCH_LBR only guest CPUID (7.EDX[19], leaf 0x1C) decides, PMU_CAP_LBR_FMT is not consulted; vmx.c vmx_set_msr(MSR_IA32_PERF_CAPABILITIES) checks LBR_FMT against kvm_caps.supported_perf_cap (0x3f by patch 10/15) and the family/model only',
    vmm: true,
    matches: archLbrFormatMismatch,
  },
  {
    id: 'xss-lbr-without-arch-lbr',
    title:
      'a guest without Arch LBR (no CPUID 7.EDX[19], or a leaf 0x1C KVM did not enable) may set IA32_XSS bit 15 and XSAVES/XRSTORS state component 15, on whatever LBRs the pCPU holds, where bare metal #GPs',
    kernelRef:
      'Arch LBR v2 patch 11/15: KVM_SUPPORTED_XSS = XFEATURE_MASK_LBR; x86.c kvm_set_msr_common(MSR_IA32_XSS) checks kvm_caps.supported_xss, not guest CPUID Arch LBR; XSAVES/XRSTORS do not exit',
    matches: (o, c) =>
      (o.kind === 'xsaves' || o.kind === 'xrstors') && !isGp(o.sut) && isGp(o.oracle) && !guestHasLbr(c.guest, c.host),
  },
  {
    id: 'xrstors-lbren-no-event',
    title:
      "LBREn that the guest's XRSTORS sets creates no guest LBR event: the branches recorded meanwhile go when a later WRMSR of LBR_CTL creates it (perf resets the LBRs for a new LBR user)",
    kernelRef:
      'Arch LBR v2 patch 06/15: only intel_pmu_set_msr(MSR_ARCH_LBR_CTL) calls intel_pmu_create_guest_lbr_event; XRSTORS does not exit (patch 11/15), and VM_EXIT_CLEAR_IA32_LBR_CTL saves its LBREn into the VMCS unseen; arch/x86/events/intel/lbr.c intel_pmu_lbr_add → intel_pmu_lbr_reset',
    matches: (o, c) => guestHasLbr(c.guest, c.host) && recordsLost(o) && lbrEnByXrstorsThenWrmsr(c, o.vcpu),
  },
  {
    id: 'arch-lbr-lazy-release',
    title:
      'Arch LBR records are lost once the vCPU is rescheduled with LBR_CTL.LBREn clear: the guest LBR event is released, and the one LBREn creates next starts from reset LBRs',
    kernelRef:
      'Arch LBR v2 patch 06/15, intel_pmu_cleanup: release the guest LBR event iff GUEST_IA32_LBR_CTL.LBREn == 0 (kvm_arch_vcpu_load sets need_cleanup); arch/x86/events/intel/lbr.c intel_pmu_lbr_add → intel_pmu_lbr_reset writes MSR_ARCH_LBR_DEPTH, which zeroes every record',
    matches: (o, c) => guestHasLbr(c.guest, c.host) && recordsLost(o) && rescheduledWithLbrEnClear(c, o.vcpu),
  },
  {
    id: 'records-on-the-pcpu',
    title:
      "without an ACTIVE guest LBR event, the guest's Arch LBR record reads and XSAVES show whatever the pCPU's LBRs hold: its own records from before it moved away and back, another vCPU's, or a host user's",
    kernelRef:
      'Arch LBR v2 patch 14/15: intel_pmu_get_msr reads MSR_ARCH_LBR_{FROM,TO,INFO}_0..31 with a raw rdmsrl before intel_pmu_handle_lbr_msrs_access checks the event; patch 11/15: XSAVES does not exit; perf saves and restores the LBRs only for the event it schedules',
    matches: (o, c) => guestHasLbr(c.guest, c.host) && recordsNotBareMetals(o) && maybeNoGuestLbrEvent(c, o.vcpu),
  },
];

/** Every declared divergence of the design: its base's, then the series' own. */
export const ARCH_LBR_EXPECTATIONS: readonly KnownDivergence[] = [...EMULATED_EXPECTATIONS, ...ARCH_LBR_DECLARED];

export const ARCH_LBR_INVISIBILITY_EXPECTATIONS: readonly KnownDivergence[] = EMULATED_INVISIBILITY_EXPECTATIONS;

/**
 * Host records the series lets the guest read (property 2, no-leak): the twin runs differ only in the host's branch
 * addresses and counts, so a host branch-stack user's records are what differs. One declaration per path the records
 * take; the host's LBR_CTL and DEPTH, and every other MSR, stay checked exactly.
 */
export const ARCH_LBR_LEAKS: readonly KnownDivergence[] = [
  {
    id: 'raw-record-read-leak',
    title:
      "the guest's RDMSR of an Arch LBR record reads the pCPU's record as it is, a host branch-stack user's once perf has the LBRs",
    kernelRef:
      'Arch LBR v2 patch 14/15: intel_pmu_get_msr reads MSR_ARCH_LBR_{FROM,TO,INFO}_0..31 with a raw rdmsrl before intel_pmu_handle_lbr_msrs_access checks that the guest LBR event is ACTIVE (review R-AL2-14: "I don\'t see how this is correct")',
    matches: (o, c) =>
      o.kind === 'rdmsr' && isArchLbrRecord(o.target) && guestHasLbr(c.guest, c.host) && hostCompeted(c, o.vcpu, true),
  },
  {
    id: 'xsaves-host-records-leak',
    title:
      "the guest's XSAVES of state component 15 saves the pCPU's LBR records (and LER) as they are, a host branch-stack user's once perf has the LBRs (a guest without Arch LBR too: IA32_XSS takes bit 15)",
    kernelRef:
      "Arch LBR v2 patch 11/15: KVM_SUPPORTED_XSS = XFEATURE_MASK_LBR, kvm_set_msr_common(MSR_IA32_XSS) checks no guest CPUID, and XSAVES does not exit; VM-entry loads only LBR_CTL (patch 10/15), never the guest's records",
    // The records alone: LBR_CTL and DEPTH in the image are the guest's (VM-entry loads LBR_CTL; DEPTH is the host's).
    matches: (o, c) =>
      o.kind === 'xsaves' &&
      o.sut.kind === 'xsave' &&
      o.oracle.kind === 'xsave' &&
      o.sut.area.lbrCtl === o.oracle.area.lbrCtl &&
      o.sut.area.lbrDepth === o.oracle.area.lbrDepth &&
      hostCompeted(c, o.vcpu, true),
  },
  {
    id: 'lbr-cycles-count-host-time',
    title:
      "an Arch LBR record's elapsed-cycles field counts the host's cycles on the pCPU since its previous branch, so a guest's INFO read or XSAVES image shows how long host work ran (a timer, as lbr-cycles-include-exits)",
    kernelRef:
      "Arch LBR v2 patches 06/15 and 07/15 hand the guest the pCPU's LBRs; IA32_LBR_x_INFO.CYC_CNT is a per-pCPU timer that runs in host mode and that neither perf (arch/x86/events/intel/lbr.c intel_pmu_arch_lbr_xrstors) nor KVM saves; decision D23",
    matches: (o) => infoCyclesOnly(o),
  },
];

/** A guest WRMSR of `msr` (or of an MSR `msr` accepts) is the last command. */
const afterGuestWrmsr = (d: HostLbrDifference, msr: (m: number) => boolean) => {
  const c = d.after;
  return c instanceof GuestWrmsr && msr(c.msr);
};

/**
 * The guest's LBR_CTL as its last accepted WRMSR left it, if that set LBREn, with no PMI delivered since while DEBUGCTL
 * held FREEZE_LBRS_ON_PMI (the series' freeze clears LBREn) and no XRSTORS (the image's LBR_CTL is not known here).
 */
function guestLbrCtlEnabled(h: readonly Observation[]): bigint | null {
  let ctl: bigint | null = null;
  let freeze = false;
  for (const x of h) {
    if (x.kind === 'wrmsr' && x.sut.kind === 'accepted' && x.value !== null) {
      if (x.target === MSR_ARCH_LBR_CTL) ctl = (x.value & ARCH_LBR_LBREN) !== 0n ? x.value : null;
      if (x.target === MSR_IA32_DEBUGCTLMSR) freeze = (x.value & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI) !== 0n;
    } else if (x.kind === 'xrstors' || (freeze && x.kind === 'pmi' && x.sut.kind === 'pmis' && x.sut.pmis.length > 0))
      ctl = null;
  }
  return ctl;
}

/** How many near returns a guest run retires: in call-stack mode each pops at most one record. */
const nearReturns = (r: GuestRun) =>
  r.units.reduce((n, u) => n + (u.branches ?? []).filter((b) => b.kind === 'NEAR_RET').length, 0);

/**
 * What the series does to host perf's Arch LBRs (property 2, guest to host; seed 004's fourth test): one declaration per
 * mechanism, each matching only the field it changes, right after the guest command that changes it.
 */
export const ARCH_LBR_DISTURBANCES: readonly KnownDisturbance[] = [
  {
    id: 'exit-clears-host-lbr-ctl',
    title:
      "every VM-exit clears IA32_LBR_CTL and nothing restores the host's: a host LBR user stops recording once the vCPU has run on its pCPU, whether or not the guest uses LBRs",
    kernelRef:
      'Arch LBR v2 patch 10/15: VM_EXIT_CLEAR_IA32_LBR_CTL is a required VM-exit control for every VM (review R-AL2-10: "KVM will clear LBR_CTL on VM-Exit ... and AFAICT, never restore the host\'s values")',
    matches: (d) => {
      const c = d.after;
      return d.field === 'LBR_CTL' && d.withGuest === '0x0' && !(c instanceof HostOpen || c instanceof HostWork);
    },
  },
  {
    id: 'entry-loads-guest-lbr-ctl',
    title:
      "every VM-entry loads the guest's IA32_LBR_CTL, whoever holds the LBRs: a guest that set LBREn while a host branch-stack user holds them (its LBR event not ACTIVE) records its branches in the host's stack, and in call-stack mode each of its returns pops one of the host's records",
    kernelRef:
      'Arch LBR v2 patch 10/15: VM_ENTRY_LOAD_IA32_LBR_CTL is a required VM-entry control and GUEST_IA32_LBR_CTL holds what the guest wrote; vmx_passthrough_lbr_msrs only intercepts the records when the guest LBR event is below ACTIVE (review R-AL2-10; seed 004: "Is the guest supposed to be traced?")',
    // The guest's run under its own LBREn and call-stack mode, the host's records popped no more than it returns.
    matches: (d) => {
      if (d.field !== 'records' || !(d.after instanceof GuestRun) || d.hostRecordsPopped === null) return false;
      const ctl = guestLbrCtlEnabled(d.guestHistory);
      return ctl !== null && (ctl & ARCH_LBR_CALL_STACK) !== 0n && d.hostRecordsPopped <= nearReturns(d.after);
    },
  },
  {
    id: 'depth-write-zeroes-host-records',
    title: "the guest's WRMSR of IA32_LBR_DEPTH writes the pCPU's DEPTH, which zeroes every record: the host's too",
    kernelRef:
      'Arch LBR v2 patch 05/15: intel_pmu_set_msr(MSR_ARCH_LBR_DEPTH) does a real wrmsrl with no check that the guest LBR event owns the LBRs (review R-AL2-05: "this is subtly broken")',
    matches: (d) => d.field === 'records' && afterGuestWrmsr(d, (m) => m === MSR_ARCH_LBR_DEPTH),
  },
  {
    id: 'raw-record-write-overwrites-host-records',
    title: "the guest's WRMSR of an Arch LBR record writes the pCPU's record, the host's once perf has the LBRs",
    kernelRef:
      'Arch LBR v2 patch 14/15: intel_pmu_set_msr writes MSR_ARCH_LBR_{FROM,TO,INFO}_0..31 with a raw wrmsrl before intel_pmu_handle_lbr_msrs_access checks the guest LBR event (review R-AL2-14)',
    matches: (d) => d.field === 'records' && afterGuestWrmsr(d, isArchLbrRecord),
  },
  {
    id: 'xrstors-overwrites-host-records',
    title:
      "the guest's XRSTORS of state component 15 loads its image into the pCPU's LBRs, over the host's records (or zeroes them where the image's depth is not the pCPU's)",
    kernelRef:
      'Arch LBR v2 patch 11/15: KVM_SUPPORTED_XSS = XFEATURE_MASK_LBR and XRSTORS does not exit, so it runs on whatever LBRs the pCPU holds',
    matches: (d) => d.field === 'records' && d.after instanceof GuestXrstors,
  },
];
