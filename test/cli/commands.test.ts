/** Exit statuses of the other commands (bugs, compare, the entry), and how `npm run bugs` names a missed target. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBugsResults } from '../../cli/results.js';
import { cleanEnv, cli } from '../support/cli.js';

describe('the entry point (the bin)', () => {
  it('--help names every command and the exit statuses; no command is bad usage', () => {
    const h = cli(['--help']);
    expect(h.code).toBe(0);
    for (const c of ['start', 'replay', 'bugs', 'compare', 'soak', 'merge'])
      expect(h.out).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(h.out).toContain('130  interrupted');
    expect(cli([]).code).toBe(2);
    const u = cli(['frobnicate']);
    expect(u.code).toBe(2);
    expect(u.err).toBe(
      "vpmu-conformance: unknown command 'frobnicate' (commands: start, replay, bugs, compare, soak, merge; --help for usage)\n",
    );
  });

  it.each(['start', 'replay', 'bugs', 'compare', 'soak', 'merge'])(
    '%s --help gives the exit statuses and exits 0',
    (c) => {
      const r = cli([c, '--help']);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`Usage: vpmu-conformance ${c}`);
      expect(r.out).toContain('Exit status (every command):');
    },
  );
});

describe('npx vpmu-conformance', () => {
  // The command lives in the `bin` workspace, so npx finds it in node_modules/.bin. A `bin` in the root
  // package.json would make npx link the project into its cache and load both trees first (about 1 s).
  it('runs the bin from node_modules/.bin, without installing the project into the npx cache', () => {
    const cache = mkdtempSync(join(tmpdir(), 'vpmu-npx-cache-'));
    try {
      const r = spawnSync('npx', ['vpmu-conformance', '--help'], {
        encoding: 'utf8',
        env: cleanEnv({ npm_config_cache: cache, npm_config_update_notifier: 'false' }),
      });
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('Usage: vpmu-conformance <command>');
      expect(existsSync(join(cache, '_npx'))).toBe(false);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});

describe('bugs: exit status and targets', () => {
  it('0 when every row meets both targets', () => {
    const r = cli(['bugs', '--only', '45', '--seeds', '1', '--seed', '2']);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('missed targets');
  });

  it('1 when a row misses a target, naming the row, the target and by how much', () => {
    // Three programs are too few to find row 35 (it shrinks to its trigger + 1 on every seed tried with the default budget).
    const r = cli(['bugs', '--only', '35', '--seeds', '1', '--seed', '5', '--runs', '3']);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      'missed targets:\n  #35 (conformance on skylake): found on 0 of 1 seeds (target: every seed; 1 short)',
    );
    // The median time depends on the machine's load; the rest of the closing line does not.
    expect(r.out.trim().split('\n').at(-1)).toMatch(
      /^0\/1 detected on every seed; [01]\/1 under 1 s median; 0\/1 shrunk to trigger \+ 1 or less; 1 row missed a target \(above\) \(replay: npm run bugs -- --seeds 1 --seed 5 --runs 3 --only 35\)$/,
    );
    const j = cli(['bugs', '--only', '35', '--seeds', '1', '--seed', '5', '--runs', '3', '--json']);
    expect(parseBugsResults(JSON.parse(j.out))).toMatchObject({
      format: 'vpmu-conformance/bugs@2',
      exitStatus: 1,
      totals: { rows: 1, measured: 1, missedTargets: 1 },
      rows: [{ row: 35, missed: [expect.stringContaining('1 short')] }],
    });
  });

  it('2 for a bad flag', () => {
    const r = cli(['bugs', '--only', '999']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('Allowed choices are');
  });

  it('130 on SIGINT, with what ran', async () => {
    const child = spawn(process.execPath, ['dist/cli.js', 'bugs', '--seeds', '50'], { env: cleanEnv() });
    let out = '';
    const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => ((out += d.toString()), resolve())));
    child.kill('SIGINT');
    expect(await done).toBe(130);
    expect(out.trim().split('\n').at(-1)).toMatch(/^interrupted by SIGINT after 0 of 15 rows: /);
  });
});

describe('compare: exit status', () => {
  it('0 when no property is violated, 1 when one is', () => {
    expect(cli(['compare', '--runs', '0', '--profile', 'skylake', '--design', 'emulated']).code).toBe(0);
    const r = cli(['compare', '--runs', '10', '--profile', 'skylake', '--design', 'bug/5728a4a0ea79', '--seed', '5']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/│ conformance\/quiet +│ VIOLATED/);
  });

  it('130 on SIGINT, with what ran', async () => {
    const child = spawn(process.execPath, ['dist/cli.js', 'compare', '--runs', '300'], { env: cleanEnv() });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => child.stderr.once('data', () => resolve()));
    child.kill('SIGINT');
    expect(await done).toBe(130);
    expect(out.trim().split('\n').at(-1)).toMatch(
      /^interrupted by SIGINT: \d+ passed, 0 failed \(replay: npm run compare -- /,
    );
  });
});
