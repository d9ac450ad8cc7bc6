/**
 * Two soak finds on the faithful emulated vPMU, one mechanism each, where bare metal's LVTPC mask dropped an
 * overflow's PMI (D7) and KVM's LVTPC, unmasked, delivers it:
 * - perf-min-period (`npm start -- --seed 1646469354 --only conformance --gen quiet --design emulated --profile
 *   icelake`): a counter written -1 while it runs (perf arms it with a period of 2) wraps on bare metal while LVTPC is
 *   still masked; KVM's wraps one event later, after the guest has unmasked LVTPC. The matcher takes that extra PMI only
 *   in guest work, only for counters bare metal dropped a wrap's PMI of, and only with LVTPC unmasked.
 * - write-period-from-base (`npm start -- --seed 513776230 --only conformance --gen driver --design emulated --profile
 *   icelake`): the PMI a stale period moved off bare metal's side masked bare metal's LVTPC and not KVM's, so another
 *   counter's exact overflow later is delivered by KVM and dropped by bare metal. The contract takes it only where bare
 *   metal dropped a PMI at that very point and, since the guest last unmasked LVTPC, delivered one KVM has not.
 * Beside each, the neighbouring faults (a PMI under a mask that stayed, at the unmasking write, with nothing dropped)
 * are still reported.
 */
import { describe, expect, it } from 'vitest';
import { designById, emulatedWith, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { X2APIC_LVTPC } from '../../model/hw/msr/apic.js';
import { MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { PMI_WHILE_MASKED } from '../../model/kvm/faults/common_pmu.js';
import { judge } from '../support/planted.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import {
  DriverCheckOverflow,
  DriverOpen,
  GuestRdmsr,
  GuestRun,
  GuestWrmsr,
  type WorldCommand,
} from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import type { GuestPmi } from '../../model/kvm/types.js';

// The soak's guest: Ice Lake, version 1, three 48-bit GP counters, no full-width writes (a legacy write sign-extends).
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x6a, leaf0a: { eax: 0x8300301, ebx: 0x7f, ecx: 0x0, edx: 0x0 }, pdcm: true },
  perfCapabilities: 0x5n,
};
const cycles = (n: number) => ({ cpl: 0, cycles: n });
const PMC2 = MSR_IA32_PERFCTR0 + 2;
const SEL2 = MSR_P6_EVNTSEL0 + 2;
const CYCLES_OS_INT_EN = 0x52003cn;
const NMI_UNMASKED = 0x400n;

/** The soak's program, shrunk: PMC2 armed at -1, one cycle under the reset mask, LVTPC unmasked, one more cycle. */
const soak: readonly WorldCommand[] = [
  new GuestWrmsr(0, SEL2, CYCLES_OS_INT_EN),
  new GuestWrmsr(0, PMC2, 0xffffffffffffn),
  new GuestRun(0, [cycles(1)]),
  new GuestWrmsr(0, X2APIC_LVTPC, NMI_UNMASKED),
  new GuestRun(0, [cycles(1)]),
];

/** Runs the program as conformance does on Ice Lake: the declarations met, or the Divergence reported. */
const judged = (program: readonly WorldCommand[], design?: VcpuFactory, g: GuestConfig = guest) =>
  judge(
    {
      host: BUILTIN_PROFILES['icelake']!,
      design: design ?? designById('emulated').factory,
      expectations: EMULATED_EXPECTATIONS,
    },
    g,
    program,
  );

describe('perf-min-period: the PMI bare metal dropped under the mask comes, late, after LVTPC is unmasked', () => {
  it("the soak's program: KVM's PMI in the second run is the declaration's", () => {
    expect(firstDivergence('icelake', guest, soak, 'emulated')).toMatchObject({
      kind: 'run',
      sut: { kind: 'pmis', pmis: [{ afterUnit: 0 }] },
      oracle: { kind: 'pmis', pmis: [] },
    });
    expect(knownDivergencesMet('icelake', guest, soak, 'emulated')).toEqual(['perf-min-period']);
  });

  it('a PMI delivered while LVTPC stays masked (the masked check deleted) is reported', () => {
    const masked = [
      new GuestWrmsr(0, SEL2, CYCLES_OS_INT_EN),
      new GuestWrmsr(0, PMC2, 0xffffffffffffn),
      new GuestRun(0, [cycles(2)]),
    ];
    expect(judged(masked).reported).toBeNull();
    expect(judged(masked, emulatedWith(PMI_WHILE_MASKED)).reported).toMatchObject({ kind: 'run' });
  });

  it('a PMI at the unmasking write (as if the dropped one were latched) is reported', () => {
    const latched: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        private unmasked = false;
        override guestWrmsr(msr: number, value: bigint) {
          if (msr === X2APIC_LVTPC) this.unmasked = true;
          return super.guestWrmsr(msr, value);
        }
        override drainPmis() {
          const p = super.drainPmis();
          if (!this.unmasked) return p;
          this.unmasked = false;
          return [...p, { afterUnit: 0, vector: 2 }];
        }
      })(h, o);
    const program = soak.slice(0, 4);
    expect(judged(program).reported).toBeNull();
    expect(judged(program, latched).reported).toMatchObject({ kind: 'pmi', target: X2APIC_LVTPC });
  });

  it('a PMI in guest work from a counter whose wrap bare metal delivered is reported', () => {
    // LVTPC unmasked from the start: bare metal's PMI is delivered (and masks LVTPC), nothing was dropped.
    const delivered = [
      new GuestWrmsr(0, X2APIC_LVTPC, NMI_UNMASKED),
      ...soak.slice(0, 3),
      new GuestWrmsr(0, X2APIC_LVTPC, NMI_UNMASKED),
    ];
    const extra: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestRun(units: Parameters<EmulatedVcpu['guestRun']>[0]) {
          const p = super.guestRun(units);
          return p.length > 0 ? p : [{ afterUnit: 0, vector: 2 }];
        }
      })(h, o);
    const program = [...delivered, new GuestRun(0, [cycles(1)])];
    expect(judged(program, extra).reported).toMatchObject({ kind: 'run' });
  });
});

describe("write-period-from-base: the PMI it moved off bare metal's side leaves KVM's LVTPC unmasked", () => {
  const v1Guest: GuestConfig = {
    cpuid: { family: 6, model: 0x6a, leaf0a: { eax: 0x8300801, ebx: 0x0, ecx: 0x0, edx: 0x0 }, pdcm: true },
    perfCapabilities: 0x5n,
  };
  const PMC0 = MSR_IA32_PERFCTR0;
  const EVNTSEL1 = MSR_P6_EVNTSEL0 + 1;

  it("the soak's program: Linux perf's v1 driver, KVM's PMI at the RDMSR that wraps PMC1 is the contract's", () => {
    // PMC0 (cycles, period 2) and PMC1 (instructions, period 7) re-armed while they run: bare metal's PMC0 PMI in the
    // run masks its LVTPC, KVM's stale period has none; the next open's RDMSR of EVNTSEL1 wraps PMC1 on both.
    const program: readonly WorldCommand[] = [
      new DriverOpen(0, [
        { event: 0x3cn, usr: true, os: true, period: 0x2n },
        { event: 0xc0n, usr: true, os: true, period: 0x7n },
      ]),
      new DriverCheckOverflow(0, { counter: 2, int: false, left: 0x2n, fep: 0 }, [
        { cpl: 3, cycles: 2 },
        { cpl: 3, instructions: 4, cycles: 1 },
      ]),
      new GuestRun(0, [{ cpl: 3, instructions: 3, cycles: 2 }]),
      new DriverOpen(0, [{ event: 0xc0n, usr: true, os: true, period: 0x1n }]),
    ];
    expect(judged(program, undefined, v1Guest).reported).toBeNull();
    expect(knownDivergencesMet('icelake', v1Guest, program, 'emulated')).toContain('write-period-from-base');
  });

  /**
   * The same, by hand: PMC0 (cycles) written -2 while it runs with counts (a stale period); PMC1 (instructions, written
   * before it was enabled, so exact) `left` instructions short of its wrap after the run; a selector write reprograms
   * PMC0, then two RDMSRs.
   */
  const byHand = (left: bigint): readonly WorldCommand[] => [
    new GuestWrmsr(0, X2APIC_LVTPC, NMI_UNMASKED),
    new GuestWrmsr(0, MSR_IA32_PERFCTR0 + 1, (1n << 48n) - left - 2n),
    new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x53003cn),
    new GuestWrmsr(0, EVNTSEL1, 0x5300c0n),
    new GuestRun(0, [{ cpl: 3, cycles: 1 }]),
    new GuestWrmsr(0, PMC0, (1n << 48n) - 2n),
    new GuestRun(0, [{ cpl: 3, cycles: 2 }]),
    new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x13003cn),
    new GuestRdmsr(0, EVNTSEL1),
    new GuestRdmsr(0, MSR_P6_EVNTSEL0),
  ];

  /** The faithful emulated vPMU, the PMIs of its vCPU edited: `edit` gets them and what the vCPU just did. */
  const edited =
    (edit: (did: string, pmis: readonly GuestPmi[]) => readonly GuestPmi[]): VcpuFactory =>
    (h, o) => {
      const v = designById('emulated').factory(h, o);
      let did = '';
      const rd = v.guestRdmsr.bind(v);
      const wr = v.guestWrmsr.bind(v);
      const run = v.guestRun.bind(v);
      const drain = v.drainPmis.bind(v);
      v.guestRdmsr = (msr, ...rest) => ((did = `rdmsr ${msr}`), rd(msr, ...rest));
      v.guestWrmsr = (msr, value, ...rest) => ((did = `wrmsr ${msr}`), wr(msr, value, ...rest));
      v.guestRun = (units) => [...edit(`run ${units.map((u) => u.cycles ?? 0).join(',')}`, run(units))];
      v.drainPmis = () => {
        const p = [...edit(did, drain())];
        did = '';
        return p;
      };
      return v;
    };
  const PMI = { afterUnit: 0, vector: 2 };

  it("by hand: KVM's PMI at the wrap of PMC1, at either RDMSR, is the contract's", () => {
    for (const left of [2n, 3n]) {
      expect(judged(byHand(left), undefined, v1Guest).reported).toBeNull();
      expect(knownDivergencesMet('icelake', v1Guest, byHand(left), 'emulated')).toEqual(['write-period-from-base']);
    }
  });

  it('a PMI of the design alone where bare metal dropped none (moved one instruction on) is reported', () => {
    const moved = edited((did, p) =>
      did === `rdmsr ${EVNTSEL1}` ? [] : did === `rdmsr ${MSR_P6_EVNTSEL0}` ? [PMI] : p,
    );
    expect(judged(byHand(2n), moved, v1Guest).reported).toMatchObject({ kind: 'pmi', target: MSR_P6_EVNTSEL0 });
  });

  it('where KVM delivered a PMI too since LVTPC was unmasked (its LVTPC masked as well), the PMI at the wrap is reported', () => {
    const inRun = edited((did, p) => (did === 'run 2' ? [PMI] : p));
    expect(judged(byHand(2n), inRun, v1Guest).reported).toMatchObject({ kind: 'pmi', target: EVNTSEL1 });
  });
});
