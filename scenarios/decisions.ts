/**
 * How the world lines up a guest's observations under a design with bare metal's, where neither
 * pmu-semantics.md nor the kernel says. Code cites these by id ("W1").
 */

import type { Decision } from '../model/hw/decisions.js';

export const WORLD_DECISIONS: readonly Decision[] = [
  {
    id: 'W1',
    question: 'Does a guest RDMSR/WRMSR/RDPMC count as a retired instruction on bare metal, and when?',
    choice:
      'Yes: after its effect, as one instruction at the guest CPL (0 for MSR accesses), and only if it did not fault. A WRMSR that enables a counter is counted by it.',
    why: 'KVM counts each instruction it skips after emulating it (kvm_skip_emulated_instruction → kvm_pmu_instruction_retired) after the write took effect; a faulting instruction does not retire.',
    ref: 'kvm-vpmu.md §2.11',
  },
  {
    id: 'W2',
    question: 'How are PMIs compared when LVTPC selects NMI delivery?',
    choice: 'Both sides report an NMI-mode PMI as vector 2; a Fixed-mode PMI as its LVTPC vector.',
    why: 'The guest sees an NMI, not a vector, in NMI mode; KVM reports it so (decision K8).',
    ref: 'pmu-semantics.md §4.4',
  },
  {
    id: 'W3',
    question: 'What of a WRMSR does the guest observe?',
    choice: 'Only whether it faulted (#GP) or not; the value it stored shows on the next read.',
    why: 'WRMSR returns nothing to software; comparing a stored value on both sides would compare model internals.',
    ref: 'design.md "A program and its observations"',
    unrecorded:
      'It decides what is compared, not what either side does: a write is never judged by its value, so no verdict rests on it.',
  },
  {
    id: 'W4',
    question:
      'What is bare metal for a guest enumeration no CPU has (e.g. PERF_CAPABILITIES.LBR_FMT 0x3f without CPUID Arch LBR)?',
    choice:
      'There is none: the hardware model refuses the profile, and the VMM command that KVM accepted with it is itself the divergence (KVM accepted, a CPU-faithful vPMU refuses). The oracle is left as it was.',
    why: 'pmu-semantics.md §2.10 defines LBR_FMT 0x3f only as "Arch LBR in use", and Arch LBR has no legacy LBR_SELECT/TOS; inventing a CPU for a contradictory enumeration would decide the very behaviour under test.',
    ref: 'pmu-semantics.md §2.10, §3; bugs.md #10',
  },
  {
    id: 'W5',
    question:
      "What PERF_CAPABILITIES does a guest get when the generator asks for bits the design's KVM does not support (e.g. an LBR format from the mediated vPMU)?",
    choice:
      "The request limited to KVM's feature MSR (supportedPerfCapabilities), and the bare-metal oracle is built from the limited value; test/model/kvm/supported_caps.test.ts pins that value per host.",
    why: 'A VMM asks KVM what it supports before configuring a vCPU (QEMU masks -cpu features with KVM_GET_MSRS on the system fd); an unsupported request is a VMM configuration error, not a guest observation.',
    ref: 'kvm-vpmu.md §2.15; Documentation/virt/kvm/api.rst KVM_GET_MSRS (feature MSRs)',
  },
  {
    id: 'W6',
    question:
      'Must a program end at a declared divergence that only changes one access (KVM and bare metal disagree on whether an MSR access faults)?',
    choice:
      "No, where the declaration says how, and the program is then compared exactly. Where bare metal #GPs and KVM answers (the P6 quirk), bare metal takes KVM's answer and retires the access as in W1. Where KVM #GPs for a reason the declaration states (an MSR KVM lacks, a bit it never supports), bare metal faults too, before any effect. Each adoption counts as the known divergence. Beyond faults, a declaration may adopt only what bare metal can take on from KVM's stated mechanism, each through its own hook: a value KVM keeps (adoptValue: a fixed counter masked to its width, DEBUGCTL bits dropped), a VMM step's loss (adoptStep: LBR records a restore wipes), no LBR freeze (noLbrFreeze), perf's period floor (periodFloor: the counter overflows when KVM's perf event does, its count exact) and an LBR_INFO cycle count (adoptRead). KVM's side is never patched.",
    why: 'Ending programs at such accesses ended about a quarter of conformance programs, and over two thirds of lbr-heavy ones (a DEBUGCTL write with FREEZE_PERFMON_ON_PMI), before they reached anything else; adopting them keeps the comparison exact instead of excusing what follows.',
    ref: 'arch/x86/kvm/x86.c kvm_get_msr_common / kvm_set_msr_common (MSR_P6_*); vmx.c vmx_set_debugctl; pmu.c kvm_pmu_is_valid_msr',
  },
  {
    id: 'W7',
    question: "What is bare metal for an instruction behind KVM's forced-emulation prefix (KVM_FEP)?",
    choice:
      'The instruction alone: it retires as one instruction at the guest CPL, as a branch for JNE and LOOP (taken or not as the program says; ENTER and LEAVE are no branches), and the prefix (UD2 and its signature) retires nothing.',
    why: 'The prefix is a hook for KVM to emulate the instruction that follows; the guest asks for the instruction, and the upstream checks (pmu_counters_test, kvm-unit-tests check_emulated_instr) expect the same counts with and without it.',
    ref: 'tools/testing/selftests/kvm/x86/pmu_counters_test.c (KVM_FEP); kvm-unit-tests x86/pmu.c check_emulated_instr',
  },
];
