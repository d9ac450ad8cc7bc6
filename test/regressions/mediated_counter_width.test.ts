/**
 * counter-width-passthrough: the mediated vPMU passes every counter the guest has through, whatever its width, so a
 * guest whose CPUID gives its fixed counters a narrower width than the hardware's (KVM_SET_CPUID2 takes the smaller)
 * runs them at the hardware's width: a preset two events before the guest's wrap is far from the hardware's, and the
 * overflow bare metal raises never comes. Found by the driver profile's guests with every counter at narrower widths.
 */
import { describe, expect, it } from 'vitest';
import { designById, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { runProgram } from '../../properties/conformance.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';
import { reportedGuest } from '../support/guests.js';
import { runWithGuestRead } from '../support/planted.js';
import { work } from '../model/kvm/util.js';

const host = BUILTIN_PROFILES.skylake!;
const full = reportedGuest(designById('mediated'), host, false);
/** Every counter the host has; fixed counters `width` bits wide. */
const withFixedWidth = (width: number): GuestConfig => {
  const l = full.cpuid.leaf0a;
  return { ...full, cpuid: { ...full.cpuid, leaf0a: { ...l, edx: (l.edx & ~0x1fe0) | (width << 5) } } };
};
const narrow = withFixedWidth(40);

/** FIXED_CTR0 (instructions) and PMC0 (instructions) two events before a 40-bit wrap and a 48-bit one, then 3. */
const program: WorldCommand[] = [
  new GuestWrmsr(0, 0x834, 0x400n), // LVTPC: NMI, unmasked
  new GuestWrmsr(0, 0x309, 0xff_ffff_fffen), // FIXED_CTR0 = -2 at 40 bits
  new GuestWrmsr(0, 0x4c1, 0xffff_ffff_fffen), // PMC0 = -2 at 48 bits
  new GuestWrmsr(0, 0x186, 0x5300c0n), // EVNTSEL0: instructions, USR|OS|INT|EN
  new GuestWrmsr(0, 0x38d, 0xbn), // FIXED_CTR_CTRL: fixed 0 OS|USR|PMI
  new GuestWrmsr(0, 0x38f, 0x1_0000_0001n), // GLOBAL_CTRL: PMC0 and FIXED_CTR0
  new GuestRun(0, work(1, 3)),
  new GuestRdmsr(0, 0x38e),
];

describe('counter-width-passthrough: the mediated vPMU runs narrower counters at the hardware width', () => {
  it('the 40-bit fixed counter does not overflow where bare metal does, and that is the declared mechanism', () => {
    expect(firstDivergence('skylake', narrow, program, 'mediated')).toMatchObject({ kind: 'rdmsr', target: 0x38e });
    expect(knownDivergencesMet('skylake', narrow, program, 'mediated')).toEqual(['counter-width-passthrough']);
  });

  it('a write above the guest width is taken where bare metal faults: the same mechanism', () => {
    const wide = [new GuestWrmsr(0, 0x309, 0xffff_ffff_fffen)];
    expect(firstDivergence('skylake', narrow, wide, 'mediated')).toMatchObject({
      kind: 'wrmsr',
      sut: { kind: 'accepted' },
    });
    expect(knownDivergencesMet('skylake', narrow, wide, 'mediated')).toEqual(['counter-width-passthrough']);
  });

  it('at the hardware width the same program conforms', () => {
    expect(firstDivergence('skylake', withFixedWidth(48), program, 'mediated')).toBeNull();
  });

  it("a full-width counter's overflow lost on the narrow guest is reported", () => {
    const run = runWithGuestRead('mediated', 'skylake', 0x38e, (v) => v & ~1n);
    expect(() => runProgram(run, narrow, program)).toThrow(/RDMSR 0x38e: guest saw 0x0, bare metal shows 0x1_?0+_?0+1/);
  });
});
