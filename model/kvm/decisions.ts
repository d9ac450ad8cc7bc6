/**
 * Where the KVM port simplifies upstream or relies on an unverified reading of it ([I] or [M] in
 * kvm-vpmu.md), the choice made and why. Code cites these by id ("K3").
 */

import type { Decision } from '../hw/decisions.js';

export const KVM_DECISIONS: readonly Decision[] = [
  {
    id: 'K1',
    question: 'Absent MSR_P6_EVNTSEL0/1: #GP, or read 0 / drop writes like MSR_P6_PERFCTR0/1?',
    choice: 'Like PERFCTR0/1: reads 0, writes dropped, no #GP.',
    why: 'kvm_set_msr_common lists MSR_P6_EVNTSEL0/1 beside the K7 and P6 counter MSRs in the same "ignore if the PMU does not have it" case.',
    ref: 'kvm-vpmu.md §2.6; pmu-semantics.md §6',
  },
  {
    id: 'K2',
    question: 'Which parts of upstream are not ported yet?',
    choice:
      'PEBS (PEBS_ENABLE, DS_AREA, PEBS_DATA_CFG, precise_ip, cross-mapping), AMD, nested VMX, the VMware backdoor and BUS_LOCK_DETECT. The MSRs of these are unknown to the port (#GP for the guest).',
    why: 'None of them is reachable from the CPU profiles and commands the suite generates today; each is its own issue.',
    ref: 'kvm-vpmu.md §2.14, §2.17',
  },
  {
    id: 'K3',
    question: "What does KVM's handling of a VM-exit do to the host PMU?",
    choice:
      'Each intercepted exit runs one fixed host-mode work unit at CPL 0 on the pCPU (40 instructions, 120 cycles, a call and a return in kernel text).',
    why: 'The handler is host kernel code: host events count it and host LBR users record it, which is where host/guest interference shows. Its exact size does not matter.',
    ref: 'design.md "the hardware model is used twice"',
  },
  {
    id: 'K4',
    question: 'Are DEBUGCTL and the LBR MSRs in the save/restore list?',
    choice:
      'No: KVM_GET_MSR_INDEX_LIST has the msrs_to_save_pmu counters, selectors and global MSRs the host can expose, and PERF_CAPABILITIES.',
    why: 'LBR MSRs are not in msrs_to_save and kvm-unit-tests run pmu_lbr non-migratable; DEBUGCTL is left open upstream.',
    ref: 'kvm-vpmu.md §2.18, §7 item 6',
  },
  {
    id: 'K5',
    question: 'Order of KVM_REQ_PMU and KVM_REQ_PMI in vcpu_enter_guest.',
    choice: 'KVM_REQ_PMU (kvm_pmu_handle_event) first, then KVM_REQ_PMI (kvm_pmu_deliver_pmi).',
    why: 'The order in x86.c; an overflow found by reprogramming raises KVM_REQ_PMI, which must then be seen in the same entry.',
    ref: 'kvm-vpmu.md §2.10, §7 item 2',
  },
  {
    id: 'K6',
    question: 'When is a PMI raised by a guest counter injected?',
    choice:
      "The hardware PMI exits the guest as an NMI; perf's handler runs, then KVM re-enters at once and injects, so the guest receives it at the boundary after the overflowing unit.",
    why: 'Nothing else runs between the NMI exit and the next entry of the same vCPU thread.',
    ref: 'kvm-vpmu.md §2.10; design.md "Timing"',
  },
  {
    id: 'K7',
    question: 'Does a non-zero PERF_CAPABILITIES need a vPMU?',
    choice: 'Yes, any non-zero value: vmx_set_msr fails the write while pmu->version is 0 (FW_WRITES alone included).',
    why: 'vmx_set_msr checks "data && !pmu->version" before the LBR and PEBS checks (read in 2025 vmx.c context); vmx_pmu_caps_test sees it through its LBR case.',
    ref: 'kvm-vpmu.md §2.15, §3.1',
  },
  {
    id: 'K8',
    question: 'What does a PMI do when LVTPC selects a delivery mode other than Fixed or NMI?',
    choice:
      'ExtINT is not accepted (no PMI, LVTPC stays unmasked). SMI, RemoteRead, INIT and SIPI are accepted and mask LVTPC, but the guest sees nothing the model represents. NMI mode is reported as vector 2.',
    why: '__apic_accept_irq accepts every mode but ExtINT and kvm_apic_local_deliver masks LVTPC on acceptance; the model has no SMM, INIT or SIPI.',
    ref: 'lapic.c kvm_apic_local_deliver, __apic_accept_irq',
  },
  {
    id: 'K9',
    question: 'What is PERF_CAPABILITIES before userspace writes it?',
    choice: 'kvm_caps.supported_perf_cap, kept across KVM_SET_CPUID2; without guest PDCM it reads (and counts) as 0.',
    why: 'kvm_arch_vcpu_create stuffs the supported value under KVM_X86_QUIRK_STUFF_FEATURE_MSRS, which is on unless userspace disables it; the port does not model disabling quirks.',
    ref: 'x86.c kvm_arch_vcpu_create; pmu_intel.c vcpu_get_perf_capabilities',
  },
  {
    id: 'K10',
    question: 'Mediated vPMU: what does a guest whose CPUID.0AH says version 3, 4 or 5 get?',
    choice:
      'The same MSR set as version 2: KVM does not clamp the version, has no GLOBAL_STATUS_SET/INUSE for the guest (#GP), and keeps the v2 reserved masks on intercepted global MSRs; where GLOBAL_CTRL/STATUS/OVF_CTRL pass through, the guest meets the host hardware directly.',
    why: 'kvm_init_pmu_capability caps kvm_pmu_cap.version at 2 even with the mediated PMU, intel_pmu_refresh takes the version unclamped, and kvm_pmu_is_valid_msr lists no 0x391/0x392 (kvm-vpmu.md §2.3, §2.4, §7 item 3); a CPUID-side clamp was proposed for mediated and not merged.',
    ref: 'kvm-vpmu.md §2.3, §2.4, §2.19',
  },
  {
    id: 'K11',
    question: 'Mediated vPMU requirements: are the VMCS "load/save IA32_PERF_GLOBAL_CTRL" controls checked?',
    choice:
      'No: every modelled part is assumed to have them; the requirement check is host PMU version >= 4 and PERF_CAPABILITIES.FW_WRITE (and a vPMU at all).',
    why: 'The hardware model has no VMX capability MSRs; all Intel parts with PMU v4 have the controls.',
    ref: 'pmu_intel.c intel_pmu_is_mediated_pmu_supported; kvm-vpmu.md §2.3 item 4',
    unrecorded:
      'It decides whether the mediated design runs on a host at all; every built-in host is a real part with the VMCS controls, so no run rests on it.',
  },
  {
    id: 'K12',
    question: 'Mediated vPMU: when are the PMU MSR intercepts and RDPMC exiting recomputed?',
    choice:
      'After every kvm_pmu_refresh (KVM_SET_CPUID2 and a PERF_CAPABILITIES change), from the refreshed counter counts, widths and FW_WRITES.',
    why: 'vmx_recalc_pmu_msr_intercepts and the RDPMC exiting control are derived from the vCPU model, recomputed upstream on CPUID and MSR-filter changes (KVM_REQ_RECALC_INTERCEPTS); the exact request plumbing is not ported.',
    ref: 'vmx.c vmx_recalc_pmu_msr_intercepts, vmx_recalc_instruction_intercepts [I call sites]',
    unrecorded:
      'A refresh after KVM_RUN is refused (KVM_SET_CPUID2 unless identical, PERF_CAPABILITIES once run), so every recomputation happens before the guest runs and no observation can tell another timing.',
  },
  {
    id: 'K13',
    question: 'Mediated vPMU: when does a VM release its mediated PMU?',
    choice:
      'When its last vCPU is destroyed: the model has no separate KVM_CREATE_VM/close, so destroying the last vCPU stands for kvm_arch_destroy_vm, which calls perf_release_mediated_pmu.',
    why: 'VpmuVcpu has only vCPU-level lifetime; every world makes one VM per vCPU.',
    ref: 'x86.c kvm_arch_vcpu_precreate, kvm_arch_destroy_vm',
  },
  {
    id: 'K14',
    question: 'Mediated vPMU: how often does KVM load and put the guest PMU?',
    choice:
      'Around every VM-entry/VM-exit pair the model makes: each intercepted instruction, each mediated PMI and the end of each run put the PMU and the next entry loads it again. There is no fastpath.',
    why: 'Upstream loads before the inner run loop and puts after it; only fastpath exits (no PMU emulation allowed there) skip the switch, and the model has none.',
    ref: 'x86.c vcpu_enter_guest; kvm-vpmu.md §2.19',
  },
  {
    id: 'K15',
    question: 'Mediated vPMU: what counter counts does kvm_host_pmu report?',
    choice:
      "GP: CPUID.0AH.EAX[15:8]; fixed: one past the highest fixed counter the part has (fls of the fixed mask), e.g. 4 on Ice Lake and Sapphire Rapids, so a guest with KVM's at most 3 fixed counters never gets RDPMC or the global MSRs passed through there.",
    why: 'perf_get_x86_pmu_capability reports x86_pmu_max_num_counters_fixed(); KVM compares the guest with the host, not with kvm_pmu_cap, on purpose ("Check *host* PMU capabilities").',
    ref: 'arch/x86/events/core.c perf_get_x86_pmu_capability; pmu.c kvm_need_any_pmc_intercept',
  },
  {
    id: 'K16',
    question: 'What does KVM do with a guest instruction behind the forced-emulation prefix (KVM_FEP)?',
    choice:
      "kvm.force_emulation_prefix is set: the prefix's UD2 exits, KVM skips the prefix and emulates the instruction, which always completes (MOV, XOR, ENTER, LEAVE, JNE, LOOP on registers); the UD2 itself never retires in the guest.",
    why: 'The selftests (pmu_counters_test) and kvm-unit-tests (x86/pmu.c check_emulated_instr) run their emulated-instruction checks only with the parameter set; without it the guest takes the #UD, which no guest program here asks for.',
    ref: 'x86.c handle_ud, x86_emulate_instruction (EMULTYPE_TRAP_UD_FORCED)',
  },
  {
    id: 'K17',
    question:
      'Mediated design: what does KVM do with the host PMU for a vCPU without a vPMU (version 0, a PMU-off VM)?',
    choice:
      'It neither loads nor puts a guest PMU (kvm_mediated_pmu_load/put return early); nothing else is done at VM-entry or VM-exit for it.',
    why: "kvm_vcpu_has_mediated_pmu is false for such a vCPU; whether VM-entry then switches perf's GLOBAL_CTRL for it as the perf-based vPMU does was not read. Only the host properties could see it, and they make no such vCPU.",
    ref: 'pmu.c kvm_mediated_pmu_load, kvm_mediated_pmu_put; pmu.h kvm_vcpu_has_mediated_pmu',
  },
];
