/**
 * `pre-reuse` (model/kvm/variants/pre_reuse.ts): the perf-based vPMU's reprogram before Linux 5.5's event reuse, as
 * the port puts it on today's request path. Every reprogram stops the counter (pmc_stop_counter: fold the count, then
 * perf_event_release_kernel) and, if the counter is still enabled and allowed, creates a new event
 * (pmc_reprogram_counter). So a counter started again creates an event where today's design resumes the paused one,
 * and a stopped counter releases its event at once; a counter found disabled is done with, not retried at the next
 * KVM_REQ_PMU. What the guest sees is today's: the count carries across the new event, and an emulated instruction
 * that wraps the counter overflows it. `npm run compare` prices the design by these counts (model/kvm/cost.ts).
 */
import { describe, expect, it } from 'vitest';
import { bit } from '../../../model/hw/bits.js';
import { PERF_CAP_FW_WRITES } from '../../../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import { EMULATED_OPS, type EmulatedOps } from '../../../model/kvm/emulated/ops.js';
import { PRE_REUSE_OPS } from '../../../model/kvm/variants/pre_reuse.js';
import { createVcpu, CYCLES, INSTRUCTIONS, itInjectsAPmiRaisedAtAnExit, val, work, type World } from './util.js';

/** Cycles at both CPLs: an event KVM never counts for an instruction it skips, so only the guest's writes reprogram. */
const CYCLES_ON = CYCLES | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_ENABLE;
const MASK48 = (1n << 48n) - 1n;
const GUEST_VECTOR = 0xe1;

/** A two-GP-counter guest of `ops` whose GLOBAL_CTRL enables PMC0 only. */
function vcpuOf(ops: EmulatedOps): World {
  const w = createVcpu({ perfCaps: PERF_CAP_FW_WRITES, nrGp: 2, ops });
  val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, bit(0) | bit(1)));
  return w;
}

/** The reprograms, perf events created and released, and other perf calls `f` cost. */
function spent(w: World, f: () => void) {
  const before = { ...w.vcpu.cost };
  f();
  const c = w.vcpu.cost;
  return {
    reprograms: c.reprograms - before.reprograms,
    creates: c.perfCreates - before.perfCreates,
    releases: c.perfReleases - before.perfReleases,
    calls: c.perfCalls - before.perfCalls,
  };
}

describe('pre-reuse: each reprogram releases the perf event and creates another (pmc_stop_counter, pmc_reprogram_counter)', () => {
  it('a counter stopped by GLOBAL_CTRL and started again gets a new event with its count, where today’s resumes the old one', () => {
    const costs = (ops: EmulatedOps) => {
      const w = vcpuOf(ops);
      const pmc0 = w.vcpu.s.pmu.gp_counters[0]!;
      const start = spent(w, () => val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, CYCLES_ON)));
      const first = pmc0.perf_event;
      expect(first).not.toBeNull();
      w.vcpu.guestRun(work(3, 10)); // 60 guest cycles
      const stop = spent(w, () => val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, bit(1))));
      const counted = val(w.vcpu.guestRdmsr(MSR_IA32_PMC0));
      const restart = spent(w, () => val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, bit(0) | bit(1))));
      expect(pmc0.perf_event).not.toBeNull();
      const renewed = pmc0.perf_event !== first;
      w.vcpu.guestRun(work(2, 10));
      return { start, stop, restart, renewed, counted, after: val(w.vcpu.guestRdmsr(MSR_IA32_PMC0)) };
    };
    // Linux 5.4: the stop reads the count and releases the event, the start creates one with a new period.
    expect(costs(PRE_REUSE_OPS)).toEqual({
      start: { reprograms: 1, creates: 1, releases: 0, calls: 0 },
      stop: { reprograms: 1, creates: 0, releases: 1, calls: 1 },
      restart: { reprograms: 1, creates: 1, releases: 0, calls: 0 },
      renewed: true,
      counted: 60n,
      after: 100n,
    });
    // Today's: the stop pauses the event, the start sets its period and enables it again.
    expect(costs(EMULATED_OPS)).toEqual({
      start: { reprograms: 1, creates: 1, releases: 0, calls: 0 },
      stop: { reprograms: 1, creates: 0, releases: 0, calls: 1 },
      restart: { reprograms: 1, creates: 0, releases: 0, calls: 2 },
      renewed: false,
      counted: 60n,
      after: 100n,
    });
  });

  it('a counter found disabled is done with: the next KVM_REQ_PMU reprograms only the counter it is for', () => {
    const w = vcpuOf(PRE_REUSE_OPS);
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, CYCLES_ON));
    // Disabled by its selector's EN, then by GLOBAL_CTRL: each is one reprogram that releases the event.
    expect(spent(w, () => val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, CYCLES_ON & ~ARCH_PERFMON_EVENTSEL_ENABLE)))).toEqual({
      reprograms: 1,
      creates: 0,
      releases: 1,
      calls: 1,
    });
    expect(spent(w, () => val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0 + 1, CYCLES_ON)))).toEqual({
      reprograms: 1,
      creates: 1,
      releases: 0,
      calls: 0,
    });
    expect(spent(w, () => val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, bit(0))))).toEqual({
      reprograms: 1,
      creates: 0,
      releases: 1,
      calls: 1,
    });
    expect(spent(w, () => val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, CYCLES_ON)))).toEqual({
      reprograms: 1,
      creates: 1,
      releases: 0,
      calls: 0,
    });
    expect(w.vcpu.s.pmu.reprogram_pmi).toBe(0n);
  });
});

describe('pre-reuse: an emulated instruction that wraps a counter overflows it, as today', () => {
  /** PMC0 counting instructions with INT, `toGo` instructions from wrapping, LVTPC unmasked. */
  function armed(toGo: bigint): World {
    const w = vcpuOf(PRE_REUSE_OPS);
    val(w.vcpu.guestWrmsr(X2APIC_LVTPC, BigInt(GUEST_VECTOR)));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n));
    val(
      w.vcpu.guestWrmsr(
        MSR_P6_EVNTSEL0,
        INSTRUCTIONS |
          ARCH_PERFMON_EVENTSEL_OS |
          ARCH_PERFMON_EVENTSEL_USR |
          ARCH_PERFMON_EVENTSEL_INT |
          ARCH_PERFMON_EVENTSEL_ENABLE,
      ),
    );
    val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, MASK48 - toGo));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, bit(0))); // its skip is counted once it enables PMC0
    expect(w.vcpu.drainPmis()).toEqual([]);
    return w;
  }

  it('the wrap sets GLOBAL_STATUS.PMC0 and the counter reads on from 0', () => {
    const w = armed(1n);
    expect(val(w.vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0n); // this RDMSR is the one left
    expect(val(w.vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(bit(0));
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_PMC0))).toBe(1n);
    expect(w.vcpu.drainPmis()).toEqual([{ afterUnit: 0, vector: GUEST_VECTOR }]);
  });

  it('a counter far from wrapping overflows at none of its reprograms', () => {
    const w = armed(100n);
    for (let i = 0; i < 5; i++) w.vcpu.guestEmulate('mov', 0);
    expect(val(w.vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0n);
    expect(w.vcpu.drainPmis()).toEqual([]);
  });

  itInjectsAPmiRaisedAtAnExit(() => armed(1n), GUEST_VECTOR);
});
