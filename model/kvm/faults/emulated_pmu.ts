/**
 * Planted faults in emulated/pmu.ts (arch/x86/kvm/pmu.c, the perf-event-backed parts), each replacing
 * the kernel function it sits in.
 */

import { bit } from '../../hw/bits.js';
import { kvm_pmu_has_perf_global_ctrl, pmc_bitmask, pmc_is_locally_enabled, validPmcs } from '../common/pmu.h.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import { pmc_create_event, pmc_eventsel } from '../emulated/pmu.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';

/** pmc_write_counter stores the value as the base (`counter = val`), forgetting what the perf event counted. */
export const WRITE_COUNTER_IGNORES_PERF_COUNT: EmulatedOps = {
  ...EMULATED_OPS,
  pmc_write_counter(vcpu: KvmVcpuState, pmc: KvmPmc, val: bigint): void {
    EMULATED_OPS.pmc_write_counter(vcpu, pmc, val);
    pmc.counter = val & pmc_bitmask(vcpu, pmc);
  },
};

/** pmc_pause_counter reports a wrap when the emulated count left the counter where it was (`<` became `<=`). */
export const PAUSE_OVERFLOW_OFF_BY_ONE: EmulatedOps = {
  ...EMULATED_OPS,
  pmc_pause_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
    const mask = pmc_bitmask(vcpu, pmc);
    let counter = pmc.counter;
    if (pmc.perf_event !== null && !pmc.is_paused) {
      vcpu.cost.perfCalls++;
      counter += vcpu.host.perf_event_pause(pmc.perf_event, true);
    }
    const prev = counter & mask;
    counter += pmc.emulated_counter;
    pmc.counter = counter & mask;
    pmc.emulated_counter = 0n;
    pmc.is_paused = true;
    return pmc.counter <= prev;
  },
};

/** pmc_resume_counter re-enables the event without perf_event_period: perf keeps the period it had before the pause. */
export const RESUME_KEEPS_OLD_PERIOD: EmulatedOps = {
  ...EMULATED_OPS,
  pmc_resume_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
    if (pmc.perf_event === null) return false;
    vcpu.cost.perfCalls++;
    vcpu.host.perf_event_enable(pmc.perf_event);
    pmc.is_paused = false;
    return true;
  },
};

/** reprogram_counter without the `!pmc_is_globally_enabled` test: GLOBAL_CTRL stops nothing. */
export const REPROGRAM_IGNORES_GLOBAL: EmulatedOps = {
  ...EMULATED_OPS,
  reprogram_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
    const ops = vcpu.ops;
    vcpu.cost.reprograms++;
    const emulateOverflow = ops.pmc_pause_counter(vcpu, pmc);
    if (!pmc_is_locally_enabled(vcpu, pmc) || !ops.pmc_is_event_allowed(vcpu, pmc)) return true;
    if (emulateOverflow) ops.__kvm_perf_overflow(vcpu, pmc, false);
    const { eventsel, config } = pmc_eventsel(vcpu, pmc);
    if (pmc.current_config === config && ops.pmc_resume_counter(vcpu, pmc)) return true;
    ops.pmc_release_perf_event(vcpu, pmc);
    pmc.current_config = config;
    return pmc_create_event(vcpu, pmc, eventsel);
  },
};

/** __kvm_perf_overflow requests a PMI whatever the counter's INT bit (`if (pmc->intr)` deleted). */
export const OVERFLOW_IGNORES_INT: EmulatedOps = {
  ...EMULATED_OPS,
  __kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc): void {
    vcpu.pmu.global_status |= bit(pmc.idx);
    vcpu.requests.add('PMI');
  },
};

/** kvm_perf_overflow no longer queues the counter for reprogramming (`reprogram_pmi |= b` deleted). */
export const OVERFLOW_NO_REPROGRAM: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc): void {
    if ((vcpu.pmu.reprogram_pmi & bit(pmc.idx)) !== 0n) return;
    vcpu.ops.__kvm_perf_overflow(vcpu, pmc, true);
    vcpu.requests.add('PMU');
  },
};

/** kvm_pmu_incr_counter counts the emulated event but requests no reprogram: its overflow waits for another. */
export const INCR_COUNTER_NO_REQUEST: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_incr_counter(_vcpu: KvmVcpuState, pmc: KvmPmc): void {
    pmc.emulated_counter += 1n;
  },
};

/** kvm_pmu_reset leaves GLOBAL_STATUS (`pmu->global_status = 0` deleted). */
export const RESET_KEEPS_STATUS: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_reset(vcpu: KvmVcpuState): void {
    const status = vcpu.pmu.global_status;
    EMULATED_OPS.kvm_pmu_reset(vcpu);
    vcpu.pmu.global_status = status;
  },
};

/** kvm_pmu_refresh without de120e1d692d's RESET value: GLOBAL_CTRL starts at 0, so a v1-style driver counts nothing. */
export const REFRESH_NO_GLOBAL_CTRL_RESET: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_refresh(vcpu: KvmVcpuState): void {
    EMULATED_OPS.kvm_pmu_refresh(vcpu);
    if (kvm_pmu_has_perf_global_ctrl(vcpu.pmu)) vcpu.pmu.global_ctrl = 0n;
  },
};

/** kvm_pmu_cleanup releases the events of enabled counters too (`&& !pmc_is_locally_enabled` deleted). */
export const CLEANUP_RELEASES_ENABLED: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_cleanup(vcpu: KvmVcpuState): void {
    const pmu = vcpu.pmu;
    pmu.need_cleanup = false;
    const unused = pmu.all_valid_pmc_idx & ~pmu.pmc_in_use;
    for (const pmc of validPmcs(pmu))
      if ((unused & bit(pmc.idx)) !== 0n && pmc.perf_event !== null) vcpu.ops.pmc_stop_counter(vcpu, pmc);
    vcpu.ops.intel_pmu_cleanup(vcpu);
    pmu.pmc_in_use = 0n;
  },
};
