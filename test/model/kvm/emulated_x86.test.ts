/**
 * The perf-based vPMU's parts of arch/x86/kvm/x86.c (model/kvm/emulated/x86.ts) where no selftest looks:
 * kvm_arch_pmi_in_guest as perf's guest-state callback asks it, the KVM_REQ_PMU that carries a failed reprogram's
 * retry (kvm_pmu_handle_event re-sets the bit without a new request), and when kvm_arch_vcpu_load makes that request
 * with the lazy cleanup (a rescheduled vCPU with perf events), which a refused reprogram alone does not make.
 * Expectations are upstream's (kvm-vpmu.md §2.9, §2.13; x86.c, pmu.c), not the port's output.
 */
import { describe, expect, it } from 'vitest';
import { ICELAKE } from '../../../model/hw/profiles.js';
import { PERF_CAP_FW_WRITES } from '../../../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { kvm_arch_pmi_in_guest } from '../../../model/kvm/emulated/x86.js';
import { createVcpu, INSTRUCTIONS, val, work, type World } from './util.js';

const wr = (w: World, msr: number, v: bigint) => val(w.vcpu.guestWrmsr(msr, v), `WRMSR 0x${msr.toString(16)}`);

describe('kvm_arch_pmi_in_guest: KVM handles an interrupt that exited the guest, an NMI exactly in NMI context', () => {
  const CASES = [
    ['none', false, false],
    ['none', true, false],
    ['irq', false, true],
    ['irq', true, false],
    ['nmi', false, false],
    ['nmi', true, true],
  ] as const;
  for (const [handling, inNmi, inGuest] of CASES)
    it(`handling ${handling}, ${inNmi ? 'in' : 'not in'} NMI context: ${inGuest ? 'the guest’s' : 'not the guest’s'}`, () => {
      const { vcpu } = createVcpu();
      vcpu.s.handling_intr_from_guest = handling;
      expect(kvm_arch_pmi_in_guest(vcpu.s, inNmi)).toBe(inGuest);
    });
});

/** INTEL_TD_METRIC_RETIRING (event 0x00, umask 0x80): perf refuses it outside a slots group (intel_pmu_hw_config). */
const METRIC = 0x8000n;
const EN = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR;

describe('a reprogram perf refuses is retried at the next KVM_REQ_PMU, not at every VM-entry', () => {
  it('the guest runs on without a perf_event_create; a later request retries it with its own', () => {
    const w = createVcpu({ profile: ICELAKE, perfCaps: PERF_CAP_FW_WRITES, nrGp: 2 });
    const creates = () => w.vcpu.cost.perfCreates;
    const before = creates();
    wr(w, MSR_P6_EVNTSEL0, EN | METRIC);
    w.vcpu.guestRun([]); // KVM_REQ_PMU: reprogram_counter fails, the bit is set again without a request
    expect(creates() - before, 'the one refused create').toBe(1);
    expect(w.vcpu.s.pmu.gp_counters[0]!.perf_event).toBeNull();
    w.vcpu.guestRun(work(3, 5));
    w.vcpu.guestRun([]);
    expect(creates() - before, 'no request, no retry').toBe(1);
    wr(w, MSR_P6_EVNTSEL0 + 1, EN | INSTRUCTIONS); // a request of its own for PMC1
    w.vcpu.guestRun([]);
    expect(creates() - before, "PMC1's create and PMC0's retry").toBe(3);
    expect(w.vcpu.s.pmu.gp_counters[1]!.perf_event).not.toBeNull();
    expect(w.vcpu.s.pmu.gp_counters[0]!.perf_event).toBeNull();
  });
});

describe('kvm_arch_vcpu_load makes KVM_REQ_PMU only for a rescheduled vCPU with perf events', () => {
  it('a reschedule of a vCPU whose only reprogram perf refused makes no request; one with an event retries it', () => {
    const w = createVcpu({ profile: ICELAKE, perfCaps: PERF_CAP_FW_WRITES, nrGp: 2 });
    const creates = () => w.vcpu.cost.perfCreates;
    const before = creates();
    wr(w, MSR_P6_EVNTSEL0, EN | METRIC);
    w.vcpu.guestRun([]);
    expect(creates() - before, 'the one refused create').toBe(1);
    expect(w.vcpu.s.pmu.event_count).toBe(0);
    w.vcpu.preempt(() => {});
    w.vcpu.guestRun([]);
    expect(creates() - before, 'event_count == 0: no need_cleanup, no KVM_REQ_PMU, no retry').toBe(1);
    wr(w, MSR_P6_EVNTSEL0 + 1, EN | INSTRUCTIONS);
    w.vcpu.guestRun([]);
    expect(creates() - before, "PMC1's create and PMC0's retry").toBe(3);
    expect(w.vcpu.s.pmu.event_count).toBe(1);
    w.vcpu.migrate(1);
    w.vcpu.guestRun([]);
    expect(creates() - before, "PMC1's event: KVM_REQ_PMU at vcpu_load, and with it PMC0's retry").toBe(4);
    expect(w.vcpu.s.pmu.gp_counters[0]!.perf_event).toBeNull();
  });
});
