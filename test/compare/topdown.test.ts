/**
 * The topdown accuracy measurement (compare/topdown.ts): each proposal's PERF_METRICS against bare metal over
 * generated slot breakdowns. The figures themselves are `npm run compare`'s and `npm run bench`'s; here, that the
 * measurement sees what each mechanism does (series.md §3) and that the chart is drawn from the same rows.
 */

import { describe, expect, it } from 'vitest';
import { SAPPHIRE_RAPIDS } from '../../model/hw/profiles.js';
import { designById } from '../../designs/registry.js';
import { levelSummary, measureTopdown, topdownCases, topdownErrors } from '../../compare/topdown.js';
import { renderSvg, topdownAccuracySpec } from '../../compare/charts.js';

const cases = topdownCases(1, 24);
const raw = measureTopdown(designById('topdown-raw'), SAPPHIRE_RAPIDS, cases);
const rebuilt = measureTopdown(designById('topdown-rebuilt'), SAPPHIRE_RAPIDS, cases);

describe('topdown accuracy (1/255 units, guest minus bare metal)', () => {
  it('seed 002 hands over the raw bytes: exact over one window, far off once a preemption restarts the window', () => {
    for (const level of [1, 2] as const) {
      expect(levelSummary(raw, 'topdown-raw', 'one window', level)).toMatchObject({ worst: 0, cases: 24 });
      expect(levelSummary(raw, 'topdown-raw', 'preempted', level).worst).toBeGreaterThan(10);
    }
  });

  it("Like Xu's RFC rebuilds them: never more than one over from S = 255 up (floor(255·m/S) + 1), worse below", () => {
    const design = designById('topdown-rebuilt');
    for (const c of cases) {
      const r = topdownErrors(design, SAPPHIRE_RAPIDS, c, 'one window')!;
      if (r.slots >= 255) for (const e of r.err) expect(e).toBeLessThanOrEqual(1);
      for (const e of r.err) expect(e).toBeGreaterThanOrEqual(-Math.ceil(255 / Math.min(r.slots, 255)));
    }
    // issue17.md §3's second worked example: S = 1020, so 255 divides S·v for every byte and each reads one over.
    const s1020 = {
      retiring: 400,
      badSpeculation: 20,
      frontendBound: 200,
      backendBound: 400,
      heavyOperations: 100,
      branchMispredicts: 15,
      fetchLatency: 120,
      memoryBound: 300,
    };
    expect(topdownErrors(design, SAPPHIRE_RAPIDS, { phases: [[s1020]] }, 'one window')!.err).toEqual([
      1, 1, 1, 1, 1, 1, 1, 1,
    ]);
    expect(levelSummary(rebuilt, 'topdown-rebuilt', 'one window', 1).worst).toBeGreaterThan(0);
  });

  it('the chart is drawn from the same rows: worst and mean per metric, design and scenario', async () => {
    const spec = topdownAccuracySpec([...raw, ...rebuilt]);
    const values = (spec as { data: { values: { design: string; scenario: string; stat: string; err: number }[] } })
      .data.values;
    expect(values).toHaveLength(2 * 2 * 8 * 2);
    const worstRawPreempted = values.filter(
      (v) => v.design === 'topdown-raw' && v.scenario === 'preempted' && v.stat === 'worst |error|',
    );
    expect(Math.max(...worstRawPreempted.map((v) => v.err))).toBe(
      Math.max(
        levelSummary(raw, 'topdown-raw', 'preempted', 1).worst,
        levelSummary(raw, 'topdown-raw', 'preempted', 2).worst,
      ),
    );
    expect(await renderSvg(spec)).toMatch(/^<svg/);
  });
});
