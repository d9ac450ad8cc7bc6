import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function start(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
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
      rows: [{ law: 'frozen', runs: 5, result: 'passed' }],
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
