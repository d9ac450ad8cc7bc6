/**
 * `npm run mutation`: Stryker over the KVM designs and the host perf model, one source file per
 * Stryker run, so that a run of several hours can stop and resume at any file and every file gets
 * its own score. Each run writes reports/out/mutation/<file>.json (Stryker's JSON report for that
 * file, plus the source's hash); the merged report is reports/out/mutation.json and the table of
 * scores per file reports/out/mutation.md. A file whose source, tests and Stryker configuration are
 * unchanged since its last report is not run again unless --fresh. A file longer than PART_LINES is
 * run in parts (Stryker's `file:from-to` ranges, cut between top-level declarations or class
 * members, where no mutant spans the cut), each with its own report, so that a file of hours
 * resumes part by part; its score is the parts' together.
 *
 *   npm run mutation                                   # every file of model/kvm and model/host
 *   npm run mutation -- --only model/kvm/common/pmu.ts # one file (repeatable)
 *   npm run mutation -- --only model/host/perf.ts:1-300 # one part of a file split in parts
 *   npm run mutation -- --report                       # merge and print what is there, run nothing
 */

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Command } from 'commander';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'reports/out/mutation');
const BASE_CONFIG = join(ROOT, 'stryker.config.json');

/** What is mutated: the ported kernel code, not the patches planted in it nor its decision tables. */
const TREES = ['model/kvm', 'model/host'];
const LEFT_OUT = [/\/bugs\//, /\/faults\//, /\/decisions\.ts$/, /\/index\.ts$/, /\/types\.ts$/];

/** Mutant states Stryker reports, and which of them the score counts as detected. */
const DETECTED = ['Killed', 'Timeout'];
const UNDETECTED = ['Survived', 'NoCoverage'];

interface FileReport {
  readonly file: string;
  readonly hash: string;
  /** Stryker's report entry of the file: its source and mutants. */
  readonly result: { readonly language: string; readonly source: string; readonly mutants: readonly Mutant[] };
  readonly seconds: number;
}

interface Mutant {
  readonly id: string;
  readonly mutatorName: string;
  readonly status: string;
  readonly replacement?: string;
  readonly location: { readonly start: { readonly line: number; readonly column: number } };
}

const program = new Command('npm run mutation')
  .description('Mutation score of model/kvm and model/host, one Stryker run per source file.')
  .option('--only <file...>', 'only these source files')
  .option('--fresh', 'run files whose report is up to date again')
  .option('--report', 'only merge the per-file reports and print the table')
  .option('--concurrency <n>', 'Stryker test-runner processes', '2')
  .option('--together', 'one Stryker run over the files (one initial test run), split into per-file reports')
  .showHelpAfterError('(run with --help for usage)');
program.parse();
const opts = program.opts<{
  only?: string[];
  fresh?: boolean;
  report?: boolean;
  concurrency: string;
  together?: boolean;
}>();

function sources(): string[] {
  const out: string[] = [];
  for (const t of TREES)
    for (const f of readdirSync(join(ROOT, t), { recursive: true, encoding: 'utf8' })) {
      const rel = `${t}/${f}`;
      if (rel.endsWith('.ts') && !LEFT_OUT.some((r) => r.test(rel))) out.push(rel);
    }
  return out.sort();
}

const slug = (unit: string) => unit.replace(/[/.:-]/g, '_');
const reportPath = (unit: string) => join(OUT, `${slug(unit)}.json`);

/** Lines per Stryker run: a part of host perf.ts still takes most of an hour on two cores. */
const PART_LINES = 300;

/**
 * What one Stryker run mutates: the whole file, or for a long file its parts as Stryker ranges (`file:from-to`). A
 * cut goes before a top-level declaration or a class member (or the doc comment above it) that follows a closing
 * brace or a blank line, so no mutant spans it; each part is about PART_LINES long.
 */
function unitsOf(file: string): string[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  if (lines.length <= PART_LINES * 2) return [file];
  const cuttable = (i: number) =>
    /^( {2})?(\/\*\*|[A-Za-z_#])/.test(lines[i]!) && /^( {2})?}?$/.test(lines[i - 1]!.trimEnd());
  const cuts = [1];
  for (let i = PART_LINES; i < lines.length - PART_LINES / 2; i++)
    if (i + 1 - cuts[cuts.length - 1]! >= PART_LINES && cuttable(i)) cuts.push(i + 1);
  return cuts.map((from, k) => `${file}:${from}-${k + 1 < cuts.length ? cuts[k + 1]! - 1 : lines.length}`);
}

const fileOf = (unit: string) => unit.replace(/:\d+-\d+$/, '');

/** The hash that decides whether a file's (or part's) report is current: its source and range, every test, the configs. */
function hashOf(unit: string, testsHash: string): string {
  return createHash('sha256')
    .update(readFileSync(join(ROOT, fileOf(unit))))
    .update(unit)
    .update(testsHash)
    .digest('hex');
}

function treeHash(): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const f of readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' }).sort())
      if (f.endsWith('.ts')) h.update(f).update(readFileSync(join(ROOT, dir, f)));
  };
  // What a mutant is tested against: the tests and every non-mutated layer they run through.
  for (const d of ['test', 'model', 'scenarios', 'properties', 'designs', 'catalogue', 'compare', 'reports']) walk(d);
  h.update(readFileSync(BASE_CONFIG)).update(readFileSync(join(ROOT, 'vitest.mutation.config.ts')));
  return h.digest('hex');
}

function current(unit: string, hash: string): boolean {
  if (!existsSync(reportPath(unit))) return false;
  const r = JSON.parse(readFileSync(reportPath(unit), 'utf8')) as FileReport;
  return r.hash === hash;
}

/** One Stryker run mutating `files` (files or parts, with their hashes); each one's entry of its report is written apart. */
async function runStryker(files: readonly string[], hashes: readonly string[]): Promise<void> {
  mkdirSync(join(OUT, 'cfg'), { recursive: true });
  const base = JSON.parse(readFileSync(BASE_CONFIG, 'utf8')) as Record<string, unknown>;
  const name = files.length === 1 ? slug(files[0]!) : `group_${slug(files[0]!)}_${files.length}`;
  const json = join(OUT, 'cfg', `${name}.stryker.json`);
  const cfg = {
    ...base,
    mutate: files,
    incrementalFile: relative(ROOT, join(OUT, 'cfg', `${name}.incremental.json`)),
    jsonReporter: { fileName: relative(ROOT, json) },
    reporters: ['json', 'progress'],
    concurrency: Number(opts.concurrency),
    // The initial run is the whole mutation suite once: on a shared, loaded machine it takes far longer than 5 minutes.
    dryRunTimeoutMinutes: 90,
    // A static mutant (a module-level value) runs every test: hours per file on two cores. They are reported as ignored.
    ignoreStatic: true,
  };
  const cfgFile = join(OUT, 'cfg', `${name}.config.json`);
  writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  const t0 = performance.now();
  const r = await stryker(relative(ROOT, cfgFile));
  if (!r.noMutants && r.status !== 0)
    throw new Error(`stryker on ${files.join(', ')} exited with ${r.status ?? r.signal}`);
  // A file of types or a table of function references has nothing to mutate: no Stryker report, an empty entry below.
  const report = r.noMutants
    ? { files: {} }
    : (JSON.parse(readFileSync(json, 'utf8')) as { files: Record<string, FileReport['result']> });
  const seconds = Math.round((performance.now() - t0) / 1000 / files.length);
  files.forEach((file, i) => {
    const found = Object.entries(report.files).find(([f]) => f.endsWith(fileOf(file)))?.[1];
    const result = found ?? {
      language: 'typescript',
      source: readFileSync(join(ROOT, fileOf(file)), 'utf8'),
      mutants: [],
    };
    // A part's mutant ids start again at 0: prefixed with its first line, they stay unique in the merged report.
    const range = /:(\d+)-(\d+)$/.exec(file);
    const mutants =
      range === null
        ? result.mutants
        : result.mutants
            .filter((m) => m.location.start.line >= Number(range[1]) && m.location.start.line <= Number(range[2]))
            .map((m) => ({ ...m, id: `${range[1]}.${m.id}` }));
    const out: FileReport = { file, hash: hashes[i]!, result: { ...result, mutants }, seconds };
    writeFileSync(reportPath(file), JSON.stringify(out));
  });
}

/** Stryker's line for a run with nothing to mutate: it would go on to run every test for no mutant, then fail. */
const NO_MUTANTS = /Instrumented \d+ source file\(s\) with 0 mutant\(s\)/;

/** Runs Stryker in its own process group, its output shown as it comes; stopped at once if it has nothing to mutate. */
function stryker(cfgFile: string): Promise<{ status: number | null; signal: string | null; noMutants: boolean }> {
  return new Promise((resolve) => {
    const p = spawn('npx', ['stryker', 'run', cfgFile], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, FC_SEED: '20261122', FC_QUIET: '1' },
      detached: true,
    });
    const stop = () => {
      try {
        process.kill(-p.pid!, 'SIGTERM');
      } catch {
        // already gone
      }
    };
    // An interrupt stops Stryker's runners too; the files scored so far keep their reports.
    const interrupted = () => {
      stop();
      process.exit(130);
    };
    process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
    let noMutants = false;
    let tail = '';
    p.stdout.on('data', (b: Buffer) => {
      process.stdout.write(b);
      tail = (tail + b.toString()).slice(-2000);
      if (!noMutants && NO_MUTANTS.test(tail)) {
        noMutants = true;
        stop();
      }
    });
    p.on('close', (status, signal) => {
      process.off('SIGINT', interrupted).off('SIGTERM', interrupted);
      resolve({ status, signal, noMutants });
    });
  });
}

interface Score {
  readonly file: string;
  readonly detected: number;
  readonly undetected: number;
  readonly other: number;
  readonly score: number | null;
  readonly seconds: number;
  readonly survivors: readonly Mutant[];
}

function scoreOf(r: FileReport): Score {
  const count = (states: readonly string[]) => r.result.mutants.filter((m) => states.includes(m.status)).length;
  const detected = count(DETECTED);
  const undetected = count(UNDETECTED);
  return {
    file: r.file,
    detected,
    undetected,
    other: r.result.mutants.length - detected - undetected,
    score: detected + undetected === 0 ? null : (100 * detected) / (detected + undetected),
    seconds: r.seconds,
    survivors: r.result.mutants.filter((m) => UNDETECTED.includes(m.status)),
  };
}

const pct = (x: number | null) => (x === null ? 'n/a' : `${x.toFixed(1)} %`);

/** A file's report: its own, or its parts' put together (null while none is scored), and the parts still missing. */
function fileReport(file: string): { report: FileReport | null; missing: string[] } {
  const units = unitsOf(file);
  const done = units.filter((u) => existsSync(reportPath(u)));
  const parts = done.map((u) => JSON.parse(readFileSync(reportPath(u), 'utf8')) as FileReport);
  const missing = units.filter((u) => !done.includes(u));
  if (parts.length === 0) return { report: null, missing };
  if (units.length === 1) return { report: parts[0]!, missing };
  const label = missing.length === 0 ? file : `${file} (${parts.length} of ${units.length} parts)`;
  return {
    report: {
      file: label,
      hash: '',
      result: { ...parts[0]!.result, mutants: parts.flatMap((r) => r.result.mutants) },
      seconds: parts.reduce((a, r) => a + r.seconds, 0),
    },
    missing,
  };
}

function merge(files: readonly string[]): void {
  const byFile = files.map((f) => ({ f, ...fileReport(f) }));
  const reports = byFile.flatMap((x) => (x.report === null ? [] : [x.report]));
  const scores = reports.map(scoreOf);
  const detected = scores.reduce((a, s) => a + s.detected, 0);
  const undetected = scores.reduce((a, s) => a + s.undetected, 0);
  const total = detected + undetected === 0 ? null : (100 * detected) / (detected + undetected);
  writeFileSync(
    join(ROOT, 'reports/out/mutation.json'),
    JSON.stringify({
      schemaVersion: '1',
      thresholds: { high: 85, low: 60 },
      files: Object.fromEntries(byFile.flatMap((x) => (x.report === null ? [] : [[x.f, x.report.result]]))),
    }),
  );
  const lines = [
    '| file | mutants | detected | survived or uncovered | score | minutes |',
    '|---|---|---|---|---|---|',
    ...scores.map(
      (s) =>
        `| \`${s.file}\` | ${s.detected + s.undetected + s.other} | ${s.detected} | ${s.undetected} | ${pct(s.score)} | ${Math.round(s.seconds / 60)} |`,
    ),
    `| **all ${scores.length} files** | | ${detected} | ${undetected} | **${pct(total)}** | ${Math.round(scores.reduce((a, s) => a + s.seconds, 0) / 60)} |`,
  ];
  const missing = byFile.flatMap((x) => x.missing);
  if (missing.length > 0) lines.push('', `not scored yet: ${missing.map((f) => `\`${f}\``).join(', ')}`);
  const survivors = scores.flatMap((s) =>
    s.survivors.map(
      (m) =>
        `- \`${s.file}:${m.location.start.line}\` ${m.mutatorName} ${m.status}${m.replacement !== undefined ? `: \`${m.replacement.replace(/\s+/g, ' ').slice(0, 80)}\`` : ''}`,
    ),
  );
  writeFileSync(
    join(ROOT, 'reports/out/mutation.md'),
    [...lines, '', '## Undetected mutants', '', ...survivors, ''].join('\n'),
  );
  console.log(lines.join('\n'));
  console.log(
    `\n(reports/out/mutation.md lists the ${survivors.length} undetected mutants; reports/out/mutation.json is the merged Stryker report)`,
  );
}

const all = sources();
const allUnits = all.flatMap(unitsOf);
// A file given whole runs all its parts; a part is given as `npm run mutation` prints it.
const unknown = (opts.only ?? []).filter((f) => !all.includes(f) && !allUnits.includes(f));
if (unknown.length > 0) {
  const parts = allUnits.filter((u) => u !== fileOf(u));
  console.error(
    `npm run mutation: not a mutated source file or part: ${unknown.join(', ')} (known: ${all.join(', ')}; parts: ${parts.join(', ')})`,
  );
  process.exit(2);
}
const files = (opts.only ?? all).flatMap((f) => (all.includes(f) ? unitsOf(f) : [f]));
if (opts.report !== true) {
  const tests = treeHash();
  const due = files.filter((f, i) => {
    if (opts.fresh !== true && current(f, hashOf(f, tests))) {
      console.log(`[${i + 1}/${files.length}] ${f}: report up to date`);
      return false;
    }
    return true;
  });
  if (opts.together === true && due.length > 0) {
    console.log(`${due.length} files in one Stryker run: ${due.join(', ')}`);
    await runStryker(
      due,
      due.map((f) => hashOf(f, tests)),
    );
  } else
    for (const [i, f] of due.entries()) {
      console.log(`[${i + 1}/${due.length}] ${f}`);
      await runStryker([f], [hashOf(f, tests)]);
      merge(all);
    }
}
merge(all);
