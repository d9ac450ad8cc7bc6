/**
 * End-to-end throughput, as a user waits for it: each property run by fc.check as the main job runs
 * it (generation, then the predicate, program after program), split into generation and execution
 * by a plugin that times the predicate; and fast-check's command machinery on a trivial model,
 * timed by the same harness, as the ceiling the property's figure is a fraction of.
 */

import fc from 'fast-check';
import type { Check } from '../properties/checks.js';

export interface EndToEnd {
  readonly property: string;
  /** Programs (fc.check runs) per second, generation and execution together. */
  readonly programsPerSecond: number;
  /** Commands generated per second (every command of every program, whether it ran or not). */
  readonly commandsPerSecond: number;
  /** Of the wall time, the share outside the predicate: generation and fast-check's own work. */
  readonly generationShare: number;
  readonly commandsPerProgram: number;
}

/** A fast-check plugin adding the time spent in the predicate to `clock.ms`. */
function timePredicate(clock: { ms: number }): fc.Plugin<unknown> {
  return () => ({
    decorateRun: (run) => (v) => {
      const t0 = performance.now();
      try {
        return run(v);
      } finally {
        clock.ms += performance.now() - t0;
      }
    },
  });
}

/** Commands in a generated value: fc.commands' wrappers or plain commands, in arrays and command lists. */
export function countCommands(v: unknown, depth = 0): number {
  if (typeof v !== 'object' || v === null || depth > 4) return 0;
  if ('cmd' in v && 'hasRan' in v) return 1;
  if ('run' in v && 'check' in v && typeof v.run === 'function') return 1;
  if (!Array.isArray(v) && !(Symbol.iterator in v)) return 0;
  let n = 0;
  for (const x of v as Iterable<unknown>) n += countCommands(x, depth + 1);
  return n;
}

/**
 * Runs `property()` under fc.check, `runs` programs per call on fresh seeds, for `warmup` seconds and
 * then `samples` timed slices of `seconds / samples`; returns the median slice's figures.
 */
export function endToEnd(
  name: string,
  property: () => fc.IRawProperty<unknown, false>,
  seconds: number,
  samples: number,
  warmup: number,
  runs = 20,
): EndToEnd {
  let seed = 1;
  const slice = (ms: number) => {
    const clock = { ms: 0 };
    let programs = 0;
    let commands = 0;
    const count: fc.Plugin<unknown> = () => ({
      decorateRun: (run) => (v) => {
        commands += countCommands(v);
        return run(v);
      },
    });
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < ms) {
      const d = fc.check(property(), { seed: seed++, numRuns: runs, plugins: [count, timePredicate(clock)] });
      if (d.failed) throw new Error(`${name}: the property failed at seed ${d.seed}; a bench measures passing runs`);
      programs += d.numRuns;
      t = performance.now();
    }
    const wall = t - t0;
    return { programs, commands, wall, exec: clock.ms };
  };
  // Each property its own warm-up, so timing starts where npm start's workers spend their minutes: V8 takes about
  // 3 s to reach a steady rate on a conformance property (1 s in: a third of it).
  slice(warmup * 1000);
  const got = Array.from({ length: samples }, () => slice((seconds * 1000) / samples)).sort(
    (a, b) => a.programs / a.wall - b.programs / b.wall,
  );
  const m = got[samples >> 1]!;
  return {
    property: name,
    programsPerSecond: (m.programs * 1000) / m.wall,
    commandsPerSecond: (m.commands * 1000) / m.wall,
    generationShare: 1 - m.exec / m.wall,
    commandsPerProgram: m.commands / Math.max(1, m.programs),
  };
}

/** The property of a check, with its known-divergence counter (not read by a bench). */
export const checkProperty = (c: Check) => () => c.property(new Map());

/** fast-check's ceiling: fc.commands of two cheap commands on a counter, checked with fc.modelRun. */
export function trivialModel(): fc.IRawProperty<unknown, false> {
  interface Model {
    n: number;
  }
  interface Real {
    n: number;
  }
  class Inc implements fc.Command<Model, Real> {
    check = () => true;
    run(m: Model, r: Real) {
      m.n++;
      r.n++;
    }
    toString = () => 'inc';
  }
  class Check implements fc.Command<Model, Real> {
    check = () => true;
    run(m: Model, r: Real) {
      if (m.n !== r.n) throw new Error('diverged');
    }
    toString = () => 'check';
  }
  const cmds = fc.commands([fc.constant(new Inc()), fc.constant(new Check())], { size: '+1' });
  return fc.property(cmds, (c) => fc.modelRun(() => ({ model: { n: 0 }, real: { n: 0 } }), c));
}
