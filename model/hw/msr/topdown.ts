/**
 * MSR_PERF_METRICS (0x329) and its tie to FIXED_CTR3 / SLOTS (pmu-semantics.md §2.11).
 * Each byte is a fraction b/0xFF of the slots counted over the period; the model keeps exact
 * hidden slot counts and derives the bytes on read (decision D12).
 */

import { type Access, ok } from '../access.js';
import type { Profile } from '../profile.js';
import type { PmuState } from '../state.js';
import { msrFamily } from './family.js';
import { relied } from '../relied.js';

export const MSR_PERF_METRICS = 0x329;

/** Byte order of PERF_METRICS: level 1 in bytes 0..3, level 2 (SPR+) in bytes 4..7. */
export const METRICS = [
  'retiring',
  'badSpeculation',
  'frontendBound',
  'backendBound',
  'heavyOperations',
  'branchMispredicts',
  'fetchLatency',
  'memoryBound',
] as const;
export type Metric = (typeof METRICS)[number];

/** Bytes the part implements: 4 at level 1, 8 with level 2. */
export function metricBytes(p: Profile): number {
  return p.topdownL2 ? 8 : 4;
}

/** The register value the hidden counts stand for: floor(0xFF · slots_k / total slots). */
export function readPerfMetrics(s: PmuState): bigint {
  const t = s.topdown;
  if (t.total === 0n) return t.written;
  let v = 0n;
  const n = metricBytes(s.profile);
  for (let k = 0; k < n; k++) v |= ((t.acc[k]! * 255n) / t.total) << BigInt(8 * k);
  return v;
}

/** Sets the period to `value` weighted by the current SLOTS count, so later slots blend in. */
function seed(s: PmuState, value: bigint): void {
  const t = s.topdown;
  const slots = s.fixed[3]!;
  const n = metricBytes(s.profile);
  t.written = value;
  for (let k = 0; k < 8; k++) t.acc[k] = k < n ? ((value >> BigInt(8 * k)) & 0xffn) * slots : 0n;
  t.total = 255n * slots;
}

/** A FIXED_CTR3 write starts a new weighting of the same fractions (decision D12). */
export function rebaseTopdown(s: PmuState): void {
  seed(s, readPerfMetrics(s));
}

/** Bits 63:32 do not exist without level 2: ignored on write, read 0 (decision D13). */
export function legalizePerfMetrics(p: Profile, v: bigint): bigint {
  if (p.topdownL2) return v;
  if (v > 0xffff_ffffn) relied('D13');
  return v & 0xffff_ffffn;
}

/** The slot breakdown of one work unit, in slots; level-2 parts are within their parents. */
export interface TopdownSlots {
  readonly retiring: number;
  readonly badSpeculation: number;
  readonly frontendBound: number;
  readonly backendBound: number;
  readonly heavyOperations?: number;
  readonly branchMispredicts?: number;
  readonly fetchLatency?: number;
  readonly memoryBound?: number;
}

export function totalSlots(t: TopdownSlots): number {
  return t.retiring + t.badSpeculation + t.frontendBound + t.backendBound;
}

/** Adds one unit's slots to a pending tally: index k per METRICS, index 8 the L1 total. */
export function tallyTopdown(pending: number[], t: TopdownSlots, l2: boolean): void {
  pending[0]! += t.retiring;
  pending[1]! += t.badSpeculation;
  pending[2]! += t.frontendBound;
  pending[3]! += t.backendBound;
  if (l2) {
    pending[4]! += t.heavyOperations ?? 0;
    pending[5]! += t.branchMispredicts ?? 0;
    pending[6]! += t.fetchLatency ?? 0;
    pending[7]! += t.memoryBound ?? 0;
  }
  pending[8]! += totalSlots(t);
}

/** Moves a pending tally into the hidden counts (caller checked SLOTS counts and EN_PERF_METRICS). */
export function accumulateTopdown(s: PmuState, pending: number[]): void {
  const a = s.topdown.acc;
  for (let k = 0; k < 8; k++) {
    if (pending[k] !== 0) a[k]! += 255n * BigInt(pending[k]!);
    pending[k] = 0;
  }
  s.topdown.total += 255n * BigInt(pending[8]!);
  pending[8] = 0;
}

/** RDPMC metrics-clear mode and software resets: both registers to zero (§2.11). */
export function clearTopdown(s: PmuState): void {
  s.fixed[3] = 0n;
  seed(s, 0n);
}

export const topdownMsrs = msrFamily(['perfMetrics'], (p) => {
  if (!p.perfMetrics) return [];
  return [
    {
      address: MSR_PERF_METRICS,
      name: 'MSR_PERF_METRICS',
      read: (s) => ok(readPerfMetrics(s)),
      write: (s, v): Access => {
        relied('D12');
        const stored = legalizePerfMetrics(s.profile, v);
        seed(s, stored);
        return ok(stored);
      },
    },
  ];
});
