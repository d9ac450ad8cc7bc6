/**
 * The topdown accuracy measurement (issue 17, item 2): how close the PERF_METRICS a guest reads under each topdown
 * proposal comes to bare metal's, per metric, in 1/255 units. Each case is a generated slot breakdown run end to end:
 * the guest does what Linux's perf does for topdown (FIXED_CTR3 and PERF_METRICS to 0, enable FC3 and GLOBAL_CTRL
 * bit 48, work, disable, read PERF_METRICS) on a design beside bare metal, and the bytes are compared.
 */

import fc from 'fast-check';
import { type Profile, leaf0aEax, leaf0aEdx, perfCaps } from '../model/hw/profile.js';
import { MSR_CORE_PERF_FIXED_CTR0, MSR_CORE_PERF_FIXED_CTR_CTRL } from '../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../model/hw/msr/global.js';
import { METRICS, MSR_PERF_METRICS, type Metric, type TopdownSlots, totalSlots } from '../model/hw/msr/topdown.js';
import type { WorkUnit } from '../model/hw/work.js';
import type { Design } from '../properties/design.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, Preempt, type WorldCommand } from '../scenarios/commands.js';
import { readValue } from '../scenarios/observation.js';
import { type GuestConfig, World } from '../scenarios/world.js';

/** How the guest's period meets the host: all in one hardware window, or split by a preemption of the vCPU thread. */
export const TOPDOWN_SCENARIOS = ['one window', 'preempted'] as const;
export type TopdownScenario = (typeof TOPDOWN_SCENARIOS)[number];

/** One generated case: the slots of each phase of the guest's period (each phase a run of work units). */
export interface TopdownCase {
  readonly phases: readonly (readonly TopdownSlots[])[];
}

/** A breakdown of one work unit: level-1 parts, level-2 parts within their parents. */
const breakdownArb: fc.Arbitrary<TopdownSlots> = fc
  .constantFrom(16, 400)
  .chain((max) =>
    fc.record({
      r: fc.nat(max),
      b: fc.nat(max),
      f: fc.nat(max),
      k: fc.nat(max),
      // Units of 1 to 32 times the slots: periods from a few dozen slots (S < 255) to about 10⁵.
      scale: fc.constantFrom(1, 1, 4, 32),
    }),
  )
  .chain(({ r, b, f, k, scale }) =>
    fc.record({ h: fc.nat(r), m: fc.nat(b), l: fc.nat(f), o: fc.nat(k) }).map(({ h, m, l, o }) => ({
      retiring: r * scale,
      badSpeculation: b * scale,
      frontendBound: f * scale,
      backendBound: k * scale,
      heavyOperations: h * scale,
      branchMispredicts: m * scale,
      fetchLatency: l * scale,
      memoryBound: o * scale,
    })),
  )
  .filter((t) => totalSlots(t) > 0);

/** Two phases of 1–4 units each: one mix, or a change of mix halfway (what a window boundary can cut). */
export const topdownCaseArb: fc.Arbitrary<TopdownCase> = fc.record({
  phases: fc.tuple(
    fc.array(breakdownArb, { minLength: 1, maxLength: 4 }),
    fc.array(breakdownArb, { minLength: 1, maxLength: 4 }),
  ),
});

/** The guest: version 2, every counter the design offers on this host, FIXED_CTR3 and PERF_METRICS. */
function topdownGuest(host: Profile): GuestConfig {
  return {
    cpuid: {
      family: host.family,
      model: host.model,
      leaf0a: { eax: leaf0aEax(2, 4, host.gpWidth, host.evLen), ebx: 0, ecx: 0, edx: leaf0aEdx(4, host.fixedWidth) },
      pdcm: true,
    },
    perfCapabilities: perfCaps({ fwWrite: true, lbrFmt: 0, perfMetrics: true }),
  };
}

const FC3 = MSR_CORE_PERF_FIXED_CTR0 + 3;
const unit = (slots: TopdownSlots): WorkUnit => ({ cpl: 3, instructions: 1, slots });

/** Linux's topdown sequence over the case's phases; a preemption between them in the 'preempted' scenario. */
export function topdownProgram(c: TopdownCase, scenario: TopdownScenario): WorldCommand[] {
  const between = scenario === 'preempted' ? [new Preempt(0, [{ cpl: 0, instructions: 1 }])] : [];
  return [
    new GuestWrmsr(0, FC3, 0n),
    new GuestWrmsr(0, MSR_PERF_METRICS, 0n),
    new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3000n),
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, (1n << 35n) | (1n << 48n)),
    ...c.phases.flatMap((p, i) => [...(i > 0 ? between : []), new GuestRun(0, p.map(unit))]),
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n),
    new GuestRdmsr(0, MSR_PERF_METRICS),
  ];
}

/** Each metric's byte as the guest read it minus bare metal's (1/255 units), and the period's slots; null: no read. */
export function topdownErrors(
  design: Design,
  host: Profile,
  c: TopdownCase,
  scenario: TopdownScenario,
): { readonly err: readonly number[]; readonly slots: number } | null {
  const w = new World({
    host,
    cpus: 2,
    guests: [topdownGuest(host)],
    design: design.factory,
    hostKernel: design.hostKernel,
    compare: false,
  });
  for (const cmd of topdownProgram(c, scenario)) cmd.run({}, w);
  const read = w.observations.findLast((o) => o.kind === 'rdmsr' && o.target === MSR_PERF_METRICS);
  const sut = read === undefined ? null : readValue(read.sut);
  const bare = read === undefined ? null : readValue(read.oracle);
  if (sut === null || bare === null) return null;
  const n = host.topdownL2 ? 8 : 4;
  const byte = (v: bigint, k: number) => Number((v >> BigInt(8 * k)) & 0xffn);
  return {
    err: Array.from({ length: n }, (_, k) => byte(sut, k) - byte(bare, k)),
    slots: c.phases.flat().reduce((a, t) => a + totalSlots(t), 0),
  };
}

/** The S buckets of the report: short periods (where 8-bit fractions lose most), middling, long. */
export const SLOT_BUCKETS = ['S < 255', '255 ≤ S ≤ 10⁴', 'S > 10⁴', 'all'] as const;
export type SlotBucket = (typeof SLOT_BUCKETS)[number];
const bucketOf = (s: number): SlotBucket => (s < 255 ? 'S < 255' : s <= 10_000 ? '255 ≤ S ≤ 10⁴' : 'S > 10⁴');

/** One row of the accuracy table: a metric under a design in a scenario, over the cases of a bucket. */
export interface TopdownAccuracy {
  readonly design: string;
  readonly scenario: TopdownScenario;
  readonly bucket: SlotBucket;
  readonly metric: Metric;
  readonly level: 1 | 2;
  /** Cases measured (a case whose read faulted is not). */
  readonly cases: number;
  /** Largest |error|, mean |error| and mean signed error (bias), in 1/255. */
  readonly worst: number;
  readonly mean: number;
  readonly bias: number;
}

/** The accuracy of `design` on `host` over `cases`, per scenario, bucket and metric. */
export function measureTopdown(design: Design, host: Profile, cases: readonly TopdownCase[]): TopdownAccuracy[] {
  const out: TopdownAccuracy[] = [];
  for (const scenario of TOPDOWN_SCENARIOS) {
    const runs = cases.flatMap((c) => {
      const r = topdownErrors(design, host, c, scenario);
      return r === null ? [] : [r];
    });
    for (const bucket of SLOT_BUCKETS) {
      const inBucket = runs.filter((r) => bucket === 'all' || bucketOf(r.slots) === bucket);
      const n = host.topdownL2 ? 8 : 4;
      for (let k = 0; k < n; k++) {
        const errs = inBucket.map((r) => r.err[k]!);
        const abs = errs.map(Math.abs);
        const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
        out.push({
          design: design.id,
          scenario,
          bucket,
          metric: METRICS[k]!,
          level: k < 4 ? 1 : 2,
          cases: errs.length,
          worst: abs.length === 0 ? 0 : Math.max(...abs),
          mean: mean(abs),
          bias: mean(errs),
        });
      }
    }
  }
  return out;
}

/** The generated cases of a measurement: `n` slot breakdowns from `seed` (the same for every design). */
export function topdownCases(seed: number, n: number): TopdownCase[] {
  return fc.sample(topdownCaseArb, { seed, numRuns: n });
}

/** The designs the measurement compares: the two posted topdown proposals. */
export const TOPDOWN_DESIGNS = ['topdown-raw', 'topdown-rebuilt'] as const;
/** The host it runs on: the Sapphire Rapids-like part, with level-2 bytes. */
export const TOPDOWN_HOST = 'sapphirerapids';
/** Cases per measurement. */
export const TOPDOWN_CASES = 300;

/** The worst and mean |error| over a level's metrics, for one design, scenario and bucket. */
export function levelSummary(
  rows: readonly TopdownAccuracy[],
  design: string,
  scenario: TopdownScenario,
  level: 1 | 2,
  bucket: SlotBucket = 'all',
): { readonly worst: number; readonly mean: number; readonly bias: number; readonly cases: number } {
  const rs = rows.filter(
    (r) => r.design === design && r.scenario === scenario && r.level === level && r.bucket === bucket,
  );
  const avg = (f: (r: TopdownAccuracy) => number) =>
    rs.length === 0 ? 0 : rs.reduce((a, r) => a + f(r), 0) / rs.length;
  return {
    worst: Math.max(0, ...rs.map((r) => r.worst)),
    mean: avg((r) => r.mean),
    bias: avg((r) => r.bias),
    cases: rs[0]?.cases ?? 0,
  };
}
