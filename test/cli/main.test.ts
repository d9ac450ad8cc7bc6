import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function start(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('npm start (the main job)', () => {
  it('runs the chosen laws and ends with the summary line', () => {
    const r = start('--runs', '20', '--seed', '7', '--only', 'readback', 'perf-metrics');
    expect(r.code).toBe(0);
    expect(r.out).toContain('seed 7');
    expect(r.out.trim().split('\n').at(-1)).toBe('2 passed, 0 failed (replay: npm start -- --seed 7)');
  });
  it('prints JSON with --json', () => {
    const r = start('--runs', '5', '--seed', '1', '--only', 'frozen', '--json');
    expect(JSON.parse(r.out)).toMatchObject({
      seed: 1,
      rows: [{ check: 'frozen', programs: 5, result: 'passed' }],
    });
  });
  it.each([
    [['--bogus'], "unknown option '--bogus'"],
    [['--runs', 'many'], 'must be a positive integer'],
    [['--seed', '1.5'], 'must be a 32-bit integer'],
    [['--only', 'nope'], 'Allowed choices are'],
  ])('rejects %j with a one-line error', (args, msg) => {
    const r = start(...args);
    expect(r.code).toBe(1);
    expect(r.err).toContain(msg);
    expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe('npm start runs conformance on the built-in hosts', () => {
  it('runs every generation profile on each design, and reports programs and the declared divergences met', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'cli/main.ts',
        '--runs',
        '60',
        '--seed',
        '3',
        '--only',
        'conformance',
        '--profile',
        'skylake',
        '--json',
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as {
      rows: {
        check: string;
        design: string;
        profile: string;
        gen: string;
        programs: number;
        result: string;
        known: Record<string, number>;
      }[];
    };
    expect(out.rows.map((x) => `${x.design}/${x.gen}`)).toEqual(
      ['emulated', 'mediated'].flatMap((d) =>
        ['quiet', 'contended', 'lbr-heavy', 'topdown', 'save-restore-heavy'].map((g) => `${d}/${g}`),
      ),
    );
    for (const row of out.rows)
      expect(row).toMatchObject({ check: 'conformance', profile: 'skylake', programs: 60, result: 'passed' });
    expect(Object.keys(out.rows[0]!.known).length).toBeGreaterThan(0);
  });

  it('runs one design on one generation profile when asked', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'cli/main.ts',
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
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { rows: { design: string; gen: string; profile: string }[] };
    expect(out.rows).toEqual([expect.objectContaining({ design: 'mediated', gen: 'topdown', profile: 'icelake' })]);
  });
});
