/**
 * `npm start`: the main job. Runs the reference model's laws and the conformance property of the
 * emulated vPMU on every built-in host, under a run or time budget, and prints a summary table
 * (check × profile: programs, result, known divergences). A failure prints fast-check's report,
 * with the seed to replay it, and the command exits 1.
 */

import Table from 'cli-table3';
import { Command, InvalidArgumentError, Option } from 'commander';
import fc from 'fast-check';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { EmulatedVcpu } from '../model/kvm/emulated/vcpu.js';
import { conformanceProperty } from '../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../properties/expectations/emulated.js';
import { faithful, HW_LAWS } from '../properties/hw-laws.js';

interface Check {
  readonly id: string;
  readonly profile: string;
  readonly rule: string;
  /** Builds the property; `known` collects declared divergences met. */
  readonly property: (known: Map<string, number>) => fc.IRawProperty<unknown, false>;
}

const CHECKS: readonly Check[] = [
  ...HW_LAWS.map((l) => ({ id: l.id, profile: 'random', rule: l.rule, property: () => l.property(faithful) })),
  ...Object.entries(BUILTIN_PROFILES).map(([name, host]) => ({
    id: 'conformance',
    profile: name,
    rule: 'design.md property 1 (emulated vPMU, quiet host)',
    property: (known: Map<string, number>) =>
      conformanceProperty({ host, design: (h, o) => new EmulatedVcpu(h, o), expectations: EMULATED_EXPECTATIONS, known }),
  })),
];
const IDS = [...new Set(CHECKS.map((c) => c.id))];

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function seedArg(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) throw new InvalidArgumentError('must be a 32-bit integer');
  return n;
}

const program = new Command('vpmu-conformance')
  .description('Conformance of virtual PMUs against a reference Intel PMU model.')
  .addOption(new Option('--runs <n>', 'programs per check').argParser(positiveInt).default(2000))
  .addOption(new Option('--time <seconds>', 'stop each check after this long (a budget, not a failure)').argParser(positiveInt))
  .addOption(new Option('--seed <n>', 'fast-check seed (default: fresh, printed)').argParser(seedArg))
  .addOption(new Option('--only <id...>', 'run only these checks').choices(IDS))
  .addOption(new Option('--profile <name...>', 'conformance on these hosts only').choices(Object.keys(BUILTIN_PROFILES)))
  .option('--json', 'print results as JSON')
  .showHelpAfterError('(run with --help for usage)');

program.parse();
const opts = program.opts<{ runs: number; time?: number; seed?: number; only?: string[]; profile?: string[]; json?: boolean }>();
const seed = opts.seed ?? ((Date.now() ^ (process.pid << 8)) | 0);
const checks = CHECKS.filter(
  (c) =>
    (opts.only === undefined || opts.only.includes(c.id)) &&
    (c.profile === 'random' || opts.profile === undefined || opts.profile.includes(c.profile)),
);

interface Row {
  check: string;
  profile: string;
  rule: string;
  programs: number;
  result: 'passed' | 'failed' | 'interrupted';
  known: Record<string, number>;
  ms: number;
  report?: string | undefined;
}
const rows: Row[] = [];
if (!opts.json) console.log(`vpmu-conformance: ${checks.length} checks, seed ${seed}, up to ${opts.runs} programs each`);
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
    profile: c.profile,
    rule: c.rule,
    programs: d.numRuns,
    result: d.failed ? 'failed' : d.interrupted ? 'interrupted' : 'passed',
    known: Object.fromEntries(known),
    ms: Math.round(performance.now() - t0),
    report: d.failed ? fc.defaultReportMessage(d) : undefined,
  };
  rows.push(row);
  if (!opts.json) console.log(`  ${row.result.padEnd(11)} ${c.id} on ${c.profile} (${row.programs} programs, ${row.ms} ms)`);
}

if (opts.json) {
  console.log(JSON.stringify({ seed, rows }, null, 2));
} else {
  const table = new Table({
    head: ['check', 'profile', 'programs', 'result', 'known divergences', 'ms'],
    style: { head: [], border: [] },
  });
  for (const r of rows) {
    const known = Object.values(r.known).reduce((a, b) => a + b, 0);
    table.push([r.check, r.profile, r.programs, r.result, known === 0 ? '' : `${known} (${Object.keys(r.known).length} kinds)`, r.ms]);
  }
  console.log(table.toString());
  const kinds = new Map<string, number>();
  for (const r of rows) for (const [k, n] of Object.entries(r.known)) kinds.set(k, (kinds.get(k) ?? 0) + n);
  if (kinds.size > 0) {
    console.log('\nknown divergences met (src/properties/expectations/emulated.ts):');
    for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(6)}  ${k}`);
  }
  for (const r of rows.filter((x) => x.report !== undefined)) console.log(`\n${r.check} on ${r.profile} failed:\n${r.report}`);
  const failed = rows.filter((r) => r.result === 'failed').length;
  console.log(`${rows.length - failed} passed, ${failed} failed (replay: npm start -- --seed ${seed})`);
}
process.exitCode = rows.some((r) => r.result === 'failed') ? 1 : 0;
