/**
 * Where the host perf model departs from the kernel or simplifies it, with the choice made and
 * why. Code cites these by id ("H3"). Same shape as model/hw's decisions (D1...).
 */

import type { Decision } from '../hw/decisions.js';

export const HOST_DECISIONS: readonly Decision[] = [
  {
    id: 'H1',
    question: 'Which GLOBAL_CTRL bits perf enables in host mode, and what perf_guest_get_msrs returns.',
    choice:
      'Host: the active counters of events without exclude_host. Guest: the active counters of events without exclude_guest. Idle counters are left out.',
    why: 'The kernel writes intel_ctrl (every counter) minus intel_ctrl_guest_mask / host_mask; an idle counter has EN and its fixed nibble clear, so counting is the same, and the value read back names exactly the counters in use.',
    ref: 'arch/x86/events/intel/core.c __intel_pmu_enable_all, intel_guest_get_msrs',
    unrecorded:
      'An idle counter has EN and its fixed nibble clear, so whether its GLOBAL_CTRL bit is set changes no count, and no observation reads the pCPU GLOBAL_CTRL.',
  },
  {
    id: 'H2',
    question: 'What perf does on a pCPU that is in guest mode.',
    choice:
      'handleNmi may run in guest mode: it stands for VM-exit, the handler, VM-entry, so it ends with the guest GLOBAL_CTRL and leaves DEBUGCTL (reloaded by VM-entry) alone. Every other operation that programs a pCPU requires host mode and throws a ModelError otherwise; reading a count does not.',
    why: 'On hardware perf only runs after a VM-exit; the VMX layer above owns the switch, and a loud error beats silently clobbering guest state.',
    ref: 'design.md "Layers"; arch/x86/kvm/vmx/vmx.c vmx_vcpu_run',
  },
  {
    id: 'H3',
    question: 'Scope of attr.exclusive.',
    choice: 'An exclusive event goes on only when no event is active on the CPU, and then nothing else goes on.',
    why: 'The kernel checks the event list of its own context and type plus the per-CPU exclusive flag; the brief asks that an exclusive event share the PMU with nothing.',
    ref: 'kernel/events/core.c group_can_go_on',
  },
  {
    id: 'H4',
    question: 'How LBR users on one CPU share the facility, and how a host LBR event wins over the guest LBR event.',
    choice:
      'All LBR users active on a CPU must have the same filter (the EXTRA_REG_LBR shared register); the guest LBR event (vlbr) has a filter of its own that matches nothing else. An event whose filter differs from the one in use cannot be scheduled: pinned goes to ERROR, flexible stays INACTIVE.',
    why: "Between host events this is the shared-register constraint of intel_shared_regs_constraints. For vlbr it is NOT what the kernel does (reports/filed/0003): __intel_get_event_constraints returns intel_vlbr_constraints before intel_shared_regs_constraints, so vlbr never takes EXTRA_REG_LBR and a host LBR event is scheduled beside it; vlbr_exclude_host() then keeps perf from enabling, disabling or reading the LBRs in host mode, and the host event samples without branches. Upstream a host cpu-pinned LBR event does not take the LBRs from an ACTIVE guest LBR event (Xiong Zhang's 2023 reorder patch was not merged; Like Xu: the order is intentional), against seed 000's wording. Kept until ported: while vlbr is ACTIVE the guest sees the same either way; a pinned host LBR user (model: vlbr in ERROR, guest reads 0) and the host samples differ. Unverified on hardware.",
    ref: 'arch/x86/events/intel/core.c __intel_shared_reg_get_constraints, __intel_get_event_constraints, intel_vlbr_constraints; intel/lbr.c vlbr_exclude_host',
  },
  {
    id: 'H5',
    question: 'How many LBR records a sample carries.',
    choice: 'Newest first, up to the first record whose FROM is zero.',
    why: 'Arch LBR reads stop there, and legacy call-stack reads too; legacy non-call-stack reads return the whole ring, zero records included, which tells a reader nothing.',
    ref: 'arch/x86/events/intel/lbr.c intel_pmu_lbr_read_64, intel_pmu_arch_lbr_read',
  },
  {
    id: 'H6',
    question: 'Skipping a call-stack restore when nobody touched the LBRs since the save.',
    choice: 'Always restore a saved stack.',
    why: 'The kernel skips the restore when last_task_ctx and log_id match; the skip saves MSR writes and changes no value.',
    ref: 'arch/x86/events/intel/lbr.c __intel_pmu_lbr_restore',
  },
  {
    id: 'H7',
    question: 'What of perf core is not modelled.',
    choice:
      "Event groups only as kernel counters make them (perf_event_create_kernel_counter with a group leader: the topdown series' slots and metric events); a user's perf_event_open makes no group. Topdown slots and metric events, grouped. No time_enabled/time_running, no throttling, no frequency mode, no PEBS, no cgroups, no inherit.",
    why: 'None of them changes which counter an event gets or what a guest can observe in the scenarios the suite runs; each can be added behind the same interface.',
    ref: 'kernel/events/core.c',
  },
  {
    id: 'H8',
    question: 'A raw config of the form event 0x00, umask j+1 (Linux pseudo-encodings 0x0100..0x0700).',
    choice: 'It counts only on fixed counter j; perf_event_open fails with EINVAL when that counter does not exist.',
    why: 'The kernel keeps the fixed-only constraint and the event could never be scheduled; refusing it at open is what callers (KVM) can act on.',
    ref: 'arch/x86/events/intel/core.c FIXED_EVENT_CONSTRAINT, intel_pmu_check_event_constraints',
  },
  {
    id: 'H9',
    question: 'Counter width used to fold deltas.',
    choice: 'Each counter is masked with its own width (GP or fixed).',
    why: 'The kernel uses one cntval_bits for both; every built-in profile has equal widths, and a profile with unequal widths would otherwise #GP on the fixed-counter write.',
    ref: 'arch/x86/events/core.c x86_perf_event_update',
  },
  {
    id: 'H10',
    question: 'How perf_guest_state() (PerfSample.inGuest) is decided.',
    choice:
      "hw.mode === 'guest' at the time of the NMI, unless a hypervisor registered guest-info callbacks (perf_register_guest_info_callbacks), which then decide.",
    why: 'In the kernel KVM flags the vCPU around the NMI VM-exit; the VMX layer can do the same through the callback.',
    ref: 'include/linux/perf_event.h perf_guest_state; arch/x86/kvm/x86.h kvm_before_interrupt',
  },
  {
    id: 'H11',
    question: 'A task on two CPUs at once.',
    choice: 'switchTo throws a ModelError when the task runs on another CPU; it must be switched out there first.',
    why: 'A thread runs on one CPU at a time; migration is switch-out on one CPU, switch-in on another.',
    ref: 'kernel/sched/core.c context_switch',
    unrecorded: 'The error stops the model; it never decides an outcome.',
  },
  {
    id: 'H12',
    question: 'Branch filters.',
    choice:
      'A branch-sampling event asks for all branches (PERF_SAMPLE_BRANCH_ANY) or the call stack, at the privilege levels it names; without LBR_SELECT everything is recorded and no software filter runs.',
    why: 'These are what perf record -b and --call-graph lbr ask for, and what KVM asks for its guest LBR event.',
    ref: 'arch/x86/events/intel/lbr.c intel_pmu_setup_hw_lbr_filter, intel_pmu_setup_sw_lbr_filter',
  },
  {
    id: 'H13',
    question: 'LBR reset on the first LBR user of a CPU, and when the last leaves.',
    choice:
      'The records are wiped when the first LBR user is added to a CPU and the event never ran before (intel_pmu_lbr_add); nothing is wiped when the last one leaves.',
    why: 'That is the kernel without LBR event logging (lbr_counters), which no built-in profile has.',
    ref: 'arch/x86/events/intel/lbr.c intel_pmu_lbr_add, intel_pmu_lbr_del',
  },
  {
    id: 'H14',
    question: 'Does intel_pmu_lbr_reset clear LBR_SELECT?',
    choice: 'Yes, on legacy parts with LBR_SELECT: the reset wipes the records and writes LBR_SELECT = 0.',
    why: "lbr.c does so when cpuc->lbr_select is set, which every LBR user with a filter (host branch events and KVM's guest LBR event) sets. Leaving it alone leaked a stale filter into a guest LBR event created later (found by the conformance property).",
    ref: 'arch/x86/events/intel/lbr.c intel_pmu_lbr_reset',
  },
  {
    id: 'H15',
    question: 'Which events count as "include guest" for the mediated vPMU exclusivity check?',
    choice:
      "Every event without exclude_guest, KVM's own and the NMI watchdog included: the model has only the x86 core PMU, which has PERF_PMU_CAP_MEDIATED_VPMU.",
    why: 'is_include_guest_event exempts only PMUs without the capability (uncore, software); the model has none of those.',
    ref: 'kernel/events/core.c is_include_guest_event, mediated_pmu_account_event (v6 series, merged for 6.20)',
  },
  {
    id: 'H16',
    question: 'What does perf_put_guest_context schedule back in?',
    choice:
      'Every INACTIVE event of the CPU and current task contexts, in the usual priority order; perf_load_guest_context schedules out exactly the active exclude_guest events.',
    why: 'While a mediated VM exists every core-PMU event is exclude_guest (H15), so EVENT_GUEST covers all of them; the model has no separate guest time clock (timeguest), which only affects enabled/running times.',
    ref: 'kernel/events/core.c perf_load_guest_context, perf_put_guest_context',
  },
  {
    id: 'H17',
    question: 'How is a host whose perf disabled the LBRs at boot modelled?',
    choice:
      "As a host-kernel option (lbrProbeFaulted): perf manages no LBRs (x86_perf_get_lbr reports nr 0, branch-stack and guest LBR events fail with EOPNOTSUPP) while the pCPUs keep the part's LBR MSRs.",
    why: 'intel_pmu_init zeroes x86_pmu.lbr_nr when check_msr faults on an LBR MSR (typically a hypervisor below that enumerates LBR_FMT but refuses the MSRs); the reference model has no faulting-LBR part, and what matters to KVM (145dfad998ea) is only what perf reports.',
    ref: 'arch/x86/events/intel/core.c intel_pmu_init (check_msr on lbr_tos/from/to); bugs.md #11',
  },
];

export function hostDecision(id: string): Decision {
  const d = HOST_DECISIONS.find((x) => x.id === id);
  if (d === undefined) throw new Error(`no host decision ${id}`);
  return d;
}
