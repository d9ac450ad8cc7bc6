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
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  fixed_ctrl_field,
  pmc_is_event_allowed,
  pmc_is_globally_enabled,
  pmc_is_locally_enabled,
  pmc_pause_counter,
  pmc_release_perf_event,
  pmc_reprogram_counter,
} from '../emulated/pmu.js';
import { KVM_FIXED_PMC_BASE_IDX, type KvmPmc, type KvmVcpuState } from '../emulated/state.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';

/** reprogram_gp_counter / reprogram_fixed_counter before 5.5: pmc_stop_counter, then a fresh event. */
function reprogram_counter_pre_reuse(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  vcpu.cost.reprograms++;
  // pmc_stop_counter: fold the count into the base and release the event, whatever comes next.
  const emulatedOverflow = pmc_pause_counter(vcpu, pmc);
  pmc_release_perf_event(vcpu, pmc);
  pmc.isPaused = false;
  if (!pmc_is_globally_enabled(vcpu, pmc) || !pmc_is_locally_enabled(vcpu, pmc) || !pmc_is_event_allowed(vcpu, pmc)) return true;
  if (emulatedOverflow) __kvm_perf_overflow(vcpu, pmc, false);
  let eventsel = pmc.eventsel;
  let config = eventsel & vcpu.pmu.rawEventMask;
  if (pmc.type === 'fixed') {
    const ctrl = fixed_ctrl_field(vcpu.pmu.fixedCtrCtrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
    if (ctrl & 1) eventsel |= ARCH_PERFMON_EVENTSEL_OS;
    if (ctrl & 2) eventsel |= ARCH_PERFMON_EVENTSEL_USR;
    if (ctrl & 8) eventsel |= ARCH_PERFMON_EVENTSEL_INT;
    config = eventsel & vcpu.pmu.rawEventMask;
  }
  pmc.currentConfig = config;
  return pmc_reprogram_counter(
    vcpu,
    pmc,
    config,
    (eventsel & ARCH_PERFMON_EVENTSEL_USR) === 0n,
    (eventsel & ARCH_PERFMON_EVENTSEL_OS) === 0n,
    (eventsel & ARCH_PERFMON_EVENTSEL_INT) !== 0n,
  );
}

export class PreReuseVcpu extends EmulatedVcpu {
  constructor(host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) {
    super(host, opts);
    this.s.ops = { ...this.s.ops, reprogram_counter: reprogram_counter_pre_reuse };
  }
}

export const newPreReuseVcpu = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) => new PreReuseVcpu(host, opts);
