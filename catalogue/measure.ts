/**
 * Runs one ported bug's check the way the main job would and measures the search: programs and
 * wall time to the first failure, and the length of the shrunk program.
 */

import fc from 'fast-check';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { designChecks } from '../properties/checks.js';
import { HostSampleMisattributed } from '../properties/host_samples.js';
import { HostDisturbed } from '../properties/host_undisturbed.js';
import { VmmAbiViolation } from '../properties/vmm_abi.js';
import { Divergence, type WorldCommand } from '../scenarios/commands.js';
import type { PlantedFault } from './faults.js';
import type { BugEntry } from './types.js';

export interface Measurement {
  readonly row: number;
  readonly seed: number;
  readonly found: boolean;
  /** Programs generated up to and including the first failing one. */
  readonly programs: number;
  /** Wall time to the first failure, before shrinking (ms). */
  readonly msToFirst: number;
  /** Commands in the shrunk program, or null when not found. */
  readonly shrunk: number | null;
  readonly program: readonly WorldCommand[] | null;
  readonly details: fc.RunDetails<unknown>;
}

/** What the checks throw when they fail: anything else is a model or harness error. */
const FAILURES = [Divergence, HostDisturbed, HostSampleMisattributed, VmmAbiViolation];

export class CatalogueError extends Error {
  override readonly name = 'CatalogueError';
}

/** The check an entry names, built for its patched design. */
export function checkOf(b: BugEntry) {
  const host = BUILTIN_PROFILES[b.host];
  if (host === undefined) throw new CatalogueError(`bugs.md #${b.row}: unknown host profile '${b.host}'`);
  const c = designChecks(b.design, b.host, host).find(
    (x) => x.id === b.check && (b.gen === undefined || x.gen === b.gen),
  );
  if (c === undefined)
    throw new CatalogueError(
      `bugs.md #${b.row}: no check '${b.check}${b.gen !== undefined ? `/${b.gen}` : ''}' on ${b.host}`,
    );
  return c;
}

export function measure(b: BugEntry, seed: number, numRuns: number): Measurement {
  return { ...measureCheck(checkOf(b), seed, numRuns), row: b.row };
}

/** The check of a planted fault: its check id, on its generation profile where it has one. */
export function faultCheckOf(
  f: Pick<BugEntry, 'design' | 'check' | 'host'> & { readonly gen?: string; readonly id: string },
) {
  const host = BUILTIN_PROFILES[f.host];
  if (host === undefined) throw new CatalogueError(`fault ${f.id}: unknown host profile '${f.host}'`);
  const c = designChecks(f.design, f.host, host).find(
    (x) => x.id === f.check && (f.gen === undefined || x.gen === f.gen),
  );
  if (c === undefined) throw new CatalogueError(`fault ${f.id}: no check '${f.check}' on ${f.host}`);
  return c;
}

/**
 * Measures the search on one check: programs and time to the first failure, then (unless `shrink` is false,
 * as the tests that only hold detection ask) the shrunk program.
 */
export function measureCheck(c: ReturnType<typeof checkOf>, seed: number, numRuns: number, shrink = true): Measurement {
  // First the search alone (endOnFailure skips the shrinker), then the same seed with shrinking.
  const t0 = performance.now();
  const search = fc.check(c.property(new Map()), { seed, numRuns, endOnFailure: true });
  const msToFirst = performance.now() - t0;
  const d = search.failed && shrink ? fc.check(c.property(new Map()), { seed, numRuns }) : search;
  // Found means the check's own verdict; a crash of the patched model is not a detection.
  const found = d.failed && FAILURES.some((F) => d.errorInstance instanceof F);
  const program = found && shrink && c.programOf !== undefined ? c.programOf(d.counterexample) : null;
  return {
    row: 0,
    seed,
    found,
    programs: search.numRuns,
    msToFirst,
    shrunk: program === null ? null : program.length,
    program,
    details: d,
  };
}

/**
 * A planted fault measured on one seed. Found only where its faithful base passes the same programs up to the one that
 * found it: otherwise the find was the base design's own divergence, not the fault's (`baseFailedFirst`).
 */
export function measureFault(
  f: PlantedFault,
  seed: number,
  numRuns: number,
  shrink = true,
): Measurement & { readonly baseFailedFirst: boolean } {
  const m = measureCheck(faultCheckOf(f), seed, numRuns, shrink);
  if (!m.found) return { ...m, baseFailedFirst: false };
  const base = measureCheck(faultCheckOf({ ...f, design: f.base }), seed, m.programs, false);
  return base.found ? { ...m, found: false, baseFailedFirst: true } : { ...m, baseFailedFirst: false };
}
