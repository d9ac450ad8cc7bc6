/**
 * `npm start`: the main job. Until the conformance engine lands (issue #4) it is the reference
 * model's self-check: every model law, over random profiles and programs, under a run or time
 * budget, with a summary table. A failing law prints fast-check's report and exits 1.
 */

import Table from 'cli-table3';
import { Command, InvalidArgumentError, Option } from 'commander';
import fc from 'fast-check';
import { faithful, HW_LAWS } from '../properties/hw-laws.js';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function seedArg(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < -(2 ** 31) || n >= 2 ** 31)
    throw new InvalidArgumentError('must be a 32-bit integer');
  return n;
}

const program = new Command('vpmu-conformance')
  .description('Self-check of the reference Intel PMU model (the conformance engine comes with issue #4).')
  .addOption(new Option('--runs <n>', 'programs per law').argParser(positiveInt).default(2000))
  .addOption(
    new Option('--time <seconds>', 'stop each law after this long (a budget, not a failure)').argParser(
      positiveInt,
    ),
  )
  .addOption(new Option('--seed <n>', 'fast-check seed (default: fresh, printed)').argParser(seedArg))
  .addOption(new Option('--law <id...>', 'run only these laws').choices(HW_LAWS.map((l) => l.id)))
  .option('--json', 'print results as JSON')
  .showHelpAfterError('(run with --help for usage)');

program.parse();
const opts = program.opts<{ runs: number; time?: number; seed?: number; law?: string[]; json?: boolean }>();
const seed = opts.seed ?? (Date.now() ^ (process.pid << 8)) | 0;
const laws = HW_LAWS.filter((l) => opts.law === undefined || opts.law.includes(l.id));

interface Row {
  law: string;
  rule: string;
  runs: number;
  result: 'passed' | 'failed' | 'interrupted';
  ms: number;
  report?: string | undefined;
}
const rows: Row[] = [];
if (!opts.json)
  console.log(
    `self-check of the reference model: ${laws.length} laws, seed ${seed}, up to ${opts.runs} programs each`,
  );
for (const law of laws) {
  const t0 = performance.now();
  const d = fc.check(law.property(faithful), {
    seed,
    numRuns: opts.runs,
    ...(opts.time !== undefined ? { plugins: [fc.interruptAfterTimeLimit(opts.time * 1000)] } : {}),
  });
  const row: Row = {
    law: law.id,
    rule: law.rule,
    runs: d.numRuns,
    result: d.failed ? 'failed' : d.interrupted ? 'interrupted' : 'passed',
    ms: Math.round(performance.now() - t0),
    ...(d.failed ? { report: fc.defaultReportMessage(d) } : {}),
  };
  rows.push(row);
  if (!opts.json) console.log(`  ${row.result.padEnd(11)} ${law.id} (${row.runs} programs, ${row.ms} ms)`);
}

if (opts.json) {
  console.log(JSON.stringify({ seed, rows }, null, 2));
} else {
  const table = new Table({
    head: ['law', 'rule', 'programs', 'result', 'ms'],
    style: { head: [], border: [] },
  });
  for (const r of rows) table.push([r.law, r.rule, r.runs, r.result, r.ms]);
  console.log(table.toString());
  for (const r of rows.filter((x) => x.report !== undefined)) console.log(`\n${r.law} failed:\n${r.report}`);
  const failed = rows.filter((r) => r.result === 'failed').length;
  console.log(`${rows.length - failed} passed, ${failed} failed (replay: npm start -- --seed ${seed})`);
}
process.exitCode = rows.some((r) => r.result === 'failed') ? 1 : 0;
