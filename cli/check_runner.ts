/**
 * Where the main job's checks run. Built (dist/), in one worker thread: fast-check's search is
 * synchronous, and only a free main thread can take SIGINT and set the flag the search polls. From
 * the TypeScript sources (tests, tsx), in-process: a signal then waits for the running check to end.
 * A pool of workers is another CheckRunner over the same runCheck.
 */

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { runCheck, type CheckSpec } from './check_run.js';
import type { CheckResult } from './results.js';

export interface CheckRunner {
  run(spec: CheckSpec): Promise<CheckResult>;
  /** Ask the running check to stop after its current program (its result says interrupted). */
  requestStop(): void;
  /** Stop at once: the running check's promise rejects. */
  kill(): Promise<void>;
  close(): Promise<void>;
}

/** A check the worker could not run (a bug of the suite, not a finding). */
export class CheckRunError extends Error {
  override readonly name = 'CheckRunError';
}

function inProcess(): CheckRunner {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  return {
    async run(spec) {
      // A turn of the event loop between checks, so a pending signal is handled before the next one.
      await new Promise((r) => setImmediate(r));
      return runCheck(spec, stop);
    },
    requestStop: () => Atomics.store(stop, 0, 1),
    kill: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

function inWorker(url: URL): CheckRunner {
  const sab = new SharedArrayBuffer(4);
  const stop = new Int32Array(sab);
  const worker = new Worker(url, { workerData: { stop: sab } });
  let pending: { resolve: (r: CheckResult) => void; reject: (e: Error) => void } | null = null;
  const fail = (e: Error) => {
    const p = pending;
    pending = null;
    p?.reject(e);
  };
  worker.on('message', (m: { ok: true; result: CheckResult } | { ok: false; error: string }) => {
    const p = pending;
    pending = null;
    if (m.ok) p?.resolve(m.result);
    else p?.reject(new CheckRunError(m.error));
  });
  worker.on('error', (e) => fail(e));
  worker.on('exit', (code) => fail(new CheckRunError(`the check worker exited (${code})`)));
  return {
    run(spec) {
      return new Promise((resolve, reject) => {
        pending = { resolve, reject };
        worker.postMessage(spec);
      });
    },
    requestStop: () => Atomics.store(stop, 0, 1),
    kill: async () => {
      await worker.terminate();
    },
    close: async () => {
      await worker.terminate();
    },
  };
}

export function checkRunner(): CheckRunner {
  const url = new URL('./check_worker.js', import.meta.url);
  return import.meta.url.endsWith('.ts') || !existsSync(fileURLToPath(url)) ? inProcess() : inWorker(url);
}
