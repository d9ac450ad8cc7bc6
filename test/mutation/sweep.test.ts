/**
 * The mutation suite's search: every check of every design the mutated code serves, on every built-in host, on a
 * fixed seed and a small budget. A surviving mutant costs a run of every test that covers it, so the search is
 * spread thin and wide (each design, host, check and generation profile its own test, so coverage picks only the
 * ones a mutant reaches) instead of deep on one host, as npm test's property files are.
 */

import fc from 'fast-check';
import { describe, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { designChecks } from '../../properties/checks.js';
import { designById } from '../../designs/registry.js';
import { OPT_IN_GENERATION_PROFILES } from '../../scenarios/generation.js';

/** The designs built from model/kvm and model/host's faithful code: the ports, the proposals, the suggested fix. */
const DESIGNS = [
  'emulated',
  'mediated',
  'pre-reuse',
  'arch-lbr',
  'hw-assigned',
  'topdown-raw',
  'topdown-rebuilt',
  'fix/0001-write-period-from-value',
];

/** Programs per check: a driver program runs hundreds of guest instructions, the others tens of commands. */
const runsOf = (c: { id: string; gen?: string }) => (c.gen === 'driver' ? 8 : 25);

const name = (c: { id: string; gen?: string }) => (c.gen !== undefined ? `${c.id}/${c.gen}` : c.id);

describe.each(DESIGNS)('%s', (id) => {
  describe.each(Object.keys(BUILTIN_PROFILES))('on %s', (host) => {
    // What npm start runs by default: beyond-supported guests are no configuration a VMM gets from KVM.
    const checks = designChecks(designById(id), host, BUILTIN_PROFILES[host]!).filter(
      (c) => c.gen === undefined || !OPT_IN_GENERATION_PROFILES.includes(c.gen),
    );
    if (checks.length === 0) it.skip('unavailable on this host', () => {});
    it.each(checks.map((c) => [name(c), c] as const))('%s', (_n, c) => {
      fc.assert(c.property(new Map()), { seed: 1, numRuns: runsOf(c) });
    });
  });
});
