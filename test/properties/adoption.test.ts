import { describe, expect, it } from 'vitest';
import { ok } from '../../model/hw/access.js';
import { leaf0aEax, leaf0aEdx } from '../../model/hw/profile.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { runProgram } from '../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { Divergence, GuestRdmsr, GuestRdpmc, GuestWrmsr } from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import { MSR_CORE_PERF_FIXED_CTR_CTRL, MSR_P6_EVNTSEL0, MSR_IA32_PERFCTR0 } from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../model/hw/msr/global.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';

/** A v2 guest with one GP counter (so PERFCTR1/EVNTSEL1 are absent) and fixed counter 0. */
const guest: GuestConfig = {
  cpuid: {
    family: 6,
    model: 0x55,
    leaf0a: { eax: leaf0aEax(2, 1, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(1, 48) },
    pdcm: true,
  },
  perfCapabilities: 0n,
};

const faithful: VcpuFactory = (h, o) => new EmulatedVcpu(h, o);

/** Fixed counter 0 counts the kernel's instructions; the guest touches absent EVNTSEL1, then reads the count. */
const program = (absent: number) => [
  new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x1n), // FIXED_CTR0: OS
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 1n << 32n),
  new GuestRdmsr(0, absent),
  new GuestWrmsr(0, absent, 0x4300c0n),
  new GuestRdpmc(0, 0x4000_0000, 0),
];

const run = (design: VcpuFactory, cmds: ReturnType<typeof program>) => {
  const known = new Map<string, number>();
  runProgram({ host: SKYLAKE, design, expectations: EMULATED_EXPECTATIONS, known }, guest, cmds);
  return known;
};

describe('decision W6: bare metal adopts the P6-quirk access and the program goes on, compared exactly', () => {
  it('the faithful design passes the whole program; the quirk is counted once as known', () => {
    for (const m of [0xc2, MSR_P6_EVNTSEL0 + 1])
      expect(Object.fromEntries(run(faithful, program(m)))).toEqual({ 'p6-perfctr-quirk': 1 });
  });

  it('a vPMU that retires the quirked access twice is caught at the later RDPMC', () => {
    const twice: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestRdmsr(msr: number) {
          const r = super.guestRdmsr(msr);
          if (msr === 0xc2 || msr === MSR_P6_EVNTSEL0 + 1) this.s.ops.kvm_skip_emulated_instruction(this.s, 0);
          return r;
        }
      })(h, o);
    expect(() => run(twice, program(MSR_P6_EVNTSEL0 + 1))).toThrow(Divergence);
    expect(() => run(twice, program(MSR_P6_EVNTSEL0 + 1))).toThrow(/RDPMC 0x40000000/);
  });

  it('is not adopted where the access is not the quirk: a non-zero read of an absent counter fails', () => {
    const reads1: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestRdmsr(msr: number) {
          return msr === 0xc2 ? ok(1n) : super.guestRdmsr(msr);
        }
      })(h, o);
    expect(() => run(reads1, program(0xc2))).toThrow(/RDMSR 0xc2: guest saw 0x1, bare metal shows #GP/);
  });

  it('is not adopted for a counter the guest has: bare metal and KVM agree there', () => {
    // EVNTSEL0 exists: no adoption, nothing known.
    expect(run(faithful, [new GuestRdmsr(0, MSR_P6_EVNTSEL0), new GuestRdmsr(0, MSR_IA32_PERFCTR0)]).size).toBe(0);
  });
});

describe('decision W6 for a #GP of the design: bare metal faults too, before any effect', () => {
  /** A v2 guest with the host's LBRs: DEBUGCTL.LBR is supported, FREEZE_PERFMON_ON_PMI never is. */
  const lbrGuest: GuestConfig = { ...guest, perfCapabilities: SKYLAKE.perfCapabilities & 0x3fn };
  const refused = [
    new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, 0x1001n),
    new GuestRdmsr(0, MSR_IA32_DEBUGCTLMSR),
    new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, 0x1n),
    new GuestRdmsr(0, MSR_IA32_DEBUGCTLMSR),
  ];
  const runLbr = (design: VcpuFactory) => {
    const known = new Map<string, number>();
    runProgram({ host: SKYLAKE, design, expectations: EMULATED_EXPECTATIONS, known }, lbrGuest, refused);
    return known;
  };

  it('the faithful design passes: the refused write is adopted, the later reads are compared exactly', () => {
    expect(Object.fromEntries(runLbr(faithful))).toEqual({ 'debugctl-subset': 1 });
  });

  it('a vPMU that #GPs but keeps part of the write is caught at the next read', () => {
    const partial: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestWrmsr(msr: number, value: bigint) {
          const r = super.guestWrmsr(msr, value);
          if (msr === MSR_IA32_DEBUGCTLMSR && !r.ok) super.guestWrmsr(msr, value & 0x1n);
          return r;
        }
      })(h, o);
    expect(() => runLbr(partial)).toThrow(/step 2, vCPU 0: RDMSR 0x1d9: guest saw 0x1, bare metal shows 0x0/);
  });

  it('a #GP for LBR alone is neither adopted nor declared: KVM drops LBR/BTF, it never refuses them', () => {
    const refusesLbr: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestWrmsr(msr: number, value: bigint) {
          return msr === MSR_IA32_DEBUGCTLMSR && value === 0x1n
            ? { ok: false as const, gp: 'planted' }
            : super.guestWrmsr(msr, value);
        }
      })(h, o);
    const known = new Map<string, number>();
    const run1 = () =>
      runProgram({ host: SKYLAKE, design: refusesLbr, expectations: EMULATED_EXPECTATIONS, known }, lbrGuest, [
        new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, 0x1n),
      ]);
    expect(run1).toThrow(/WRMSR 0x1d9 <- 0x1: guest saw #GP, bare metal shows 0x0/);
  });
});
