/**
 * `npm run bench:startup`: how long the command line takes to answer, end to end (spawn to exit) as a
 * user meets it: `--help` of the entry and of `start`, a replay of a one-command report, through
 * node, npx and npm. Medians of --runs runs each (the machine is shared: the load is printed beside).
 * Target: under 1 s for --help and replay.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { positiveInt } from '../cli/args.js';

const opts = new Command('npm run bench:startup')
  .option('--runs <n>', 'runs per figure (the median is shown)', positiveInt, 11)
  .option('--json', 'print results as JSON')
  .parse()
  .opts<{ runs: number; json?: boolean }>();

// Time the current sources: build them first.
if (spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' }).status !== 0)
  throw new Error('the build failed');
const tmp = mkdtempSync(join(tmpdir(), 'vpmu-startup-'));
// A report to replay: bug #41 found by conformance, shrunk to one command.
const made = spawnSync(
  process.execPath,
  [
    'dist/cli.js',
    'start',
    '--only',
    'conformance',
    '--profile',
    'skylake',
    '--design',
    'bug/5728a4a0ea79',
    '--gen',
    'quiet',
    '--seed',
    '5',
    '--runs',
    '200',
    '--out',
    tmp,
  ],
  { encoding: 'utf8' },
);
if (made.status !== 1) throw new Error(`could not make a report to replay:\n${made.stdout}\n${made.stderr}`);
// Its folder is named by its root cause, which the generators decide: look it up rather than name it.
const id = readdirSync(tmp).find((d) => existsSync(join(tmp, d, 'report.json')));
if (id === undefined) throw new Error(`the run wrote no report into ${tmp}`);

const node = process.execPath;
const CASES: { what: string; cmd: string; args: string[]; status: number; target: number }[] = [
  { what: 'node -e 0 (Node itself)', cmd: node, args: ['-e', '0'], status: 0, target: 0 },
  { what: 'vpmu-conformance --help', cmd: node, args: ['dist/cli.js', '--help'], status: 0, target: 1000 },
  {
    what: 'vpmu-conformance start --help',
    cmd: node,
    args: ['dist/cli.js', 'start', '--help'],
    status: 0,
    target: 1000,
  },
  {
    what: 'vpmu-conformance replay (1 command)',
    cmd: node,
    args: ['dist/cli.js', 'replay', join(tmp, id, 'report.json')],
    status: 1,
    target: 1000,
  },
  { what: 'npx vpmu-conformance --help', cmd: 'npx', args: ['vpmu-conformance', '--help'], status: 0, target: 1000 },
  // npm's floor: npx with nothing to resolve; the difference is npx finding the bin in node_modules/.bin and node starting it.
  { what: 'npx --version (npm alone)', cmd: 'npx', args: ['--version'], status: 0, target: 0 },
  { what: 'npm start -s -- --help', cmd: 'npm', args: ['start', '-s', '--', '--help'], status: 0, target: 0 },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const rows = CASES.map((c) => {
  const time = () => {
    const t0 = performance.now();
    const r = spawnSync(c.cmd, c.args, { encoding: 'utf8' });
    const ms = performance.now() - t0;
    if (r.status !== c.status) throw new Error(`${c.what}: exit ${r.status}, expected ${c.status}\n${r.stderr}`);
    return ms;
  };
  time(); // warm the file cache
  const ms = Array.from({ length: opts.runs }, time);
  return { what: c.what, medianMs: Math.round(median(ms)), minMs: Math.round(Math.min(...ms)), targetMs: c.target };
});
rmSync(tmp, { recursive: true, force: true });

const load = loadavg().map((x) => x.toFixed(1));
if (opts.json)
  console.log(JSON.stringify({ node: process.version, runs: opts.runs, loadavg: load, results: rows }, null, 2));
else {
  console.log(
    `start-up, end to end, median of ${opts.runs} runs (node ${process.version}, load average ${load.join(' ')})`,
  );
  for (const r of rows)
    console.log(
      `${r.what.padEnd(38)} ${`${r.medianMs} ms`.padStart(8)} (min ${r.minMs})${r.targetMs > 0 ? `  target ${r.targetMs} ms  ${r.medianMs < r.targetMs ? 'met' : 'MISSED'}` : ''}`,
    );
}
