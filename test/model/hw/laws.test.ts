import fc from 'fast-check';
import { describe, it } from 'vitest';
import { faithful, HW_LAWS } from '../../../properties/hw_laws.js';

describe('the reference model obeys its laws', () => {
  for (const law of HW_LAWS) {
    it(`${law.id}: ${law.title} (${law.rule})`, () => {
      fc.assert(law.property(faithful), { numRuns: 300 });
    });
  }
});
