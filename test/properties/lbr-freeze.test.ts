import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../src/model/hw/profiles.js';
import { EmulatedVcpu } from '../../src/model/kvm/emulated/vcpu.js';
import type { ConformanceRun } from '../../src/properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../src/properties/expectations/emulated.js';
import { lbrFreezeProperty } from '../../src/properties/lbr-freeze.js';
import { Divergence } from '../../src/scenarios/commands.js';

const emulated: ConformanceRun = {
  host: SKYLAKE,
  design: (h, o) => new EmulatedVcpu(h, o),
  expectations: EMULATED_EXPECTATIONS,
};

describe('property 3: the guest LBRs freeze on PMI as the hardware of its PMU version does', () => {
  it('holds for the emulated vPMU up to its declared divergences (500 programs)', () => {
    const known = new Map<string, number>();
    fc.assert(lbrFreezeProperty({ ...emulated, known }), { numRuns: 500 });
    expect([...known.keys()]).toEqual(['no-v4-lbr-freeze']); // v2/v3 match bare metal exactly
  });

  it('finds bugs.md #17 (no streamlined freeze for PMU v4+ guests) once it is not declared', () => {
    const undeclared = EMULATED_EXPECTATIONS.filter((e) => e.id !== 'no-v4-lbr-freeze');
    const d = fc.check(lbrFreezeProperty({ ...emulated, expectations: undeclared }), { numRuns: 500 });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(Divergence);
    const [version] = d.counterexample!;
    expect(version).toBeGreaterThanOrEqual(4);
    expect((d.errorInstance as Divergence).observation.what).toMatch(/RDMSR 0x38e|RDMSR 0x(6[89a-f]|1c9)/);
  });
});
