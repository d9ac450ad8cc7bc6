/**
 * The task a pool worker runs (piscina calls the default export with each task it is sent): a check
 * of the main job from its spec, or one seed of a bug-catalogue row. Tasks and answers are plain
 * data (structured-cloned across the thread boundary); reports come back rendered, for the main
 * thread to publish in the run's order.
 */

import { CATALOGUE } from '../catalogue/catalogue.js';
import { type Measurement, measure, measureFault } from '../catalogue/measure.js';
import { FAULTS } from '../catalogue/faults.js';
import { type CheckSpec, type RanCheck, runCheckDeferred } from './check_run.js';

/** One seed of a catalogue row, as `npm run bugs` tabulates it: a Measurement without what cannot cross threads. */
export type BugSeed = Pick<Measurement, 'row' | 'seed' | 'found' | 'programs' | 'msToFirst' | 'shrunk'> & {
  /** The shrunk program, one command per line of code. */
  readonly example: readonly string[] | null;
};

/** One seed of a planted fault (catalogue/faults.ts). */
export type FaultSeed = Pick<Measurement, 'seed' | 'found' | 'programs' | 'msToFirst' | 'shrunk'> & {
  readonly id: string;
  /** The faithful base design failed the same programs first: the find was its own, not the fault's. */
  readonly baseFailedFirst: boolean;
  readonly example: readonly string[] | null;
};

export type Task =
  | { readonly kind: 'check'; readonly spec: CheckSpec; readonly stop: SharedArrayBuffer }
  | { readonly kind: 'bug'; readonly row: number; readonly seed: number; readonly runs: number }
  | { readonly kind: 'fault'; readonly id: string; readonly seed: number; readonly runs: number };

export function measureSeed(row: number, seed: number, runs: number): BugSeed {
  const b = CATALOGUE.find((x) => x.row === row);
  if (b === undefined) throw new Error(`no catalogue row ${row}`);
  const m = measure(b, seed, runs);
  return {
    row,
    seed,
    found: m.found,
    programs: m.programs,
    msToFirst: m.msToFirst,
    shrunk: m.shrunk,
    example: m.program?.map(String) ?? null,
  };
}

export function measureFaultSeed(id: string, seed: number, runs: number): FaultSeed {
  const f = FAULTS.find((x) => x.id === id);
  if (f === undefined) throw new Error(`no planted fault ${id}`);
  const m = measureFault(f, seed, runs);
  return {
    id,
    seed,
    found: m.found,
    baseFailedFirst: m.baseFailedFirst,
    programs: m.programs,
    msToFirst: m.msToFirst,
    shrunk: m.shrunk,
    example: m.program?.map(String) ?? null,
  };
}

export default function task(t: Task): RanCheck | BugSeed | FaultSeed {
  if (t.kind === 'check') return runCheckDeferred(t.spec, new Int32Array(t.stop));
  return t.kind === 'bug' ? measureSeed(t.row, t.seed, t.runs) : measureFaultSeed(t.id, t.seed, t.runs);
}
