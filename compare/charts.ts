/**
 * The pictures of `npm run compare -- --svg DIR`: Vega-Lite specifications built from the same
 * workload results the tables print, rendered to SVG by Vega (no browser, no canvas: Vega's SVG
 * string renderer). Vega is loaded only when a chart is asked for, so compare starts without it.
 */

import type { TopLevelSpec } from 'vega-lite';
import { COST_STEPS } from './costs.js';
import { nsPerGuestOp, ranWorkload, type WorkloadResult } from './run.js';
import { TOPDOWN_DESIGNS, TOPDOWN_HOST, TOPDOWN_SCENARIOS, type TopdownAccuracy } from './topdown.js';

const priced = (rs: readonly WorkloadResult[]) => rs.filter(ranWorkload);

/**
 * Cost per guest operation, per design, for each workload (rows) on each host (columns): the
 * "time · per op" figure of the workloads table. Log scale: the designs differ by orders of magnitude.
 */
export function costPerOpSpec(
  rs: readonly WorkloadResult[],
  designs: readonly string[],
  hosts: readonly string[],
): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Priced cost per guest operation (µs, symmetric log scale)',
      subtitle: 'npm run compare: cost model of seed 003',
    },
    data: {
      values: priced(rs).map((r) => ({
        workload: r.workload,
        host: r.host,
        design: r.design,
        perOpUs: nsPerGuestOp(r) / 1000,
        verdict: r.verdict,
      })),
    },
    facet: { row: { field: 'workload', title: null }, column: { field: 'host', title: null, sort: [...hosts] } },
    spec: {
      width: 220,
      height: 18 * designs.length,
      mark: { type: 'bar', tooltip: true },
      encoding: {
        y: { field: 'design', type: 'nominal', sort: [...designs], title: null },
        x: {
          field: 'perOpUs',
          type: 'quantitative',
          scale: { type: 'symlog' },
          axis: { values: [0, 1, 10, 100, 1_000, 10_000, 100_000], format: ',.0f' },
          title: 'µs per guest operation',
        },
        color: { field: 'design', type: 'nominal', sort: [...designs], legend: null },
      },
    },
    resolve: { scale: { x: 'shared' } },
  };
}

/**
 * Where each design's cost goes: the priced cost of each step (the "Steps counted" table times the
 * cost model), stacked, per workload, on one host.
 */
export function costByStepSpec(
  rs: readonly WorkloadResult[],
  designs: readonly string[],
  host: string,
  costs: Readonly<Record<string, number>>,
): TopLevelSpec {
  const values = priced(rs)
    .filter((r) => r.host === host)
    .flatMap((r) =>
      COST_STEPS.filter((k) => r.steps[k] * (costs[k] ?? 0) > 0).map((k) => ({
        workload: r.workload,
        design: r.design,
        step: k,
        ms: (r.steps[k] * (costs[k] ?? 0)) / 1e6,
      })),
    );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `Where the cost goes, by step (ms), on ${host}`, subtitle: 'steps counted × the cost model' },
    data: { values },
    facet: { row: { field: 'workload', title: null } },
    spec: {
      width: 420,
      height: 18 * designs.length,
      mark: { type: 'bar', tooltip: true },
      encoding: {
        y: { field: 'design', type: 'nominal', sort: [...designs], title: null },
        x: { field: 'ms', type: 'quantitative', aggregate: 'sum', title: 'ms' },
        color: { field: 'step', type: 'nominal', sort: [...COST_STEPS], title: 'step' },
      },
    },
    resolve: { scale: { x: 'independent' } },
  };
}

/**
 * The topdown accuracy of each proposal, per metric: worst and mean |error| against bare metal in 1/255, one panel
 * per scenario (the figures of the topdown table, all periods).
 */
export function topdownAccuracySpec(rows: readonly TopdownAccuracy[]): TopLevelSpec {
  const values = rows
    .filter((r) => r.bucket === 'all')
    .flatMap((r) =>
      (['worst', 'mean'] as const).map((stat) => ({
        design: r.design,
        scenario: r.scenario,
        metric: `${r.level === 1 ? 'L1' : 'L2'} ${r.metric}`,
        stat: `${stat} |error|`,
        err: r[stat],
      })),
    );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Topdown accuracy: guest PERF_METRICS against bare metal (1/255, symmetric log scale)',
      subtitle: `npm run compare: ${rows.find((r) => r.bucket === 'all')?.cases ?? 0} generated slot breakdowns on ${TOPDOWN_HOST}`,
    },
    data: { values },
    facet: {
      row: { field: 'stat', title: null },
      column: { field: 'scenario', title: null, sort: [...TOPDOWN_SCENARIOS] },
    },
    spec: {
      width: 260,
      height: 200,
      mark: { type: 'bar', tooltip: true },
      encoding: {
        y: { field: 'metric', type: 'nominal', sort: null, title: null },
        yOffset: { field: 'design', sort: [...TOPDOWN_DESIGNS] },
        x: {
          field: 'err',
          type: 'quantitative',
          scale: { type: 'symlog' },
          axis: { values: [0, 1, 2, 5, 10, 20, 50, 100, 200], format: ',.2~f' },
          title: '1/255',
        },
        color: { field: 'design', type: 'nominal', sort: [...TOPDOWN_DESIGNS], title: 'design' },
      },
    },
    resolve: { scale: { x: 'shared' } },
  };
}

/** Renders a Vega-Lite specification to an SVG document. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vl, vega] = await Promise.all([import('vega-lite'), import('vega')]);
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
