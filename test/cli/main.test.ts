import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseStartResults, type StartResults } from '../../cli/results.js';
import { cleanEnv, cli } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'vpmu-start-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const start = (...args: string[]) => cli(['start', '--out', join(tmp, 'out'), ...args]);
const lastLine = (s: string) => s.trim().split('\n').at(-1);

describe('start: exit status, one meaning each', () => {
  it('0 when every check passed, with the closing line carrying every flag that shapes the run', () => {
    const r = start('--runs', '20', '--seed', '7', '--only', 'readback', 'perf-metrics');
    expect(r.code).toBe(0);
    expect(r.out).toContain('seed 7');
    expect(lastLine(r.out)).toBe(
      '2 passed, 0 failed (replay: npm start -- --seed 7 --runs 20 --only readback perf-metrics)',
    );
  });

  it.each([
    [['--bogus'], "unknown option '--bogus'"],
    [['--runs', 'many'], 'must be a positive integer'],
    [['--seed', '1.5'], 'must be a 32-bit integer'],
    [['--only', 'nope'], 'Allowed choices are'],
  ])('2 for a bad flag %j, with a one-line error', (args, msg) => {
    const r = start(...args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(msg);
    expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  });

  writeFileSync(join(tmp, 'a-file'), '');
  it.each([
    ['/proc/vpmu-out', 'on procfs, a pseudo file system; choose a directory on a disk'],
    ['/sys/vpmu-out', 'on sysfs, a pseudo file system; choose a directory on a disk'],
    [join(tmp, 'a-file', 'out'), `${join(tmp, 'a-file')} is a file, not a directory`],
  ])('2 for --out %s, before any check runs', (out, msg) => {
    const r = cli(['start', '--out', out, '--only', 'readback', '--runs', '5']);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`start: --out ${out}: ${msg}\n`);
    expect(r.out).toBe(''); // not a single check ran
  });

  it('2 for --json and --junit files in a folder that does not exist', () => {
    expect(start('--only', 'readback', '--runs', '5', '--json', join(tmp, 'none', 'r.json')).err).toContain(
      'no such directory',
    );
    const r = start('--only', 'readback', '--runs', '5', '--junit', '/proc/self/junit.xml');
    expect(r.code).toBe(2);
    expect(r.err).toContain('--junit /proc/self/junit.xml: on procfs');
  });

  it('0 with --time: a check the time limit stops is interrupted (N programs), counted apart from passed', () => {
    const r = start('--runs', '1000000', '--time', '1', '--seed', '2', '--only', 'readback');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/│ interrupted \(\d+ programs\)/);
    expect(lastLine(r.out)).toBe(
      '0 passed, 0 failed, 1 interrupted (replay: npm start -- --seed 2 --runs 1000000 --time 1 --only readback)',
    );
  });
});

describe('start: the summary a person reads', () => {
  it('is a compact table: a rule under the header, none between rows; checks that do not apply are n/a rows with the reason', () => {
    const r = start('--runs', '5', '--seed', '1', '--only', 'lbr-freeze', 'no-leak');
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    const from = lines.findIndex((l) => l.startsWith('┌'));
    const table = lines.slice(from, lines.findIndex((l, i) => i > from && l.startsWith('└')) + 1);
    expect(table.filter((l) => l.startsWith('├'))).toHaveLength(1);
    expect(table.filter((l) => l.startsWith('│'))).toHaveLength(1 + 6 + 6); // header, no-leak and lbr-freeze on two designs and three hosts
    expect(r.out).toMatch(
      /│ lbr-freeze +│ emulated +│ sapphirerapids .*│ n\/a: Arch LBR host: no legacy LBR freeze to check/,
    );
    expect(r.out).toMatch(/│ lbr-freeze +│ mediated +│ skylake .*│ n\/a: no guest LBRs in this design/);
    expect(lastLine(r.out)).toMatch(/^8 passed, 0 failed, 4 n\/a \(replay: /);
  });
});

describe('start: programs that ended at a declared divergence', () => {
  it('are counted per id in --json (never more than met it) and their share printed per design, host and profile', () => {
    const args = [
      '--runs',
      '30',
      '--seed',
      '3',
      '--only',
      'conformance',
      '--profile',
      'skylake',
      '--design',
      'emulated',
    ];
    const j = parseStartResults(JSON.parse(start(...args, '--gen', 'quiet', 'lbr-heavy', '--json').out));
    expect(j.checks.map((c) => c.gen)).toEqual(['quiet', 'lbr-heavy']);
    for (const c of j.checks) {
      expect(c.ended).not.toBeNull();
      for (const [id, n] of Object.entries(c.ended!)) expect(n).toBeLessThanOrEqual(c.known[id] ?? 0);
    }
    const r = start(...args, '--gen', 'quiet');
    expect(r.code).toBe(0);
    expect(r.out).toContain('programs that ended at a declared divergence');
    expect(r.out).toMatch(/│ emulated │ skylake │ \d+\.\d % +│/);
  });

  it('is null for checks whose programs never end at one', () => {
    const j = parseStartResults(JSON.parse(start('--runs', '5', '--seed', '1', '--only', 'frozen', '--json').out));
    expect(j.checks.map((c) => c.ended)).toEqual([null]);
  });
});

describe('start --json: a contract', () => {
  it('prints JSON on stdout that the schema reads back: format, totals, every check with its result', () => {
    const r = start(
      '--runs',
      '5',
      '--seed',
      '1',
      '--only',
      'frozen',
      'lbr-freeze',
      '--profile',
      'sapphirerapids',
      '--json',
    );
    expect(r.code).toBe(0);
    const out = parseStartResults(JSON.parse(r.out));
    expect(out).toMatchObject({
      format: 'vpmu-conformance/results@4',
      exitStatus: 0,
      seed: 1,
      totals: { checks: 3, passed: 1, failed: 0, interrupted: 0, notApplicable: 2, notRun: 0 },
      replay: 'npm start -- --seed 1 --runs 5 --only frozen lbr-freeze --profile sapphirerapids',
    });
    expect(out.checks.map((c) => [c.check, c.design, c.host, c.result])).toEqual([
      ['frozen', null, 'random', 'passed'],
      ['lbr-freeze', 'emulated', 'sapphirerapids', 'n/a'],
      ['lbr-freeze', 'mediated', 'sapphirerapids', 'n/a'],
    ]);
    // Progress goes to stderr, so stdout stays JSON.
    expect(r.err).toContain('passed      frozen on hw model');
  });

  it('writes --json FILE and --junit FILE, and prints the table as usual', () => {
    const json = join(tmp, 'results.json');
    const junit = join(tmp, 'junit.xml');
    const r = start(
      '--runs',
      '5',
      '--seed',
      '1',
      '--only',
      'frozen',
      'lbr-freeze',
      '--design',
      'mediated',
      '--json',
      json,
      '--junit',
      junit,
    );
    expect(r.code).toBe(0);
    expect(lastLine(r.out)).toMatch(/^1 passed, 0 failed, 3 n\/a/);
    expect(parseStartResults(JSON.parse(readFileSync(json, 'utf8'))).totals.checks).toBe(4);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites name="vpmu-conformance \(seed 1\)" tests="4" failures="0" errors="0" skipped="3"/,
    );
    expect(xml).toContain('<testcase classname="vpmu-conformance.hw-model.random" name="frozen"');
    expect(xml).toContain('<skipped message="n/a: no guest LBRs in this design"/>');
    expect(xml.match(/<testcase /g)).toHaveLength(4);
    expect(xml.match(/<\/testcase>/g)).toHaveLength(4);
    // No temporary file is left beside them.
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('start under npm: JSON on stdout survives the banner', () => {
  const npm = (...args: string[]) => {
    const r = spawnSync('npm', args, { encoding: 'utf8', env: cleanEnv() });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const flags = ['--runs', '5', '--seed', '1', '--only', 'frozen', '--out', join(tmp, 'out')];

  it("npm start --json (npm's own flag): npm moves its banner to stderr, the command prints JSON", () => {
    const r = npm('start', '--json', '--', ...flags);
    expect(r.code).toBe(0);
    expect(parseStartResults(JSON.parse(r.out)).totals.passed).toBe(1);
    expect(r.err).toContain('> vpmu-conformance@');
  });

  it('npm start -- --json into a pipe: refused before the run, naming the ways that work', () => {
    const r = npm('start', '--', ...flags, '--json');
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^\n> vpmu-conformance@/); // the banner npm printed: JSON after it would not parse
    expect(r.err).toContain(
      "start: --json: npm printed its banner on stdout, so the JSON would not parse; use 'npm start --json'",
    );
  });

  it('npm start -s -- --json: npm prints no banner', () => {
    const r = npm('start', '-s', '--', ...flags, '--json');
    expect(r.code).toBe(0);
    expect(parseStartResults(JSON.parse(r.out)).totals.passed).toBe(1);
  });
});

describe('start: interruptions and pipes', () => {
  it('SIGINT in the middle of a run prints the table and closing line of what ran, marked interrupted, and exits 130', async () => {
    const child = spawn(
      process.execPath,
      [
        'dist/cli.js',
        'start',
        '--seed',
        '4',
        '--runs',
        '200',
        '--only',
        'readback',
        'conformance',
        '--profile',
        'skylake',
        '--design',
        'emulated',
        '--workers',
        '2',
        '--out',
        join(tmp, 'out'),
      ],
      { env: cleanEnv() },
    );
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        // The law has passed; conformance runs 200 programs per profile, so one or two (one per worker) are under way now.
        if (out.includes('passed      readback')) resolve();
      }),
    );
    child.kill('SIGINT');
    expect(await done).toBe(130);
    expect(err).toContain('SIGINT: stopping after the current program');
    expect(out).toMatch(/│ readback +│ hw model +│ random +│ +│ 200 +│ passed /);
    expect(lastLine(out)).toMatch(
      /^interrupted by SIGINT: 1 passed, 0 failed(, [12] interrupted)?, \d not run \(replay: npm start -- --seed 4 --runs 200 --only readback conformance --profile skylake --design emulated\)$/,
    );
  });

  it('a reader that goes away (| head) ends the run quietly with 130, no stack trace', async () => {
    const child = spawn(
      process.execPath,
      [
        'dist/cli.js',
        'start',
        '--runs',
        '30',
        '--seed',
        '1',
        '--out',
        join(tmp, 'out'),
        '--json',
        join(tmp, 'piped.json'),
      ],
      {
        env: cleanEnv(),
      },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // As `head -1` does: read the first line, then close the pipe.
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    expect(await done).toBe(130);
    expect(err).toBe('');
    // The run stopped as at a signal, and what ran is kept.
    const kept = parseStartResults(JSON.parse(readFileSync(join(tmp, 'piped.json'), 'utf8')));
    expect(kept.interruptedBy).toBe('SIGPIPE');
    expect(kept.exitStatus).toBe(130);
  });
});

describe('start: reports in the output folder', () => {
  const out = join(tmp, 'reports');
  const old = join(out, 'bug-old-report-from-another-seed');
  mkdirSync(old, { recursive: true });
  writeFileSync(join(old, 'report.json'), '{}');
  writeFileSync(join(out, 'vitest.json'), '{}');
  const args = [
    '--runs',
    '200',
    '--seed',
    '5',
    '--only',
    'conformance',
    '--profile',
    'skylake',
    '--design',
    'bug/5728a4a0ea79',
    '--out',
    out,
  ];
  const r = cli(['start', ...args, '--json', join(tmp, 'failed.json')]);
  const results = parseStartResults(JSON.parse(readFileSync(join(tmp, 'failed.json'), 'utf8')));

  it('1 when a check fails; the report paths are fields of the JSON', () => {
    expect(r.code).toBe(1);
    expect(results.exitStatus).toBe(1);
    const failed = results.checks.filter((c) => c.result === 'failed');
    expect(failed).toHaveLength(6); // conformance on every default generation profile
    for (const c of failed) {
      const id = c.report!.id;
      expect(id).toMatch(/^bug-5728a4a0ea79-rdpmc-0x[0-9a-f]+-bare-metal-gp$/);
      expect(c.failure).toMatchObject({ rootCause: id, seed: 5 });
      expect(c.report).toMatchObject({ json: join(out, id, 'report.json'), markdown: join(out, id, 'report.md') });
      expect(existsSync(join(out, id, 'regression.test.ts'))).toBe(true);
    }
    // Written whole through a temporary folder: none is left.
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('prints one fast-check report per root cause and counts the rest', () => {
    const causes = new Map<string, number>();
    for (const c of results.checks)
      if (c.failure !== null) causes.set(c.failure.rootCause, (causes.get(c.failure.rootCause) ?? 0) + 1);
    expect(causes.size).toBeLessThan(results.totals.failed);
    expect(r.out.match(/Property failed after/g)).toHaveLength(causes.size);
    for (const n of causes.values())
      if (n > 1)
        expect(r.out).toMatch(new RegExp(`and ${n - 1} more failures? with the same root cause: conformance/\\w`));
  });

  it('lists old reports in the output folder as such, and --clean clears them (and only them)', () => {
    expect(results.oldReports).toEqual(['bug-old-report-from-another-seed']);
    expect(r.out).toContain(
      `1 old report in ${out}, not from this run (--clean clears them):\n  bug-old-report-from-another-seed`,
    );
    // A quick run: --clean clears before any check runs.
    const c = cli([
      'start',
      '--only',
      'readback',
      '--runs',
      '5',
      '--out',
      out,
      '--clean',
      '--json',
      join(tmp, 'clean.json'),
    ]);
    expect(c.code).toBe(0);
    // The old report and the ones the first run wrote.
    const reports = new Set(results.checks.flatMap((x) => (x.report !== null ? [x.report.id] : [])));
    expect(c.out).toContain(`cleared ${1 + reports.size} old reports from ${out}`);
    expect(parseStartResults(JSON.parse(readFileSync(join(tmp, 'clean.json'), 'utf8'))).oldReports).toEqual([]);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(join(out, 'vitest.json'))).toBe(true);
  });
});

describe('start runs conformance on the built-in hosts', () => {
  it('runs every default generation profile on each design, and reports programs and the declared divergences met', () => {
    const r = start('--runs', '60', '--seed', '3', '--only', 'conformance', '--profile', 'skylake', '--json');
    expect(r.code).toBe(0);
    const out: StartResults = parseStartResults(JSON.parse(r.out));
    expect(out.checks.map((x) => `${x.design}/${x.gen}`)).toEqual(
      ['emulated', 'mediated'].flatMap((d) =>
        ['quiet', 'contended', 'lbr-heavy', 'topdown', 'save-restore-heavy', 'driver'].map((g) => `${d}/${g}`),
      ),
    );
    for (const row of out.checks)
      expect(row).toMatchObject({ check: 'conformance', host: 'skylake', programs: 60, result: 'passed' });
    expect(Object.keys(out.checks[0]!.known).length).toBeGreaterThan(0);
  });

  it('runs one design on one generation profile when asked', () => {
    const r = start(
      '--runs',
      '20',
      '--seed',
      '3',
      '--only',
      'conformance',
      '--profile',
      'icelake',
      '--design',
      'mediated',
      '--gen',
      'topdown',
      '--json',
    );
    expect(r.code).toBe(0);
    expect(parseStartResults(JSON.parse(r.out)).checks).toEqual([
      expect.objectContaining({ design: 'mediated', gen: 'topdown', host: 'icelake' }),
    ]);
  });
});
