/**
 * Every declared divergence of every faithful design and series is met by that design on a stored program
 * (declarations_met.json, written by `npm run declarations`), replayed as its check runs it. A declaration the design
 * no longer meets excuses nothing it does, and a change that brings the design closer to bare metal than its
 * declaration says (a refused write now accepted, a lost bit now kept) shows here, where no conformance check can
 * see it.
 */

import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { DESIGNS, designById } from '../../designs/registry.js';
import { conformanceExpectations } from '../../properties/checks.js';
import { runProgram } from '../../properties/conformance.js';
import { runVmmProgram } from '../../properties/vmm_conformance.js';
import { guestFromJson, programFromJson } from '../../scenarios/serialize.js';
import { corpusDesigns, type MetEntry, ownDeclarations, readCorpus, UNMET } from './declarations_corpus.js';

const corpus = readCorpus();

/** The declarations `e`'s program meets, replayed on its design and host as its check runs it. */
function met(e: MetEntry): string[] {
  const d = designById(e.design);
  const host = BUILTIN_PROFILES[e.host]!;
  const known = new Map<string, number>();
  const guest = guestFromJson(e.guest);
  const program = programFromJson(e.program);
  const run = { host, design: d.factory, hostKernel: d.hostKernel, known };
  if (e.check === 'conformance')
    runProgram({ ...run, expectations: conformanceExpectations(d, e.gen) }, guest, program);
  else if (e.check === 'lbr-freeze') runProgram({ ...run, expectations: d.expectations }, guest, program);
  else runVmmProgram({ ...run, expectations: d.expectations }, guest, program);
  return [...known.keys()];
}

describe('every declared divergence is met by its design on a stored program', () => {
  it.each(corpus.map((e) => [`${e.design}: ${e.id} (${e.host}, ${e.check}${e.gen ? `/${e.gen}` : ''})`, e] as const))(
    '%s',
    (_n, e) => {
      // If the design rightly no longer shows it, the declaration goes; else `npm run declarations` finds a new program.
      expect(met(e), `${e.design} no longer meets ${e.id} on its stored program`).toContain(e.id);
    },
  );

  it.each(corpusDesigns(DESIGNS).map((d) => [d.id, d] as const))(
    '%s: each of its own declarations has a program, or is listed as met only elsewhere',
    (id, d) => {
      const stored = new Set(corpus.filter((e) => e.design === id).map((e) => e.id));
      const elsewhere = Object.keys(UNMET[id] ?? {});
      expect(
        ownDeclarations(d, DESIGNS)
          .filter((k) => !stored.has(k))
          .sort(),
      ).toEqual(elsewhere.sort());
      // A listed one the corpus now has is listed no longer.
      expect(elsewhere.filter((k) => stored.has(k))).toEqual([]);
    },
  );
});
