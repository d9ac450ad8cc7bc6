import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { PRE_REFRESH_RESET_FIX_OPS } from '../../model/kvm/bugs/1647b52757d5_refresh_without_reset.js';
import { PRE_FILTER_EMULATED_EVENTS_FIX_OPS } from '../../model/kvm/bugs/dfdeda67ea2d_filter_emulated_events.js';
import { designById, emulatedWith } from '../../designs/registry.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import type { ConformanceRun } from '../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { Divergence, GuestRdmsr, GuestRun, GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
import { FAULTS } from '../../catalogue/faults.js';
import { vmmConformanceProperty } from '../../properties/vmm_conformance.js';
import { VmmGetMsr, VmmSetMsr, VmmSetPmuEventFilter } from '../../scenarios/vmm.js';
import { MediatedVcpu } from '../../model/kvm/mediated/vcpu.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import {
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_P6_EVNTSEL0,
} from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import type { HostAccess } from '../../model/kvm/types.js';
import { hostGetMsrAs, vmmVerdict } from '../support/vmm.js';

const emulated: ConformanceRun = {
  host: SKYLAKE,
  design: (h, o) => new EmulatedVcpu(h, o),
  expectations: EMULATED_EXPECTATIONS,
};

describe('property 1 with a VMM: setup ioctls and the event filter', () => {
  // That the faithful designs pass it on every host: vmm_faithful.test.ts.
  it("finds bug #34 (refresh without reset, fixed by 1647b52757d5): the guest sees the old model's state", () => {
    const d = fc.check(vmmConformanceProperty({ ...emulated, design: emulatedWith(PRE_REFRESH_RESET_FIX_OPS) }), {
      numRuns: 1000,
      seed: 2,
    });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(Divergence);
    const [[, [setup]]] = d.counterexample!;
    expect(setup.map(String).some((c) => c.startsWith('new VmmSetCpuid'))).toBe(true);
  });

  it('finds bug #49 (emulated instructions ignore the filter, fixed by dfdeda67ea2d)', () => {
    const d = fc.check(
      vmmConformanceProperty({ ...emulated, design: emulatedWith(PRE_FILTER_EMULATED_EVENTS_FIX_OPS) }),
      {
        numRuns: 1000,
        seed: 1,
      },
    );
    expect(d.failed).toBe(true);
    const [[, [setup]]] = d.counterexample!;
    expect(setup.map(String).some((c) => c.startsWith('new VmmSetPmuEventFilter'))).toBe(true);
  });
});

describe("fixed-filter-unchanged-field: the mediated vPMU's filter and FIXED_CTR_CTRL writes that leave a field as it was", () => {
  const mediated = designById('mediated');
  // Skylake-like v2 guest, 4 GP and 3 fixed counters.
  const guest: GuestConfig = {
    cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0, ecx: 0, edx: 0x603 }, pdcm: true },
    perfCapabilities: 0x2000n,
  };
  const denyFixed = new VmmSetPmuEventFilter({ action: 1, flags: 0, fixed_counter_bitmap: 0x7, events: [0xc0n] });
  // All three fixed counters on, then field 2 changes (PMI on): only fixed counter 2 is filtered again.
  const changeOtherField = [
    new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x333n),
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x7_0000_000fn),
    new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xb33n),
  ];
  const runAndReadFc0 = [
    new GuestRun(0, [{ cpl: 0, instructions: 10, cycles: 20 }]),
    new GuestRdmsr(0, MSR_CORE_PERF_FIXED_CTR0),
  ];
  const fault = FAULTS.find((f) => f.id === 'med-load-fixed-ctrl-unfiltered')!;

  const verdict = (design: VcpuFactory, program: readonly WorldCommand[]) =>
    vmmVerdict({ host: SKYLAKE, design, expectations: mediated.expectations }, guest, program);

  it('a denied fixed counter counting after a write that changed only another field is excused (vmm-conformance found it on icelake, seed 1)', () => {
    const program = [denyFixed, ...changeOtherField, ...runAndReadFc0];
    expect(verdict(mediated.factory, program)).toEqual({ met: ['fixed-filter-unchanged-field'] });
  });

  it('a denied fixed counter counting on after its own field was written is reported (planted med-load-fixed-ctrl-unfiltered)', () => {
    const program = [
      denyFixed,
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_000fn),
      ...runAndReadFc0,
    ];
    expect(verdict(mediated.factory, program)).toEqual({ met: [] });
    expect(verdict(fault.design.factory, program)).toHaveProperty('reported');
  });

  it('a denied counter that wrapped past 0 is ahead of bare metal and excused (soak, seed 876924855); one behind it is reported', () => {
    const program = [
      new VmmSetMsr(0, MSR_CORE_PERF_FIXED_CTR0 + 2, 0xffff_ffff_ffffn),
      new VmmSetPmuEventFilter({ action: 0, flags: 0, fixed_counter_bitmap: 0, events: [0xc0n] }),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xb33n),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x7_0000_0007n),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xb3bn),
      new GuestRun(0, [{ cpl: 3, instructions: 0, tscCycles: 1 }]),
      new GuestRdmsr(0, MSR_CORE_PERF_FIXED_CTR0 + 2),
    ];
    expect(verdict(mediated.factory, program)).toEqual({ met: ['fixed-filter-unchanged-field'] });
    const behind = (h: Parameters<VcpuFactory>[0], o: Parameters<VcpuFactory>[1]) =>
      new (class extends MediatedVcpu {
        override guestRdmsr(msr: number) {
          const r = super.guestRdmsr(msr);
          return msr === MSR_CORE_PERF_FIXED_CTR0 + 2 && r.ok ? { ok: true as const, value: 0xffff_ffff_fffen } : r;
        }
      })(h, o);
    expect(verdict(behind, program)).toHaveProperty('reported');
  });

  it('a denied counter past the filter counts the WRMSR that writes it, on the value written (soak, seed -1886368739)', () => {
    // Field 1 changes (fixed counter 0 stays past the filter), then the guest writes -1 to fixed counter 0: the write
    // retires after it takes effect, so KVM's counter wraps to 0 where bare metal's, denied, stays at -1.
    const allowMasked = new VmmSetPmuEventFilter({ action: 0, flags: 1, fixed_counter_bitmap: 0, events: [0xc0n] });
    const program = [
      allowMasked,
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x33n),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x3_0000_000fn),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xb3n),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR0, 0xffff_ffff_ffffn),
      new VmmGetMsr(0, MSR_CORE_PERF_FIXED_CTR0),
    ];
    expect(verdict(mediated.factory, program)).toEqual({ met: ['fixed-filter-unchanged-field'] });
    // Its field written last instead (filtered again, it stops): the write is not counted, and a count is reported.
    const ownField = [
      ...program.slice(0, 3),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3bn),
      ...program.slice(4),
    ];
    expect(verdict(mediated.factory, ownField)).toEqual({ met: [] });
    const counts = hostGetMsrAs(MediatedVcpu, MSR_CORE_PERF_FIXED_CTR0, () => 0n);
    expect(verdict(counts, ownField)).toHaveProperty('reported');
  });

  it("the overflow bit a denied counter past the filter sets is read by the VMM's KVM_GET_MSRS too (soak, seed -1759063599)", () => {
    // Fixed counter 0 preset to -1, field 2 changes (fixed counter 0 stays past the filter), GLOBAL_CTRL enables it: the
    // WRMSR wraps it in KVM's hardware, and the status the mediated vPMU saved at the exit has its overflow bit.
    const program = [
      new VmmSetMsr(0, MSR_CORE_PERF_FIXED_CTR0, 0xffff_ffff_ffffn),
      new VmmSetPmuEventFilter({ action: 0, flags: 1, fixed_counter_bitmap: 0, events: [0xc0n] }),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xb3bn),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x33bn),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x7_0000_000fn),
      new VmmGetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
    ];
    expect(verdict(mediated.factory, program)).toEqual({ met: ['fixed-filter-unchanged-field'] });
    // Another counter's bit in it is not the mechanism's: reported.
    const extraBit = hostGetMsrAs(MediatedVcpu, MSR_CORE_PERF_GLOBAL_STATUS, (v) => v | 2n);
    expect(verdict(extraBit, program)).toHaveProperty('reported');
  });

  it('what a denied fixed counter counted past the filter stays once its field is filtered again (soak, seed -239439555)', () => {
    // Field 0 changes (fixed counter 2 stays past the filter), one unit counts, then field 2 changes: filtered again,
    // fixed counter 2 stops, but its count is read by the VMM's KVM_GET_MSRS.
    const allowNoFixed = new VmmSetPmuEventFilter({ action: 0, flags: 0, fixed_counter_bitmap: 0, events: [0xc4n] });
    const leakThenFilter = [
      allowNoFixed,
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x303n),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x5_0000_0001n),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x30bn),
      new GuestRun(0, [{ cpl: 0, instructions: 1, cycles: 2, tscCycles: 1 }]),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xb03n),
    ];
    const read = new VmmGetMsr(0, MSR_CORE_PERF_FIXED_CTR0 + 2);
    expect(verdict(mediated.factory, [...leakThenFilter, read])).toEqual({ met: ['fixed-filter-unchanged-field'] });
    // Written since (its count gone), the counter no longer has what it counted past the filter: counting on is reported.
    const rewritten = [
      ...leakThenFilter,
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR0 + 2, 0n),
      new GuestRun(0, [{ cpl: 0, instructions: 1, cycles: 2, tscCycles: 1 }]),
      read,
    ];
    expect(verdict(mediated.factory, rewritten)).toEqual({ met: [] });
    expect(verdict(fault.design.factory, rewritten)).toHaveProperty('reported');
  });

  it('a new filter reprograms every counter: after it, a denied fixed counter counting is reported', () => {
    const program = [denyFixed, ...changeOtherField, denyFixed, ...runAndReadFc0];
    // Faithfully the filter applies again; the fault's load ignores it, and the history no longer explains that.
    expect(verdict(mediated.factory, program)).toEqual({ met: [] });
    expect(verdict(fault.design.factory, program)).toHaveProperty('reported');
  });
});

describe("the mediated vPMU's filter on GP counters: ENABLE cleared in the selector the hardware gets", () => {
  const mediated = designById('mediated');
  const guest: GuestConfig = {
    cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0, ecx: 0, edx: 0x603 }, pdcm: true },
    perfCapabilities: 0x2000n,
  };
  // The shrunk counterexample of med-filter-skips-gp: an allow list (masked) without cycles, cycles counted at CPL 0.
  const program = [
    new VmmSetPmuEventFilter({ action: 0, flags: 1, fixed_counter_bitmap: 0x0, events: [0xc0n] }),
    new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x42003cn),
    new GuestRun(0, [{ cpl: 0, instructions: 0, cycles: 1 }]),
    new GuestRdmsr(0, MSR_IA32_PERFCTR0),
  ];
  const verdict = (design: VcpuFactory) =>
    vmmVerdict({ host: SKYLAKE, design, expectations: mediated.expectations }, guest, program);

  it('a denied GP event counts nothing; counting it is reported (planted med-filter-skips-gp)', () => {
    expect(verdict(mediated.factory)).toEqual({ met: [] });
    const fault = FAULTS.find((f) => f.id === 'med-filter-skips-gp')!;
    expect(verdict(fault.design.factory).reported).toMatch(/RDMSR 0xc1: guest saw 0x1, bare metal shows 0x0/);
  });
});

describe("write-period-from-base through the VMM: KVM_SET_MSRS of a running counter takes the guest's pmc_write_counter", () => {
  const emulatedDesign = designById('emulated');
  const guest: GuestConfig = {
    cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300202, ebx: 0, ecx: 0, edx: 0x602 }, pdcm: true },
    perfCapabilities: 0x2000n,
  };
  const cycles = (n: number) => [{ cpl: 3, instructions: 1, cycles: n }];
  // A soak's vmm-conformance program (seed 1051611347): fixed counter 1 (core cycles) counts, the VMM writes it with
  // -5, five more cycles: bare metal overflows, KVM's perf period, armed from the pre-write base, is still far off.
  const program = (countsBefore: boolean) => [
    new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x33n),
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x3_0000_0003n),
    ...(countsBefore ? [new GuestRun(0, cycles(3))] : []),
    new VmmSetMsr(0, MSR_CORE_PERF_FIXED_CTR0 + 1, 0xffff_ffff_fffbn),
    new GuestRun(0, cycles(5)),
    new VmmGetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
  ];
  const verdict = (design: VcpuFactory, p: readonly WorldCommand[]) =>
    vmmVerdict({ host: SKYLAKE, design, expectations: emulatedDesign.expectations }, guest, p);

  it('the overflow bit KVM_GET_MSRS lacks after a write to the counter while it had counts is declared', () => {
    expect(verdict(emulatedDesign.factory, program(true))).toEqual({ met: ['write-period-from-base'] });
  });

  it('written before it counted, the period is right and the program conforms; a status bit lost then is reported', () => {
    expect(verdict(emulatedDesign.factory, program(false))).toEqual({ met: [] });
    const loses: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override hostGetMsr(msr: number): HostAccess {
          const r = super.hostGetMsr(msr);
          return r.ok && msr === MSR_CORE_PERF_GLOBAL_STATUS ? { ok: true, value: 0n } : r;
        }
      })(h, o);
    expect(verdict(loses, program(false)).reported).toMatch(/KVM_GET_MSRS 0x38e: guest saw 0x0, expected 0x200000000/);
  });
});
