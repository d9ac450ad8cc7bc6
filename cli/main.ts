/**
 * `vpmu-conformance start` (`npm start`): the main job. Runs the reference model's laws and, for each
 * chosen vPMU design (default: emulated and mediated), every property on the built-in hosts it can run
 * on, conformance once per generation profile, under a run or time budget; prints a line per check, a
 * table (check × design × host × profile: programs, result, known divergences), one fast-check report
 * per root cause, and a closing line with the command that runs the same checks again. A failed check
 * of the five properties reports cover also gets a bug report under --out.
 *
 * The plan is a list of CheckSpecs (check_run.ts), run on a pool of worker threads (--workers): the
 * work of a check is a pure function of its spec, and the main thread publishes reports and tabulates
 * results in the plan's order, so the worker count changes only the wall time. SIGINT or SIGTERM
 * stops the searches after their current program and prints what ran (exit 130); a second one stops
 * at once.
 */

import { Command, Option } from 'commander';
import fc from 'fast-check';
import { createRequire } from 'node:module';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { checksFor, notApplicableFor } from '../properties/checks.js';
import { DESIGN_IDS, designById } from '../designs/registry.js';
import { DEFAULT_GENERATION_PROFILES, GENERATION_PROFILES, type GenerationProfile } from '../scenarios/generation.js';
import {
  clearReports,
  checkOutputFile,
  existingReports,
  OutDirError,
  prepareOutDir,
  writeFileAtomic,
} from '../reports/out_dir.js';
import { positiveInt, seedArg, shardArg } from './args.js';
import { type CheckSpec, publishRan, type RanCheck, specOf } from './check_run.js';
import { defaultWorkers, inLanes, stopOnSignals, workerPool } from './check_runner.js';
import { EXIT, EXIT_HELP, guard, InputError } from './exit.js';
import { junitXml } from './junit.js';
import { compactTable, jsonTarget, plural } from './output.js';
import { RESULTS_FORMAT } from './formats.js';
import type { CheckResult, Resources, StartResults, Totals } from './results.js';

export const DEFAULT_RUNS = 2000;
export const DEFAULT_DESIGNS = ['emulated', 'mediated'];
const IDS = [...new Set(checksFor(designById('emulated')).map((c) => c.id))];

interface Options {
  runs: number;
  time?: number;
  seed?: number;
  only?: string[];
  profile?: string[];
  design: string[];
  gen?: string[];
  out: string;
  clean?: boolean;
  json?: string | boolean;
  junit?: string;
  workers: number;
  shard?: { index: number; count: number };
}

/** The flags that choose which checks run and where their reports go, shared by start and soak. */
export function withPlanOptions(cli: Command): Command {
  return cli
    .addOption(new Option('--only <id...>', 'run only these checks').choices(IDS))
    .addOption(
      new Option('--profile <name...>', 'properties on these hosts only').choices(Object.keys(BUILTIN_PROFILES)),
    )
    .addOption(
      new Option('--design <id...>', 'the vPMU designs the properties run on')
        .choices(DESIGN_IDS)
        .default(DEFAULT_DESIGNS),
    )
    .addOption(
      new Option(
        '--gen <name...>',
        'conformance on these generation profiles only (default: all but beyond-supported)',
      ).choices([...GENERATION_PROFILES]),
    )
    .addOption(new Option('--out <dir>', 'where failure reports are written').default('reports/out'));
}

function command(): Command {
  const cli = new Command('vpmu-conformance start')
    .description(
      'Conformance of virtual PMUs against a reference Intel PMU model: the main job (npm start -- [options]).',
    )
    .addOption(new Option('--runs <n>', 'programs per check').argParser(positiveInt).default(DEFAULT_RUNS))
    .addOption(
      new Option('--time <seconds>', 'stop each check after this long (counted as interrupted, not passed)').argParser(
        positiveInt,
      ),
    )
    .addOption(new Option('--seed <n>', 'fast-check seed (default: fresh, printed)').argParser(seedArg));
  return withPlanOptions(cli)
    .option('--clean', 'remove the reports already in --out before the run')
    .option('--json [file]', `results as JSON (format ${RESULTS_FORMAT}), on stdout or to FILE`)
    .option('--junit <file>', 'results as JUnit XML to FILE, for CI systems')
    .addOption(
      new Option('--workers <n>', 'worker threads running checks (the results do not depend on it)')
        .argParser(positiveInt)
        .default(defaultWorkers(), 'one per available core'),
    )
    .addOption(
      new Option(
        '--shard <i/n>',
        'run only the i-th of n shares of the checks (needs --seed; npm run merge joins them)',
      ).argParser(shardArg),
    )
    .addHelpText(
      'after',
      `\nUnder npm, JSON on stdout needs npm quiet: 'npm start --json' or 'npm start -s -- --json'.\n\n${EXIT_HELP}`,
    )
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
}

/** The command that runs the same checks again: every flag that shapes the run, none that does not. */
export function replayLine(o: Options, seed: number): string {
  const f = [`--seed ${seed}`];
  if (o.runs !== DEFAULT_RUNS) f.push(`--runs ${o.runs}`);
  if (o.time !== undefined) f.push(`--time ${o.time}`);
  if (o.only !== undefined) f.push(`--only ${o.only.join(' ')}`);
  if (o.profile !== undefined) f.push(`--profile ${o.profile.join(' ')}`);
  if (o.design.join(' ') !== DEFAULT_DESIGNS.join(' ')) f.push(`--design ${o.design.join(' ')}`);
  if (o.gen !== undefined) f.push(`--gen ${o.gen.join(' ')}`);
  if (o.shard !== undefined) f.push(`--shard ${o.shard.index}/${o.shard.count}`);
  return `npm start -- ${f.join(' ')}`;
}

/** A row of the plan: a check to run, or one that does not apply (with why). */
export type Planned = { readonly spec: CheckSpec; readonly rule: string } | { readonly na: CheckResult };

/** What chooses the checks: the plan-shaping flags (withPlanOptions) and a shard. */
export type PlanChoice = Pick<Options, 'only' | 'profile' | 'design' | 'gen' | 'shard'>;

export function plan(o: PlanChoice, budget: Parameters<typeof specOf>[1]): Planned[] {
  const picked = (id: string, profile: string, gen: string | null) =>
    (o.only === undefined || id === '*' || o.only.includes(id)) &&
    (profile === 'random' || o.profile === undefined || o.profile.includes(profile)) &&
    // The opt-in profile (beyond-supported) runs only when named.
    (gen === null || (o.gen ?? DEFAULT_GENERATION_PROFILES).includes(gen as GenerationProfile));
  const rows: Planned[] = [];
  o.design.forEach((id, i) => {
    const design = designById(id);
    // The reference model's laws once, with the first design; then every design's checks.
    for (const c of checksFor(design))
      if ((i === 0 || c.design !== undefined) && picked(c.id, c.profile, c.gen ?? null))
        rows.push({ spec: specOf(c, budget), rule: c.rule });
    for (const n of notApplicableFor(design))
      if (picked(n.id, n.profile, null))
        rows.push({
          na: {
            check: n.id,
            gen: null,
            design: design.id,
            host: n.profile,
            rule: '',
            result: 'n/a',
            reason: n.reason,
            programs: 0,
            ms: 0,
            known: {},
            ended: null,
            failure: null,
            report: null,
            reportError: null,
          },
        });
  });
  // A shard holds every n-th row of the plan, so each gets a mix of the checks and the union is the plan.
  const s = o.shard;
  return s === undefined ? rows : rows.filter((_, j) => j % s.count === s.index - 1);
}

export const label = (c: Pick<CheckResult, 'check' | 'gen' | 'design' | 'host'>) =>
  `${c.check}${c.gen !== null ? `/${c.gen}` : ''} on ${c.design ?? 'hw model'}, ${c.host}`;

function resultCell(c: CheckResult): string {
  if (c.result === 'interrupted') return `interrupted (${plural(c.programs, 'program')})`;
  if (c.result === 'n/a') return `n/a: ${c.reason ?? ''}`;
  return c.result;
}

export function totalsOf(rows: readonly CheckResult[]): Totals {
  const n = (r: CheckResult['result']) => rows.filter((c) => c.result === r).length;
  return {
    checks: rows.length,
    passed: n('passed'),
    failed: n('failed'),
    interrupted: n('interrupted'),
    notApplicable: n('n/a'),
    notRun: n('not run'),
  };
}

function closingLine(r: StartResults): string {
  const t = r.totals;
  const extra = [
    ...(t.interrupted > 0 ? [`${t.interrupted} interrupted`] : []),
    ...(t.notApplicable > 0 ? [`${t.notApplicable} n/a`] : []),
    ...(t.notRun > 0 ? [`${t.notRun} not run`] : []),
  ];
  const counts = [`${t.passed} passed`, `${t.failed} failed`, ...extra].join(', ');
  return `${r.interruptedBy !== null ? `interrupted by ${r.interruptedBy}: ` : ''}${counts} (replay: ${r.replay})`;
}

const MB = 1024 * 1024;

/**
 * What the run cost: wall time, the process's peak RSS (workers are threads of it), and that peak less the main
 * thread's before the pool started, shared among the workers: about what each worker held at most.
 */
export function resourcesOf(ms: number, workers: number, mainRss: number): Resources {
  const peak = process.resourceUsage().maxRSS * 1024;
  return {
    seconds: Math.round(ms) / 1000,
    workers,
    peakRssMb: Math.round(peak / MB),
    perWorkerMb: Math.round(Math.max(0, peak - mainRss) / workers / MB),
    mainRssMb: Math.round(mainRss / MB),
  };
}

/** The resources as the summary's closing lines give them. */
export function resourceLine(r: Resources): string {
  return `${r.seconds.toFixed(0)} s on ${plural(r.workers, 'worker')}; peak RSS ${r.peakRssMb} MB, about ${r.perWorkerMb} MB a worker above the main thread's ${r.mainRssMb} MB`;
}

/**
 * The human summary: table, declared divergences, one report per root cause, old reports, `extra` lines (what the
 * run cost), closing line.
 */
export function summary(r: StartResults, extra: readonly string[] = []): string {
  const lines: string[] = [];
  const table = compactTable([
    'check',
    'design',
    'host',
    'programs of',
    'programs',
    'result',
    'known divergences',
    'ended there',
    'ms',
  ]);
  for (const c of r.checks) {
    if (c.result === 'not run') continue;
    const known = Object.values(c.known).reduce((a, b) => a + b, 0);
    table.push([
      c.check,
      c.design ?? 'hw model',
      c.host,
      c.gen ?? '',
      c.result === 'n/a' ? '' : c.programs,
      resultCell(c),
      known === 0 ? '' : `${known} (${plural(Object.keys(c.known).length, 'kind')})`,
      endedShare(c),
      c.result === 'n/a' ? '' : c.ms,
    ]);
  }
  lines.push(table.toString());
  const kinds = Object.entries(r.knownDivergences);
  if (kinds.length > 0) {
    lines.push('', 'known divergences met (declared in properties/expectations/):');
    for (const [k, n] of kinds.sort((a, b) => b[1] - a[1])) lines.push(`  ${String(n).padStart(6)}  ${k}`);
  }
  lines.push(...endings(r.checks));
  const causes = new Map<string, CheckResult[]>();
  for (const c of r.checks)
    if (c.failure !== null) causes.set(c.failure.rootCause, [...(causes.get(c.failure.rootCause) ?? []), c]);
  for (const [, [first, ...rest]] of causes) {
    lines.push('', `${label(first!)} failed:`, first!.failure!.message);
    if (first!.report !== null)
      lines.push(
        `report: ${first!.report.markdown} (${first!.report.status === 'kept' ? 'kept: a report with the same root cause and a program no longer than this one was there; ' : ''}replay: ${first!.report.replay})`,
      );
    else if (first!.reportError !== null) lines.push(`no report written: ${first!.reportError}`);
    if (rest.length > 0)
      lines.push(`and ${plural(rest.length, 'more failure')} with the same root cause: ${rest.map(label).join('; ')}`);
  }
  if (r.oldReports.length > 0) {
    const shown = r.oldReports.slice(0, 10);
    lines.push(
      '',
      `${plural(r.oldReports.length, 'old report')} in ${r.options.out}, not from this run (--clean clears them):`,
      ...shown.map((id) => `  ${id}`),
      ...(r.oldReports.length > shown.length ? [`  and ${r.oldReports.length - shown.length} more`] : []),
    );
  }
  if (extra.length > 0) lines.push('', ...extra);
  lines.push(closingLine(r));
  return lines.join('\n');
}

/** The share of a check's programs that ended at a declared divergence, or '' where none can. */
export function endedShare(c: Pick<CheckResult, 'ended' | 'programs'>): string {
  if (c.ended === null || c.programs === 0) return '';
  const n = Object.values(c.ended).reduce((a, b) => a + b, 0);
  return `${((100 * n) / c.programs).toFixed(1)} %`;
}

/**
 * Per design and host, the share of programs that ended at a declaration, per generation profile (and for the
 * lbr-freeze and VMM checks): a declaration that ends a program leaves whatever it would have met after it unchecked.
 */
function endings(rows: readonly CheckResult[]): string[] {
  const counted = rows.filter((c) => c.ended !== null && c.programs > 0);
  if (counted.length === 0) return [];
  const column = (c: CheckResult) => c.gen ?? c.check;
  const columns = [...new Set(counted.map(column))];
  const t = compactTable(['design', 'host', ...columns]);
  const keys = [...new Set(counted.map((c) => `${c.design ?? ''}\u0000${c.host}`))];
  for (const k of keys) {
    const [design, host] = k.split('\u0000') as [string, string];
    const mine = counted.filter((c) => (c.design ?? '') === design && c.host === host);
    t.push([
      design,
      host,
      ...columns.map((col) => {
        const c = mine.find((x) => column(x) === col);
        return c === undefined ? '' : endedShare(c);
      }),
    ]);
  }
  return [
    '',
    'programs that ended at a declared divergence (what each would have met after it goes unchecked):',
    t.toString(),
  ];
}

function progressLine(c: CheckResult): string {
  return `  ${c.result.padEnd(11)} ${label(c)} (${plural(c.programs, 'program')}, ${c.ms} ms)`;
}

async function start(argv: readonly string[]): Promise<number> {
  const cli = command();
  cli.parse([...argv], { from: 'user' });
  const o = cli.opts<Options>();
  const json = jsonTarget(o.json, 'start');
  if (o.shard !== undefined && o.seed === undefined)
    throw new InputError('--shard needs --seed: every shard of a run must search with the same seed');
  // Everything the run will write is checked before the search: a bad path costs nothing.
  prepareOutDir(o.out);
  if (json !== null && json !== 'stdout') checkOutputFile('--json', json);
  if (o.junit !== undefined) checkOutputFile('--junit', o.junit);
  // Progress goes where the JSON does not.
  const say = json === 'stdout' ? (s: string) => console.error(s) : (s: string) => console.log(s);
  const cleared = o.clean === true ? clearReports(o.out) : [];
  if (cleared.length > 0) say(`cleared ${plural(cleared.length, 'old report')} from ${o.out}`);
  const before = existingReports(o.out);

  const seed = o.seed ?? (Date.now() ^ (process.pid << 8)) | 0;
  const planned = plan(o, {
    seed,
    runs: o.runs,
    timeSeconds: o.time ?? null,
    out: o.out,
    found: new Date().toISOString().slice(0, 10),
  });
  const runnable = planned.filter((p) => 'spec' in p).length;
  say(
    `vpmu-conformance: ${plural(runnable, 'check')}${runnable < planned.length ? ` (+ ${planned.length - runnable} n/a)` : ''}, seed ${seed}, up to ${o.runs} programs each${o.time !== undefined ? ` or ${o.time} s` : ''}`,
  );

  const started = performance.now();
  const mainRss = process.memoryUsage().rss;
  const pool = workerPool(Math.max(1, Math.min(o.workers, runnable)));
  const stop = stopOnSignals(pool);
  // Results as they come, published (reports written) and tabulated in the plan's order.
  const settled: (CheckResult | RanCheck | undefined)[] = planned.map((p) => ('na' in p ? p.na : undefined));
  const rows: CheckResult[] = [];
  const publishReady = () => {
    for (let s = settled[rows.length]; s !== undefined; s = settled[rows.length])
      rows.push('pending' in s ? publishRan(s, o.out) : s);
  };
  try {
    await inLanes(planned.length, pool.workers, async (i) => {
      const p = planned[i]!;
      if ('na' in p) return;
      const notRun = (reason: string | null): CheckResult => ({
        check: p.spec.check,
        gen: p.spec.gen,
        design: p.spec.design,
        host: p.spec.host,
        rule: p.rule,
        result: 'not run',
        reason,
        programs: 0,
        ms: 0,
        known: {},
        ended: null,
        failure: null,
        report: null,
        reportError: null,
      });
      if (stop.signal() !== null) {
        settled[i] = notRun(null);
      } else {
        try {
          const r = await pool.check(p.spec);
          settled[i] = r;
          say(progressLine(r.result));
        } catch (e) {
          if (stop.signal() === null) throw e;
          // Stopped at once: the check in flight has no result to show.
          settled[i] = { ...notRun(`stopped at once by a second ${stop.signal() as string}`), result: 'interrupted' };
        }
      }
      publishReady();
    });
    publishReady();
  } finally {
    stop.off();
    await pool.close();
  }

  const signal = stop.signal();
  const written = new Set(rows.flatMap((c) => (c.report !== null ? [c.report.id] : [])));
  const known = new Map<string, number>();
  for (const c of rows) for (const [k, n] of Object.entries(c.known)) known.set(k, (known.get(k) ?? 0) + n);
  const totals = totalsOf(rows);
  const status = signal !== null ? EXIT.interrupted : totals.failed > 0 ? EXIT.failed : EXIT.passed;
  const resources = resourcesOf(performance.now() - started, pool.workers, mainRss);
  const results: StartResults = {
    format: RESULTS_FORMAT,
    command: 'start',
    exitStatus: status,
    interruptedBy: signal,
    seed,
    options: {
      runs: o.runs,
      timeSeconds: o.time ?? null,
      only: o.only ?? null,
      profile: o.profile ?? null,
      design: o.design,
      gen: o.gen ?? null,
      out: o.out,
      shard: o.shard ?? null,
    },
    replay: replayLine(o, seed),
    totals,
    checks: rows,
    knownDivergences: Object.fromEntries([...known].sort((a, b) => b[1] - a[1])),
    oldReports: before.filter((id) => !written.has(id)),
    versions: {
      package: (createRequire(import.meta.url)('../package.json') as { version: string }).version,
      node: process.version,
      fastCheck: fc.__version,
    },
    resources,
  };
  const text = `${JSON.stringify(results, null, 2)}\n`;
  if (json === 'stdout') process.stdout.write(text);
  else console.log(summary(results, [resourceLine(resources)]));
  if (json !== null && json !== 'stdout') writeFileAtomic(json, text);
  if (o.junit !== undefined) writeFileAtomic(o.junit, junitXml(results));
  return status;
}

export function startCli(argv: readonly string[]): Promise<number> {
  return guard('start', () => start(argv), [OutDirError]);
}
