import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CATALOGUE, OUT_OF_SCOPE } from '../../catalogue/catalogue.js';
import { measure } from '../../catalogue/measure.js';

/** The rows of docs/bugs.md. */
const BUGS_MD_ROWS = [1, 9, 10, 11, 13, 14, 17, 20, 23, 26, 34, 35, 36, 41, 42, 45, 47, 49];

/** The programs per property `npm test` runs (issue #5: found within the default budget). */
const BUDGET = 1000;

describe('the bug catalogue covers bugs.md', () => {
  it('has every row, ported or out of scope with a reason, and no row twice', () => {
    const rows = [...CATALOGUE.map((b) => b.row), ...OUT_OF_SCOPE.map((o) => o.row)].sort((a, b) => a - b);
    expect(rows).toEqual(BUGS_MD_ROWS);
    for (const o of OUT_OF_SCOPE) expect(o.reason.length).toBeGreaterThan(20);
  });

  it('lists the rows docs/bugs.md has', () => {
    const md = readFileSync('docs/bugs.md', 'utf8');
    const rows = [...md.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    expect(rows).toEqual(BUGS_MD_ROWS);
  });

  // The shipped notes are copies of the project's design notes, where a checkout has them beside it.
  it.runIf(existsSync('../shared/bugs.md'))('docs/ holds the design notes as they are', () => {
    for (const f of ['bugs.md', 'pmu-semantics.md'])
      expect(readFileSync(`docs/${f}`, 'utf8'), f).toBe(readFileSync(`../shared/${f}`, 'utf8'));
  });
});

/**
 * The seeds `npm run bugs` measures by default. Finding a bug within a budget is a probabilistic
 * claim: on random seeds the rarest rows (#35, #36) miss 1000 programs about once in 600 seeds and
 * fast-check's shrinker can stop one command longer about once in 100, so a random seed here
 * would fail CI for no change. Fixed seeds make it a regression test of the search's power.
 */
const SEEDS = [1, 2, 3, 4, 5];

describe('every ported bug is found within the default budget and shrinks to its trigger + 2', () => {
  for (const b of CATALOGUE) {
    it(`#${b.row} ${b.fixedBy ?? '(no fix)'}: ${b.subject} — by ${b.check} on ${b.host}`, () => {
      for (const seed of SEEDS) {
        const m = measure(b, seed, BUDGET);
        const why = m.details.failed
          ? `failed, but not by the check's verdict: ${String(m.details.errorInstance)}`
          : `not found in ${BUDGET} programs`;
        expect(m.found, `${why} (seed ${seed})`).toBe(true);
        expect(m.shrunk, `seed ${seed}:\n${m.program?.map(String).join('\n')}`).toBeLessThanOrEqual(
          b.minimalTrigger + 2,
        );
      }
    });
  }
});
