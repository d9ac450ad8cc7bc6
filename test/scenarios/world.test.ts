import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { leaf0aEax, leaf0aEdx } from '../../model/hw/profile.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { Divergence, GuestRdmsr, GuestRdpmc, GuestRun, GuestWrmsr, Migrate } from '../../scenarios/commands.js';
import { type GuestConfig, World } from '../../scenarios/world.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
  MSR_CORE_PERF_GLOBAL_INUSE,
} from '../../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../../model/hw/msr/apic.js';
import { MSR_P6_EVNTSEL0, MSR_IA32_PMC0 } from '../../model/hw/msr/counters.js';

const guest: GuestConfig = {
  cpuid: {
    family: 6,
    model: 0x55,
    leaf0a: { eax: leaf0aEax(2, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
    pdcm: true,
  },
  perfCapabilities: 0x2000n, // FW_WRITES
};
const setup = () => ({
  model: {},
  real: new World({ host: SKYLAKE, cpus: 2, guests: [guest], design: (h, o) => new EmulatedVcpu(h, o) }),
});
const insns = (n: number, cpl = 3) => Array.from({ length: n }, () => ({ cpl, instructions: 1 }));

describe('the world runs a program on the design and on bare metal side by side', () => {
  it('agrees on a counting program with overflow, PMI and migration', () => {
    fc.modelRun(setup, [
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x0n),
      new GuestWrmsr(0, X2APIC_LVTPC, 0x400n),
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x5300c0n | (1n << 20n)), // instructions, USR|OS|INT|EN
      new GuestWrmsr(0, MSR_IA32_PMC0, (1n << 48n) - 12n),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1n),
      new GuestRun(0, insns(5)),
      new Migrate(0, 1),
      new GuestRun(0, insns(8)),
      new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
      new GuestRdpmc(0, 0x0, 0),
    ]);
  });

  it('prints commands as code that builds the same program', () => {
    expect(String(new GuestWrmsr(1, MSR_CORE_PERF_GLOBAL_CTRL, 0x70000000fn))).toBe(
      'new GuestWrmsr(1, 0x38f, 0x70000000fn)',
    );
    expect(
      String(
        new GuestRun(0, [{ cpl: 3, instructions: 2, branches: [{ from: 0x401000n, to: 0x402000n, kind: 'COND' }] }]),
      ),
    ).toBe('new GuestRun(0, [{cpl: 3, instructions: 2, branches: [{from: 0x401000n, to: 0x402000n, kind: "COND"}]}])');
    expect(String(new GuestRdpmc(0, 0x40000001, 3))).toBe('new GuestRdpmc(0, 0x40000001, 3)');
  });

  it('stops at the first divergence and says what the guest saw against bare metal', () => {
    expect(() => fc.modelRun(setup, [new GuestRdmsr(0, 0xc5)])).not.toThrow(); // absent on both: #GP = #GP
    const run = () => fc.modelRun(setup, [new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_STATUS_SET, 0x1n)]); // STATUS_SET: v4+ only, both #GP here
    expect(run).not.toThrow();
    const v4: GuestConfig = {
      ...guest,
      cpuid: { ...guest.cpuid, leaf0a: { ...guest.cpuid.leaf0a, eax: leaf0aEax(4, 4, 48, 7) } },
    };
    const w = new World({ host: SKYLAKE, cpus: 2, guests: [v4], design: (h, o) => new EmulatedVcpu(h, o) });
    expect(() => new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_INUSE).run({}, w)).toThrow(Divergence);
    expect(() => new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_INUSE).run({}, w)).toThrow(
      /RDMSR 0x392: guest saw #GP, bare metal shows 0x0/,
    );
  });
});
