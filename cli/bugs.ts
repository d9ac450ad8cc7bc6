/**
 * `npm run bugs`: runs every ported row of the bug catalogue (../shared/bugs.md) through the
 * check that must find it, over several seeds, and prints per bug: the commit, the check, the
 * median programs and wall time to the first failure, the shrunk length against the minimal
 * trigger, and the report. `--json` prints the same for machines.
 */

import Table from 'cli-table3';
import { Command, Option } from 'commander';
import { positiveInt, seedArg } from './args.js';
import { CATALOGUE, OUT_OF_SCOPE } from '../catalogue/catalogue.js';
import { type Measurement, measure } from '../catalogue/measure.js';

const ROWS = CATALOGUE.map((b) => String(b.row));

const program = new Command('npm run bugs')
  .description('Detection power on the historical KVM bug catalogue (../shared/bugs.md).')
  .addOption(new Option('--seeds <n>', 'seeds per bug (the table shows medians)').argParser(positiveInt).default(5))
  .addOption(new Option('--seed <n>', 'first seed; seed i is this + i').argParser(seedArg).default(1))
  .addOption(new Option('--runs <n>', 'program budget per seed').argParser(positiveInt).default(1000))
  .addOption(new Option('--only <row...>', 'only these bugs.md rows').choices(ROWS))
  .option('--json', 'print results as JSON')
  .showHelpAfterError('(run with --help for usage)');
program.parse();
const opts = program.opts<{ seeds: number; seed: number; runs: number; only?: string[]; json?: boolean }>();

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Row {
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
}

const entries = CATALOGUE.filter((b) => opts.only === undefined || opts.only.includes(String(b.row)));
const rows: Row[] = [];
if (!opts.json)
  console.log(
    `npm run bugs: ${entries.length} ported rows × ${opts.seeds} seeds (from ${opts.seed}), ${opts.runs} programs each`,
  );
for (const b of entries) {
  const ms: Measurement[] = [];
  for (let i = 0; i < opts.seeds; i++) ms.push(measure(b, opts.seed + i, opts.runs));
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
    example: found[0]?.program?.map(String) ?? null,
  };
  rows.push(r);
  if (!opts.json)
    console.log(
      `  #${String(b.row).padEnd(3)} ${r.detected}/${opts.seeds} found, median ${r.medianPrograms} programs, ${r.medianMs} ms`,
    );
}

const ok = rows.every((r) => r.detected === opts.seeds && r.maxShrunk !== null && r.maxShrunk <= r.minimalTrigger + 1);
if (opts.json) {
  console.log(
    JSON.stringify(
      { seeds: opts.seeds, firstSeed: opts.seed, runs: opts.runs, rows, outOfScope: OUT_OF_SCOPE },
      null,
      2,
    ),
  );
} else {
  const table = new Table({
    head: ['#', 'commit', 'check', 'host', 'found', 'programs', 'ms', 'shrunk / trigger', 'report'],
    style: { head: [], border: [] },
  });
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
  const slow = rows.filter((r) => r.medianMs >= 1000).length;
  console.log(
    `\n${rows.filter((r) => r.detected === opts.seeds).length}/${rows.length} detected on every seed; ` +
      `${rows.length - slow}/${rows.length} under 1 s median; ` +
      `${rows.filter((r) => r.maxShrunk !== null && r.maxShrunk <= r.minimalTrigger + 1).length}/${rows.length} shrunk to trigger + 1 or less`,
  );
}
process.exitCode = ok ? 0 : 1;
