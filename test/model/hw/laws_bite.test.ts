/**
 * A law that no bug can break checks nothing. Each law must fail on a model mutant that plants
 * the mistake it guards against; the mutants are subclasses, never flags in the model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HW_LAWS } from '../../../properties/hw_laws.js';
import { MUTANTS } from './mutants.js';

describe('every model law fails on a mutant that breaks it', () => {
  it('has a mutant for every law', () => {
    expect(Object.keys(MUTANTS).sort()).toEqual(HW_LAWS.map((l) => l.id).sort());
  });
  for (const law of HW_LAWS) {
    const m = MUTANTS[law.id]!;
    it(`${law.id} catches: ${m.what}`, () => {
      const d = fc.check(law.property(m.make), { numRuns: 5000 });
      expect(d.failed, `law ${law.id} did not fail on mutant '${m.what}'`).toBe(true);
    });
  }
});
