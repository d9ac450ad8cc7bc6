/**
 * `npm start`: the main job. Runs the reference model's laws and, for each chosen vPMU design
 * (default: emulated and mediated), every property on the built-in hosts it can run on,
 * conformance once per generation profile, under a run or time budget; prints a summary table
 * (check × design × host × profile: programs, result, known divergences). A failure prints
 * fast-check's report with the seed to replay it, and the command exits 1; a failed check of the
 * five properties reports knows also gets a bug report under --out, whose path is printed.
 */

import Table from 'cli-table3';
import { Command, Option } from 'commander';
import { positiveInt, seedArg } from './args.js';
import fc from 'fast-check';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { type Check, checksFor } from '../properties/checks.js';
import { DESIGN_IDS, DESIGNS, designById } from '../designs/registry.js';
import { GENERATION_PROFILES } from '../scenarios/generation.js';
import { buildReport } from '../reports/build.js';
import { isReportProperty } from '../reports/replay.js';
import { writeReport } from '../reports/write.js';

const IDS = [...new Set(checksFor(DESIGNS[0]!).map((c) => c.id))];

const program = new Command('vpmu-conformance')
  .description('Conformance of virtual PMUs against a reference Intel PMU model.')
  .addOption(new Option('--runs <n>', 'programs per check').argParser(positiveInt).default(2000))
  .addOption(
    new Option('--time <seconds>', 'stop each check after this long (a budget, not a failure)').argParser(positiveInt),
  )
  .addOption(new Option('--seed <n>', 'fast-check seed (default: fresh, printed)').argParser(seedArg))
  .addOption(new Option('--only <id...>', 'run only these checks').choices(IDS))
  .addOption(new Option('--profile <name...>', 'properties on these hosts only').choices(Object.keys(BUILTIN_PROFILES)))
  .addOption(
    new Option('--design <id...>', 'the vPMU designs the properties run on')
      .choices(DESIGN_IDS)
      .default(['emulated', 'mediated']),
  )
  .addOption(
    new Option('--gen <name...>', 'conformance on these generation profiles only').choices([...GENERATION_PROFILES]),
  )
  .addOption(new Option('--out <dir>', 'where failure reports are written').default('reports/out'))
  .option('--json', 'print results as JSON')
  .showHelpAfterError('(run with --help for usage)');

program.parse();
const opts = program.opts<{
  runs: number;
  time?: number;
  seed?: number;
  only?: string[];
  profile?: string[];
  design: string[];
  gen?: string[];
  out: string;
  json?: boolean;
}>();
const seed = opts.seed ?? (Date.now() ^ (process.pid << 8)) | 0;
// The reference model's laws once, then every design's checks on every host it can run on.
const checks = opts.design
  .flatMap((id, i) => checksFor(designById(id)).filter((c) => i === 0 || c.design !== undefined))
  .filter(
    (c) =>
      (opts.only === undefined || opts.only.includes(c.id)) &&
      (c.profile === 'random' || opts.profile === undefined || opts.profile.includes(c.profile)) &&
      (c.gen === undefined || opts.gen === undefined || opts.gen.includes(c.gen)),
  );

interface Row {
  check: string;
  design: string;
  profile: string;
  /** The generation profile of the programs, where the check has one. */
  gen: string;
  rule: string;
  programs: number;
  result: 'passed' | 'failed' | 'interrupted';
  known: Record<string, number>;
  ms: number;
  report?: string | undefined;
  /** The bug report written for a failed check (report.md), or why there is none. */
  reportPath?: string | undefined;
  reportNote?: string | undefined;
}

/**
 * Turns a failed design check (any property reports knows) into a report under --out. Never
 * throws: a report that cannot be built must not hide fast-check's own message (toolchain.md §1.6).
 */
function fileReport(c: Check, d: fc.RunDetails<unknown>): Pick<Row, 'reportPath' | 'reportNote'> {
  if (!isReportProperty(c.id) || c.design === undefined || c.host === undefined) return {};
  try {
    const r = buildReport({
      details: d,
      property: { id: c.id, rule: c.rule },
      gen: c.gen,
      design: c.design,
      hostName: c.profile,
      host: c.host,
      found: new Date().toISOString().slice(0, 10),
      outDir: opts.out,
    });
    const w = writeReport(r, opts.out);
    return {
      reportPath: w.markdown,
      reportNote: w.written
        ? `replay: npm run replay -- ${w.json}`
        : `kept: a report with the same root cause and a program no longer than this one is there; replay: npm run replay -- ${w.json}`,
    };
  } catch (e) {
    return { reportNote: `no report written: ${e instanceof Error ? e.message : String(e)}` };
  }
}
const rows: Row[] = [];
if (!opts.json)
  console.log(`vpmu-conformance: ${checks.length} checks, seed ${seed}, up to ${opts.runs} programs each`);
for (const c of checks) {
  const known = new Map<string, number>();
  const t0 = performance.now();
  const d = fc.check(c.property(known), {
    seed,
    numRuns: opts.runs,
    ...(opts.time !== undefined ? { plugins: [fc.interruptAfterTimeLimit(opts.time * 1000)] } : {}),
  });
  const row: Row = {
    check: c.id,
    design: c.design?.id ?? 'hw model',
    profile: c.profile,
    gen: c.gen ?? '',
    rule: c.rule,
    programs: d.numRuns,
    result: d.failed ? 'failed' : d.interrupted ? 'interrupted' : 'passed',
    known: Object.fromEntries(known),
    ms: Math.round(performance.now() - t0),
    report: d.failed ? fc.defaultReportMessage(d) : undefined,
    ...(d.failed ? fileReport(c, d) : {}),
  };
  rows.push(row);
  if (!opts.json)
    console.log(
      `  ${row.result.padEnd(11)} ${c.id}${c.gen !== undefined ? `/${c.gen}` : ''} on ${row.design}, ${c.profile} (${row.programs} programs, ${row.ms} ms)`,
    );
}

if (opts.json) {
  console.log(JSON.stringify({ seed, rows }, null, 2));
} else {
  const table = new Table({
    head: ['check', 'design', 'host', 'programs of', 'programs', 'result', 'known divergences', 'ms'],
    style: { head: [], border: [] },
  });
  for (const r of rows) {
    const known = Object.values(r.known).reduce((a, b) => a + b, 0);
    table.push([
      r.check,
      r.design,
      r.profile,
      r.gen,
      r.programs,
      r.result,
      known === 0 ? '' : `${known} (${Object.keys(r.known).length} kinds)`,
      r.ms,
    ]);
  }
  console.log(table.toString());
  const kinds = new Map<string, number>();
  for (const r of rows) for (const [k, n] of Object.entries(r.known)) kinds.set(k, (kinds.get(k) ?? 0) + n);
  if (kinds.size > 0) {
    console.log('\nknown divergences met (declared in properties/expectations/):');
    for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(6)}  ${k}`);
  }
  for (const r of rows.filter((x) => x.report !== undefined)) {
    console.log(`\n${r.check}${r.gen !== '' ? `/${r.gen}` : ''} on ${r.design}, ${r.profile} failed:\n${r.report}`);
    if (r.reportPath !== undefined) console.log(`report: ${r.reportPath} (${r.reportNote})`);
    else if (r.reportNote !== undefined) console.log(r.reportNote);
  }
  const failed = rows.filter((r) => r.result === 'failed').length;
  const design = opts.design.join(',') === 'emulated,mediated' ? '' : ` --design ${opts.design.join(' ')}`;
  console.log(`${rows.length - failed} passed, ${failed} failed (replay: npm start -- --seed ${seed}${design})`);
}
process.exitCode = rows.some((r) => r.result === 'failed') ? 1 : 0;
