/**
 * Forced emulation in the conformance property: the guest's KVM_FEP instructions (GuestEmulate) are counted by
 * KVM's emulator on both designs as bare metal retires them (W7), generation reaches them, and the property fails
 * on a KVM that does not count emulated branches.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { emulatedWith, mediatedWith } from '../../designs/registry.js';
import { EMULATED_OPS } from '../../model/kvm/emulated/ops.js';
import { MEDIATED_OPS } from '../../model/kvm/mediated/ops.js';
import { nop } from '../../model/kvm/common/vcpu.js';
import { type ConformanceRun, conformanceProperty, runProgram } from '../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { MEDIATED_EXPECTATIONS } from '../../properties/expectations/mediated.js';
import { Divergence, GuestEmulate, GuestRdmsr, GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
import { supportedOf } from '../../scenarios/supported.js';
import type { GuestConfig } from '../../scenarios/world.js';
import { PERF_CAP_FW_WRITES } from '../../model/hw/msr/capabilities.js';
import { MSR_IA32_PMC0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';

const emulated: ConformanceRun = {
  host: SKYLAKE,
  design: emulatedWith(EMULATED_OPS),
  expectations: EMULATED_EXPECTATIONS,
};
const mediated: ConformanceRun = {
  host: SKYLAKE,
  design: mediatedWith(MEDIATED_OPS),
  expectations: MEDIATED_EXPECTATIONS,
};

/** Branches on GP0 preset to -3 with a PMI, instructions on GP1; KVM_FEP branches, taken and not, at CPL 0 and 3. */
const PROGRAM: WorldCommand[] = [
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n),
  new GuestWrmsr(0, MSR_IA32_PMC0, (1n << 48n) - 3n),
  new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x5300c4n), // EN | INT | USR | OS, branches
  new GuestWrmsr(0, MSR_P6_EVNTSEL0 + 1, 0x4300c0n), // EN | USR | OS, instructions
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x3n),
  new GuestEmulate(0, 'jne', 0),
  new GuestEmulate(0, 'mov', 3),
  new GuestEmulate(0, 'loop', 3, true),
  new GuestEmulate(0, 'enter', 0),
  new GuestEmulate(0, 'jne', 0, true),
  new GuestRdmsr(0, MSR_IA32_PMC0),
  new GuestRdmsr(0, MSR_IA32_PMC0 + 1),
  new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
];

/** The guest KVM_GET_SUPPORTED_CPUID gives on the host (v2, every counter), with full-width writes. */
function supportedGuest(r: ConformanceRun): GuestConfig {
  const s = supportedOf(r);
  return {
    cpuid: { family: SKYLAKE.family, model: SKYLAKE.model, leaf0a: s.leaf0a, pdcm: true },
    perfCapabilities: PERF_CAP_FW_WRITES,
  };
}

describe('forced emulation against bare metal (W7)', () => {
  it.each([
    ['emulated', emulated],
    ['mediated', mediated],
  ] as const)(
    'the %s design counts KVM_FEP instructions and branches as bare metal does, overflow PMI included',
    (_n, r) => {
      const guest = supportedGuest(r);
      expect(() => runProgram(r, guest, PROGRAM)).not.toThrow();
    },
  );

  it('a KVM that counts no emulated branch diverges on the first counter read', () => {
    const r = { ...emulated, design: emulatedWith({ ...EMULATED_OPS, kvm_pmu_branch_retired: nop }) };
    const guest = supportedGuest(r);
    let err: unknown;
    try {
      runProgram(r, guest, PROGRAM);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Divergence);
    expect((err as Divergence).message).toMatch(/KVM_FEP JNE at CPL 0: PMIs|RDMSR 0x4c1/);
  });

  it('generation reaches it: conformance on quiet programs finds the planted fault, with a KVM_FEP instruction in the shrunk program', () => {
    const r = { ...emulated, design: emulatedWith({ ...EMULATED_OPS, kvm_pmu_branch_retired: nop }) };
    const d = fc.check(conformanceProperty(r), { numRuns: 300, seed: 12 });
    expect(d.failed).toBe(true);
    const program = d.counterexample![0][1] as { toString(): string };
    expect(program.toString()).toMatch(/new GuestEmulate\(\d, '(jne|loop)', [03]\)/);
  });
});
