import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Access } from '../../model/hw/access.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { type NoninterferenceRun, noninterferenceProperty } from '../../properties/noninterference.js';
import { Divergence } from '../../scenarios/commands.js';
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
