import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStartResults, type StartResults } from '../../cli/results.js';
import { cli } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'vpmu-shard-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// Laws, and lbr-freeze on two designs and two hosts (with n/a rows): 14 rows, a mix of results.
const RUN = [
  '--seed',
  '3',
  '--runs',
  '5',
  '--only',
  'readback',
  'frozen',
  'lbr-freeze',
  '--profile',
  'skylake',
  'sapphirerapids',
];
const start = (name: string, ...more: string[]) => {
  const file = join(tmp, `${name}.json`);
  const r = cli(['start', ...RUN, '--out', join(tmp, 'out'), '--workers', '1', '--json', file, ...more]);
  expect(r.code, r.err).toBe(0);
  return file;
};
const read = (f: string) => parseStartResults(JSON.parse(readFileSync(f, 'utf8')));
/** What must not depend on sharding: every field but the wall times. */
const comparable = (r: StartResults) => ({
  ...r,
  checks: r.checks.map((c) => ({ ...c, ms: 0 })),
  versions: null,
  resources: null,
});

describe('start --shard i/n and merge: the union of the shards is the whole run', () => {
  let whole = '';
  let shards: string[] = [];
  beforeAll(() => {
    whole = start('whole');
    shards = [1, 2, 3].map((i) => start(`s${i}`, '--shard', `${i}/3`));
  }, 120_000);

  it('each shard holds a share of the plan, the shares are disjoint and cover it, and merge gives the whole run back', () => {
    const parts = shards.map(read);
    const all = read(whole);
    expect(all.checks.length).toBeGreaterThanOrEqual(6);
    expect(parts.map((p) => p.checks.length).reduce((a, b) => a + b)).toBe(all.checks.length);
    expect(parts.every((p) => p.checks.length > 0 && p.checks.length < all.checks.length)).toBe(true);
    expect(parts[1]!.replay).toMatch(/ --shard 2\/3$/);
    const merged = join(tmp, 'merged.json');
    const r = cli(['merge', ...[...shards].reverse(), '--json', merged]);
    expect(r.code, r.err).toBe(0);
    expect(comparable(read(merged))).toEqual(comparable(all));
  });

  it('prints the table and closing line of the whole run, with its exit status', () => {
    const r = cli(['merge', ...shards]);
    expect(r.code).toBe(0);
    expect(r.out.trim().split('\n').at(-1)).toBe(
      cli(['start', ...RUN, '--out', join(tmp, 'out'), '--workers', '1'])
        .out.trim()
        .split('\n')
        .at(-1),
    );
  });

  it('2 for a missing shard, a shard given twice, a shard of another run, and for --shard without --seed', () => {
    expect(cli(['merge', shards[0]!, shards[1]!]).err).toMatch(/^merge: missing shard \d\/3\n$/);
    const twice = cli(['merge', shards[0]!, shards[0]!, shards[1]!]);
    expect(twice.code).toBe(2);
    expect(twice.err).toContain('given twice');
    const other = start('other', '--shard', '1/3', '--runs', '4');
    expect(cli(['merge', other, shards[1]!, shards[2]!]).err).toContain('not a shard of the same run');
    const noSeed = cli(['start', '--shard', '1/2', '--only', 'readback', '--out', join(tmp, 'out')]);
    expect(noSeed.code).toBe(2);
    expect(noSeed.err).toBe('start: --shard needs --seed: every shard of a run must search with the same seed\n');
    expect(cli(['start', '--shard', '3/2', '--seed', '1']).err).toContain('must be i/n');
  });
});
