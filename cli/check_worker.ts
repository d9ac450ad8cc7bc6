/**
 * The worker thread of `npm start`: runs the checks it is sent, one at a time, so the main thread
 * stays free to take a signal and set the stop flag the running check polls between programs.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { runCheck, type CheckSpec } from './check_run.js';

const stop = new Int32Array((workerData as { stop: SharedArrayBuffer }).stop);
const port = parentPort!;
port.on('message', (spec: CheckSpec) => {
  try {
    port.postMessage({ ok: true, result: runCheck(spec, stop) });
  } catch (e) {
    port.postMessage({ ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
});
