/**
 * Host perf's PMI handler held to arch/x86/events/intel/core.c intel_pmu_handle_irq and handle_pmi_common, access
 * by access: disable, read GLOBAL_STATUS, read the LBRs and ack, handle each status bit (PEBS buffer, PERF_METRICS,
 * then every counter bit), read GLOBAL_STATUS again and repeat while it is not zero (at most 100 times), enable, and
 * unmask LVTPC last (late ack). What counts as handled decides whether the NMI was perf's; who the sample is
 * attributed to (perf_guest_state) and which samples carry a branch stack are what host users see.
 *
 * The generated programs never set the PEBS or PERF_METRICS status bits at a host PMI nor keep a status bit set
 * across a pass, so these tests state the kernel's values directly.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Access, gp } from '../../../model/hw/access.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { DecisionLog, recording } from '../../../model/hw/relied.js';
import { type Branch, type WorkUnit } from '../../../model/hw/work.js';
import { MSR_IA32_PMC0 } from '../../../model/hw/msr/counters.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../../model/hw/msr/global.js';
import { MSR_LBR_SELECT, MSR_LBR_TOS } from '../../../model/hw/msr/lbr_legacy.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import { HOST_PERF_OPS, HostKernel, type HostPerfOps, type TopdownEvent } from '../../../model/host/perf.js';
import { INTEL_TD_METRIC_RETIRING, INTEL_TD_SLOTS } from '../../../model/host/schedule.js';
import { attr, type PerfEvent, type PerfSample } from '../../../model/host/types.js';
import { CYCLES, ev, guestLbrEvent, INSTRUCTIONS, LLC_REFERENCES, rd, units, work } from './util.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const PEBS_BUFFER = 1n << 62n;
const PERF_METRICS_OVF = 1n << 48n;
const LBR_FROZEN = 1n << 58n;
const COUNTERS_FROZEN = 1n << 59n;
const UNCORE = 1n << 61n;
const COND_CHANGED = 1n << 63n;

/** Every RDMSR and WRMSR of one pCPU while `f` runs, in order, as ['rd' | 'wr', msr, value read or written]. */
function accesses(hw: Cpu, f: () => unknown): ['rd' | 'wr', number, bigint][] {
  const r = vi.spyOn(Cpu.prototype, 'rdmsr');
  const w = vi.spyOn(Cpu.prototype, 'wrmsr');
  try {
    f();
    const out: [number, 'rd' | 'wr', number, bigint][] = [];
    r.mock.calls.forEach((c, i) => {
      const a = r.mock.results[i]!.value as Access;
      if (r.mock.contexts[i] === hw) out.push([r.mock.invocationCallOrder[i]!, 'rd', c[0], a.ok ? a.value : -1n]);
    });
    w.mock.calls.forEach((c, i) => {
      if (w.mock.contexts[i] === hw) out.push([w.mock.invocationCallOrder[i]!, 'wr', c[0], c[1]]);
    });
    return out.sort((x, y) => x[0] - y[0]).map(([, op, msr, v]) => [op, msr, v]);
  } finally {
    r.mockRestore();
    w.mockRestore();
  }
}

function setStatus(hw: Cpu, bits: bigint): void {
  expect(hw.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, bits).ok).toBe(true);
}

function log(f: () => unknown): DecisionLog {
  const l = new DecisionLog();
  recording(l, f);
  return l;
}

function jmp(i: number): Branch {
  return { from: 0x40_1000n + BigInt(i), to: 0x40_2000n + BigInt(i), kind: 'NEAR_REL_JMP', cpl: 0 };
}

function branchy(i: number, cycles: number): WorkUnit {
  return { cpl: 0, instructions: 2, cycles, branches: [jmp(i)] };
}

describe('intel_pmu_handle_irq: the order of its accesses', () => {
  it('disables, reads status, acks it, re-arms the counter, reads status again, enables, then unmasks LVTPC', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 10n }), { cpu: 0 }));
    const hw = k.pcpu(0).hw;
    expect(e.hw_idx).toBe(0);
    expect(hw.step(work(0, 1, 1, 10))).not.toBeNull(); // the overflow raises the PMI
    const seen = accesses(hw, () => expect(k.intel_pmu_handle_irq(0)).toBe(true));
    // __intel_pmu_disable_all, intel_pmu_get_status, intel_pmu_ack_status, x86_perf_event_set_period's preset,
    // intel_pmu_get_status (zero: done), __intel_pmu_enable_all, apic_write(APIC_LVTPC, APIC_DM_NMI).
    expect(seen).toEqual([
      ['wr', MSR_CORE_PERF_GLOBAL_CTRL, 0n],
      ['rd', MSR_CORE_PERF_GLOBAL_STATUS, 1n],
      ['wr', MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n],
      ['wr', MSR_IA32_PMC0, (1n << 48n) - 10n],
      ['rd', MSR_CORE_PERF_GLOBAL_STATUS, 0n],
      ['wr', MSR_CORE_PERF_GLOBAL_CTRL, 1n],
      ['wr', X2APIC_LVTPC, 0x400n],
    ]);
    expect(e.samples).toEqual([{ cpu: 0, inGuest: false }]);
  });

  it('with a status of zero: nothing acked, nothing handled, one status read, yet enabled and unmasked', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    const hw = k.pcpu(0).hw;
    let handled = true;
    const seen = accesses(hw, () => (handled = k.intel_pmu_handle_irq(0)));
    expect(handled).toBe(false);
    expect(seen).toEqual([
      ['wr', MSR_CORE_PERF_GLOBAL_CTRL, 0n],
      ['rd', MSR_CORE_PERF_GLOBAL_STATUS, 0n],
      ['wr', MSR_CORE_PERF_GLOBAL_CTRL, 1n],
      ['wr', X2APIC_LVTPC, 0x400n],
    ]);
  });

  it('reads the LBRs once per pass before the ack, only where a host LBR user records (intel_pmu_lbr_read)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const b = ev(
      k.perf_event_open(
        attr({ config: CYCLES, sample_period: 100n, branchSample: { user: true, kernel: true, callStack: false } }),
        { cpu: 0 },
      ),
    );
    const hw = k.pcpu(0).hw;
    expect(hw.step(branchy(1, 100))).not.toBeNull();
    const seen = accesses(hw, () => k.intel_pmu_handle_irq(0));
    const tos = seen.findIndex(([op, msr]) => op === 'rd' && msr === MSR_LBR_TOS);
    const ack = seen.findIndex(([op, msr]) => op === 'wr' && msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL);
    expect(tos).toBeGreaterThan(0);
    expect(tos).toBeLessThan(ack);
    expect(seen.filter(([op, msr]) => op === 'rd' && msr === MSR_LBR_TOS)).toHaveLength(1);
    // __intel_pmu_enable_all(0, true): on v4 the ack unfreezes the LBRs; neither DEBUGCTL nor LBR_SELECT is written.
    expect(seen.filter(([op, msr]) => op === 'wr' && (msr === MSR_IA32_DEBUGCTLMSR || msr === MSR_LBR_SELECT))).toEqual(
      [],
    );
    expect(b.samples).toEqual([{ cpu: 0, inGuest: false, branches: [{ from: jmp(1).from, to: jmp(1).to }] }]);
  });
});

describe('intel_pmu_handle_irq: the loop', () => {
  it('a status bit raised again during the pass is handled in a second pass', () => {
    let hw: Cpu | null = null;
    let raised = false;
    // Counter 1 overflows while perf re-arms counter 0: its bit is in the second intel_pmu_get_status.
    const ops: HostPerfOps = {
      ...HOST_PERF_OPS,
      x86_perf_event_set_event_base(c, e, msr, val) {
        HOST_PERF_OPS.x86_perf_event_set_event_base(c, e, msr, val);
        if (c === hw && msr === MSR_IA32_PMC0 && !raised) {
          raised = true;
          setStatus(c, 2n);
        }
      },
    };
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1, ops });
    const a = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 10n }), { cpu: 0 }));
    const b = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1000n }), { cpu: 0 }));
    hw = k.pcpu(0).hw;
    expect(hw.step(work(0, 1, 1, 10))).not.toBeNull();
    const seen = accesses(hw, () => expect(k.intel_pmu_handle_irq(0)).toBe(true));
    expect(seen.filter(([op, msr]) => op === 'rd' && msr === MSR_CORE_PERF_GLOBAL_STATUS).map((x) => x[2])).toEqual([
      1n,
      2n,
      0n,
    ]);
    expect(seen.filter(([op, msr]) => op === 'wr' && msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL).map((x) => x[2])).toEqual([
      1n,
      2n,
    ]);
    expect(a.samples).toHaveLength(1);
    // Counter 1 had not counted a period: intel_pmu_save_and_restart returns 0 and no sample is taken.
    expect(b.samples).toEqual([]);
    expect(k.perf_event_read_value(b)).toBe(10n);
  });

  it('a status that never clears is handled 100 times, then the PMU is enabled again', () => {
    let hw: Cpu | null = null;
    let passes = 0;
    // The counter's bit comes back at each re-arm: "perfevents: irq loop stuck!" after 100 passes.
    const ops: HostPerfOps = {
      ...HOST_PERF_OPS,
      x86_perf_event_set_event_base(c, e, msr, val) {
        HOST_PERF_OPS.x86_perf_event_set_event_base(c, e, msr, val);
        if (c === hw && msr === MSR_IA32_PMC0) {
          passes++;
          setStatus(c, 1n);
        }
      },
    };
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1, ops });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1n }), { cpu: 0 }));
    hw = k.pcpu(0).hw;
    passes = 0;
    setStatus(hw, 1n);
    expect(k.intel_pmu_handle_irq(0)).toBe(true);
    expect(passes).toBe(100);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(1n);
    expect(rd(hw, X2APIC_LVTPC)).toBe(0x400n);
    expect(e.state).toBe('ACTIVE');
  });
});

describe('handle_pmi_common: which status bits count as handled', () => {
  it('the PEBS buffer bit alone is handled (H7: nothing to drain), and acked', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const hw = k.pcpu(0).hw;
    setStatus(hw, PEBS_BUFFER);
    let handled = false;
    const l = log(() => (handled = k.intel_pmu_handle_irq(0)));
    expect(handled).toBe(true);
    expect(l.has('H7')).toBe(true);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    // A counter's overflow alone decides nothing of H7.
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 5n }), { cpu: 0 }));
    expect(log(() => k.runHost(0, [work(0, 1, 1, 5)])).has('H7')).toBe(false);
    expect(e.samples).toHaveLength(1);
  });

  it('beside the PEBS bit, an active sampling counter still takes its sample', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 5n }), { cpu: 0 }));
    const hw = k.pcpu(0).hw;
    expect(hw.step(work(0, 1, 1, 5))).not.toBeNull();
    setStatus(hw, PEBS_BUFFER);
    expect(k.intel_pmu_handle_irq(0)).toBe(true);
    expect(e.samples).toHaveLength(1);
  });

  it('COND_CHGD and LBR_FRZ alone do not indicate an overflow: not handled, but acked', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const hw = k.pcpu(0).hw;
    setStatus(hw, COND_CHANGED | LBR_FROZEN);
    expect(k.intel_pmu_handle_irq(0)).toBe(false);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
  });

  it('any other set bit is handled, as a counter bit with no event is: the uncore and counters-frozen bits', () => {
    for (const b of [UNCORE, COUNTERS_FROZEN]) {
      const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
      const hw = k.pcpu(0).hw;
      setStatus(hw, b);
      expect(k.intel_pmu_handle_irq(0), `bit ${b.toString(2).length - 1}`).toBe(true);
      expect(rd(hw, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    }
  });

  it("LBR_FRZ's bit is the guest LBR event's index, masked before the walk; CTR_FRZ's, no event's, is handled alone", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('vcpu');
    k.context_switch(0, t);
    const g = guestLbrEvent(k, t);
    expect(g.hw_idx).toBe(58); // INTEL_PMC_IDX_FIXED_VLBR = GLOBAL_STATUS_LBRS_FROZEN_BIT
    const hw = k.pcpu(0).hw;
    // handle_pmi_common clears LBR_FRZ first: nothing is left, so the NMI was not perf's.
    setStatus(hw, LBR_FROZEN);
    expect(k.intel_pmu_handle_irq(0)).toBe(false);
    setStatus(hw, COUNTERS_FROZEN);
    const seen = accesses(hw, () => expect(k.intel_pmu_handle_irq(0)).toBe(true));
    expect(seen.filter(([op]) => op === 'wr').map(([, msr]) => msr)).toEqual([
      MSR_CORE_PERF_GLOBAL_CTRL,
      MSR_CORE_PERF_GLOBAL_OVF_CTRL,
      MSR_CORE_PERF_GLOBAL_CTRL,
      X2APIC_LVTPC,
    ]);
    expect([g.state, g.samples]).toEqual(['ACTIVE', []]);
  });

  it("PERF_METRICS overflow: handled, and the handler is given cpuc->events[48] and the PMI's sample", () => {
    const calls: [TopdownEvent | undefined, PerfSample][] = [];
    const ops: HostPerfOps = {
      ...HOST_PERF_OPS,
      handle_pmi_common_perf_metrics(metricsEvent, update, sample) {
        calls.push([metricsEvent, sample]);
        update();
      },
    };
    const k = new HostKernel({ profile: SAPPHIRE_RAPIDS, cpus: 1, ops });
    const hw = k.pcpu(0).hw;
    // No metric event yet: cpuc->events[48] is NULL, and the bit is handled all the same.
    setStatus(hw, PERF_METRICS_OVF);
    expect(k.intel_pmu_handle_irq(0)).toBe(true);
    expect(calls).toEqual([[undefined, { cpu: 0, inGuest: false }]]);
    const leader = ev(k.perf_event_open(attr({ config: INTEL_TD_SLOTS, pinned: true, disabled: true }), { cpu: 0 }));
    const metric = ev(
      k.perf_event_create_kernel_counter(
        attr({ config: INTEL_TD_METRIC_RETIRING + 0x100n }),
        { cpu: 0 },
        undefined,
        leader,
      ),
    );
    const retiring = ev(
      k.perf_event_create_kernel_counter(attr({ config: INTEL_TD_METRIC_RETIRING }), { cpu: 0 }, undefined, leader),
    );
    k.perf_event_enable(leader);
    expect([leader.hw_idx, metric.hw_idx, retiring.hw_idx]).toEqual([35, 49, 48]);
    setStatus(hw, PERF_METRICS_OVF);
    expect(k.intel_pmu_handle_irq(0)).toBe(true);
    expect(calls[1]![0]).toBe(retiring);
    expect(calls).toHaveLength(2);
  });

  it('PERF_METRICS overflow is not a counter: no counter bit 48 is looked up, nothing samples', () => {
    const k = new HostKernel({ profile: ICELAKE, cpus: 1 });
    const leader = ev(k.perf_event_open(attr({ config: INTEL_TD_SLOTS, pinned: true, disabled: true }), { cpu: 0 }));
    const metric = ev(
      k.perf_event_create_kernel_counter(attr({ config: INTEL_TD_METRIC_RETIRING }), { cpu: 0 }, undefined, leader),
    );
    k.perf_event_enable(leader);
    const hw = k.pcpu(0).hw;
    setStatus(hw, PERF_METRICS_OVF);
    // FIXED_CTR3 has counted nothing: update_topdown_event(NULL) reads it and stops; no metric event is re-armed.
    const seen = accesses(hw, () => expect(k.intel_pmu_handle_irq(0)).toBe(true));
    expect(seen.filter(([op]) => op === 'wr').map(([, msr]) => msr)).toEqual([
      MSR_CORE_PERF_GLOBAL_CTRL,
      MSR_CORE_PERF_GLOBAL_OVF_CTRL,
      MSR_CORE_PERF_GLOBAL_CTRL,
      X2APIC_LVTPC,
    ]);
    expect([leader.samples, metric.samples]).toEqual([[], []]);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe((1n << 35n) | PERF_METRICS_OVF);
  });
});

describe('the samples a PMI takes', () => {
  it('a counting event that overflows folds its count and re-arms a whole max_period, without a sample', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    const max = (1n << 47n) - 1n;
    const l = log(() => expect(k.runHost(0, [work(0, 1, 1, Number(max) + 5)])).toBe(1));
    expect(e.samples).toEqual([]);
    expect(l.has('H10')).toBe(false); // no sample, no attribution
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe((1n << 48n) - (max - 5n));
    expect(k.perf_event_read_value(e)).toBe(max + 5n);
  });

  it("a sampling event's overflow calls its handler once with the sample it records (H10)", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const got: [PerfEvent, PerfSample][] = [];
    const e = ev(
      k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 3n }), { cpu: 0 }, (x, s) => got.push([x, s])),
    );
    const l = log(() => k.runHost(0, units(3, work(0, 1, 1, 1))));
    expect(l.has('H10')).toBe(true);
    expect(got).toEqual([[e, { cpu: 0, inGuest: false }]]);
    expect(got[0]![1]).toBe(e.samples[0]);
  });

  it('only an event that samples branches gets the branch stack; another event of the same PMI gets none', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const b = ev(
      k.perf_event_open(
        attr({ config: CYCLES, sample_period: 10n, branchSample: { user: true, kernel: true, callStack: false } }),
        { cpu: 0 },
      ),
    );
    const plain = ev(k.perf_event_open(attr({ config: INSTRUCTIONS, sample_period: 2n }), { cpu: 0 }));
    k.runHost(0, [branchy(1, 10)]);
    expect(b.samples).toEqual([{ cpu: 0, inGuest: false, branches: [{ from: jmp(1).from, to: jmp(1).to }] }]);
    expect(plain.samples).toEqual([{ cpu: 0, inGuest: false }]);
  });

  it('with the guest LBR event on the CPU perf reads no LBRs (vlbr_exclude_host): no LBR MSR is touched', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('vcpu');
    k.context_switch(0, t);
    const g = guestLbrEvent(k, t);
    expect(g.state).toBe('ACTIVE');
    const plain = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1n }), { cpu: 0 }));
    const hw = k.pcpu(0).hw;
    expect(hw.step(work(0, 1, 1, 2))).not.toBeNull();
    const seen = accesses(hw, () => k.intel_pmu_handle_irq(0));
    expect(seen.filter(([, msr]) => msr === MSR_LBR_TOS)).toEqual([]);
    expect(plain.samples).toEqual([{ cpu: 0, inGuest: false }]);
  });
});

describe('perf_guest_state at the PMI (H10) and a PMI in guest mode (H2)', () => {
  it('registered guest-info callbacks decide the attribution, whatever mode the pCPU is in', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1n }), { cpu: 1 }));
    const asked: number[] = [];
    k.perf_register_guest_info_callbacks({
      state: (cpu) => {
        asked.push(cpu);
        return true;
      },
    });
    k.runHost(1, [work(0, 1, 1, 2)]);
    expect(e.samples).toEqual([{ cpu: 1, inGuest: true }]);
    expect(asked).toEqual([1]);
    k.perf_unregister_guest_info_callbacks();
    k.runHost(1, [work(0, 1, 1, 2)]);
    expect(e.samples[1]).toEqual({ cpu: 1, inGuest: false });
  });

  it('a callback saying host wins over guest mode; the handler in guest mode records H2 and restores the guest value', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1n }), { cpu: 0 }));
    const hostOnly = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, exclude_guest: true }), { cpu: 0 }));
    expect([e.hw_idx, hostOnly.hw_idx]).toEqual([0, 1]);
    k.perf_register_guest_info_callbacks({ state: () => false });
    const hw = k.pcpu(0).hw;
    hw.mode = 'guest';
    expect(hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n).ok).toBe(true);
    expect(hw.step(work(3, 1, 1, 2))).not.toBeNull();
    const l = log(() => k.intel_pmu_handle_irq(0));
    expect(l.has('H2')).toBe(true);
    expect(e.samples).toEqual([{ cpu: 0, inGuest: false }]);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(1n); // the guest's GLOBAL_CTRL: no exclude_guest counter
    hw.mode = 'host';
    expect(log(() => k.intel_pmu_handle_irq(0)).has('H2')).toBe(false);
  });
});

describe('a fault in the handler is a bug of the model, named by its access', () => {
  it.each([
    ['wr', MSR_CORE_PERF_GLOBAL_CTRL, /WRMSR GLOBAL_CTRL faulted/],
    ['rd', MSR_CORE_PERF_GLOBAL_STATUS, /RDMSR GLOBAL_STATUS faulted/],
    ['wr', MSR_CORE_PERF_GLOBAL_OVF_CTRL, /WRMSR GLOBAL_OVF_CTRL faulted/],
    ['wr', X2APIC_LVTPC, /WRMSR X2APIC_LVTPC faulted/],
  ] as const)('a faulting %s of MSR %i', (op, msr, text) => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const hw = k.pcpu(0).hw;
    setStatus(hw, 1n);
    if (op === 'wr') {
      const real = hw.wrmsr.bind(hw);
      vi.spyOn(hw, 'wrmsr').mockImplementation((m, v) => (m === msr ? gp('injected') : real(m, v)));
    } else {
      const real = hw.rdmsr.bind(hw);
      vi.spyOn(hw, 'rdmsr').mockImplementation((m) => (m === msr ? gp('injected') : real(m)));
    }
    expect(() => k.intel_pmu_handle_irq(0)).toThrow(text);
  });

  it('the status read that ends a pass too', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const hw = k.pcpu(0).hw;
    setStatus(hw, 1n);
    const real = hw.rdmsr.bind(hw);
    let reads = 0;
    vi.spyOn(hw, 'rdmsr').mockImplementation((m) =>
      m === MSR_CORE_PERF_GLOBAL_STATUS && ++reads === 2 ? gp('injected') : real(m),
    );
    expect(() => k.intel_pmu_handle_irq(0)).toThrow(/RDMSR GLOBAL_STATUS faulted/);
  });
});
