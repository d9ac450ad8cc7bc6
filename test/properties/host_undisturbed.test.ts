import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { PRE_GLOBAL_CTRL_MASK_FIX_OPS } from '../../model/host/bugs/971079464001_global_ctrl_mask.js';
import { hostWith } from '../../designs/registry.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { HostDisturbed, type HostUndisturbedRun, hostUndisturbedProperty } from '../../properties/host_undisturbed.js';

const emulated: HostUndisturbedRun = { host: SKYLAKE, design: (h, o) => new EmulatedVcpu(h, o) };

describe('property 2 (guest to host): the guest does not disturb host events', () => {
  it('holds for the emulated vPMU on upstream perf (1000 programs)', () => {
    fc.assert(hostUndisturbedProperty(emulated), { numRuns: 1000 });
  });

  it('finds bug #1 (exclude_guest counters left enabled in the guest, fixed by 971079464001) in a two-command program', () => {
    const d = fc.check(hostUndisturbedProperty({ ...emulated, hostKernel: hostWith(PRE_GLOBAL_CTRL_MASK_FIX_OPS) }), {
      numRuns: 1000,
    });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(HostDisturbed);
    const [[, cmds]] = d.counterexample!;
    const program = cmds.map(String).filter((c) => !c.startsWith('new Migrate'));
    expect(program).toHaveLength(2);
    expect(program[0]).toMatch(
      /^new HostOpen\(\d, attr\(\{ config: 0x[0-9a-f]+n, pinned: true, exclude_kernel: true, exclude_guest: true \}\)\)$/,
    );
    expect(program[1]).toMatch(/^new GuestRun\(/);
  });
});
