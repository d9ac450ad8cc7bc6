/**
 * The fix reports/filed/0001 suggests: pmc_write_counter re-arms perf's sample period from the value the guest
 * wrote, as intel_pmu_set_msr did before 75189d1de1b3 ("KVM: x86/pmu: Update AMD PMC sample period to fix guest
 * NMI-watchdog") replaced `perf_event_period(pmc->perf_event, get_sample_period(pmc, data))` with
 * pmc_update_sample_period(), which reads the offset base. Not upstream: a design that shows the divergence gone.
 */

import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import { get_sample_period } from '../emulated/pmu.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';
import { pmc_bitmask } from '../common/pmu.h.js';

/** pmc_write_counter with the period taken from `val`, the distance to overflow of the value written. */
function pmc_write_counter(vcpu: KvmVcpuState, pmc: KvmPmc, val: bigint): void {
  const mask = pmc_bitmask(vcpu, pmc);
  pmc.emulated_counter = 0n;
  pmc.counter += val - vcpu.ops.pmc_read_counter(vcpu, pmc);
  pmc.counter &= mask;
  const ev = pmc.perf_event;
  // perf_event_period restarts the event, so the new period counts from this write.
  if (ev === null || pmc.is_paused || ev.attr.sample_period === 0n) return;
  vcpu.cost.perfCalls++;
  vcpu.host.perf_event_period(ev, get_sample_period(vcpu, pmc, val & mask));
}

export const WRITE_PERIOD_FROM_VALUE_OPS: EmulatedOps = { ...EMULATED_OPS, pmc_write_counter };
