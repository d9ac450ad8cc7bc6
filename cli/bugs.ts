/**
 * `vpmu-conformance bugs` (`npm run bugs`): runs every ported row of the bug catalogue (docs/bugs.md)
 * through the check that must find it, over several seeds, and prints per bug: the commit, the check, the median programs and wall time to the first
 * failure, the shrunk length against the minimal trigger, and the report. Two targets per row: found
 * on every seed, and shrunk to at most the trigger plus one command; a miss is named with its
 * distance and the command exits 1. `--json` prints the same for machines. The seeds run on a pool
 * of worker threads (--workers); the table does not depend on how many.
 */

import { Command, Option } from 'commander';
import { positiveInt, seedArg } from './args.js';
import { CATALOGUE, OUT_OF_SCOPE } from '../catalogue/catalogue.js';
import { defaultWorkers, inLanes, workerPool } from './check_runner.js';
import type { BugSeed, FaultSeed } from './check_worker.js';
import { EQUIVALENT_FAULTS, FAULTS, type PlantedFault } from '../catalogue/faults.js';
import { OutDirError, checkOutputFile, writeFileAtomic } from '../reports/out_dir.js';
import { EXIT, EXIT_HELP, guard, stopOn } from './exit.js';
import { BUGS_FORMAT } from './formats.js';
import { compactTable, jsonTarget, plural } from './output.js';
import type { BugsResults } from './results.js';

const ROWS = CATALOGUE.map((b) => String(b.row));
const FAULT_IDS = FAULTS.map((f) => f.id);
/** How many commands past the minimal trigger a shrunk program may keep. */
export const SHRINK_SLACK = 1;

function command(): Command {
  return new Command('vpmu-conformance bugs')
    .description('Detection power on the historical KVM bug catalogue (npm run bugs -- [options]).')
    .addOption(new Option('--seeds <n>', 'seeds per bug (the table shows medians)').argParser(positiveInt).default(5))
    .addOption(new Option('--seed <n>', 'first seed; seed i is this + i').argParser(seedArg).default(1))
    .addOption(new Option('--runs <n>', 'program budget per seed').argParser(positiveInt).default(1000))
    .addOption(new Option('--only <row...>', 'only these catalogue rows (and no planted fault)').choices(ROWS))
    .addOption(
      new Option('--fault <id...>', 'only these planted faults (beside the rows of --only)').choices(FAULT_IDS),
    )
    .option('--no-faults', 'the catalogue alone, without the planted faults')
    .option('--json [file]', `results as JSON (format ${BUGS_FORMAT}), on stdout or to FILE`)
    .addOption(
      new Option('--workers <n>', 'worker threads measuring seeds (the results do not depend on it)')
        .argParser(positiveInt)
        .default(defaultWorkers(), 'one per available core'),
    )
    .addHelpText('after', `\n${EXIT_HELP}`)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export interface Row {
  row: number;
  subject: string;
  fixedBy: string | null;
  design: string;
  check: string;
  host: string;
  seeds: number[];
  detected: number;
  medianPrograms: number;
  medianMs: number;
  minimalTrigger: number;
  medianShrunk: number | null;
  maxShrunk: number | null;
  report: string | null;
  /** The shrunk program of the first seed that found it. */
  example: string[] | null;
  /** The targets it missed, each with how far off it was. */
  missed: string[];
}

/** A planted fault measured: what it changes, where, and how the search found it. */
export interface FaultRow {
  id: string;
  file: string;
  fn: string;
  class: string;
  change: string;
  design: string;
  check: string;
  gen: string | null;
  host: string;
  seeds: number[];
  detected: number;
  medianPrograms: number;
  medianMs: number;
  medianShrunk: number | null;
  maxShrunk: number | null;
  example: string[] | null;
  missed: string[];
}

/** The seeds where the faithful base design failed the same programs first, as a clause of a missed line. */
function baseFirst(ms: readonly FaultSeed[]): string {
  const seeds = ms.filter((m) => m.baseFailedFirst).map((m) => m.seed);
  return seeds.length === 0
    ? ''
    : `; on seed${seeds.length > 1 ? 's' : ''} ${seeds.join(', ')} the faithful design failed first`;
}

function faultRow(f: PlantedFault, ms: readonly FaultSeed[]): FaultRow {
  const found = ms.filter((m) => m.found);
  const shrunk = found.map((m) => m.shrunk ?? 0);
  return {
    id: f.id,
    file: f.file,
    fn: f.fn,
    class: f.cls,
    change: f.change,
    design: f.design.id,
    check: f.check,
    gen: f.gen ?? null,
    host: f.host,
    seeds: ms.map((m) => m.seed),
    detected: found.length,
    medianPrograms: median(ms.map((m) => m.programs)),
    medianMs: Math.round(median(ms.map((m) => m.msToFirst)) * 10) / 10,
    medianShrunk: shrunk.length > 0 ? median(shrunk) : null,
    maxShrunk: shrunk.length > 0 ? Math.max(...shrunk) : null,
    example: found[0]?.example?.slice() ?? null,
    missed:
      found.length < ms.length
        ? [
            `found on ${found.length} of ${ms.length} seeds (target: every seed; ${ms.length - found.length} short)${baseFirst(ms)}`,
          ]
        : [],
  };
}

/** A target a row missed, in words, with how far off it was. */
export function misses(r: Row, seeds: number): string[] {
  const m: string[] = [];
  if (r.detected < seeds)
    m.push(`found on ${r.detected} of ${seeds} seeds (target: every seed; ${seeds - r.detected} short)`);
  const limit = r.minimalTrigger + SHRINK_SLACK;
  if (r.maxShrunk !== null && r.maxShrunk > limit)
    m.push(
      `shrunk to ${plural(r.maxShrunk, 'command')} on its worst seed (target: at most ${limit}, the minimal trigger ${r.minimalTrigger} + ${SHRINK_SLACK}; ${r.maxShrunk - limit} over)`,
    );
  return m;
}

async function bugs(argv: readonly string[]): Promise<number> {
  const cli = command();
  cli.parse([...argv], { from: 'user' });
  const opts = cli.opts<{
    seeds: number;
    seed: number;
    runs: number;
    only?: string[];
    fault?: string[];
    faults: boolean;
    json?: string | boolean;
    workers: number;
  }>();
  const json = jsonTarget(opts.json, 'bugs');
  if (json !== null && json !== 'stdout') checkOutputFile('--json', json);
  const say = json === 'stdout' ? (t: string) => console.error(t) : (t: string) => console.log(t);

  const entries = CATALOGUE.filter((b) =>
    opts.only === undefined ? opts.fault === undefined : opts.only.includes(String(b.row)),
  );
  const plantedFaults = FAULTS.filter((f) =>
    !opts.faults ? false : opts.fault !== undefined ? opts.fault.includes(f.id) : opts.only === undefined,
  );
  const pool = workerPool(Math.max(1, Math.min(opts.workers, (entries.length + plantedFaults.length) * opts.seeds)));
  const stop = stopOn(
    'the seeds under way',
    () => undefined,
    () => process.exit(EXIT.interrupted),
  );
  // Every (row, seed) is a task; a row is tabulated once all its seeds are in, rows in catalogue order.
  const seeds: (BugSeed | undefined)[][] = entries.map(() => Array.from({ length: opts.seeds }));
  const rows: Row[] = [];
  const complete = (k: number) => seeds[k]!.every((m) => m !== undefined);
  const tabulate = () => {
    for (; rows.length < entries.length && complete(rows.length);) {
      const b = entries[rows.length]!;
      const ms = seeds[rows.length] as BugSeed[];
      const found = ms.filter((m) => m.found);
      const shrunk = found.map((m) => m.shrunk ?? 0);
      const r: Row = {
        row: b.row,
        subject: b.subject,
        fixedBy: b.fixedBy,
        design: b.design.id,
        check: b.check,
        host: b.host,
        seeds: ms.map((m) => m.seed),
        detected: found.length,
        medianPrograms: median(ms.map((m) => m.programs)),
        medianMs: Math.round(median(ms.map((m) => m.msToFirst)) * 10) / 10,
        minimalTrigger: b.minimalTrigger,
        medianShrunk: shrunk.length > 0 ? median(shrunk) : null,
        maxShrunk: shrunk.length > 0 ? Math.max(...shrunk) : null,
        report: b.report ?? null,
        example: found[0]?.example?.slice() ?? null,
        missed: [],
      };
      r.missed = misses(r, opts.seeds);
      rows.push(r);
      say(
        `  #${String(b.row).padEnd(3)} ${r.detected}/${opts.seeds} found, median ${r.medianPrograms} programs, ${r.medianMs} ms`,
      );
    }
  };
  // The planted faults after the rows, tabulated the same way, in the order of catalogue/faults.ts.
  const faultSeeds: (FaultSeed | undefined)[][] = plantedFaults.map(() => Array.from({ length: opts.seeds }));
  const faultRows: FaultRow[] = [];
  const tabulateFaults = () => {
    for (; faultRows.length < plantedFaults.length && faultSeeds[faultRows.length]!.every((m) => m !== undefined);) {
      const f = plantedFaults[faultRows.length]!;
      const r = faultRow(f, faultSeeds[faultRows.length] as FaultSeed[]);
      faultRows.push(r);
      say(`  ${f.id} ${r.detected}/${opts.seeds} found, median ${r.medianPrograms} programs, ${r.medianMs} ms`);
    }
  };
  say(
    `npm run bugs: ${entries.length} ported rows${plantedFaults.length > 0 ? ` and ${plantedFaults.length} planted faults` : ''} × ${opts.seeds} seeds (from ${opts.seed}), ${opts.runs} programs each`,
  );
  try {
    const rowTasks = entries.length * opts.seeds;
    await inLanes(rowTasks + plantedFaults.length * opts.seeds, pool.workers, async (t) => {
      if (stop.cause() !== null) return;
      if (t < rowTasks) {
        const k = Math.floor(t / opts.seeds);
        const i = t % opts.seeds;
        seeds[k]![i] = await pool.bug(entries[k]!.row, opts.seed + i, opts.runs);
        tabulate();
        return;
      }
      const k = Math.floor((t - rowTasks) / opts.seeds);
      const i = (t - rowTasks) % opts.seeds;
      faultSeeds[k]![i] = await pool.fault(plantedFaults[k]!.id, opts.seed + i, opts.runs);
      tabulateFaults();
    });
  } finally {
    stop.off();
    await pool.close();
  }
  const signal = stop.cause();

  const missedRows = rows.filter((r) => r.missed.length > 0);
  const missedFaults = faultRows.filter((r) => r.missed.length > 0);
  const status =
    signal !== null ? EXIT.interrupted : missedRows.length + missedFaults.length > 0 ? EXIT.failed : EXIT.passed;
  const totals = {
    rows: entries.length,
    measured: rows.length,
    detectedOnEverySeed: rows.filter((r) => r.detected === opts.seeds).length,
    shrunkWithinTarget: rows.filter((r) => r.maxShrunk !== null && r.maxShrunk <= r.minimalTrigger + SHRINK_SLACK)
      .length,
    missedTargets: missedRows.length,
    faults: plantedFaults.length,
    faultsMeasured: faultRows.length,
    faultsDetectedOnEverySeed: faultRows.filter((r) => r.detected === opts.seeds).length,
    faultsMissed: missedFaults.length,
  };
  const replay = `npm run bugs -- --seeds ${opts.seeds} --seed ${opts.seed} --runs ${opts.runs}${opts.only !== undefined ? ` --only ${opts.only.join(' ')}` : ''}${opts.fault !== undefined ? ` --fault ${opts.fault.join(' ')}` : ''}${opts.faults ? '' : ' --no-faults'}`;
  const results: BugsResults = {
    format: BUGS_FORMAT,
    command: 'bugs',
    exitStatus: status,
    interruptedBy: signal,
    seeds: opts.seeds,
    firstSeed: opts.seed,
    runs: opts.runs,
    replay,
    totals,
    rows,
    outOfScope: OUT_OF_SCOPE.map((o) => ({ ...o })),
    faults: faultRows,
    equivalentFaults: EQUIVALENT_FAULTS.map((e) => ({ ...e })),
  };
  const text = `${JSON.stringify(results, null, 2)}\n`;
  if (json === 'stdout') process.stdout.write(text);
  else {
    const table = compactTable([
      '#',
      'commit',
      'check',
      'host',
      'found',
      'programs',
      'ms',
      'shrunk / trigger',
      'report',
    ]);
    for (const r of rows)
      table.push([
        r.row,
        r.fixedBy ?? '(none)',
        r.check,
        r.host,
        `${r.detected}/${opts.seeds}`,
        r.medianPrograms,
        r.medianMs,
        r.medianShrunk === null ? '—' : `${r.medianShrunk} (max ${r.maxShrunk}) / ${r.minimalTrigger}`,
        r.report ?? '',
      ]);
    console.log(table.toString());
    if (OUT_OF_SCOPE.length > 0) {
      console.log('\nout of scope:');
      for (const o of OUT_OF_SCOPE) console.log(`  #${o.row} ${o.subject}: ${o.reason}`);
    }
    if (missedRows.length > 0) {
      console.log('\nmissed targets:');
      for (const r of missedRows) for (const m of r.missed) console.log(`  #${r.row} (${r.check} on ${r.host}): ${m}`);
    }
    if (faultRows.length > 0) printFaults(faultRows, opts.seeds);
    const slow = rows.filter((r) => r.medianMs >= 1000).length;
    console.log(
      `\n${signal !== null ? `interrupted by ${signal as string} after ${rows.length} of ${entries.length} rows: ` : ''}` +
        `${totals.detectedOnEverySeed}/${rows.length} detected on every seed; ` +
        `${rows.length - slow}/${rows.length} under 1 s median; ` +
        `${totals.shrunkWithinTarget}/${rows.length} shrunk to trigger + ${SHRINK_SLACK} or less` +
        `${missedRows.length > 0 ? `; ${plural(missedRows.length, 'row')} missed a target (above)` : ''} (replay: ${replay})`,
    );
  }
  if (json !== null && json !== 'stdout') writeFileAtomic(json, text);
  return status;
}

export function bugsCli(argv: readonly string[]): Promise<number> {
  return guard('bugs', () => bugs(argv), [OutDirError]);
}

/** The planted faults' table, the equivalent ones with their argument, and a line of totals. */
function printFaults(rows: readonly FaultRow[], seeds: number): void {
  const table = compactTable([
    'planted fault',
    'file: function',
    'class',
    'check',
    'found',
    'programs',
    'ms',
    'shrunk',
  ]);
  for (const r of rows)
    table.push([
      r.id,
      `${r.file.replace(/^model\//, '')}: ${r.fn}`,
      r.class,
      r.gen === null ? r.check : `${r.check}/${r.gen}`,
      `${r.detected}/${seeds}`,
      r.medianPrograms,
      r.medianMs,
      r.medianShrunk === null ? '—' : `${r.medianShrunk} (max ${r.maxShrunk})`,
    ]);
  console.log(`\nplanted faults (catalogue/faults.ts):\n${table.toString()}`);
  console.log('\nequivalent, kept out of the count:');
  for (const e of EQUIVALENT_FAULTS) console.log(`  ${e.id} (${e.file}: ${e.fn}, ${e.change}): ${e.why}`);
  const missed = rows.filter((r) => r.missed.length > 0);
  if (missed.length > 0) {
    console.log('\nmissed planted faults:');
    for (const r of missed) for (const m of r.missed) console.log(`  ${r.id} (${r.check} on ${r.host}): ${m}`);
  }
  const found = rows.filter((r) => r.detected > 0);
  const programs = found.map((r) => r.medianPrograms);
  const shrunk = found.flatMap((r) => (r.medianShrunk === null ? [] : [r.medianShrunk]));
  console.log(
    `\n${rows.length - missed.length}/${rows.length} planted faults detected on every seed; median programs to find ${programs.length > 0 ? median(programs) : '—'}; median shrunk length ${shrunk.length > 0 ? median(shrunk) : '—'}`,
  );
}
