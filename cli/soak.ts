/**
 * `vpmu-conformance soak` (`npm run soak -- --minutes M`): the checks `npm start` plans, round after
 * round on fresh seeds, across the worker pool, until the time budget; then per check the programs
 * run and the failures, and a closing line with how to replay. Round r's seed is a pure function of
 * the base seed and r, so a soak replays; a failure is published as `npm start` publishes it and its
 * check is not run again (later rounds would find the same). A live progress line per worker on a
 * terminal (cli-progress), plain lines otherwise. SIGINT or SIGTERM stops after the current program
 * and prints what ran (exit 130); a second one stops at once.
 */

import { MultiBar, type SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import { positiveInt, seedArg } from './args.js';
import { type CheckSpec, publishRan } from './check_run.js';
import { defaultWorkers, stopOnSignals, workerPool } from './check_runner.js';
import { EXIT, EXIT_HELP, guard, InputError } from './exit.js';
import { DEFAULT_DESIGNS, DEFAULT_RUNS, label, plan, type PlanChoice, withPlanOptions } from './main.js';
import { compactTable, plural } from './output.js';
import type { CheckResult } from './results.js';
import { OutDirError, prepareOutDir } from '../reports/out_dir.js';

/** The base seed when none is given: fixed, so two soaks without --seed search the same programs. */
export const DEFAULT_SOAK_SEED = 15;

/** What a round gives `--runs` programs: each check, or each property (split evenly over its checks). */
export type Per = 'check' | 'property';

interface Options extends PlanChoice {
  minutes: number;
  seed: number;
  runs: number;
  per: Per;
  out: string;
  workers: number;
}

/** A time budget in minutes: a positive number, at most a week. */
export function minutesArg(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 7 * 24 * 60)
    throw new InvalidArgumentError('must be a positive number of minutes, at most 10080 (a week)');
  return n;
}

/** Round r's seed: a 32-bit mix (murmur3's finaliser) of the base seed and r, so each round searches fresh programs. */
export function roundSeed(base: number, round: number): number {
  let h = (base ^ Math.imul(round + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

function command(): Command {
  const cli = new Command('vpmu-conformance soak')
    .description(
      'Every check npm start runs, round after round on fresh seeds, on every core until the time budget (npm run soak -- --minutes M).',
    )
    .addOption(new Option('--minutes <m>', 'the time budget, in minutes').argParser(minutesArg).default(60))
    .addOption(
      new Option('--seed <n>', "base seed; round r's seed is derived from it and r")
        .argParser(seedArg)
        .default(DEFAULT_SOAK_SEED),
    )
    .addOption(
      new Option('--runs <n>', 'programs per check (or per property, with --per property) per round')
        .argParser(positiveInt)
        .default(DEFAULT_RUNS),
    )
    .addOption(
      new Option(
        '--per <unit>',
        'what each round gives --runs programs: each check, or each property split over its checks',
      )
        .choices(['check', 'property'])
        .default('check'),
    );
  return withPlanOptions(cli)
    .addOption(
      new Option('--workers <n>', 'worker threads running checks')
        .argParser(positiveInt)
        .default(defaultWorkers(), 'one per available core'),
    )
    .addHelpText(
      'after',
      `\nA check that fails is written as a report under --out and not run again; the closing line says how to replay it with npm start.\n\n${EXIT_HELP}`,
    )
    .exitOverride();
}

/**
 * The plan with each check's programs per round set so that every property (a check id: `conformance`,
 * `no-leak`, a law of the reference model) gets `runs` a round, split evenly over its checks, at least one each:
 * conformance's many generation profiles, designs and hosts then cost what one law costs.
 */
export function splitPerProperty(specs: readonly CheckSpec[], runs: number): CheckSpec[] {
  const checks = new Map<string, number>();
  for (const s of specs) checks.set(s.check, (checks.get(s.check) ?? 0) + 1);
  return specs.map((s) => ({ ...s, runs: Math.max(1, Math.round(runs / checks.get(s.check)!)) }));
}

/** One planned check across the rounds. */
interface Soaked {
  readonly spec: CheckSpec;
  programs: number;
  rounds: number;
  failure: { readonly round: number; readonly seed: number; readonly result: CheckResult } | null;
}

/** The `npm start` command that runs check `s` as round `seed` ran it. */
export function startReplay(s: CheckSpec, seed: number): string {
  const f = [`--seed ${seed}`];
  if (s.runs !== DEFAULT_RUNS) f.push(`--runs ${s.runs}`);
  f.push(`--only ${s.check}`);
  if (s.design !== null) f.push(`--design ${s.design}`);
  if (s.host !== 'random') f.push(`--profile ${s.host}`);
  if (s.gen !== null) f.push(`--gen ${s.gen}`);
  return `npm start -- ${f.join(' ')}`;
}

function soakReplay(o: Options): string {
  const f = [`--seed ${o.seed}`, `--minutes ${o.minutes}`];
  if (o.runs !== DEFAULT_RUNS) f.push(`--runs ${o.runs}`);
  if (o.per !== 'check') f.push(`--per ${o.per}`);
  if (o.only !== undefined) f.push(`--only ${o.only.join(' ')}`);
  if (o.profile !== undefined) f.push(`--profile ${o.profile.join(' ')}`);
  if (o.design.join(' ') !== DEFAULT_DESIGNS.join(' ')) f.push(`--design ${o.design.join(' ')}`);
  if (o.gen !== undefined) f.push(`--gen ${o.gen.join(' ')}`);
  return `npm run soak -- ${f.join(' ')}`;
}

/** Where progress goes: a bar per worker on a terminal, plain lines otherwise. */
interface Progress {
  start(worker: number, what: string, round: number): void;
  done(worker: number, programs: number): void;
  line(s: string): void;
  tick(elapsedSeconds: number): void;
  stop(): void;
}

function progress(workers: number, budgetSeconds: number): Progress {
  if (process.stdout.isTTY !== true)
    return { start: () => {}, done: () => {}, line: (s) => console.log(s), tick: () => {}, stop: () => {} };
  const multi = new MultiBar({
    format: 'worker {worker} [{bar}] {elapsed}/{budget} s | {programs} programs | round {round}: {what}',
    hideCursor: true,
    clearOnComplete: false,
    barsize: 20,
  });
  const budget = Math.round(budgetSeconds);
  const bars: SingleBar[] = Array.from({ length: workers }, (_, i) =>
    multi.create(budget, 0, { worker: i + 1, elapsed: 0, budget, programs: 0, round: 0, what: 'starting' }),
  );
  const programs = new Array<number>(workers).fill(0);
  return {
    start: (w, what, round) => bars[w]!.update({ what, round }),
    done: (w, n) => {
      programs[w]! += n;
      bars[w]!.update({ programs: programs[w] });
    },
    line: (s) => multi.log(`${s}\n`),
    tick: (t) => {
      for (const b of bars) b.update(Math.min(budget, Math.round(t)), { elapsed: Math.round(t) });
    },
    stop: () => multi.stop(),
  };
}

async function soak(argv: readonly string[]): Promise<number> {
  const cli = command();
  cli.parse([...argv], { from: 'user' });
  const o = cli.opts<Options>();
  prepareOutDir(o.out);
  const budgetMs = o.minutes * 60_000;
  const found = new Date().toISOString().slice(0, 10);
  const planned = plan(o, { seed: o.seed, runs: o.runs, timeSeconds: null, out: o.out, found }).flatMap((p) =>
    'spec' in p ? [p.spec] : [],
  );
  if (planned.length === 0)
    throw new InputError('no check applies to the chosen --only, --profile, --design and --gen');
  const specs = o.per === 'property' ? splitPerProperty(planned, o.runs) : planned;
  const soaked: Soaked[] = specs.map((spec) => ({ spec, programs: 0, rounds: 0, failure: null }));
  const workers = Math.max(1, Math.min(o.workers, specs.length));
  console.log(
    `vpmu-conformance soak: ${plural(specs.length, 'check')} on ${plural(workers, 'worker')} for ${o.minutes} min, base seed ${o.seed}, ${o.runs} programs per ${o.per} per round`,
  );

  const pool = workerPool(workers);
  const t0 = Date.now();
  const shown = progress(workers, budgetMs / 1000);
  const stop = stopOnSignals(pool);
  let over = false;
  const budget = setTimeout(() => {
    over = true;
    pool.requestStop();
  }, budgetMs);
  const ticker = setInterval(() => shown.tick((Date.now() - t0) / 1000), 500);
  // Jobs in order: round 0's checks, then round 1's, ...; a round's line is printed when all its checks are back.
  let next = 0;
  const pending = new Map<number, number>();
  const roundPrograms = new Map<number, number>();
  // Rounds with a check cut short by the budget or a signal: the table does not count them, nor does a round line.
  const cut = new Set<number>();
  const take = (): { round: number; s: Soaked } | null => {
    for (;;) {
      if (over || stop.signal() !== null || soaked.every((s) => s.failure !== null)) return null;
      const round = Math.floor(next / soaked.length);
      const s = soaked[next++ % soaked.length]!;
      if (s.failure === null) return { round, s };
    }
  };
  const lane = async (w: number) => {
    for (let job = take(); job !== null; job = take()) {
      const { round, s } = job;
      const seed = roundSeed(o.seed, round);
      pending.set(round, (pending.get(round) ?? 0) + 1);
      shown.start(w, label(s.spec), round);
      let r;
      try {
        r = await pool.check({ ...s.spec, seed });
      } catch (e) {
        if (stop.signal() === null) throw e;
        return; // stopped at once: the check in flight has nothing to show
      }
      s.programs += r.result.programs;
      shown.done(w, r.result.programs);
      roundPrograms.set(round, (roundPrograms.get(round) ?? 0) + r.result.programs);
      if (r.result.result !== 'interrupted') s.rounds++;
      else cut.add(round);
      if (r.result.result === 'failed') {
        s.failure = { round, seed, result: publishRan(r, o.out) };
        shown.line(`  failed      ${label(s.spec)} in round ${round} (seed ${seed})`);
      }
      const left = pending.get(round)! - 1;
      pending.set(round, left);
      // Decided on the round's own checks, not on the clock now: the budget may end between the last check and here.
      if (left === 0 && next >= (round + 1) * soaked.length && !cut.has(round))
        shown.line(
          `round ${round} (seed ${seed}) done: ${plural(roundPrograms.get(round)!, 'program')}, ${Math.round((Date.now() - t0) / 1000)} s`,
        );
    }
  };
  try {
    await Promise.all(Array.from({ length: workers }, (_, w) => lane(w)));
  } finally {
    clearTimeout(budget);
    clearInterval(ticker);
    shown.stop();
    stop.off();
    await pool.close();
  }
  const signal = stop.signal();
  console.log(summary(o, soaked, signal, Date.now() - t0));
  return signal !== null ? EXIT.interrupted : soaked.some((s) => s.failure !== null) ? EXIT.failed : EXIT.passed;
}

function summary(o: Options, soaked: readonly Soaked[], signal: NodeJS.Signals | null, ms: number): string {
  const t = compactTable(['check', 'design', 'host', 'programs of', 'programs', 'rounds', 'failures']);
  for (const s of soaked)
    t.push([
      s.spec.check,
      s.spec.design ?? 'hw model',
      s.spec.host,
      s.spec.gen ?? '',
      s.programs,
      s.rounds,
      s.failure === null ? 0 : `1 (round ${s.failure.round})`,
    ]);
  const byProperty = new Map<string, { checks: number; programs: number; failures: number }>();
  for (const s of soaked) {
    const p = byProperty.get(s.spec.check) ?? { checks: 0, programs: 0, failures: 0 };
    byProperty.set(s.spec.check, {
      checks: p.checks + 1,
      programs: p.programs + s.programs,
      failures: p.failures + (s.failure === null ? 0 : 1),
    });
  }
  const tp = compactTable(['property', 'checks', 'programs', 'failures']);
  for (const [id, p] of byProperty) tp.push([id, p.checks, p.programs, p.failures]);
  const lines = [t.toString(), '', tp.toString()];
  const failed = soaked.filter((s) => s.failure !== null);
  for (const s of failed) {
    const f = s.failure!;
    lines.push('', `${label(f.result)} failed in round ${f.round}:`, f.result.failure?.message ?? '');
    if (f.result.report !== null) lines.push(`report: ${f.result.report.markdown} (replay: ${f.result.report.replay})`);
    else if (f.result.reportError !== null) lines.push(`no report written: ${f.result.reportError}`);
    lines.push(`replay: ${startReplay(s.spec, f.seed)}`);
  }
  const programs = soaked.reduce((a, s) => a + s.programs, 0);
  const head = `${signal !== null ? `interrupted by ${signal}: ` : ''}${plural(programs, 'program')} in ${Math.round(ms / 1000)} s, ${failed.length} failed`;
  const first = failed[0];
  lines.push(
    first !== undefined
      ? `${head} (replay the first failure: ${startReplay(first.spec, first.failure!.seed)}; the soak: ${soakReplay(o)})`
      : `${head} (replay: ${soakReplay(o)})`,
  );
  return lines.join('\n');
}

export function soakCli(argv: readonly string[]): Promise<number> {
  return guard('soak', () => soak(argv), [OutDirError]);
}
