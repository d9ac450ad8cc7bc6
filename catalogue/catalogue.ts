/**
 * The historical bug catalogue (docs/bugs.md), ported: each in-scope row as a design with
 * the fix reverted and the check that must find it; each other row with why it cannot fit.
 * `npm run bugs` measures them; test/catalogue/catalogue.test.ts holds each to its budget.
 */

import { designById, DESIGNS } from '../designs/registry.js';
import type { Design } from '../properties/design.js';
import { EMULATED_EXPECTATIONS } from '../properties/expectations/emulated.js';
import type { BugEntry, OutOfScope } from './types.js';

const emulated = designById('emulated');

/** A bug KVM still has: the faithful design, with the divergence that declares it taken out. */
function undeclared(id: string, title: string): Design {
  return {
    ...emulated,
    id: `undeclared/${id}`,
    title,
    expectations: EMULATED_EXPECTATIONS.filter((e) => e.id !== id),
  };
}

const design = (id: string): Design => {
  const d = DESIGNS.find((x) => x.id === id);
  if (d === undefined) throw new Error(`catalogue: no design '${id}'`);
  return d;
};

export const CATALOGUE: readonly BugEntry[] = [
  {
    row: 1,
    subject: 'perf/x86: fix masking logic for MSR_CORE_PERF_GLOBAL_CTRL',
    fixedBy: '971079464001',
    kernel: '6.7',
    classes: ['HL'],
    design: design('bug/971079464001'),
    check: 'host-undisturbed',
    host: 'skylake',
    minimalTrigger: 2,
    trigger: 'host opens an exclude_guest counter; the guest runs',
  },
  {
    row: 9,
    subject: 'KVM: x86/pmu: Explicitly check NMI from guest to reduce false positives',
    fixedBy: '812d432373f6',
    kernel: '6.9',
    classes: ['HL'],
    design: design('bug/812d432373f6'),
    check: 'host-samples',
    host: 'skylake',
    minimalTrigger: 2,
    trigger:
      "host opens a pinned exclude_guest sampling event on the vCPU's pCPU; an external interrupt exits the guest and its host handler runs past the sample period",
  },
  {
    row: 10,
    subject: 'KVM: x86/pmu: Disallow legacy LBRs if architectural LBRs are available',
    fixedBy: '098f4c061ea1',
    kernel: "6.4 per bugs.md (upstream id from the stable backports' Stable-dep-of tags; stable e.g. 35bf9fdc3cab)",
    classes: ['HL', 'GP'],
    design: design('bug/098f4c061ea1'),
    check: 'vmm-conformance',
    host: 'sapphirerapids',
    minimalTrigger: 1,
    trigger:
      'Arch LBR host: KVM_SET_MSRS PERF_CAPABILITIES = FW_WRITES|LBR_FMT 0x3f is accepted for a guest without CPUID Arch LBR, an enumeration no CPU has (W4); the guest would then reach legacy LBR_SELECT/TOS the part lacks',
  },
  {
    row: 11,
    subject: 'KVM: VMX: Advertise PMU LBRs if and only if perf supports LBRs',
    fixedBy: '145dfad998ea',
    kernel: '6.1',
    classes: ['HL'],
    design: design('bug/145dfad998ea'),
    check: 'conformance',
    host: 'skylake',
    minimalTrigger: 1,
    trigger:
      "host perf without LBRs (probe faulted; the design's host kernel): a guest given LBR_FMT 5 does RDMSR LBR_FROM_0 (or TOS/SELECT) → #GP, bare metal reads 0; or WRMSR DEBUGCTL.LBR is dropped",
  },
  {
    row: 13,
    subject: 'KVM: VMX: Handle bad values on proxied writes to LBR MSRs',
    fixedBy: 'ca674df13b19',
    kernel: 'kvm-x86 next (June 2026)',
    classes: ['HL', 'GP'],
    design: design('bug/ca674df13b19'),
    check: 'conformance',
    host: 'skylake',
    minimalTrigger: 1,
    trigger:
      'guest with the host LBR format: WRMSR of a value the hardware refuses (reserved LBR_SELECT bits, non-canonical FROM) while the LBR MSRs are still intercepted → accepted, bare metal #GPs',
  },
  {
    row: 14,
    subject:
      'mediated vPMU rule: RDPMC must be intercepted unless the guest has every host counter (kvm_need_rdpmc_intercept)',
    fixedBy: null,
    kernel: 'mediated vPMU series (a design rule, not a fix)',
    classes: ['HL'],
    design: design('bug/mediated-rdpmc-passthrough'),
    check: 'conformance',
    host: 'skylake',
    minimalTrigger: 1,
    trigger:
      'guest with fewer GP counters than the host: RDPMC(k) for an unexposed k reads the physical counter, bare metal #GPs',
  },
  {
    row: 17,
    subject: 'v4+ streamlined Freeze_LBRs_On_PMI not emulated (no upstream fix)',
    fixedBy: null,
    kernel: 'all (proposal of 2023 unmerged)',
    classes: ['FZ', 'AC'],
    design: undeclared('no-v4-lbr-freeze', 'bugs.md #17: no LBR freeze for PMU v4+ guests (undeclared)'),
    check: 'lbr-freeze',
    // A v4 guest is beyond the version 2 KVM_GET_SUPPORTED_CPUID reports: an unsupported configuration.
    gen: 'beyond-supported',
    host: 'skylake',
    minimalTrigger: 6,
    trigger:
      'v4 guest: DEBUGCTL=LBR|FRZ, EVNTSEL0 branches with INT, PMC0=-k, GLOBAL_CTRL=1, branchy run, RDMSR GLOBAL_STATUS',
    report: 'reports/filed/0002-kvm-no-lbr-freeze-for-pmu-v4.md',
  },
  {
    row: 34,
    subject: 'KVM: x86/pmu: Reset the PMU, i.e. stop counters, before refreshing',
    fixedBy: '1647b52757d5',
    kernel: '6.8',
    classes: ['SR', 'HL'],
    design: design('bug/1647b52757d5'),
    check: 'vmm-conformance',
    host: 'skylake',
    minimalTrigger: 2,
    trigger:
      'KVM_SET_CPUID2 to a v2 model with no GP counters (GLOBAL_CTRL of the old model survives); guest RDMSR GLOBAL_CTRL',
  },
  {
    row: 35,
    subject:
      'KVM: x86/pmu: Always treat Fixed counters as available when supported (+ allow events that match unsupported arch events)',
    fixedBy: 'cbbd1aa89139',
    kernel: '6.9',
    classes: ['AC'],
    design: design('bug/cbbd1aa89139'),
    check: 'conformance',
    host: 'skylake',
    minimalTrigger: 2,
    trigger:
      'CPUID.0AH.EBX marks instructions unavailable: WRMSR EVNTSEL0 = EN|OS|0xC0 (it counts itself), RDPMC 0 → 0, bare metal 1',
  },
  {
    row: 36,
    subject: "KVM: x86/pmu: Ignore pmu->global_ctrl check if vPMU doesn't support global_ctrl",
    fixedBy: '32c070a46533',
    kernel: '5.19 (upstream id not pinned; 5.10 stable backport)',
    classes: ['AC'],
    design: design('bug/32c070a46533'),
    check: 'conformance',
    host: 'skylake',
    minimalTrigger: 2,
    trigger: 'PMU version 1 guest: WRMSR EVNTSEL0 = EN|OS|0xC0 (it counts itself), RDMSR PERFCTR0 → 0, bare metal 1',
  },
  {
    row: 41,
    subject: 'KVM: x86/pmu: Disallow "fast" RDPMC for architectural Intel PMUs',
    fixedBy: '5728a4a0ea79',
    kernel: '6.9',
    classes: ['GP'],
    design: design('bug/5728a4a0ea79'),
    check: 'conformance',
    host: 'skylake',
    minimalTrigger: 1,
    trigger: 'RDPMC(0x80000000)',
  },
  {
    row: 42,
    subject: 'KVM: x86/pmu: Treat "fixed" PMU type in RDPMC as index as a value, not flag',
    fixedBy: '7a0fc734c20d',
    kernel: '6.9 (with a634c76b2c1a)',
    classes: ['GP'],
    design: design('bug/7a0fc734c20d'),
    check: 'conformance',
    host: 'skylake',
    minimalTrigger: 1,
    trigger:
      'RDPMC(0xC0000000) or RDPMC(0x80000000): type 0xC000 / 0x8000 read as fixed / GP counter 0, bare metal #GPs',
  },
  {
    row: 45,
    subject: 'KVM: x86: Reject userspace attempts to access PERF_CAPABILITIES w/o PDCM',
    fixedBy: 'd75cac366f44',
    kernel: '~6.12',
    classes: ['SR'],
    design: design('bug/d75cac366f44'),
    check: 'vmm-abi',
    host: 'skylake',
    minimalTrigger: 1,
    trigger:
      'guest CPUID without PDCM; KVM_SET_MSRS PERF_CAPABILITIES = FW_WRITES is accepted (or KVM_GET_MSRS reads it non-zero)',
  },
  {
    row: 47,
    subject: "KVM: x86/pmu: Don't tell userspace to save MSRs for non-existent fixed PMCs",
    fixedBy: 'e33b6d79acac',
    kernel: '6.3',
    classes: ['SR'],
    design: design('bug/e33b6d79acac'),
    check: 'vmm-abi',
    host: 'skylake',
    minimalTrigger: 0,
    trigger:
      "no commands: KVM_GET_MSR_INDEX_LIST on a 3-fixed-counter host lists FIXED_CTR3, which a vCPU with all of the host's PMU cannot hold",
  },
  {
    row: 49,
    subject: 'KVM: x86/pmu: Prevent the PMU from counting disallowed events',
    fixedBy: 'dfdeda67ea2d',
    kernel: '6.4',
    classes: ['EF'],
    design: design('bug/dfdeda67ea2d'),
    check: 'vmm-conformance',
    host: 'skylake',
    minimalTrigger: 3,
    trigger:
      'KVM_SET_PMU_EVENT_FILTER(DENY 0xC0); guest WRMSR EVNTSEL0 = EN|OS|0xC0 (itself an emulated instruction); RDMSR PMC0 reads 1, not 0',
  },
];

export const OUT_OF_SCOPE: readonly OutOfScope[] = [
  {
    row: 20,
    subject: 'KVM: x86/pmu: Synthesize at most one PMI per VM-exit',
    reason:
      "Before 73554b29bd70, __kvm_perf_overflow(in_pmi=true) delivered through irq_work (kvm_pmi_trigger_fn → kvm_pmu_deliver_pmi at once) only when perf's overflow was not handled as an NMI from the guest (in_pmi && !kvm_handling_nmi_from_guest), i.e. when a guest counter's PMI skids past VM-exit into host mode; otherwise it raised KVM_REQ_PMI exactly as the fix does. The model delivers a guest counter's PMI at the unit boundary as an NMI VM-exit (K6; pmu-semantics.md: the next instruction boundary) and the vPMU's events are exclude_host, so they never overflow in host mode: the irq_work branch is unreachable and the pre-fix code equals the fixed code on every program. Even reached, the second delivery in the same exit is dropped by the LVTPC mask a16eb25b09c0 sets on the first (merged before it in 6.6 and faithful here); what remains upstream is the irq_work self-IPI racing a migration to another pCPU (true concurrency) and the PMI not waking a halted vCPU (no HLT in the vocabulary). It needs PMI skid across VM-exit (a change to K6) and HLT.",
  },
  {
    row: 23,
    subject: 'KVM: x86/pmu: Track emulated counter events instead of previous counter',
    reason:
      "Before fd89499a5151, kvm_pmu_incr_counter snapshotted prev_counter = counter (the base, without perf's unfolded count) and bumped the base; reprogram_counter compared after folding. That is wrong only (a) with two emulated events on one PMC between two KVM_REQ_PMU checks (the second snapshot clobbers the first: a counter at -1 loses its overflow) — upstream through handle_invalid_guest_state's multi-instruction emulation or nested emulation, while in the model every intercepted instruction is its own exit, retires at most one event per PMC and ends in vcpu_enter_guest handling KVM_REQ_PMU; or (b) when perf's unfolded count wrapped before the emulated increment is checked (a spurious second overflow), which needs a guest-counter overflow whose reprogram has not run by the next intercepted instruction, i.e. the host-mode (skidded) PMI of row 20: in the model the overflow's NMI exit folds the count before the guest runs again and the events count in guest mode only. The duplicate of (b) would also only re-set a set GLOBAL_STATUS bit and re-raise a coalescing KVM_REQ_PMI behind a masked LVTPC, so it shows only with row 20's irq_work path and pre-a16eb25b09c0 LVTPC. It needs PMI skid across VM-exit and multi-instruction emulation in one exit.",
  },
  {
    row: 26,
    subject: 'KVM: x86/pmu: Update sample period in pmc_write_counter()',
    reason:
      '89acf1237b81 is a deduplication with no functional change: before it, every pmc_write_counter() caller (intel_pmu_set_msr for GP and fixed counters, amd_pmu_set_msr) called pmc_update_sample_period() itself, so no Intel (or AMD) write path ran with a stale period; there is nothing to revert.',
  },
];
