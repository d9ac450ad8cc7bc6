/**
 * What the commands share about output: the compact table, and JSON on stdout under npm. npm prints
 * a banner ("> vpmu-conformance@0.1.0 start") on stdout before a script runs, unless it runs silent
 * (`npm start -s`) or with its own --json (`npm start --json`, which moves the banner to stderr and
 * tells the script so through npm_config_json).
 */

import Table from 'cli-table3';
import { InputError } from './exit.js';

/** A table without a rule between rows: one line per row, a rule under the header. */
export function compactTable(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [], compact: true } });
}

/** The npm scripts of this package that run a command (package.json). */
const OUR_SCRIPTS = ['start', 'replay', 'bugs', 'compare', 'merge', 'soak'];

/** True when npm ran this command as one of our scripts and printed its banner on stdout. */
export function npmBannerOnStdout(env: NodeJS.ProcessEnv = process.env): boolean {
  return (
    env.npm_package_name === 'vpmu-conformance' &&
    OUR_SCRIPTS.includes(env.npm_lifecycle_event ?? '') &&
    env.npm_command !== 'exec' &&
    env.npm_config_loglevel !== 'silent' &&
    env.npm_config_json !== 'true'
  );
}

/** `npm start --json` (npm's own flag, not passed after --) asks for JSON on stdout. */
export const npmAskedForJson = (env: NodeJS.ProcessEnv = process.env) =>
  env.npm_config_json === 'true' && OUR_SCRIPTS.includes(env.npm_lifecycle_event ?? '');

/**
 * Where --json goes: a file's path, 'stdout', or nowhere (null). JSON on a piped stdout after npm's banner would not
 * parse, so that is refused before the run with the ways that work.
 */
export function jsonTarget(flag: string | boolean | undefined, command: string): string | null {
  const target = typeof flag === 'string' ? flag : flag === true || npmAskedForJson() ? 'stdout' : null;
  if (target === 'stdout' && npmBannerOnStdout() && process.stdout.isTTY !== true) {
    const script = command === 'start' ? 'npm start' : `npm run ${command}`;
    throw new InputError(
      `--json: npm printed its banner on stdout, so the JSON would not parse; use '${script} --json' (npm's own flag: the banner goes to stderr), '${script} -s -- --json', 'npx vpmu-conformance ${command} --json', or '--json FILE'`,
    );
  }
  return target;
}

export const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
