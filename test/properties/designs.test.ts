import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { designChecks } from '../../properties/checks.js';
import { designById } from '../../designs/registry.js';

const name = (c: { id: string; gen?: string }) => (c.gen !== undefined ? `${c.id}/${c.gen}` : c.id);

// The emulated design's quiet conformance and other properties run in each property's own file.
const emulated = designChecks(designById('emulated'), 'skylake', SKYLAKE).filter(
  (c) => c.id === 'conformance' && c.gen !== 'quiet',
);
const mediated = designChecks(designById('mediated'), 'skylake', SKYLAKE);

describe('conformance holds for the emulated vPMU on every generation profile (Skylake-like host)', () => {
  it.each(emulated.map((c) => [name(c), c] as const))('%s (1000 programs)', (_n, c) => {
    fc.assert(c.property(new Map()), { numRuns: 1000 });
  });
});

describe('every property holds for the mediated vPMU on a Skylake-like host, up to its declared divergences', () => {
  it('has a check for every property but LBR freeze (no guest LBRs)', () => {
    expect(new Set(mediated.map((c) => c.id))).toEqual(
      new Set([
        'conformance',
        'no-leak',
        'host-undisturbed',
        'invisible',
        'vmm-conformance',
        'vmm-abi',
        'host-samples',
      ]),
    );
  });

  it.each(mediated.map((c) => [name(c), c] as const))('%s (1000 programs)', (_n, c) => {
    fc.assert(c.property(new Map()), { numRuns: 1000 });
  });
});
