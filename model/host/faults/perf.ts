/**
 * Planted faults in the host perf model (model/host/perf.ts), each a one-point change to a function of
 * the host record (HostPerfOps), as a perf patch would make: they measure the search (catalogue/faults.ts).
 */

import type { Cpu } from '../../hw/cpu.js';
import { ARCH_PERFMON_EVENTSEL_INT, MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../hw/msr/counters.js';
import { type GuestMsrs, HOST_PERF_OPS, type HostKernel, type HostPerfOps } from '../perf.js';
import type { PerfEvent } from '../types.js';

/** intel_guest_get_msrs gives the guest only GP counters (`& 0xffffffff`): a guest's fixed-counter events never count. */
export const GUEST_CTRL_DROPS_FIXED: HostPerfOps = {
  ...HOST_PERF_OPS,
  intel_guest_get_msrs(host: HostKernel, cpu: number): GuestMsrs {
    const m = HOST_PERF_OPS.intel_guest_get_msrs(host, cpu);
    return { host: m.host, guest: m.guest & 0xffff_ffffn };
  },
};

/** x86_perf_event_set_period presets one event too few (`-left` became `-left + 1`): every overflow comes one early. */
export const PRESET_OFF_BY_ONE: HostPerfOps = {
  ...HOST_PERF_OPS,
  x86_perf_event_set_event_base(hw: Cpu, event: PerfEvent, msr: number, val: bigint): void {
    HOST_PERF_OPS.x86_perf_event_set_event_base(hw, event, msr, val + 1n);
  },
};

/** x86_pmu_enable_event drops the INT bit of a GP counter's select: its overflows raise no PMI, so nothing is sampled. */
export const CONFIG_DROPS_INT: HostPerfOps = {
  ...HOST_PERF_OPS,
  x86_perf_event_set_config_base(hw: Cpu, event: PerfEvent, msr: number, val: bigint): void {
    const v = msr === MSR_CORE_PERF_FIXED_CTR_CTRL ? val : val & ~ARCH_PERFMON_EVENTSEL_INT;
    HOST_PERF_OPS.x86_perf_event_set_config_base(hw, event, msr, v);
  },
};
