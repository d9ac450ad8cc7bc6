/**
 * Host perf's slots event at the PMI handler (arch/x86/events/intel/core.c handle_pmi_common,
 * intel_pmu_save_and_restart): a slots leader with metric siblings (PERF_X86_EVENT_TOPDOWN) folds and restarts
 * through x86_pmu.update and x86_pmu.set_period, which for Intel route it to icl_update_topdown_event and
 * icl_set_topdown_event_period; a slots event without metrics takes x86_perf_event_update and
 * x86_perf_event_set_period like any counter.
 */
import { describe, expect, it } from 'vitest';
import { Cpu } from '../../../model/hw/cpu.js';
import { SAPPHIRE_RAPIDS } from '../../../model/hw/profiles.js';
import type { WorkUnit } from '../../../model/hw/work.js';
import { MSR_CORE_PERF_FIXED_CTR0, MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../../model/hw/msr/global.js';
import { MSR_PERF_METRICS, type TopdownSlots } from '../../../model/hw/msr/topdown.js';
import { HostKernel, icl_get_metrics_event_value } from '../../../model/host/perf.js';
import { INTEL_TD_METRIC_RETIRING, INTEL_TD_SLOTS } from '../../../model/host/schedule.js';
import { attr, type PerfEvent } from '../../../model/host/types.js';
import { ev, rd } from './util.js';

const h = SAPPHIRE_RAPIDS;
const FC3 = MSR_CORE_PERF_FIXED_CTR0 + 3;
const FC3_BIT = 1n << 35n;
const METRICS_BIT = 1n << 48n;

const A: TopdownSlots = { retiring: 380, badSpeculation: 7, frontendBound: 213, backendBound: 400 };
const B: TopdownSlots = { retiring: 100, badSpeculation: 500, frontendBound: 300, backendBound: 100 };
const unit = (slots: TopdownSlots): WorkUnit => ({ cpl: 0, instructions: 1, slots });
/** 2^48 slots in one unit: FIXED_CTR3 counted from 0 wraps in it, back to what it held. */
const WRAP = 2 ** 46;
const wrapping = unit({ retiring: WRAP, badSpeculation: WRAP, frontendBound: WRAP, backendBound: WRAP });

/** PERF_METRICS on bare metal after `units`, counted from 0 with FIXED_CTR3 and EN_PERF_METRICS enabled. */
function bareMetrics(units: readonly WorkUnit[]): bigint {
  const cpu = new Cpu(h);
  for (const [msr, v] of [
    [FC3, 0n],
    [MSR_PERF_METRICS, 0n],
    [MSR_CORE_PERF_FIXED_CTR_CTRL, 0x1n << 12n],
    [MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT],
  ] as const)
    expect(cpu.wrmsr(msr, v).ok).toBe(true);
  cpu.run(units);
  return rd(cpu, MSR_PERF_METRICS);
}

/**
 * A cpu-pinned counting topdown group on CPU 0 as perf stat opens one: the slots leader disabled, the retiring
 * metric, then the leader enabled; a leader started alone would be preset to -max_period before it counts topdown.
 */
function slotsGroup(k: HostKernel): [PerfEvent, PerfEvent] {
  const leader = ev(k.perf_event_open(attr({ config: INTEL_TD_SLOTS, pinned: true, disabled: true }), { cpu: 0 }));
  const metric = ev(
    k.perf_event_create_kernel_counter(attr({ config: INTEL_TD_METRIC_RETIRING }), { cpu: 0 }, undefined, leader),
  );
  k.perf_event_enable(leader);
  return [leader, metric];
}

describe('the PMI handler and a topdown slots leader (handle_pmi_common → intel_pmu_save_and_restart)', () => {
  it('a FIXED_CTR3 wrap: bit 48 folds the residue, bit 35 goes through icl_update/icl_set_topdown_event_period', () => {
    const k = new HostKernel({ profile: h, cpus: 1 });
    const [leader, metric] = slotsGroup(k);
    const hw = k.pcpu(0).hw;
    expect([leader.hw_idx, metric.hw_idx]).toEqual([35, 48]);
    expect(k.runHost(0, [unit(A), wrapping])).toBe(1);
    // update_topdown_event(NULL) zeroed both registers; icl_update_topdown_event then read 0 slots and did nothing,
    // and icl_set_topdown_event_period (period_left still max_period) zeroed them again: no -max_period preset.
    expect([rd(hw, FC3), rd(hw, MSR_PERF_METRICS), rd(hw, MSR_CORE_PERF_GLOBAL_STATUS)]).toEqual([0n, 0n, 0n]);
    expect(leader.samples).toEqual([]);
    k.runHost(0, [unit(B)]);
    // The wrap's 2^48 are lost, as FIXED_CTR3 itself loses them: 1000 slots before the PMI's reset, 1000 after.
    expect(k.perf_event_read_value(leader)).toBe(2000n);
    const share = (m: bigint) => icl_get_metrics_event_value(m, 1000n, 0);
    expect(k.perf_event_read_value(metric)).toBe(
      share(bareMetrics([unit(A), wrapping])) + share(bareMetrics([unit(B)])),
    );
  });

  it('a slots event without metrics is no topdown count: its overflow folds the whole delta and re-arms -left', () => {
    const k = new HostKernel({ profile: h, cpus: 1 });
    const slots = ev(k.perf_event_open(attr({ config: INTEL_TD_SLOTS, pinned: true }), { cpu: 0 }));
    const hw = k.pcpu(0).hw;
    expect(slots.hw_idx).toBe(35);
    const half = 2 ** 45; // four of them, 2^47 slots, pass max_period (2^47 - 1), the counting event's preset
    expect(
      k.runHost(0, [unit({ retiring: half + 250, badSpeculation: half, frontendBound: half, backendBound: half })]),
    ).toBe(1);
    expect(slots.samples).toEqual([]); // counting events use the PMI only to fold
    // x86_perf_event_set_period: period_left = (2^47 - 1) - (2^47 + 250) = -251 goes up by a period.
    expect(rd(hw, FC3)).toBe((1n << 48n) - ((1n << 47n) - 1n - 251n));
    k.runHost(0, [unit(A)]);
    expect(k.perf_event_read_value(slots)).toBe((1n << 47n) + 250n + 1000n);
  });

  it('bit 48 alone runs update_topdown_event(NULL): every active topdown event folds, both registers restart', () => {
    const k = new HostKernel({ profile: h, cpus: 1 });
    const [leader, metric] = slotsGroup(k);
    const hw = k.pcpu(0).hw;
    k.runHost(0, [unit(A)]);
    const window = rd(hw, MSR_PERF_METRICS);
    expect(hw.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, METRICS_BIT).ok).toBe(true);
    expect(k.intel_pmu_handle_irq(0)).toBe(true);
    expect([rd(hw, FC3), rd(hw, MSR_PERF_METRICS), rd(hw, MSR_CORE_PERF_GLOBAL_STATUS)]).toEqual([0n, 0n, 0n]);
    k.runHost(0, [unit(B)]);
    expect(k.perf_event_read_value(leader)).toBe(2000n);
    const share = (m: bigint) => icl_get_metrics_event_value(m, 1000n, 0);
    expect(k.perf_event_read_value(metric)).toBe(share(window) + share(bareMetrics([unit(B)])));
    expect([leader.samples, metric.samples]).toEqual([[], []]);
  });
});
