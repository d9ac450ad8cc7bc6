import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SAPPHIRE_RAPIDS } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { EMULATED_OPS, type EmulatedOps } from '../../model/kvm/emulated/ops.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { type ConformanceRun, conformanceProperty } from '../../properties/conformance.js';
import { judge } from '../support/planted.js';
import {
  Divergence,
  GuestRdmsr,
  GuestWrmsr,
  Migrate,
  SaveRestore,
  type WorldCommand,
} from '../../scenarios/commands.js';
import { designById } from '../../designs/registry.js';
import { conformanceExpectations } from '../../properties/checks.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import { vmmVerdict } from '../support/vmm.js';
import { VmmGetMsr, VmmSetMsr } from '../../scenarios/vmm.js';
import { DEBUGCTLMSR_RTM_DEBUG, MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import { MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../model/hw/msr/global.js';

// Sapphire Rapids has RTM, so its guests have HLE/RTM: EVTSEL IN_TX (every GP counter) and IN_TX_CP (PMC2 only)
// are theirs to set, and a counter with IN_TX counts nothing outside a transaction (decision D38).
const run = (ops: EmulatedOps): ConformanceRun => ({
  host: SAPPHIRE_RAPIDS,
  design: (h, o) => new EmulatedVcpu(h, o, ops),
  expectations: EMULATED_EXPECTATIONS,
});

/** A KVM whose refresh never makes IN_TX / IN_TX_CP legal (its RTM/HLE check lost): the guest's write #GPs. */
const IN_TX_RESERVED: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_refresh(vcpu) {
    const cpuid = vcpu.cpuid;
    vcpu.cpuid = { ...cpuid, tsx: false };
    EMULATED_OPS.intel_pmu_refresh(vcpu);
    vcpu.cpuid = cpuid;
  },
};

describe('a guest with RTM on a host with RTM', () => {
  it('the search finds a KVM that keeps IN_TX reserved for it, on two seeds', () => {
    for (const seed of [1, 2]) {
      const d = fc.check(conformanceProperty(run(IN_TX_RESERVED)), { numRuns: 1000, seed });
      expect(d.failed).toBe(true);
      expect(d.errorInstance).toBeInstanceOf(Divergence);
      expect((d.errorInstance as Divergence).message).toMatch(/#GP/);
    }
  });

  it('the faithful emulated vPMU passes the same programs', () => {
    for (const seed of [1, 2])
      expect(fc.check(conformanceProperty(run(EMULATED_OPS)), { numRuns: 300, seed }).failed).toBe(false);
  });
});

describe('emulated-insn-skips-in-txcp: an instruction KVM emulates and counter 2 with IN_TXCP', () => {
  // Version 2, 8 GP counters of 48 bits, 3 fixed: Sapphire Rapids as a VMM gives it, with HLE/RTM.
  const guest: GuestConfig = {
    cpuid: { family: 6, model: 0x8f, leaf0a: { eax: 0x8300802, ebx: 0, ecx: 0, edx: 0x603 }, pdcm: true, tsx: true },
    perfCapabilities: 0x2000n,
  };
  // Counter 2 counts instructions at every CPL; the RDMSR of an intercepted selector is one KVM emulates.
  const program = (sel: bigint) => [
    new GuestWrmsr(0, MSR_P6_EVNTSEL0 + 2, sel),
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x4n),
    new GuestRdmsr(0, MSR_P6_EVNTSEL0),
    new GuestRdmsr(0, MSR_IA32_PERFCTR0 + 2),
  ];
  const verdict = (sel: bigint, design: VcpuFactory = (h, o) => new EmulatedVcpu(h, o)) => {
    const r = judge({ ...run(EMULATED_OPS), design }, guest, program(sel));
    return r.reported !== null ? { reported: r.reported.target } : { met: r.known };
  };
  const IN_TXCP = 1n << 33n;

  it('with IN_TXCP the emulated RDMSR is not counted, and that is excused', () => {
    expect(verdict(0x4300c0n | IN_TXCP)).toEqual({ met: ['emulated-insn-skips-in-txcp'] });
  });

  it('without IN_TXCP a lost emulated instruction is reported; with it, a count ahead of bare metal is too', () => {
    const off = (by: bigint) => (h: Parameters<VcpuFactory>[0], o: Parameters<VcpuFactory>[1]) =>
      new (class extends EmulatedVcpu {
        override guestRdmsr(msr: number) {
          const r = super.guestRdmsr(msr);
          return msr === MSR_IA32_PERFCTR0 + 2 && r.ok ? { ok: true as const, value: r.value + by } : r;
        }
      })(h, o);
    expect(verdict(0x4300c0n)).toEqual({ met: [] });
    expect(verdict(0x4300c0n, off(-1n))).toEqual({ reported: MSR_IA32_PERFCTR0 + 2 });
    expect(verdict(0x4300c0n | IN_TXCP, off(10n))).toEqual({ reported: MSR_IA32_PERFCTR0 + 2 });
  });

  it('the count it missed stays missing after the selector changes, until the counter is written (a soak, seed 1299949586)', () => {
    // The VMM sets counter 2 to instructions at CPL 0 with IN_TXCP; the guest's GLOBAL_CTRL write enables it and is
    // not counted (KVM emulates it); the guest then selects cycles with no ring; the VMM reads the counter.
    const soak = (then: WorldCommand[]) => [
      new VmmSetMsr(0, MSR_P6_EVNTSEL0 + 2, 0x4200c0n | IN_TXCP),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x7_0000_007fn),
      new GuestWrmsr(0, MSR_P6_EVNTSEL0 + 2, 0x40003cn),
      ...then,
      new VmmGetMsr(0, MSR_IA32_PERFCTR0 + 2),
    ];
    const vmm = (program: readonly WorldCommand[]) => {
      const r = vmmVerdict(run(EMULATED_OPS), guest, program);
      return r.reported !== undefined ? 'reported' : r.met;
    };
    expect(vmm(soak([]))).toEqual(['emulated-insn-skips-in-txcp']);
    // Written since: what it missed is gone, and a count behind bare metal is reported.
    const behind = (h: Parameters<VcpuFactory>[0], o: Parameters<VcpuFactory>[1]) =>
      new (class extends EmulatedVcpu {
        override hostGetMsr(msr: number) {
          const r = super.hostGetMsr(msr);
          return msr === MSR_IA32_PERFCTR0 + 2 && r.ok ? { ok: true as const, value: r.value - 1n } : r;
        }
      })(h, o);
    const rewritten = soak([new GuestWrmsr(0, MSR_IA32_PERFCTR0 + 2, 5n)]);
    expect(vmm(rewritten)).toEqual([]);
    expect(vmmVerdict({ ...run(EMULATED_OPS), design: behind }, guest, rewritten).reported).toMatch(
      /KVM_GET_MSRS 0xc3/,
    );
  });
});

describe("a VMM's DEBUGCTL.RTM_DEBUG on a host with RTM, for a guest CPUID without it", () => {
  const guest: GuestConfig = {
    cpuid: { family: 6, model: 0x8f, leaf0a: { eax: 0x8300802, ebx: 0, ecx: 0, edx: 0x603 }, pdcm: true },
    perfCapabilities: 0x2000n,
  };
  const program = [
    new VmmSetMsr(0, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG),
    new GuestRdmsr(0, MSR_IA32_DEBUGCTLMSR),
  ];
  const verdict = (design: VcpuFactory) =>
    'reported' in vmmVerdict({ ...run(EMULATED_OPS), design }, guest, program) ? 'reported' : 'passed';

  it('is taken, as KVM takes a host-initiated write on what the host supports (b333b8ebb85d), and read back', () => {
    expect(verdict((h, o) => new EmulatedVcpu(h, o))).toBe('passed');
  });

  it('a KVM that judges it on the guest CPUID is reported', () => {
    const byGuest = (h: Parameters<VcpuFactory>[0], o: Parameters<VcpuFactory>[1]) =>
      new (class extends EmulatedVcpu {
        override hostSetMsr(msr: number, value: bigint) {
          return msr === MSR_IA32_DEBUGCTLMSR && (value & DEBUGCTLMSR_RTM_DEBUG) !== 0n
            ? { ok: false as const, error: 'planted: RTM_DEBUG on the guest CPUID' }
            : super.hostSetMsr(msr, value);
        }
      })(h, o);
    expect(verdict(byGuest)).toBe('reported');
  });
});

describe('debugctl-not-saved on the mediated vPMU: RTM_DEBUG is all its guest can set in DEBUGCTL', () => {
  const mediated = designById('mediated');
  const guest: GuestConfig = {
    cpuid: { family: 6, model: 0x8f, leaf0a: { eax: 0x8300501, ebx: 0x46, ecx: 0, edx: 0 }, pdcm: true, tsx: true },
    perfCapabilities: 0x2000n,
  };
  const verdict = (program: WorldCommand[], design: VcpuFactory = mediated.factory) => {
    const expectations = conformanceExpectations(mediated, 'save-restore-heavy');
    const r = judge({ host: SAPPHIRE_RAPIDS, design, expectations }, guest, program);
    return r.reported !== null ? 'reported' : r.known;
  };
  const rtm = new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG);
  const read = new GuestRdmsr(0, MSR_IA32_DEBUGCTLMSR);

  it('lost at a save/restore is excused (soak, seed -517094391); lost at a migration is reported', () => {
    expect(verdict([rtm, new SaveRestore(0, 0), read])).toEqual(['debugctl-not-saved']);
    const lostOnMigrate = (h: Parameters<VcpuFactory>[0], o: Parameters<VcpuFactory>[1]) => {
      const v = mediated.factory(h, o);
      let moved = false;
      const migrate = v.migrate.bind(v);
      const rd = v.guestRdmsr.bind(v);
      v.migrate = (cpu: number) => {
        moved = true;
        migrate(cpu);
      };
      v.guestRdmsr = (msr: number) =>
        moved && msr === MSR_IA32_DEBUGCTLMSR ? { ok: true as const, value: 0n } : rd(msr);
      return v;
    };
    expect(verdict([rtm, new Migrate(0, 1), read], lostOnMigrate)).toBe('reported');
  });
});
