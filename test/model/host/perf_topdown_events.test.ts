/**
 * Host perf's own topdown metric events (arch/x86/events/intel/core.c): icl_get_metrics_event_value,
 * icl_get_topdown_value and __icl_update_topdown_event (a reading's share over the last one, never
 * a decrease), intel_update_topdown_event (every active topdown event folds; a stopped event saves
 * FIXED_CTR3 and PERF_METRICS instead of resetting them) and icl_set_topdown_event_period (a
 * counting group starts both registers from 0), for a perf stat topdown group on the host.
 *
 * No generated host user opens a topdown group, so the property tests reach these functions only
 * through KVM's series; the values here are the kernel's, with PERF_METRICS taken from bare metal.
 */
import { describe, expect, it, vi } from 'vitest';
import { Cpu } from '../../../model/hw/cpu.js';
import { SAPPHIRE_RAPIDS } from '../../../model/hw/profiles.js';
import type { WorkUnit } from '../../../model/hw/work.js';
import { MSR_CORE_PERF_FIXED_CTR0, MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { MSR_PERF_METRICS, type TopdownSlots } from '../../../model/hw/msr/topdown.js';
import { HostKernel, icl_get_metrics_event_value, type TopdownEvent } from '../../../model/host/perf.js';
import { INTEL_TD_METRIC_RETIRING, INTEL_TD_SLOTS } from '../../../model/host/schedule.js';
import { attr, type PerfTarget } from '../../../model/host/types.js';
import { ev, rd } from './util.js';

const h = SAPPHIRE_RAPIDS;
const FC3 = MSR_CORE_PERF_FIXED_CTR0 + 3;
const FC3_BIT = 1n << 35n;
const METRICS_BIT = 1n << 48n;

/** 1000 slots each. */
const A: TopdownSlots = { retiring: 380, badSpeculation: 7, frontendBound: 213, backendBound: 400 };
const B: TopdownSlots = { retiring: 100, badSpeculation: 500, frontendBound: 300, backendBound: 100 };
const C: TopdownSlots = { retiring: 250, badSpeculation: 3, frontendBound: 247, backendBound: 500 };
/** A few bad-speculation slots, then none: the 8-bit fraction falls from 1 to 0 (the kernel comment's case). */
const FEW: TopdownSlots = { retiring: 400, badSpeculation: 4, frontendBound: 296, backendBound: 300 };
const NONE: TopdownSlots = { retiring: 500, badSpeculation: 0, frontendBound: 200, backendBound: 300 };
const unit = (slots: TopdownSlots): WorkUnit => ({ cpl: 0, instructions: 1, slots });

/** PERF_METRICS on bare metal after `units`, counted from 0 with FIXED_CTR3 and EN_PERF_METRICS enabled. */
function bareMetrics(...slots: TopdownSlots[]): bigint {
  const cpu = new Cpu(h);
  for (const [msr, v] of [
    [FC3, 0n],
    [MSR_PERF_METRICS, 0n],
    [MSR_CORE_PERF_FIXED_CTR_CTRL, 0x1n << 12n],
    [MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT],
  ] as const)
    expect(cpu.wrmsr(msr, v).ok).toBe(true);
  cpu.run(slots.map(unit));
  return rd(cpu, MSR_PERF_METRICS);
}

/** icl_get_metrics_event_value of metric `i` of a window. */
const share = (metrics: bigint, slots: bigint, i: number) => icl_get_metrics_event_value(metrics, slots, i);

/**
 * perf stat's level-1 group as perf opens it: the slots leader disabled, then `n` metric siblings (retiring,
 * bad speculation, frontend bound, backend bound), then the leader enabled.
 */
function group(k: HostKernel, n: number, target: PerfTarget = { cpu: 0 }): [TopdownEvent, TopdownEvent[]] {
  const leader = ev(k.perf_event_open(attr({ config: INTEL_TD_SLOTS, pinned: true, disabled: true }), target));
  const metrics = Array.from({ length: n }, (_, i) =>
    ev(
      k.perf_event_create_kernel_counter(
        attr({ config: INTEL_TD_METRIC_RETIRING + 0x100n * BigInt(i) }),
        target,
        undefined,
        leader,
      ),
    ),
  );
  k.perf_event_enable(leader);
  return [leader as TopdownEvent, metrics as TopdownEvent[]];
}

describe('icl_get_metrics_event_value: slots · byte / 0xff, rounded down', () => {
  it('takes byte idx of PERF_METRICS for metric idx', () => {
    const metric = 0xfe_01_00_ff_80_40_20_10n;
    const got = Array.from({ length: 8 }, (_, i) => share(metric, 1000n, i));
    expect(got).toEqual([62n, 125n, 250n, 501n, 1000n, 0n, 3n, 996n]);
  });

  it('a full byte gives all the slots; the product does not overflow for a 48-bit count', () => {
    expect(share(0xffn, (1n << 48n) - 1n, 0)).toBe((1n << 48n) - 1n);
    expect(share(0x80n << 56n, (1n << 48n) - 1n, 7)).toBe((((1n << 48n) - 1n) * 128n) / 255n);
  });
});

describe('a level-1 topdown group on the host', () => {
  it('reading the leader folds every active metric and restarts FIXED_CTR3 and PERF_METRICS from 0', () => {
    const k = new HostKernel({ profile: h, cpus: 1 });
    const [leader, metrics] = group(k, 4);
    const hw = k.pcpu(0).hw;
    expect(metrics.map((m) => m.hw_idx)).toEqual([48, 49, 50, 51]);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(FC3_BIT | METRICS_BIT);
    k.runHost(0, [unit(A)]);
    const ma = bareMetrics(A);
    expect(k.perf_event_read_value(leader)).toBe(1000n);
    // The siblings were folded by the leader's read (update_topdown_event walks every active topdown index).
    expect(metrics.map((m) => m.count)).toEqual([0, 1, 2, 3].map((i) => share(ma, 1000n, i)));
    expect([rd(hw, FC3), rd(hw, MSR_PERF_METRICS)]).toEqual([0n, 0n]);
    k.runHost(0, [unit(B)]);
    const mb = bareMetrics(B);
    // A metric read folds the group too, from the restarted registers.
    expect(k.perf_event_read_value(metrics[1]!)).toBe(share(ma, 1000n, 1) + share(mb, 1000n, 1));
    expect(leader.count).toBe(2000n);
    expect(metrics.map((m) => m.count)).toEqual([0, 1, 2, 3].map((i) => share(ma, 1000n, i) + share(mb, 1000n, i)));
  });

  it('a read with no slots since the last one returns at once: no MSR is written', () => {
    const k = new HostKernel({ profile: h, cpus: 1 });
    const [leader] = group(k, 1);
    k.runHost(0, [unit(A)]);
    expect(k.perf_event_read_value(leader)).toBe(1000n);
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    try {
      expect(k.perf_event_read_value(leader)).toBe(1000n);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });

  it('a metric taken off alone saves the window: the rest fold over it later, and a falling share adds nothing', () => {
    const k = new HostKernel({ profile: h, cpus: 1 });
    const [leader, [retiring, badSpec, frontend]] = group(k, 3);
    const hw = k.pcpu(0).hw;
    k.runHost(0, [unit(FEW)]);
    const m1 = bareMetrics(FEW);
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    try {
      k.perf_event_disable(retiring!);
      // intel_pmu_disable_fixed leaves FIXED_CTR3 on while other topdown events are active: only the PMU's
      // disable and enable write.
      expect(spy.mock.calls).toEqual([
        [MSR_CORE_PERF_GLOBAL_CTRL, 0n],
        [MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT],
      ]);
    } finally {
      spy.mockRestore();
    }
    // x86_pmu_stop: the stopped event folds every topdown event and saves the pair; the registers count on.
    expect([leader.count, retiring!.count, badSpec!.count]).toEqual([1000n, share(m1, 1000n, 0), share(m1, 1000n, 1)]);
    expect([leader.saved_slots, badSpec!.saved_slots, retiring!.saved_slots]).toEqual([1000n, 1000n, 1000n]);
    expect(rd(hw, FC3)).toBe(1000n);
    expect(rd(hw, MSR_PERF_METRICS)).toBe(m1);
    k.runHost(0, [unit(NONE)]);
    const m2 = bareMetrics(FEW, NONE);
    expect(share(m2, 2000n, 1)).toBeLessThan(share(m1, 1000n, 1));
    // The leader's read folds over its saved pair: 1000 more slots; bad speculation's share fell, so it keeps its count.
    expect(k.perf_event_read_value(leader)).toBe(2000n);
    expect(badSpec!.count).toBe(share(m1, 1000n, 1));
    expect(retiring!.count).toBe(share(m1, 1000n, 0));
    // Frontend bound's share grew: it gains the difference over the saved window, not the whole reading.
    expect(share(m2, 2000n, 2)).toBeGreaterThan(share(m1, 1000n, 2));
    expect(frontend!.count).toBe(share(m2, 2000n, 2));
    expect([rd(hw, FC3), rd(hw, MSR_PERF_METRICS)]).toEqual([0n, 0n]);
    // That read zeroed the saved pairs: the next window counts from 0.
    k.runHost(0, [unit(A)]);
    expect(k.perf_event_read_value(leader)).toBe(3000n);
    expect(badSpec!.count).toBe(share(m1, 1000n, 1) + share(bareMetrics(A), 1000n, 1));
  });

  it('the group taken off keeps both registers; started again they restart from 0', () => {
    const k = new HostKernel({ profile: h, cpus: 1 });
    const [leader, [retiring]] = group(k, 1);
    const hw = k.pcpu(0).hw;
    k.runHost(0, [unit(A)]);
    const ma = bareMetrics(A);
    k.perf_event_disable(leader);
    expect([leader.count, retiring!.count]).toEqual([1000n, share(ma, 1000n, 0)]);
    // "Don't need to reset the PERF_METRICS and Fixed counter 3": the stop saved them instead.
    expect([rd(hw, FC3), rd(hw, MSR_PERF_METRICS)]).toEqual([1000n, ma]);
    expect([leader.saved_slots, leader.saved_metric]).toEqual([1000n, ma]);
    k.perf_event_enable(leader);
    // icl_set_topdown_event_period: a counting event's period_left is max_period, so both start from 0.
    expect([rd(hw, FC3), rd(hw, MSR_PERF_METRICS)]).toEqual([0n, 0n]);
    expect([leader.saved_slots, leader.saved_metric]).toEqual([0n, 0n]);
    k.runHost(0, [unit(B)]);
    expect(k.perf_event_read_value(leader)).toBe(2000n);
    expect(retiring!.count).toBe(share(ma, 1000n, 0) + share(bareMetrics(B), 1000n, 0));
  });

  it('a task group keeps its counts across a context switch and counts nothing of the next task', () => {
    const k = new HostKernel({ profile: h, cpus: 1 });
    const [t, u] = [k.createTask('t'), k.createTask('u')];
    const [leader, [retiring]] = group(k, 1, { task: t });
    const hw = k.pcpu(0).hw;
    k.context_switch(0, t);
    expect([leader.state, retiring!.state]).toEqual(['ACTIVE', 'ACTIVE']);
    k.runHost(0, [unit(A)]);
    k.context_switch(0, u);
    expect([leader.count, retiring!.count]).toEqual([1000n, share(bareMetrics(A), 1000n, 0)]);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_CTRL) & (FC3_BIT | METRICS_BIT)).toBe(0n);
    k.runHost(0, [unit(B)]);
    k.context_switch(0, t);
    k.runHost(0, [unit(C)]);
    expect(k.perf_event_read_value(leader)).toBe(2000n);
    expect(retiring!.count).toBe(share(bareMetrics(A), 1000n, 0) + share(bareMetrics(C), 1000n, 0));
  });

  it('a slots event without metrics is an ordinary counter: its read leaves both registers running', () => {
    const k = new HostKernel({ profile: h, cpus: 1 });
    const slots = ev(k.perf_event_open(attr({ config: INTEL_TD_SLOTS }), { cpu: 0 }));
    const hw = k.pcpu(0).hw;
    const preset = rd(hw, FC3);
    expect(preset).toBe((1n << 48n) - ((1n << 47n) - 1n)); // x86_perf_event_set_period's -max_period
    k.runHost(0, [unit(A)]);
    expect(k.perf_event_read_value(slots)).toBe(1000n);
    expect(rd(hw, FC3)).toBe(preset + 1000n);
    k.runHost(0, [unit(B)]);
    expect(k.perf_event_read_value(slots)).toBe(2000n);
  });
});
