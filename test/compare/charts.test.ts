/** `npm run compare -- --svg DIR`: charts drawn from the same results the tables print. */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { costByStepSpec, costPerOpSpec, renderSvg } from '../../compare/charts.js';
import { defaultCosts } from '../../compare/costs.js';
import { ranWorkload, runWorkload } from '../../compare/run.js';
import { WORKLOADS } from '../../compare/workloads.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { designById } from '../../designs/registry.js';
import { parseCompareResults } from '../../cli/results.js';
import { cli } from '../support/cli.js';

const DESIGNS = ['emulated', 'mediated'];
const results = () =>
  WORKLOADS.flatMap((w) => DESIGNS.map((d) => runWorkload(w, designById(d), 'skylake', SKYLAKE, defaultCosts())));

/** Each bar of a Vega SVG: its label, as Vega writes it for screen readers ("field: value; ..."). */
const bars = (svg: string) =>
  [...svg.matchAll(/<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="bar"/g)].map((m) => m[1]!);

describe('compare charts', () => {
  it('draws one bar per workload and design, each the per-operation cost the table prints', async () => {
    const rs = results();
    const svg = await renderSvg(costPerOpSpec(rs, DESIGNS, ['skylake']));
    expect(svg.startsWith('<svg')).toBe(true);
    const labels = bars(svg);
    // Every workload either design can run (Arch LBR's is not among them on Skylake).
    expect(labels).toHaveLength(rs.filter(ranWorkload).length);
    expect(rs.filter(ranWorkload).length).toBe((WORKLOADS.length - 1) * DESIGNS.length);
    for (const r of rs.filter(ranWorkload)) {
      const us = Math.round(r.ns / Math.max(r.guestOps, 1) / 1000).toLocaleString('en-US');
      expect(labels).toContain(`µs per guest operation: ${us}; design: ${r.design}`);
    }
  });

  it('stacks each design’s priced steps: only steps that cost something, summing to the workload’s cost', () => {
    const rs = results();
    const spec = costByStepSpec(rs, DESIGNS, 'skylake', defaultCosts());
    const values = (spec.data as { values: { workload: string; design: string; ms: number }[] }).values;
    for (const r of rs) {
      const sum = values
        .filter((v) => v.workload === r.workload && v.design === r.design)
        .reduce((a, v) => a + v.ms, 0);
      expect(sum).toBeCloseTo(r.ns / 1e6, 6);
    }
    expect(values.every((v) => v.ms > 0)).toBe(true);
  });

  it('--svg DIR writes the charts beside the tables and the JSON; a pseudo file system is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpmu-charts-'));
    const r = cli([
      'compare',
      '--runs',
      '0',
      '--profile',
      'skylake',
      '--design',
      ...DESIGNS,
      '--svg',
      dir,
      '--json',
      join(dir, 'c.json'),
    ]);
    expect(r.code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['c.json', 'cost_by_step_skylake.svg', 'cost_per_op.svg']);
    const json = parseCompareResults(JSON.parse(readFileSync(join(dir, 'c.json'), 'utf8')));
    // One bar per workload a design ran (the JSON lists the unavailable ones too).
    const ran = json.workloads.filter((w) => !w.verdict.startsWith('unavailable'));
    expect(bars(readFileSync(join(dir, 'cost_per_op.svg'), 'utf8'))).toHaveLength(ran.length);
    const bad = cli(['compare', '--runs', '0', '--svg', '/proc/vpmu-charts']);
    expect(bad.code).toBe(2);
    expect(bad.err.trim()).toBe(
      'compare: --svg /proc/vpmu-charts: on procfs, a pseudo file system; choose a directory on a disk',
    );
  });
});
