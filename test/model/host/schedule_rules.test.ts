/**
 * Host perf's counter constraints and assignment (model/host/schedule.ts) held directly to what
 * arch/x86/events/intel/core.c and arch/x86/events/core.c compute: is_metric_event and
 * is_topdown_idx, the FIXED_EVENT_CONSTRAINT entries (architectural encodings that a GP counter may
 * count too, pseudo-encodings 0x0100..0x0700 for fixed counter umask-1 only), the constraint
 * intel_get_event_constraints gives (metric events on their pseudo index, IN_TX_CHECKPOINTED on
 * counter 2 only, nothing on a part without the counter), and x86_schedule_events' fast path (every
 * event keeps the counter it had while its constraint allows it) before perf_assign_events.
 *
 * The property tests compare two hosts on the same perf model, so a fault here moves both sides
 * alike; these tests state the kernel's values instead.
 */
import { describe, expect, it } from 'vitest';
import { defineProfile, leaf0aEax, leaf0aEdx, type Profile } from '../../../model/hw/profile.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { HSW_IN_TX_CHECKPOINTED } from '../../../model/hw/msr/counters.js';
import {
  type Constraint,
  FIXED_BASE,
  IDX_FIXED_SLOTS,
  IDX_METRIC_BASE,
  INTEL_TD_METRIC_RETIRING,
  INTEL_TD_SLOTS,
  fixedMapping,
  intel_get_event_constraints,
  is_topdown_idx,
  metricOf,
  x86_schedule_events,
} from '../../../model/host/schedule.js';
import { BRANCHES, CYCLES, INSTRUCTIONS, LLC_REFERENCES, REF_TSC } from './util.js';

/** TOPDOWN.SLOTS (event 0xa4, umask 0x01): the architectural slots event, fixed counter 3 or any GP counter. */
const TOPDOWN_SLOTS = 0x01a4n;
/** The pseudo-encoding of fixed counter j: event 0x00, umask j+1. */
const pseudo = (j: number): bigint => BigInt(j + 1) << 8n;
/** Topdown metric i (0x8000 + 0x100·i). */
const metric = (i: number): bigint => INTEL_TD_METRIC_RETIRING + (BigInt(i) << 8n);
/** The constraint bit of fixed counter j and the bits of the first n GP counters. */
const fixedBit = (j: number): bigint => 1n << BigInt(FIXED_BASE + j);
const gpBits = (n: number): bigint => (1n << BigInt(n)) - 1n;
const COUNTER2 = 1n << 2n;

/** Skylake's counters on a PMU of another version, GP count or TSX. */
function part(name: string, version: number, nGP: number, tsx = false): Profile {
  return defineProfile({
    ...SKYLAKE.spec,
    name,
    leaf0a: { eax: leaf0aEax(version, nGP, nGP > 0 ? 48 : 0, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
    ...(tsx ? { tsx } : {}),
  });
}
const V2 = part('v2', 2, 4);
const TSX_2GP = part('tsx-2gp', 4, 2, true);
const TSX_3GP = part('tsx-3gp', 4, 3, true);
const NO_GP = part('no-gp', 4, 0);

function c(mask: bigint): Constraint {
  let weight = 0;
  for (let m = mask; m !== 0n; m &= m - 1n) weight++;
  return { mask, weight };
}

describe('is_metric_event: the topdown metric pseudo-events 0x8000..0x8700', () => {
  it('metric i is config 0x8000 + 0x100·i for i < 8', () => {
    for (let i = 0; i < 8; i++) expect(metricOf(metric(i)), `0x${metric(i).toString(16)}`).toBe(i);
  });

  it('nothing else is a metric event: past 0x8700, a nonzero event byte, or below 0x8000', () => {
    for (const config of [
      metric(8), // 0x8800: beyond INTEL_TD_METRIC_MAX
      metric(15),
      INTEL_TD_METRIC_RETIRING | 0x01n, // event byte nonzero
      metric(2) | 0xc0n,
      INTEL_TD_SLOTS, // 0x0400, the slots pseudo-event
      INSTRUCTIONS,
      LLC_REFERENCES,
      0x7f00n,
      0n,
    ])
      expect(metricOf(config), `0x${config.toString(16)}`).toBe(-1);
  });
});

describe('is_topdown_idx: fixed counter 3 and the metric indexes 48..55', () => {
  it('holds for 35 and 48..55', () => {
    expect(is_topdown_idx(IDX_FIXED_SLOTS)).toBe(true);
    for (let i = 0; i < 8; i++) expect(is_topdown_idx(IDX_METRIC_BASE + i)).toBe(true);
  });

  it('not for GP counters, other fixed counters, or indexes beside the metric range', () => {
    for (const idx of [
      0,
      2,
      7,
      FIXED_BASE,
      FIXED_BASE + 2,
      FIXED_BASE + 4,
      IDX_METRIC_BASE - 1,
      IDX_METRIC_BASE + 8,
      63,
    ])
      expect(is_topdown_idx(idx), `idx ${idx}`).toBe(false);
  });
});

describe('the FIXED_EVENT_CONSTRAINT entries', () => {
  it('architectural encodings map to their fixed counter with a GP fallback', () => {
    expect(fixedMapping(INSTRUCTIONS)).toEqual({ idx: 0, gpFallback: true });
    expect(fixedMapping(CYCLES)).toEqual({ idx: 1, gpFallback: true });
    expect(fixedMapping(TOPDOWN_SLOTS)).toEqual({ idx: 3, gpFallback: true });
  });

  it('pseudo-encodings 0x0100..0x0700 map to fixed counter umask-1 only', () => {
    for (let j = 0; j < 7; j++)
      expect(fixedMapping(pseudo(j)), `umask ${j + 1}`).toEqual({ idx: j, gpFallback: false });
    expect(fixedMapping(REF_TSC)).toEqual({ idx: 2, gpFallback: false });
  });

  it('anything else has no fixed counter: umask 0 or 8, other bits beside the umask, other events', () => {
    for (const config of [0n, 0x0800n, 0xff00n, pseudo(0) | 0x01n, pseudo(2) | (1n << 18n), BRANCHES, LLC_REFERENCES])
      expect(fixedMapping(config), `0x${config.toString(16)}`).toBeNull();
  });
});

describe('intel_get_event_constraints', () => {
  it('an architectural fixed event: its fixed counter (v2 and later, if it exists) or any GP counter', () => {
    expect(intel_get_event_constraints(SKYLAKE, INSTRUCTIONS, false)).toEqual(c(fixedBit(0) | gpBits(4)));
    expect(intel_get_event_constraints(V2, INSTRUCTIONS, false)).toEqual(c(fixedBit(0) | gpBits(4)));
    expect(intel_get_event_constraints(V2, CYCLES, false)).toEqual(c(fixedBit(1) | gpBits(4)));
    expect(intel_get_event_constraints(ICELAKE, TOPDOWN_SLOTS, false)).toEqual(c(fixedBit(3) | gpBits(8)));
    // Skylake has no fixed counter 3: TOPDOWN.SLOTS is a GP event there.
    expect(intel_get_event_constraints(SKYLAKE, TOPDOWN_SLOTS, false)).toEqual(c(gpBits(4)));
  });

  it('a pseudo-encoding: its fixed counter only, nothing where that counter does not exist', () => {
    expect(intel_get_event_constraints(V2, REF_TSC, false)).toEqual(c(fixedBit(2)));
    expect(intel_get_event_constraints(ICELAKE, INTEL_TD_SLOTS, false)).toEqual(c(fixedBit(3)));
    expect(intel_get_event_constraints(SKYLAKE, INTEL_TD_SLOTS, false)).toBeNull();
  });

  it('metric i on index 48+i while i < num_topdown_events: 4 on Ice Lake, 8 on Sapphire Rapids', () => {
    for (let i = 0; i < 4; i++)
      expect(intel_get_event_constraints(ICELAKE, metric(i), false)).toEqual(c(1n << BigInt(IDX_METRIC_BASE + i)));
    for (let i = 4; i < 8; i++)
      expect(intel_get_event_constraints(ICELAKE, metric(i), false), `metric ${i}`).toBeNull();
    for (let i = 0; i < 8; i++)
      expect(intel_get_event_constraints(SAPPHIRE_RAPIDS, metric(i), false)).toEqual(
        c(1n << BigInt(IDX_METRIC_BASE + i)),
      );
  });

  it('IN_TX_CHECKPOINTED: counter 2 only (counter2_constraint), nothing on a part with two GP counters', () => {
    expect(intel_get_event_constraints(TSX_3GP, BRANCHES | HSW_IN_TX_CHECKPOINTED, false)).toEqual(c(COUNTER2));
    expect(intel_get_event_constraints(SAPPHIRE_RAPIDS, CYCLES | HSW_IN_TX_CHECKPOINTED, false)).toEqual(c(COUNTER2));
    expect(intel_get_event_constraints(TSX_2GP, BRANCHES | HSW_IN_TX_CHECKPOINTED, false)).toBeNull();
    // Without the bit, the same events take any GP counter.
    expect(intel_get_event_constraints(TSX_3GP, BRANCHES, false)).toEqual(c(gpBits(3)));
    expect(intel_get_event_constraints(TSX_2GP, BRANCHES, false)).toEqual(c(gpBits(2)));
  });

  it('a host without GP counters counts only what a fixed counter counts', () => {
    expect(intel_get_event_constraints(NO_GP, BRANCHES, false)).toBeNull();
    expect(intel_get_event_constraints(NO_GP, INSTRUCTIONS, false)).toEqual(c(fixedBit(0)));
  });
});

describe('x86_schedule_events', () => {
  const GP4 = c(gpBits(4));
  const FIXED0_OR_GP = c(fixedBit(0) | gpBits(4));

  it('fast path: every event keeps the counter it had, even where the greedy order would differ', () => {
    expect(
      x86_schedule_events([
        { constraint: GP4, lastIdx: 1 },
        { constraint: GP4, lastIdx: 0 },
        { constraint: FIXED0_OR_GP, lastIdx: 3 },
      ]),
    ).toEqual([1, 0, 3]);
  });

  it('an event that never had a counter sends the whole set to perf_assign_events', () => {
    expect(
      x86_schedule_events([
        { constraint: GP4, lastIdx: 1 },
        { constraint: GP4, lastIdx: -1 },
      ]),
    ).toEqual([0, 1]);
    expect(x86_schedule_events([{ constraint: GP4, lastIdx: -1 }])).toEqual([0]);
  });

  it('a previous counter the constraint no longer allows is not kept', () => {
    expect(
      x86_schedule_events([
        { constraint: GP4, lastIdx: 2 },
        { constraint: c(COUNTER2), lastIdx: 0 },
      ]),
    ).toEqual([0, 2]);
  });

  it('two events on the same previous counter: the slow path, fewest choices first, fixed before GP', () => {
    expect(
      x86_schedule_events([
        { constraint: GP4, lastIdx: 0 },
        { constraint: FIXED0_OR_GP, lastIdx: 0 },
      ]),
    ).toEqual([0, FIXED_BASE]);
  });

  it('a set that does not fit is refused', () => {
    expect(
      x86_schedule_events([
        { constraint: c(COUNTER2), lastIdx: -1 },
        { constraint: c(COUNTER2), lastIdx: -1 },
      ]),
    ).toBeNull();
  });
});
