/**
 * The perf-based vPMU before event reuse (Linux 5.5, "KVM: x86/vPMU: Reuse perf_event to avoid
 * unnecessary pmc_reprogram_counter") and lazy release (5.7): every reprogram stops the counter,
 * releasing its perf event, and creates a new one if the counter is still enabled. This is the
 * design seed 003 measured ("perf_event_create_kernel_counter ... could take millions of
 * nanoseconds") and its optimisation answered; `npm run compare` prices it beside today's. Not a
 * bug: guest-visible behaviour is today's, only the cost differs.
 */

import { pmc_create_event, pmc_eventsel } from '../emulated/pmu.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import { pmc_is_globally_enabled, pmc_is_locally_enabled } from '../common/pmu.h.js';

/** reprogram_gp_counter / reprogram_fixed_counter before 5.5: pmc_stop_counter, then a fresh event. */
function reprogram_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const ops = vcpu.ops;
  vcpu.cost.reprograms++;
  // pmc_stop_counter: fold the count into the base and release the event, whatever comes next.
  const emulatedOverflow = ops.pmc_pause_counter(vcpu, pmc);
  ops.pmc_release_perf_event(vcpu, pmc);
  pmc.is_paused = false;
  if (!pmc_is_globally_enabled(vcpu, pmc) || !pmc_is_locally_enabled(vcpu, pmc) || !ops.pmc_is_event_allowed(vcpu, pmc))
    return true;
  if (emulatedOverflow) ops.__kvm_perf_overflow(vcpu, pmc, false);
  const { eventsel, config } = pmc_eventsel(vcpu, pmc);
  pmc.current_config = config;
  return pmc_create_event(vcpu, pmc, eventsel);
}

export const PRE_REUSE_OPS: EmulatedOps = { ...EMULATED_OPS, reprogram_counter };
