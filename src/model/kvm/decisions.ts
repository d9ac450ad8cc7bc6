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
    choice: 'PEBS (PEBS_ENABLE, DS_AREA, PEBS_DATA_CFG, precise_ip, cross-mapping), AMD, nested VMX, the VMware backdoor and BUS_LOCK_DETECT. The MSRs of these are unknown to the port (#GP for the guest).',
    why: 'None of them is reachable from the CPU profiles and commands the suite generates today; each is its own issue.',
    ref: 'kvm-vpmu.md §2.14, §2.17',
  },
  {
    id: 'K3',
    question: 'What does KVM\'s handling of a VM-exit do to the host PMU?',
    choice: 'Each intercepted exit runs one fixed host-mode work unit at CPL 0 on the pCPU (40 instructions, 120 cycles, a call and a return in kernel text).',
    why: 'The handler is host kernel code: host events count it and host LBR users record it, which is where host/guest interference shows. Its exact size does not matter.',
    ref: 'design.md "the hardware model is used twice"',
  },
  {
    id: 'K4',
    question: 'Are DEBUGCTL and the LBR MSRs in the save/restore list?',
    choice: 'No: KVM_GET_MSR_INDEX_LIST has the msrs_to_save_pmu counters, selectors and global MSRs the host can expose, and PERF_CAPABILITIES.',
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
    choice: 'The hardware PMI exits the guest as an NMI; perf\'s handler runs, then KVM re-enters at once and injects, so the guest receives it at the boundary after the overflowing unit.',
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
    choice: 'ExtINT is not accepted (no PMI, LVTPC stays unmasked). SMI, RemoteRead, INIT and SIPI are accepted and mask LVTPC, but the guest sees nothing the model represents. NMI mode is reported as vector 2.',
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
];
