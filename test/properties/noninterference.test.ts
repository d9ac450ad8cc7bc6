import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Access } from '../../model/hw/access.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../model/hw/profiles.js';
import { MSR_ARCH_LBR_CTL } from '../../model/hw/msr/lbr_arch.js';
import { EMULATED_OPS } from '../../model/kvm/emulated/ops.js';
import { ARCH_LBR_OPS } from '../../model/kvm/series/arch_lbr.js';
import { designById, emulatedWith } from '../../designs/registry.js';
import type { Design } from '../../properties/design.js';
import { ARCH_LBR_LEAKS } from '../../properties/expectations/arch_lbr.js';
import { reportedGuest } from '../support/guests.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import {
  checkNoninterference,
  type NoninterferenceRun,
  noninterferenceProperty,
} from '../../properties/noninterference.js';
import { Divergence, GuestRun, GuestWrmsr, GuestXsaves, HostWork } from '../../scenarios/commands.js';
import { MSR_LBR_TOS, MSR_LBR_NHM_FROM } from '../../model/hw/msr/lbr_legacy.js';
import { describeObservation } from '../../scenarios/observation.js';

const emulated: NoninterferenceRun = { host: SKYLAKE, design: (h, o) => new EmulatedVcpu(h, o) };

/**
 * A planted fault with a real precedent: the first cut of this suite's own port decided LBR
 * pass-through before the VM-entry that refreshes the MSR bitmap, so after perf reclaimed the LBRs
 * a guest LBR read still went to the hardware (see model/kvm/README.md, seed 004 Q3). Here every
 * guest LBR read goes to the hardware, whoever owns the LBRs.
 */
class ReadsLbrFromHardware extends EmulatedVcpu {
  override guestRdmsr(msr: number): Access {
    const isLbr = msr === MSR_LBR_TOS || (msr >= MSR_LBR_NHM_FROM && msr < 0x700);
    if (!isLbr || !this.lbrEnabled) return super.guestRdmsr(msr);
    super.guestRdmsr(msr);
    return this.s.host.pcpu(this.cpu).hw.rdmsr(msr);
  }
}

describe('property 2 (host to guest): host-private values never reach the guest', () => {
  it('holds for the emulated vPMU (1000 programs with host perf users and host work)', () => {
    fc.assert(noninterferenceProperty(emulated), { numRuns: 1000 });
  });

  it('catches a vPMU that lets the guest read LBRs perf has taken for the host', () => {
    // A fixed seed, as the other planted-bug tests: over 30 random seeds the search needed a median of
    // 272 programs and at most 1770, but FC_SEED=210 needed 3234, past the budget (seed 1: 448).
    const d = fc.check(noninterferenceProperty({ ...emulated, design: (h, o) => new ReadsLbrFromHardware(h, o) }), {
      numRuns: 3000,
      seed: 1,
    });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(Divergence);
    expect(describeObservation((d.errorInstance as Divergence).observation)).toMatch(
      /RDMSR 0x(6[89a-f][0-9a-f]|1c9) \(with the host's private values changed\)/,
    );
  });
});

/** The Arch LBR v2 series (seed 004's subject) as the registry holds it, on its Sapphire Rapids-like host. */
const archLbr = designById('arch-lbr');
const onSpr = (design: Design): NoninterferenceRun => ({
  host: SAPPHIRE_RAPIDS,
  design: design.factory,
  supported: design.supported(SAPPHIRE_RAPIDS),
});

describe('property 2 (host to guest) on an Arch LBR host: host records and LBR_CTL never reach the guest', () => {
  it('holds for the emulated vPMU, its guests probing the Arch LBR MSRs and XSAVES of component 15 (300 programs)', () => {
    fc.assert(noninterferenceProperty(onSpr(designById('emulated'))), { numRuns: 300, seed: 1 });
  });

  it("finds the v2 series' leaks once its leak declarations are set aside: the raw record RDMSR and XSAVES read host records", () => {
    // Seeds 1-12 all find it, within 2 to 97 programs; seed 9 at a record's RDMSR in 2, seed 8 at XSAVES in 15.
    const found = [9, 8].map((seed) => {
      const d = fc.check(noninterferenceProperty(onSpr(archLbr)), { seed, numRuns: 60, endOnFailure: true });
      expect(d.failed).toBe(true);
      expect(d.errorInstance).toBeInstanceOf(Divergence);
      return describeObservation((d.errorInstance as Divergence).observation);
    });
    expect(found.join('\n')).toMatch(/RDMSR 0x1[256][0-9a-f]{2} \(with the host's private values changed\)/);
    expect(found.join('\n')).toMatch(/XSAVES \(Arch LBR component\) \(with the host's private values changed\)/);
  });

  it('holds for the v2 series up to its declared leaks, each of them met (300 programs, and the cycle count by hand)', () => {
    const known = new Map<string, number>();
    fc.assert(noninterferenceProperty({ ...onSpr(archLbr), leaks: ARCH_LBR_LEAKS, known }), {
      numRuns: 300,
      seed: 4,
    });
    // Seeds 1-12 meet both in 300 programs on 8 (1, 4, 6 to 9, 11, 12; seeds 1 and 9 meet the cycle count too).
    expect([...known.keys()].sort()).toEqual(['raw-record-read-leak', 'xsaves-host-records-leak']);
    // The host's work runs 5 cycles longer in the twin before the guest's first recorded branch.
    const guest = reportedGuest(archLbr, SAPPHIRE_RAPIDS, true);
    const hostWork = (cycles: number) => new HostWork(0, [{ cpl: 0, instructions: cycles, cycles, branches: [] }]);
    const rest = [
      new GuestWrmsr(0, MSR_ARCH_LBR_CTL, 0x7f000fn),
      new GuestRun(0, [{ cpl: 0, instructions: 2, cycles: 3, branches: [{ from: K, to: K + 0x40n, kind: 'COND' }] }]),
      new GuestXsaves(0),
    ];
    const met = new Map<string, number>();
    checkNoninterference(
      { ...onSpr(archLbr), leaks: ARCH_LBR_LEAKS, known: met },
      guest,
      [hostWork(1), ...rest],
      [hostWork(6), ...rest],
    );
    expect([...met.keys()]).toEqual(['lbr-cycles-count-host-time']);
  });

  it("catches a series that leaves LBR_CTL to the host across VM-entry and exit (Sean's rework omits the toggling) on two seeds", () => {
    // The guest then runs with the host's LBR_CTL, and its XSAVES shows it: no record declaration excuses that.
    // Seeds 1-8 all find it within 51 programs; seeds 3 and 4 within 6 and 7.
    const noSwitch = emulatedWith({
      ...ARCH_LBR_OPS,
      vmx_vcpu_enter: (vcpu) => EMULATED_OPS.vmx_vcpu_enter(vcpu),
      vmx_vcpu_exit: (vcpu) => EMULATED_OPS.vmx_vcpu_exit(vcpu),
    });
    for (const seed of [3, 4]) {
      const run = { ...onSpr(archLbr), design: noSwitch, leaks: ARCH_LBR_LEAKS };
      const d = fc.check(noninterferenceProperty(run), { seed, numRuns: 30, endOnFailure: true });
      expect(d.failed).toBe(true);
      const o = (d.errorInstance as Divergence).observation;
      expect(o.kind).toBe('xsaves');
      expect(o.sut.kind === 'xsave' && o.oracle.kind === 'xsave' && o.sut.area.lbrCtl !== o.oracle.area.lbrCtl).toBe(
        true,
      );
    }
  });
});

const K = 0xffff_ffff_8100_0000n;
