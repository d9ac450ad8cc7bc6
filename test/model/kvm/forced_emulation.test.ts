/**
 * Emulated instructions and branches (kvm_pmu_instruction_retired, kvm_pmu_branch_retired) as the upstream suites
 * check them through forced emulation (KVM_FEP, `ud2; .byte 'k', 'v', 'm'`), on both designs:
 *
 * - the selftest x86/pmu_counters_test.c: GUEST_MEASURE_EVENT runs the same loop with FEP "" and with KVM_FEP and
 *   expects exactly NUM_INSNS_RETIRED (65) instructions and NUM_BRANCH_INSNS_RETIRED (10) branches either way;
 * - kvm-unit-tests x86/pmu.c check_emulated_instr: five forced-emulation JNEs among 22 instructions, counters preset
 *   to -5 and -22, so both overflow: exact deltas and GLOBAL_STATUS bits 0 and 1.
 *
 * Adapted to the model's commands: an instruction the guest retires itself is a work unit, one behind the prefix is a
 * GuestEmulate step (VpmuVcpu.guestEmulate), an intercepted WRMSR is the guest WRMSR KVM skips. kvm-unit-tests' CPUIDs
 * exit and are skipped by KVM (kvm_skip_emulated_instruction), which counts them as the hardware would count them in
 * the guest, so they are work units here. Every expected count is upstream's constant, never the port's output.
 */
import { describe, expect, it } from 'vitest';
import type { WorkUnit } from '../../../model/hw/work.js';
import type { EmulatedInsn, VpmuVcpu } from '../../../model/kvm/types.js';
import { EMULATED_OPS } from '../../../model/kvm/emulated/ops.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { nop } from '../../../model/kvm/common/vcpu.js';
import { HostKernel } from '../../../model/host/perf.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  INTEL_FIXED_0_KERNEL,
  INTEL_PMC_FIXED_RDPMC_BASE,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import {
  BRANCHES,
  createVcpu,
  defaultCpuid,
  fixedGlobalEnable,
  fixedPmcCtrl,
  INSTRUCTIONS,
  PC_VECTOR,
  val,
} from './util.js';
import { createMediated } from './mediated/util.js';

const DESIGNS: readonly (readonly [string, () => VpmuVcpu])[] = [
  ['emulated', () => createVcpu({ profile: SKYLAKE }).vcpu],
  ['mediated', () => createMediated({ profile: SKYLAKE }).vcpu],
];

const NR_GP = Math.min(SKYLAKE.nGP, 8);
const MASK = (1n << BigInt(SKYLAKE.gpWidth)) - 1n;

/** A guest's instructions: intercepted MSR accesses must not fault; FEP or plain instructions in order. */
class Guest {
  constructor(readonly v: VpmuVcpu) {}
  wrmsr(msr: number, x: bigint): void {
    val(this.v.guestWrmsr(msr, x), `WRMSR 0x${msr.toString(16)} <- 0x${x.toString(16)}`);
  }
  rdmsr(msr: number): bigint {
    return val(this.v.guestRdmsr(msr), `RDMSR 0x${msr.toString(16)}`);
  }
  rdpmc(ecx: number): bigint {
    return val(this.v.guestRdpmc(ecx >>> 0, 0), `RDPMC 0x${(ecx >>> 0).toString(16)}`);
  }
  /** Instructions the guest retires itself, at CPL 0: `n` of them, the last one a branch if `branch` says. */
  run(n: number, branch: 'taken' | 'untaken' | null = null): void {
    const u: WorkUnit = {
      cpl: 0,
      instructions: n,
      cycles: 2 * n,
      ...(branch === 'taken' ? { branches: [{ from: 0x40_1010n, to: 0x40_1000n, kind: 'COND' as const }] } : {}),
      ...(branch === 'untaken' ? { untakenBranches: 1 } : {}),
    };
    this.v.guestRun([u]);
  }
  /** One instruction, behind KVM_FEP when `fep`, else retired by the guest. */
  insn(insn: EmulatedInsn, fep: boolean, taken = false): void {
    const branch = insn === 'jne' || insn === 'loop';
    if (fep) this.v.guestEmulate(insn, 0);
    else this.run(1, branch ? (taken ? 'taken' : 'untaken') : null);
  }
}

// ---- pmu_counters_test.c ----

const NUM_LOOPS = 10;
/** 1 ENTER, 1 CLFLUSH/CLFLUSHOPT/NOP, 1 MFENCE, 1 MOV, 1 LEAVE, 1 LOOP (the selftest's NUM_INSNS_PER_LOOP). */
const NUM_INSNS_PER_LOOP = 6;
/** The enabling WRMSR, "mov $NUM_LOOPS, %ecx", and the MOV, XOR, XOR before the disabling WRMSR. */
const NUM_EXTRA_INSNS = 5;
const NUM_INSNS_RETIRED = NUM_LOOPS * NUM_INSNS_PER_LOOP + NUM_EXTRA_INSNS;
const NUM_BRANCH_INSNS_RETIRED = NUM_LOOPS;

/**
 * GUEST_MEASURE_EVENT: "wrmsr" (enable), "mov $NUM_LOOPS, %ecx", NUM_LOOPS × (FEP ENTER, CLFLUSH, MFENCE, MOV, FEP
 * LEAVE, FEP LOOP 1b), FEP MOV, FEP XOR, FEP XOR, "wrmsr" (disable); FEP is "" or KVM_FEP.
 */
function guestMeasureEvent(g: Guest, ctrlMsr: number, value: bigint, fep: boolean): void {
  g.wrmsr(ctrlMsr, value);
  g.run(1);
  for (let i = 0; i < NUM_LOOPS; i++) {
    g.insn('enter', fep);
    g.run(3);
    g.insn('leave', fep);
    g.insn('loop', fep, i < NUM_LOOPS - 1);
  }
  g.insn('mov', fep);
  g.insn('xor', fep);
  g.insn('xor', fep);
  g.wrmsr(ctrlMsr, 0n);
}

/** guest_assert_event_count for instructions and branches, then its sanity checks. */
function assertEventCount(g: Guest, what: 'instructions' | 'branches', pmc: number, pmcMsr: number, where: string) {
  const count = g.rdpmc(pmc);
  expect(count, `${where}: ${what}`).toBe(
    BigInt(what === 'instructions' ? NUM_INSNS_RETIRED : NUM_BRANCH_INSNS_RETIRED),
  );
  // "loop ." with the counter disabled: nothing more counts; nor (beyond upstream's check) do emulated LOOPs.
  for (let i = 0; i < NUM_LOOPS; i++) g.run(1, i < NUM_LOOPS - 1 ? 'taken' : 'untaken');
  for (let i = 0; i < NUM_LOOPS; i++) g.v.guestEmulate('loop', 0);
  expect(g.rdpmc(pmc), `${where}: frozen while disabled`).toBe(count);
  g.wrmsr(pmcMsr, 0xdeadn);
  expect(g.rdpmc(pmc), `${where}: RDPMC after WRMSR 0xdead`).toBe(0xdeadn);
}

/** __guest_test_arch_event for one event on every GP counter and (instructions) on fixed counter 0. */
function guestTestArchEvent(g: Guest, what: 'instructions' | 'branches', fep: boolean): void {
  const sel = what === 'instructions' ? INSTRUCTIONS : BRANCHES;
  for (let i = 0; i < NR_GP; i++) {
    const where = `${what} on GP ${i}${fep ? ' (KVM_FEP)' : ''}`;
    g.wrmsr(MSR_P6_EVNTSEL0 + i, 0n);
    g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n << BigInt(i));
    g.wrmsr(MSR_IA32_PMC0 + i, 0n);
    guestMeasureEvent(g, MSR_P6_EVNTSEL0 + i, ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_ENABLE | sel, fep);
    assertEventCount(g, what, i, MSR_IA32_PMC0 + i, where);
  }
  if (what !== 'instructions') return;
  g.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(0, INTEL_FIXED_0_KERNEL));
  g.wrmsr(MSR_CORE_PERF_FIXED_CTR0, 0n);
  guestMeasureEvent(g, MSR_CORE_PERF_GLOBAL_CTRL, fixedGlobalEnable(0), fep);
  assertEventCount(
    g,
    what,
    INTEL_PMC_FIXED_RDPMC_BASE,
    MSR_CORE_PERF_FIXED_CTR0,
    `instructions on fixed 0${fep ? ' (KVM_FEP)' : ''}`,
  );
}

describe.each(DESIGNS)('pmu_counters_test forced emulation on the %s design', (_name, create) => {
  it('instructions retired: exactly NUM_INSNS_RETIRED (65) on every GP counter and fixed counter 0, with FEP "" and with KVM_FEP', () => {
    for (const fep of [false, true]) guestTestArchEvent(new Guest(create()), 'instructions', fep);
  });

  it('branch instructions retired: exactly NUM_BRANCH_INSNS_RETIRED (10) on every GP counter, with FEP "" and with KVM_FEP', () => {
    for (const fep of [false, true]) guestTestArchEvent(new Guest(create()), 'branches', fep);
  });
});

// ---- kvm-unit-tests x86/pmu.c check_emulated_instr ----

/** The instructions and branches of kvm-unit-tests' kvm_fep_asm() blob (KVM_FEP_INSTR, KVM_FEP_BRNCH). */
const KVM_FEP_INSTR = 22n;
const KVM_FEP_BRNCH = 5n;

interface Cnt {
  readonly ctr: number;
  readonly config: bigint;
  count: bigint;
}

/**
 * kvm_fep_asm("wrmsr"): WRMSR GLOBAL_CTRL = 3, MOV, MOV, CMP, 5 × KVM_FEP JNE (not taken: ZF is set), 5 × (MOV,
 * CPUID), MOV, XOR, XOR, WRMSR GLOBAL_CTRL = 0.
 */
function kvmFepAsm(g: Guest): void {
  g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x3n);
  g.run(3);
  for (let i = 0; i < 5; i++) g.v.guestEmulate('jne', 0);
  for (let i = 0; i < 5; i++) g.run(2); // mov $0xa, %eax; cpuid (skipped by KVM: counted as retired either way)
  g.run(3);
  g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n);
}

function checkEmulatedInstr(g: Guest): void {
  const brnch: Cnt = {
    ctr: MSR_IA32_PMC0,
    config: ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | BRANCHES,
    count: 0n,
  };
  const instr: Cnt = {
    ctr: MSR_IA32_PMC0 + 1,
    config: ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTRUCTIONS,
    count: 0n,
  };
  // pmu_clear_global_status; the global enables as the earlier checks leave them (pmu_reset_global_enable).
  g.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, g.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS));
  g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n);
  // __start_event(cnt, 0): counter, selector with EN, LVTPC; no global enable.
  for (const [i, c] of [brnch, instr].entries()) {
    g.wrmsr(c.ctr, 0n);
    g.wrmsr(MSR_P6_EVNTSEL0 + i, c.config | ARCH_PERFMON_EVENTSEL_ENABLE);
    g.wrmsr(X2APIC_LVTPC, PC_VECTOR);
  }
  const brnchStart = -KVM_FEP_BRNCH & MASK;
  const instrStart = -KVM_FEP_INSTR & MASK;
  g.wrmsr(brnch.ctr, brnchStart);
  g.wrmsr(instr.ctr, instrStart);
  kvmFepAsm(g);
  // __stop_event: the selector without EN, then the count.
  for (const [i, c] of [brnch, instr].entries()) {
    g.wrmsr(MSR_P6_EVNTSEL0 + i, c.config);
    c.count = g.rdmsr(c.ctr);
  }
  expect((instr.count - instrStart) & MASK, 'instruction count').toBe(KVM_FEP_INSTR);
  expect((brnch.count - brnchStart) & MASK, 'branch count').toBe(KVM_FEP_BRNCH);
  const status = g.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS);
  expect(status & 1n, 'branch counter overflow').toBe(1n);
  expect(status & 2n, 'instruction counter overflow').toBe(2n);
}

describe.each(DESIGNS)('kvm-unit-tests pmu check_emulated_instr on the %s design', (_name, create) => {
  it('five KVM_FEP JNEs: instruction count 22 and branch count 5 exactly, both counters overflow (GLOBAL_STATUS bits 0, 1)', () => {
    checkEmulatedInstr(new Guest(create()));
  });
});

describe('the checks bite', () => {
  it('a KVM that counts no emulated branch (kvm_pmu_branch_retired a no-op) fails both checks', () => {
    const make = () => {
      const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
      return new EmulatedVcpu(
        host,
        { cpu: 0, cpuid: defaultCpuid(SKYLAKE) },
        { ...EMULATED_OPS, kvm_pmu_branch_retired: nop },
      );
    };
    expect(() => checkEmulatedInstr(new Guest(make()))).toThrow(/branch count/);
    expect(() => guestTestArchEvent(new Guest(make()), 'branches', true)).toThrow(/branches/);
    // Without KVM_FEP the guest retires its branches itself: the fault does not show.
    expect(() => guestTestArchEvent(new Guest(make()), 'branches', false)).not.toThrow();
  });

  it('a KVM that still treats ENTER and LEAVE as branches (before e8f85d7884e0) fails the selftest with KVM_FEP', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const ops = {
      ...EMULATED_OPS,
      x86_emulate_instruction: (
        vcpu: Parameters<typeof EMULATED_OPS.x86_emulate_instruction>[0],
        insn: EmulatedInsn,
        cpl: number,
      ) => {
        vcpu.ops.kvm_pmu_instruction_retired(vcpu, cpl);
        if (insn === 'jne' || insn === 'loop' || insn === 'enter' || insn === 'leave')
          vcpu.ops.kvm_pmu_branch_retired(vcpu, cpl);
      },
    };
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE) }, ops);
    expect(() => guestTestArchEvent(new Guest(v), 'branches', true)).toThrow(/expected 30n to be 10n/);
  });
});
