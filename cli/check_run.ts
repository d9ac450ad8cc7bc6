/**
 * One check of the main job, from a plain description to a plain result: what a worker thread runs.
 * A CheckSpec names the check (design, check id, host, generation profile) and its budget; runCheck
 * rebuilds the check from the registry, runs fast-check, writes a bug report for a failure of the
 * five properties reports cover, and returns a CheckResult. Both are structured-clonable, so the
 * same function runs in-process, in the one worker `npm start` uses, or in a pool.
 */

import fc from 'fast-check';
import { type Check, checksFor } from '../properties/checks.js';
import { designById } from '../designs/registry.js';
import { buildReport } from '../reports/build.js';
import { isReportProperty, REPORT_PROPERTIES } from '../reports/replay.js';
import { publishReport, type RenderedReport, renderReport } from '../reports/write.js';
import { join } from 'node:path';
import type { CheckResult } from './results.js';

export interface CheckSpec {
  readonly check: string;
  /** The design's id; null for the reference model's laws. */
  readonly design: string | null;
  /** A built-in host profile name, or 'random' for the laws. */
  readonly host: string;
  readonly gen: string | null;
  readonly seed: number;
  readonly runs: number;
  readonly timeSeconds: number | null;
  /** Where a report goes. */
  readonly out: string;
  /** The date of the run (the CLI reads the clock; nothing under model does). */
  readonly found: string;
}

/** A spec that names no check (a worker cannot throw the Check across the thread boundary). */
export class CheckSpecError extends Error {
  override readonly name = 'CheckSpecError';
}

/** Where a check and its spec meet: the spec of a check, and the check of a spec. */
export function specOf(
  c: Check,
  budget: Pick<CheckSpec, 'seed' | 'runs' | 'timeSeconds' | 'out' | 'found'>,
): CheckSpec {
  return { check: c.id, design: c.design?.id ?? null, host: c.profile, gen: c.gen ?? null, ...budget };
}

export function checkOf(s: CheckSpec): Check {
  // The laws do not depend on the design; any design's list holds them.
  const all = checksFor(designById(s.design ?? 'emulated'));
  const c = all.find(
    (x) =>
      x.id === s.check &&
      x.profile === s.host &&
      (x.gen ?? null) === s.gen &&
      (x.design === undefined) === (s.design === null),
  );
  if (c === undefined)
    throw new CheckSpecError(
      `no check ${s.check}${s.gen !== null ? `/${s.gen}` : ''} on ${s.design ?? 'hw model'}, ${s.host}`,
    );
  return c;
}

/** A fast-check plugin that interrupts the run (as a time limit does) once `flag[0]` is set. */
export function stopWhenFlagged(flag: Int32Array): fc.Plugin<unknown> {
  return () => ({
    decorateRun: (run) => (v) => (Atomics.load(flag, 0) !== 0 ? new fc.PreconditionFailure(true) : run(v)),
  });
}

const firstLine = (e: unknown) =>
  (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).split('\n')[0]!.slice(0, 300);

/** Renders a failure of a property reports cover as a report for `out`; never throws (fast-check's message must show). */
function renderFailure(c: Check, s: CheckSpec, d: fc.RunDetails<unknown>): RenderedReport | string | null {
  if (c.design === undefined || c.host === undefined) return null;
  // A VMM-prefixed program is property 1's: its ioctls are commands of the same World, replayed against bare metal.
  const vmm = c.id === 'vmm-conformance' && c.programOf !== undefined;
  if (!isReportProperty(c.id) && !vmm)
    return `the ${c.id} check has no report format yet (reports are written for ${[...REPORT_PROPERTIES, 'vmm-conformance'].join(', ')}): the counterexample above and the replay command are the finding`;
  const guest = vmm
    ? ((d.counterexample as readonly unknown[] | null)?.[0] as readonly unknown[] | undefined)?.[0]
    : null;
  try {
    const r = buildReport({
      details: vmm
        ? ({ ...d, counterexample: [[guest, c.programOf?.(d.counterexample)]] } as fc.RunDetails<unknown>)
        : d,
      property: { id: vmm ? 'conformance' : c.id, rule: c.rule },
      gen: c.gen,
      design: c.design,
      hostName: c.profile,
      host: c.host,
      found: s.found,
      outDir: s.out,
    });
    return renderReport(r, s.out);
  } catch (e) {
    return firstLine(e);
  }
}

/** A check run, its report (if any) rendered but not yet in the output folder. */
export interface RanCheck {
  readonly result: CheckResult;
  readonly pending: RenderedReport | null;
}

/** Puts a run check's report in place and says so in its result; never throws. */
export function publishRan(r: RanCheck, out: string): CheckResult {
  if (r.pending === null) return r.result;
  try {
    const w = publishReport(r.pending, out);
    return {
      ...r.result,
      report: {
        id: r.pending.id,
        dir: w.dir,
        markdown: w.markdown,
        json: w.json,
        regression: join(w.dir, 'regression.test.ts'),
        status: w.written ? 'written' : 'kept',
        replay: `npm run replay -- ${w.json}`,
      },
    };
  } catch (e) {
    return { ...r.result, reportError: firstLine(e) };
  }
}

/** Runs one check and writes its report. */
export function runCheck(s: CheckSpec, stop?: Int32Array): CheckResult {
  return publishRan(runCheckDeferred(s, stop), s.out);
}

/**
 * The tallies of the first runs only: shrinking runs the property again after a failure, and a check reports the
 * programs it counted (fast-check's numRuns), not the shrinker's. The plugin snapshots both maps as each run starts.
 */
export function countsOfRuns(known: Map<string, number>, ended: Map<string, number>) {
  type Counts = readonly [Map<string, number>, Map<string, number>];
  const starts: Counts[] = [];
  return {
    plugin: fc.beforeEach(() => void starts.push([new Map(known), new Map(ended)])),
    /** Both maps as they were after run `n` (the live maps when no later run started). */
    after: (n: number): Counts => starts[n] ?? [known, ended],
  };
}

/**
 * Runs one check, leaving its report for the caller to publish (in the run's order). `stop`, when
 * given, is the flag a signal handler sets to end the search early.
 */
export function runCheckDeferred(s: CheckSpec, stop?: Int32Array): RanCheck {
  const c = checkOf(s);
  const known = new Map<string, number>();
  const ended = new Map<string, number>();
  const plugins: fc.Plugin<unknown>[] = [];
  if (s.timeSeconds !== null) plugins.push(fc.interruptAfterTimeLimit(s.timeSeconds * 1000));
  if (stop !== undefined) plugins.push(stopWhenFlagged(stop));
  const counted = countsOfRuns(known, ended);
  plugins.push(counted.plugin);
  const t0 = performance.now();
  const d = fc.check(c.property(known, ended), { seed: s.seed, numRuns: s.runs, plugins });
  const [knownOfRuns, endedOfRuns] = counted.after(d.numRuns);
  // fast-check marks a check interrupted before its first program as failed, with no counterexample: not a finding.
  const failed = d.failed && !(d.interrupted && d.counterexample === null && d.errorInstance === null);
  const rendered = failed ? renderFailure(c, s, d) : null;
  const pending = typeof rendered === 'string' ? null : rendered;
  const stopped = stop !== undefined && Atomics.load(stop, 0) !== 0;
  const verdict = failed ? 'failed' : d.interrupted ? 'interrupted' : 'passed';
  const result: CheckResult = {
    check: c.id,
    gen: c.gen ?? null,
    design: c.design?.id ?? null,
    host: c.profile,
    rule: c.rule,
    result: verdict,
    reason: verdict === 'interrupted' ? (stopped ? 'signal' : 'time limit') : null,
    programs: d.numRuns,
    ms: Math.round(performance.now() - t0),
    known: Object.fromEntries(knownOfRuns),
    ended: c.countsEndings === true ? Object.fromEntries(endedOfRuns) : null,
    failure: failed
      ? {
          error: firstLine(d.errorInstance),
          message: fc.defaultReportMessage(d) ?? '',
          seed: d.seed,
          path: d.counterexamplePath,
          // Without a report's signature: the check, the design and the error with its step and index numbers left out.
          rootCause:
            pending?.id ??
            `${c.id} on ${c.design?.id ?? 'hw model'}: ${firstLine(d.errorInstance).replace(/\b\d+\b/g, 'N')}`,
        }
      : null,
    report: null,
    reportError: typeof rendered === 'string' ? rendered : null,
  };
  return { result, pending };
}
