/**
 * Where checks run: a pool of worker threads (piscina), one per available core unless told. A
 * check's work is a pure function of its spec, so the pool changes when a check runs, never what it
 * finds. fast-check's search is synchronous; with it off the main thread, the main thread stays free
 * to take SIGINT and set the flag the running searches poll between programs.
 */

import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { CheckSpec, RanCheck } from './check_run.js';
import { type StopCause, stopOn } from './exit.js';
import type { BugSeed, FaultSeed, Task } from './check_worker.js';

export interface WorkerPool {
  readonly workers: number;
  check(spec: CheckSpec): Promise<RanCheck>;
  bug(row: number, seed: number, runs: number): Promise<BugSeed>;
  fault(id: string, seed: number, runs: number): Promise<FaultSeed>;
  /** Ask the running checks to stop after their current program (their results say interrupted). */
  requestStop(): void;
  /** Stop at once: the running tasks' promises reject. */
  kill(): Promise<void>;
  close(): Promise<void>;
}

/** One worker per core the process may use. */
export const defaultWorkers = (): number => availableParallelism();

export function workerPool(workers: number): WorkerPool {
  // From the TypeScript sources (tsx) the worker needs tsx too; piscina require()s the worker, and
  // tsx's require hook (unlike its ESM hooks on Node 20) acts in worker threads.
  const ts = import.meta.url.endsWith('.ts');
  const pool = new Piscina<Task, RanCheck | BugSeed | FaultSeed>({
    filename: new URL(ts ? './check_worker.ts' : './check_worker.js', import.meta.url).href,
    minThreads: workers,
    maxThreads: workers,
    idleTimeout: Number.POSITIVE_INFINITY,
    ...(ts ? { execArgv: ['--import', 'tsx'] } : {}),
  });
  const sab = new SharedArrayBuffer(4);
  const stop = new Int32Array(sab);
  let destroyed: Promise<void> | null = null;
  const destroy = () => (destroyed ??= pool.destroy());
  return {
    workers,
    check: (spec) => pool.run({ kind: 'check', spec, stop: sab }) as Promise<RanCheck>,
    bug: (row, seed, runs) => pool.run({ kind: 'bug', row, seed, runs }) as Promise<BugSeed>,
    fault: (id, seed, runs) => pool.run({ kind: 'fault', id, seed, runs }) as Promise<FaultSeed>,
    requestStop: () => Atomics.store(stop, 0, 1),
    kill: destroy,
    close: destroy,
  };
}

/** The cause that stopped a run, if one did, and the way to stop listening. */
export interface StopSignals {
  readonly signal: () => StopCause | null;
  readonly off: () => void;
}

/**
 * SIGINT, SIGTERM or a closed stdout: the first asks the pool's running checks to stop after their
 * current program, a second signal stops them at once. Letting the checks end keeps every worker
 * past its module load before the pool goes.
 */
export function stopOnSignals(pool: WorkerPool): StopSignals {
  const stop = stopOn(
    'the current program',
    () => pool.requestStop(),
    () => void pool.kill(),
  );
  return { signal: stop.cause, off: stop.off };
}

/**
 * Runs `jobs` on at most `width` lanes, starting them in order; `run(i)` does job i. Returns when
 * every lane has finished; the first error ends the wait (the other lanes' errors are dropped).
 */
export async function inLanes(jobs: number, width: number, run: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < jobs) await run(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(width, jobs)) }, lane));
}
