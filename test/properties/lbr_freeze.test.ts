import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import type { ConformanceRun } from '../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { lbrFreezeProperty } from '../../properties/lbr_freeze.js';
import { Divergence } from '../../scenarios/commands.js';
import { describeObservation } from '../../scenarios/observation.js';

const emulated: ConformanceRun = {
  host: SKYLAKE,
  design: (h, o) => new EmulatedVcpu(h, o),
  expectations: EMULATED_EXPECTATIONS,
};

describe('property 3: the guest LBRs freeze on PMI as the hardware of its PMU version does', () => {
  it('holds for the emulated vPMU up to its declared divergences (500 programs)', () => {
    const known = new Map<string, number>();
    fc.assert(lbrFreezeProperty({ ...emulated, known }), { numRuns: 500 });
    // Within what KVM reports (version 2) the freeze matches bare metal exactly; v1 has none to check (D37).
    expect([...known.keys()]).toEqual([]);
    // Beyond it, v3 matches too, and v4/v5 meet the missing streamlined freeze.
    const beyond = new Map<string, number>();
    fc.assert(lbrFreezeProperty({ ...emulated, known: beyond }, 'beyond-supported'), { numRuns: 500 });
    expect([...beyond.keys()]).toEqual(['no-v4-lbr-freeze']);
  });

  it('finds bugs.md #17 (no streamlined freeze for PMU v4+ guests) once it is not declared, beyond what KVM reports only', () => {
    const undeclared = EMULATED_EXPECTATIONS.filter((e) => e.id !== 'no-v4-lbr-freeze');
    expect(fc.check(lbrFreezeProperty({ ...emulated, expectations: undeclared }), { numRuns: 300 }).failed).toBe(false);
    const d = fc.check(lbrFreezeProperty({ ...emulated, expectations: undeclared }, 'beyond-supported'), {
      numRuns: 500,
    });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(Divergence);
    const [[guest, program]] = d.counterexample!;
    expect(guest.cpuid.leaf0a.eax & 0xff).toBeGreaterThanOrEqual(4);
    expect(describeObservation((d.errorInstance as Divergence).observation)).toMatch(
      /RDMSR 0x38e|RDMSR 0x(6[89a-f]|1c9)/,
    );
    // The shrinker drops the optional steps and most reads: the LBR setup, the counter, the runs, a read or two.
    const text = program.map(String);
    expect(text.slice(0, 4)).toEqual([
      'new GuestWrmsr(0, 0x1d9, 0x801n)',
      `new GuestWrmsr(0, 0x186, 0x${(0x5300c4n | (1n << 20n)).toString(16)}n)`,
      expect.stringMatching(/^new GuestWrmsr\(0, 0x4c1, 0x[0-9a-f]+n\)$/),
      'new GuestWrmsr(0, 0x38f, 0x1n)',
    ]);
    expect(text.length).toBeLessThanOrEqual(8);
  });
});
