import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { PRE_PMI_IN_GUEST_FIX_OPS } from '../../model/kvm/bugs/812d432373f6_pmi_in_guest.js';
import { emulatedWith } from '../../designs/registry.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { HostSampleMisattributed, type HostSamplesRun, hostSamplesProperty } from '../../properties/host_samples.js';

const emulated: HostSamplesRun = { host: SKYLAKE, design: (h, o) => new EmulatedVcpu(h, o) };

describe('property 2 for samples: host samples are attributed as on a host without the guest', () => {
  it('holds for the emulated vPMU (1000 programs)', () => {
    fc.assert(hostSamplesProperty(emulated), { numRuns: 1000 });
  });

  it("finds bug #9 (a PMI during an IRQ exit taken as the guest's, fixed by 812d432373f6) in a two-command program", () => {
    // A fixed seed, as the catalogue: on about 1 seed in 60 the shrinker stops at two IrqExits whose
    // handlers together outlast the host period, one command longer (measured over 300 seeds).
    const d = fc.check(hostSamplesProperty({ ...emulated, design: emulatedWith(PRE_PMI_IN_GUEST_FIX_OPS) }), {
      numRuns: 1000,
      seed: 1,
    });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(HostSampleMisattributed);
    const [[, cmds]] = d.counterexample!;
    // Migrating the vCPU to the host event's pCPU is the same trigger on pCPU 1.
    const program = cmds.map(String).filter((c) => !c.startsWith('new Migrate'));
    expect(program).toHaveLength(2);
    expect(program[0]).toMatch(
      /^new HostOpen\(\d, attr\(\{ config: 0x[0-9a-f]+n, sample_period: 0x[0-9a-f]+n, pinned: true, exclude_guest: true \}\)\)$/,
    );
    expect(program[1]).toMatch(/^new IrqExit\(0, /);
  });
});
