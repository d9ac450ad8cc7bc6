/**
 * `vpmu-conformance merge` (`npm run merge -- a.json b.json …`): joins the `start --json` results of
 * the shards of one run (`npm start -- --shard i/n`, on as many machines as a CI matrix has) into the
 * table, the exit status and the JSON the unsharded run would have given: the checks back in the
 * plan's order, totals and declared divergences over all of them, one fast-check report per root
 * cause. The shards must be every share of the same run (same seed, same flags), each once.
 */

import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { ZodError } from 'zod';
import { checkOutputFile, OutDirError, writeFileAtomic } from '../reports/out_dir.js';
import { EXIT, EXIT_HELP, guard, InputError } from './exit.js';
import { summary, totalsOf } from './main.js';
import { jsonTarget } from './output.js';
import { RESULTS_FORMAT } from './formats.js';
import { type CheckResult, parseStartResults, type StartResults } from './results.js';

function command(): Command {
  return new Command('vpmu-conformance merge')
    .description('Join the --json results of the shards of one run (npm run merge -- a.json b.json ...).')
    .argument('<file...>', 'start --json results, one per shard (--shard i/n), every shard once')
    .option('--json [file]', `the merged results as JSON (format ${RESULTS_FORMAT}), on stdout or to FILE`)
    .addHelpText('after', `\n${EXIT_HELP}`)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
}

function read(file: string): StartResults {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(`${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    return parseStartResults(JSON.parse(text));
  } catch (e) {
    const why =
      e instanceof ZodError
        ? `not ${RESULTS_FORMAT} (${e.issues[0]?.path.join('.') ?? ''}: ${e.issues[0]?.message ?? ''})`
        : 'not JSON';
    throw new InputError(`${file}: ${why}`);
  }
}

/** What must agree between the shards of one run: everything that shapes it but the share and the folder. */
const runKey = (r: StartResults) => JSON.stringify({ ...r.options, shard: null, out: null, seed: r.seed });

/** The shards joined, in the unsharded run's order; throws InputError if they are not one whole run. */
export function mergeShards(files: readonly string[], shards: readonly StartResults[]): StartResults {
  const count = shards[0]!.options.shard?.count ?? 1;
  const byIndex = new Map<number, StartResults>();
  shards.forEach((r, k) => {
    if (runKey(r) !== runKey(shards[0]!))
      throw new InputError(`${files[k]}: not a shard of the same run as ${files[0]} (seed or flags differ)`);
    const s = r.options.shard ?? { index: 1, count: 1 };
    if (s.count !== count) throw new InputError(`${files[k]}: shard ${s.index}/${s.count}, not of ${count}`);
    if (byIndex.has(s.index)) throw new InputError(`${files[k]}: shard ${s.index}/${count} given twice`);
    byIndex.set(s.index, r);
  });
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !byIndex.has(i));
  if (missing.length > 0) throw new InputError(`missing shard ${missing.map((i) => `${i}/${count}`).join(', ')}`);
  // Shard i holds rows i-1, i-1+n, i-1+2n, … of the plan, in order.
  const checks: CheckResult[] = [];
  const total = shards.reduce((a, r) => a + r.checks.length, 0);
  for (let j = 0; j < total; j++) {
    const c = byIndex.get((j % count) + 1)!.checks[Math.floor(j / count)];
    if (c === undefined) throw new InputError(`shard ${(j % count) + 1}/${count} has fewer checks than its share`);
    checks.push(c);
  }
  const known = new Map<string, number>();
  for (const c of checks) for (const [k, n] of Object.entries(c.known)) known.set(k, (known.get(k) ?? 0) + n);
  const totals = totalsOf(checks);
  const interruptedBy = shards.find((r) => r.interruptedBy !== null)?.interruptedBy ?? null;
  const written = new Set(checks.flatMap((c) => (c.report !== null ? [c.report.id] : [])));
  const first = byIndex.get(1)!;
  return {
    ...first,
    exitStatus: interruptedBy !== null ? EXIT.interrupted : totals.failed > 0 ? EXIT.failed : EXIT.passed,
    interruptedBy,
    options: { ...first.options, shard: null },
    replay: first.replay.replace(/ --shard \d+\/\d+/, ''),
    totals,
    checks,
    knownDivergences: Object.fromEntries([...known].sort((a, b) => b[1] - a[1])),
    oldReports: [...new Set(shards.flatMap((r) => r.oldReports))].filter((id) => !written.has(id)).sort(),
    resources: null,
  };
}

function merge(argv: readonly string[]): number {
  const cli = command();
  cli.parse([...argv], { from: 'user' });
  const files = cli.args;
  const json = jsonTarget(cli.opts<{ json?: string | boolean }>().json, 'merge');
  if (json !== null && json !== 'stdout') checkOutputFile('--json', json);
  const merged = mergeShards(files, files.map(read));
  const text = `${JSON.stringify(merged, null, 2)}\n`;
  if (json === 'stdout') process.stdout.write(text);
  else console.log(summary(merged));
  if (json !== null && json !== 'stdout') writeFileAtomic(json, text);
  return merged.exitStatus;
}

export function mergeCli(argv: readonly string[]): Promise<number> {
  return guard('merge', () => merge(argv), [OutDirError]);
}
