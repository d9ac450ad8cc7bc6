import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { roundSeed } from '../../cli/soak.js';
import { cli } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'vpmu-soak-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const lastLine = (s: string) => s.trim().split('\n').at(-1)!;

describe('soak: every planned check, round after round, until the budget', () => {
  it('0 after a 3 s soak of one check, with its programs and rounds in the table and the replay of the soak', () => {
    // Rounds of 200 programs: several fit in 3 s on a loaded machine too.
    const args = ['--minutes', '0.05', '--runs', '200', '--only', 'readback', '--workers', '1'];
    const r = cli(['soak', ...args, '--out', join(tmp, 'ok')]);
    expect(r.code).toBe(0);
    // Plain lines off a terminal: one per round, each on its own seed.
    const rounds = [...r.out.matchAll(/^round (\d+) \(seed (-?\d+)\) done: 200 programs/gm)];
    expect(rounds.length).toBeGreaterThan(1);
    rounds.forEach((m, i) => expect([Number(m[1]), Number(m[2])]).toEqual([i, roundSeed(15, i)]));
    const row = /│ readback +│ hw model +│ random +│ +│ (\d+) +│ (\d+) +│ 0 +│/.exec(r.out);
    expect(Number(row![1])).toBeGreaterThanOrEqual(200 * rounds.length);
    expect(Number(row![2])).toBe(rounds.length);
    expect(lastLine(r.out)).toMatch(
      new RegExp(
        `^${row![1]} programs in \\d s, 0 failed \\(replay: npm run soak -- --seed 15 --minutes 0.05 --runs 200 --only readback\\)$`,
      ),
    );
  });

  it('1 on a planted bug: the failure is written as npm start writes it, and its replay line fails again under npm start', () => {
    const out = join(tmp, 'bug');
    const args = ['--only', 'conformance', '--profile', 'skylake', '--design', 'bug/5728a4a0ea79', '--gen', 'quiet'];
    const r = cli(['soak', '--minutes', '0.05', '--seed', '3', ...args, '--out', out]);
    expect(r.code).toBe(1);
    const report = /^report: (\S+)\/report\.md/m.exec(r.out)![1]!;
    expect(report).toMatch(/\/bug-5728a4a0ea79-rdpmc-0x[0-9a-f]+-bare-metal-gp$/);
    expect(existsSync(join(report, 'report.json'))).toBe(true);
    expect(existsSync(join(report, 'regression.test.ts'))).toBe(true);
    const replay = /replay the first failure: npm start -- (.*?);/.exec(lastLine(r.out))![1]!;
    expect(replay).toBe(
      `--seed ${roundSeed(3, 0)} ${args.join(' ').replace('--profile skylake --design bug/5728a4a0ea79', '--design bug/5728a4a0ea79 --profile skylake')}`,
    );
    const again = cli(['start', ...replay.split(' '), '--out', join(tmp, 'again')]);
    expect(again.code).toBe(1);
    expect(again.out).toContain(`report: ${join(tmp, 'again', report.split('/').at(-1)!)}/report.md`);
  });

  it('--per property: a round gives each property --runs programs split over its checks, and the totals per property are printed', () => {
    // Rounds of 40 programs in 6 s: some complete on a loaded machine too.
    const args = ['--minutes', '0.1', '--runs', '20', '--per', 'property', '--workers', '1'];
    const plan = ['--only', 'readback', 'conformance', '--design', 'emulated', '--profile', 'skylake'];
    const r = cli(['soak', ...args, ...plan, '--gen', 'quiet', 'topdown', '--out', join(tmp, 'per')]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('20 programs per property per round');
    const rounds = [...r.out.matchAll(/^round \d+ \(seed -?\d+\) done: 40 programs/gm)].length;
    expect(rounds).toBeGreaterThan(0);
    // Conformance's two checks get 10 programs a round each, the law all 20.
    for (const gen of ['quiet', 'topdown']) {
      const row = new RegExp(`│ conformance +│ emulated +│ skylake +│ ${gen} +│ (\\d+) +│ (\\d+) +│ 0 +│`).exec(r.out)!;
      expect(Number(row[1])).toBeGreaterThanOrEqual(10 * rounds);
      // The round the budget interrupted adds its programs but not a round.
      expect(Number(row[1])).toBeLessThanOrEqual(10 * (Number(row[2]) + 1));
    }
    const total = (id: string) => Number(new RegExp(`│ ${id} +│ (\\d) +│ (\\d+) +│ 0 +│`).exec(r.out)![2]);
    expect(total('conformance')).toBeGreaterThanOrEqual(20 * rounds);
    expect(total('readback')).toBeGreaterThanOrEqual(20 * rounds);
    expect(lastLine(r.out)).toContain('--minutes 0.1 --runs 20 --per property --only readback conformance');
  });

  it.each([['0'], ['x']])('2 for --minutes %s, with one line', (m) => {
    const r = cli(['soak', '--minutes', m, '--out', join(tmp, 'bad')]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `error: option '--minutes <m>' argument '${m}' is invalid. must be a positive number of minutes, at most 10080 (a week)\n`,
    );
    expect(r.out).toBe('');
  });

  it('round seeds are fresh and a pure function of the base seed and the round', () => {
    const seeds = Array.from({ length: 1000 }, (_, i) => roundSeed(7, i));
    expect(new Set(seeds).size).toBe(1000);
    expect(seeds.every((s) => Number.isSafeInteger(s) && s >= -(2 ** 31) && s < 2 ** 31)).toBe(true);
    expect(roundSeed(7, 3)).toBe(seeds[3]);
    expect(roundSeed(8, 3)).not.toBe(seeds[3]);
  });
});
