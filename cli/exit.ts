/**
 * Exit statuses, one meaning each, for every command, and the wrapper that holds every command to
 * them: a usage error, bad input or a crash of the suite itself is one line on stderr and status 2,
 * never a stack trace and never 1 (which says a check found something).
 */

import { CommanderError } from 'commander';

export const EXIT = { passed: 0, failed: 1, usage: 2, interrupted: 130 } as const;
export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

/** The exit statuses as `--help` and the README give them. */
export const EXIT_HELP = `Exit status (every command):
  0    no check failed (a check --time stopped counts as interrupted, not passed; replay: it no longer diverges)
  1    a check failed, a finding (replay: it still diverges; bugs: a detection target was missed)
  2    bad usage, bad input or an internal error: one line on stderr
  130  interrupted (SIGINT, SIGTERM, or stdout closed by its reader): what ran is printed, marked interrupted`;

/**
 * What stopped a run early: a signal, or SIGPIPE for a stdout its reader closed (`| head`), which
 * has no signal of its own here since Node ignores SIGPIPE and reports EPIPE on the write.
 */
export type StopCause = 'SIGINT' | 'SIGTERM' | 'SIGPIPE';

let stdoutGone = false;
const onStdoutGone = new Set<() => void>();

/**
 * stdout's reader went away. A run that listens (`stopOn`) stops as at SIGTERM, quietly; with
 * nothing listening the process ends at once. Exiting with a worker still loading its module can
 * abort Node itself, so a run with workers must listen.
 */
export function stdoutClosed(): void {
  if (stdoutGone) return;
  stdoutGone = true;
  if (onStdoutGone.size === 0) process.exit(EXIT.interrupted);
  for (const f of [...onStdoutGone]) f();
}

/** True once stdout's reader has gone: later write errors are that same end, not new ones. */
export const stdoutIsClosed = (): boolean => stdoutGone;

/** The cause that stopped a run, if one did, and the way to stop listening. */
export interface Stop {
  readonly cause: () => StopCause | null;
  readonly off: () => void;
}

/**
 * Listens for SIGINT, SIGTERM and a closed stdout. The first calls `first` and says so on stderr
 * (a closed stdout stops silently: the run's reader is gone, stderr is not its to fill); a second
 * signal calls `again`. `after` completes "stopping after …".
 */
export function stopOn(after: string, first: () => void, again: () => void): Stop {
  let cause: StopCause | null = null;
  const stop = (c: StopCause) => {
    if (cause !== null) {
      again();
      return;
    }
    cause = c;
    first();
    if (c !== 'SIGPIPE') console.error(`\n${c}: stopping after ${after} and printing what ran (${c} again: at once)`);
  };
  const onSignal = (s: NodeJS.Signals) => stop(s as StopCause);
  const onPipe = () => {
    if (cause === null) stop('SIGPIPE');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  onStdoutGone.add(onPipe);
  if (stdoutGone) onPipe();
  return {
    cause: () => cause,
    off: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      onStdoutGone.delete(onPipe);
    },
  };
}

/** Bad usage or bad input: the message is the whole story (status 2). */
export class InputError extends Error {
  override readonly name = 'InputError';
}

/**
 * Runs a command and returns its exit status. Commander has already printed its own errors (a bad
 * flag); any other throw is printed as one line: the message of an input error, or "internal error"
 * with the error's name for anything else, since that is a bug of the suite.
 */
export async function guard(
  name: string,
  run: () => Promise<number> | number,
  inputErrors: readonly (abstract new (...a: never[]) => Error)[] = [],
): Promise<number> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.passed : EXIT.usage;
    if (e instanceof InputError || inputErrors.some((k) => e instanceof k))
      console.error(`${name}: ${oneLine((e as Error).message)}`);
    else
      console.error(`${name}: internal error: ${e instanceof Error ? `${e.name}: ${oneLine(e.message)}` : String(e)}`);
    return EXIT.usage;
  }
}

/** A message cut to one line of reasonable length: input can be anything, the terminal should not be. */
export function oneLine(s: string, max = 300): string {
  const line = s.replace(/\s*\n\s*/g, ' ');
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
