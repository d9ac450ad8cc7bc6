/** Runs the built command line (dist/cli.js, what the bin and the npm scripts run) in a child process. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';

export interface Ran {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly out: string;
  readonly err: string;
}

/** A clean environment: no npm script variables leak in from `npm test` (npm banner detection reads them). */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));
  return { ...env, INIT_CWD: process.cwd(), ...extra };
}

export function cli(args: readonly string[], opts: SpawnSyncOptions = {}): Ran {
  const r = spawnSync(process.execPath, ['dist/cli.js', ...args], {
    encoding: 'utf8',
    env: cleanEnv(),
    maxBuffer: 64 * 1024 * 1024,
    ...opts,
  });
  return { code: r.status, signal: r.signal, out: String(r.stdout), err: String(r.stderr) };
}
