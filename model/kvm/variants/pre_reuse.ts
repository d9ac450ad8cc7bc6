/**
 * The perf-based vPMU before event reuse (Linux 5.5, "KVM: x86/vPMU: Reuse perf_event to avoid
 * unnecessary pmc_reprogram_counter") and lazy release (5.7): every reprogram stops the counter,
 * releasing its perf event, and creates a new one if the counter is still enabled. This is the
 * design seed 003 measured ("perf_event_create_kernel_counter ... could take millions of
 * nanoseconds") and its optimisation answered; `npm run compare` prices it beside today's. Not a
 * bug: guest-visible behaviour is today's, only the cost differs.
 */

import type { HostKernel } from '../../host/perf.js';
import {
  __kvm_perf_overflow,
  pmc_create_event,
  pmc_eventsel,
  pmc_is_event_allowed,
  pmc_pause_counter,
  pmc_release_perf_event,
} from '../emulated/pmu.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';
import { pmc_is_globally_enabled, pmc_is_locally_enabled } from '../common/pmu.h.js';

/** reprogram_gp_counter / reprogram_fixed_counter before 5.5: pmc_stop_counter, then a fresh event. */
function reprogram_counter_pre_reuse(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  vcpu.cost.reprograms++;
  // pmc_stop_counter: fold the count into the base and release the event, whatever comes next.
  const emulatedOverflow = pmc_pause_counter(vcpu, pmc);
  pmc_release_perf_event(vcpu, pmc);
  pmc.is_paused = false;
  if (!pmc_is_globally_enabled(vcpu, pmc) || !pmc_is_locally_enabled(vcpu, pmc) || !pmc_is_event_allowed(vcpu, pmc))
    return true;
  if (emulatedOverflow) __kvm_perf_overflow(vcpu, pmc, false);
  const { eventsel, config } = pmc_eventsel(vcpu, pmc);
  pmc.current_config = config;
  return pmc_create_event(vcpu, pmc, eventsel);
}

export class PreReuseVcpu extends EmulatedVcpu {
  constructor(host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) {
    super(host, opts);
    this.s.ops = { ...this.s.ops, reprogram_counter: reprogram_counter_pre_reuse };
  }
}

export const newPreReuseVcpu = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreReuseVcpu(host, opts);
