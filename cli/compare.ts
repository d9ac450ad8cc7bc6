/**
 * `npm run compare`: the designs side by side (issue #6). For each design and host: which
 * properties hold, which are violated, which hold only up to declared divergences; then, for each
 * guest workload, what the guest saw and what the design spent, step by step and priced with the
 * cost model (compare/costs.ts; defaults from seed 003, override with --cost step=ns).
 */

import Table from 'cli-table3';
import { Command, InvalidArgumentError, Option } from 'commander';
import { positiveInt, seedArg } from './args.js';
import fc from 'fast-check';
import {
  COST_STEPS,
  CostSpecError,
  type CostStep,
  DEFAULT_COSTS,
  defaultCosts,
  parseCostOverride,
} from '../compare/costs.js';
import { nsPerGuestOp, ranWorkload, runWorkload, type WorkloadResult } from '../compare/run.js';
import { WORKLOADS } from '../compare/workloads.js';
import {
  levelSummary,
  measureTopdown,
  SLOT_BUCKETS,
  TOPDOWN_CASES,
  TOPDOWN_DESIGNS,
  TOPDOWN_HOST,
  TOPDOWN_SCENARIOS,
  type TopdownAccuracy,
  topdownCases,
} from '../compare/topdown.js';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { designChecks } from '../properties/checks.js';
import { DESIGN_IDS, designById } from '../designs/registry.js';
import { OutDirError, checkOutputFile, prepareOutDir, writeFileAtomic } from '../reports/out_dir.js';
import { join } from 'node:path';
import { EXIT, EXIT_HELP, guard, type StopCause, stopOn } from './exit.js';
import { COMPARE_FORMAT } from './formats.js';
import { jsonTarget } from './output.js';
import type { CompareResults } from './results.js';

function costArg(v: string, prev: Record<CostStep, number>): Record<CostStep, number> {
  try {
    return parseCostOverride(v, prev);
  } catch (e) {
    if (e instanceof CostSpecError) throw new InvalidArgumentError(e.message);
    throw e;
  }
}

function command(): Command {
  return new Command('vpmu-conformance compare')
    .description(
      'The vPMU designs side by side: properties held, and what each guest workload costs (npm run compare -- [options]).',
    )
    .addOption(
      new Option('--design <id...>', 'designs to compare')
        .choices(DESIGN_IDS)
        .default(['pre-reuse', 'hw-assigned', 'emulated', 'mediated']),
    )
    .addOption(
      new Option('--profile <name...>', 'hosts')
        .choices(Object.keys(BUILTIN_PROFILES))
        .default(Object.keys(BUILTIN_PROFILES)),
    )
    .addOption(
      new Option('--runs <n>', 'programs per property check (0 skips the properties)')
        .argParser((v) => (v === '0' ? 0 : positiveInt(v)))
        .default(200),
    )
    .addOption(new Option('--seed <n>', 'fast-check seed').argParser(seedArg).default(1))
    .addOption(
      new Option('--cost <step=ns>', `override a step's cost (steps: ${COST_STEPS.join(', ')})`)
        .argParser(costArg)
        .default(defaultCosts(), 'seed 003'),
    )
    .option('--json [file]', `results as JSON (format ${COMPARE_FORMAT}), on stdout or to FILE`)
    .option(
      '--svg <dir>',
      'draw the workloads as SVG charts into DIR (cost per guest operation; cost by step per host)',
    )
    .addHelpText('after', `\n${EXIT_HELP}`)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
}

interface Options {
  design: string[];
  profile: string[];
  runs: number;
  seed: number;
  cost: Record<CostStep, number>;
  json?: string | boolean;
  svg?: string;
}

type Verdict = 'held' | 'declared' | 'violated';
interface PropertyRow {
  design: string;
  host: string;
  check: string;
  programs: number;
  verdict: Verdict;
  known: Record<string, number>;
}

async function compare(argv: readonly string[]): Promise<number> {
  const cli = command();
  cli.parse([...argv], { from: 'user' });
  const opts = cli.opts<Options>();
  const json = jsonTarget(opts.json, 'compare');
  if (json !== null && json !== 'stdout') checkOutputFile('--json', json);
  if (opts.svg !== undefined) prepareOutDir(opts.svg, '--svg');
  const stop = stopOn(
    'the current check',
    () => undefined,
    () => process.exit(EXIT.interrupted),
  );
  try {
    return await compareWith(opts, json, stop.cause);
  } finally {
    stop.off();
  }
}

async function compareWith(opts: Options, json: string | null, signal: () => StopCause | null): Promise<number> {
  const designs = opts.design.map(designById);
  const properties: PropertyRow[] = [];
  const unavailable: { design: string; host: string; why: string }[] = [];
  if (opts.runs > 0)
    for (const d of designs)
      for (const h of opts.profile) {
        if (signal() !== null) break;
        const host = BUILTIN_PROFILES[h]!;
        const why = d.unavailableOn?.(host) ?? null;
        if (why !== null) {
          unavailable.push({ design: d.id, host: h, why });
          continue;
        }
        for (const c of designChecks(d, h, host)) {
          // A turn of the event loop between checks: a signal is handled there.
          await new Promise((r) => setImmediate(r));
          if (signal() !== null) break;
          const known = new Map<string, number>();
          const r = fc.check(c.property(known), { seed: opts.seed, numRuns: opts.runs });
          properties.push({
            design: d.id,
            host: h,
            check: c.gen !== undefined ? `${c.id}/${c.gen}` : c.id,
            programs: r.numRuns,
            verdict: r.failed ? 'violated' : known.size > 0 ? 'declared' : 'held',
            known: Object.fromEntries(known),
          });
          process.stderr.write('.');
        }
      }
  if (opts.runs > 0) process.stderr.write('\n');

  const workloads: WorkloadResult[] = [];
  if (signal() === null)
    for (const w of WORKLOADS)
      for (const h of opts.profile)
        for (const d of designs) workloads.push(runWorkload(w, d, h, BUILTIN_PROFILES[h]!, opts.cost));

  // The topdown proposals' accuracy against bare metal over generated slot breakdowns (the same cases for both).
  // Measured where its host is among the hosts asked for.
  const topdown: TopdownAccuracy[] = [];
  if (signal() === null && opts.profile.includes(TOPDOWN_HOST)) {
    const cases = topdownCases(opts.seed, TOPDOWN_CASES);
    for (const id of TOPDOWN_DESIGNS)
      topdown.push(...measureTopdown(designById(id), BUILTIN_PROFILES[TOPDOWN_HOST]!, cases));
  }

  const us = (ns: number) =>
    ns >= 10_000_000 ? `${Math.round(ns / 1e6)} ms` : `${Math.round(ns / 1e3).toLocaleString('en-US')} µs`;
  const failed = properties.filter((p) => p.verdict === 'violated').length;
  const status = signal() !== null ? EXIT.interrupted : failed > 0 ? EXIT.failed : EXIT.passed;
  const totals = {
    properties: properties.length,
    held: properties.filter((p) => p.verdict === 'held').length,
    declared: properties.filter((p) => p.verdict === 'declared').length,
    violated: failed,
    unavailable: unavailable.length,
    workloads: workloads.length,
  };
  const results: CompareResults = {
    format: COMPARE_FORMAT,
    command: 'compare',
    exitStatus: status,
    interruptedBy: signal(),
    seed: opts.seed,
    runs: opts.runs,
    costs: opts.cost,
    totals,
    properties,
    unavailable,
    workloads: workloads.map((w) => ({ ...w, steps: { ...w.steps } })),
    topdown,
  };
  const text = `${JSON.stringify(results, null, 2)}\n`;
  if (json === 'stdout') process.stdout.write(text);
  else {
    if (properties.length > 0) {
      const cols = designs.flatMap((d) => opts.profile.map((h) => ({ d: d.id, h })));
      const checks = [...new Set(properties.map((p) => p.check))];
      const t = new Table({
        head: ['property', ...cols.map((c) => `${c.d}\n${c.h}`)],
        style: { head: [], border: [] },
      });
      for (const check of checks)
        t.push([
          check,
          ...cols.map((c) => {
            const p = properties.find((x) => x.design === c.d && x.host === c.h && x.check === check);
            if (p === undefined)
              return unavailable.some((u) => u.design === c.d && u.host === c.h) ? 'unavailable' : 'n/a';
            return p.verdict === 'declared'
              ? `declared (${Object.keys(p.known).length})`
              : p.verdict === 'violated'
                ? 'VIOLATED'
                : 'held';
          }),
        ]);
      console.log(
        `Properties (${opts.runs} programs per check, seed ${opts.seed}): held, declared (holds up to N declared divergences), VIOLATED`,
      );
      console.log(t.toString());
      for (const u of unavailable) console.log(`  ${u.design} unavailable on ${u.host}: ${u.why}`);
      const kinds = new Map<string, Set<string>>();
      for (const p of properties)
        for (const k of Object.keys(p.known)) kinds.set(k, (kinds.get(k) ?? new Set()).add(p.design));
      if (kinds.size > 0) {
        console.log('declared divergences met:');
        for (const [k, ds] of [...kinds].sort()) console.log(`  ${k.padEnd(26)} ${[...ds].join(', ')}`);
      }
    }
    // An interrupted run has no workloads: the properties it ran are all there is.
    if (workloads.length > 0) {
      const t = new Table({
        head: ['workload', 'host', ...designs.map((d) => `${d.id}\nguest saw · time · per op`), 'ratio'],
        style: { head: [], border: [] },
      });
      for (const w of WORKLOADS)
        for (const h of opts.profile) {
          const rs = designs.map((d) =>
            workloads.find((x) => x.workload === w.id && x.host === h && x.design === d.id)!,
          );
          const priced = rs.filter(ranWorkload);
          // A workload none of these designs can give its guest (Arch LBR where none offers it): no row of its own.
          if (priced.length === 0 && w.unavailable !== undefined) continue;
          const cheapest = Math.min(...priced.map((r) => r.ns));
          t.push([
            w.id,
            h,
            ...rs.map((r) =>
              !ranWorkload(r)
                ? 'unavailable'
                : `${r.verdict.length > 28 ? `${r.verdict.slice(0, 27)}…` : r.verdict}\n${us(r.ns)} · ${us(nsPerGuestOp(r))}`,
            ),
            priced.length > 1 && cheapest > 0 ? priced.map((r) => `${(r.ns / cheapest).toFixed(1)}×`).join(' : ') : '',
          ]);
        }
      console.log('\nWorkloads: what the guest saw, and the priced cost (total, per guest operation)');
      console.log(t.toString());
      const steps = new Table({ head: ['workload', 'host', 'design', ...COST_STEPS], style: { head: [], border: [] } });
      for (const r of workloads)
        if (ranWorkload(r)) steps.push([r.workload, r.host, r.design, ...COST_STEPS.map((k) => r.steps[k])]);
      console.log('\nSteps counted:');
      console.log(steps.toString());
      console.log('\nCost model (ns per step; --cost step=ns overrides):');
      for (const k of COST_STEPS)
        console.log(
          `  ${k.padEnd(21)} ${String(opts.cost[k]).padStart(10)}  ${opts.cost[k] === DEFAULT_COSTS[k].ns ? DEFAULT_COSTS[k].source : 'overridden'}`,
        );
    }
    if (topdown.length > 0) printTopdown(topdown);
    const sig = signal();
    const costFlags = COST_STEPS.filter((k) => opts.cost[k] !== DEFAULT_COSTS[k].ns)
      .map((k) => ` --cost ${k}=${opts.cost[k]}`)
      .join('');
    console.log(
      `${sig !== null ? `interrupted by ${sig}: ` : ''}${properties.length - failed} passed, ${failed} failed (replay: npm run compare -- --design ${opts.design.join(' ')} --profile ${opts.profile.join(' ')} --runs ${opts.runs} --seed ${opts.seed}${costFlags})`,
    );
  }
  if (json !== null && json !== 'stdout') writeFileAtomic(json, text);
  if (opts.svg !== undefined && workloads.length > 0) {
    const written = await drawCharts(opts.svg, workloads, topdown, opts);
    console.error(`charts: ${written.join(', ')}`);
  }
  return status;
}

/** The topdown accuracy section: per metric, each proposal's worst, mean and signed error in 1/255, per scenario. */
function printTopdown(rows: readonly TopdownAccuracy[]): void {
  const cases = rows.find((r) => r.bucket === 'all')?.cases ?? 0;
  console.log(
    `\nTopdown accuracy on ${TOPDOWN_HOST}: PERF_METRICS as the guest reads it minus bare metal, in 1/255 (${cases} generated slot breakdowns; worst |err| · mean |err| · bias)`,
  );
  const cols = TOPDOWN_DESIGNS.flatMap((d) => TOPDOWN_SCENARIOS.map((s) => ({ d, s })));
  const t = new Table({ head: ['metric', ...cols.map((c) => `${c.d}\n${c.s}`)], style: { head: [], border: [] } });
  const cell = (r: TopdownAccuracy | { worst: number; mean: number; bias: number } | undefined) =>
    r === undefined ? 'n/a' : `${r.worst} · ${r.mean.toFixed(2)} · ${r.bias >= 0 ? '+' : ''}${r.bias.toFixed(2)}`;
  const metrics = [...new Set(rows.map((r) => r.metric))];
  for (const m of metrics)
    t.push([
      `${rows.find((r) => r.metric === m)!.level === 1 ? 'L1' : 'L2'} ${m}`,
      ...cols.map((c) =>
        cell(rows.find((r) => r.design === c.d && r.scenario === c.s && r.bucket === 'all' && r.metric === m)),
      ),
    ]);
  for (const level of [1, 2] as const)
    for (const bucket of SLOT_BUCKETS)
      t.push([
        `L${level}, ${bucket} (${levelSummary(rows, TOPDOWN_DESIGNS[0], 'one window', level, bucket).cases})`,
        ...cols.map((c) => cell(levelSummary(rows, c.d, c.s, level, bucket))),
      ]);
  console.log(t.toString());
}

/** The workloads as charts (compare/charts.ts), from the same results the tables print; returns the paths written. */
async function drawCharts(
  dir: string,
  workloads: readonly WorkloadResult[],
  topdown: readonly TopdownAccuracy[],
  opts: Options,
): Promise<string[]> {
  const { costByStepSpec, costPerOpSpec, renderSvg, topdownAccuracySpec } = await import('../compare/charts.js');
  const charts: [string, Parameters<typeof renderSvg>[0]][] = [
    ['cost_per_op.svg', costPerOpSpec(workloads, opts.design, opts.profile)],
    ...(topdown.length > 0
      ? [['topdown_accuracy.svg', topdownAccuracySpec(topdown)] as [string, Parameters<typeof renderSvg>[0]]]
      : []),
    ...opts.profile.map((h): [string, Parameters<typeof renderSvg>[0]] => [
      `cost_by_step_${h.replace(/[^a-z0-9]+/gi, '_')}.svg`,
      costByStepSpec(workloads, opts.design, h, opts.cost),
    ]),
  ];
  const out: string[] = [];
  for (const [name, spec] of charts) {
    const path = join(dir, name);
    writeFileAtomic(path, await renderSvg(spec));
    out.push(path);
  }
  return out;
}

export function compareCli(argv: readonly string[]): Promise<number> {
  return guard('compare', () => compare(argv), [OutDirError]);
}
