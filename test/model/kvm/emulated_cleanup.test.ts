/**
 * The perf-based vPMU's lazy release of the perf events of counters the guest no longer uses (kvm-vpmu.md §2.11): a
 * vCPU loaded after being scheduled out, with perf events, sets need_cleanup and KVM_REQ_PMU (kvm_arch_vcpu_load);
 * the request's kvm_pmu_cleanup then stops every counter that is neither enabled in its own control
 * (pmc_speculative_in_use) nor in pmc_in_use, calls intel_pmu_cleanup, and empties pmc_in_use. A counter is put in
 * pmc_in_use by any KVM_SET_MSR of one of its MSRs that intel_msr_idx_to_pmc maps (its selector, its legacy PERFCTR
 * alias, its fixed counter; not the IA32_PMCx full-width alias, not GLOBAL_CTRL), and by a FIXED_CTR_CTRL write that
 * changes its field (reprogram_fixed_counters). Which perf events KVM holds is held at the host: the events host perf
 * has for the vCPU's task are exactly those the vCPU's counters hold. Expectations are arch/x86/kvm/pmu.c's and
 * vmx/pmu_intel.c's, not the port's output.
 */
import { describe, expect, it } from 'vitest';
import { bit } from '../../../model/hw/bits.js';
import { PERF_CAP_FW_WRITES } from '../../../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
  HSW_IN_TX_CHECKPOINTED,
} from '../../../model/hw/msr/counters.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../../model/hw/msr/global.js';
import type { PerfEvent } from '../../../model/host/types.js';
import {
  createVcpu,
  hostVal,
  CYCLES,
  fixedGlobalEnable,
  fixedPmcCtrl,
  INSTRUCTIONS,
  kvmSupportedPerfCaps,
  val,
  work,
  type World,
} from './util.js';

const COUNT = ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR;
const CYCLES_ON = CYCLES | COUNT | ARCH_PERFMON_EVENTSEL_ENABLE;
const INSNS_ON = INSTRUCTIONS | COUNT | ARCH_PERFMON_EVENTSEL_ENABLE;
/** GLOBAL_CTRL with both GP counters and fixed counters 0 and 1. */
const ALL_ON = bit(0) | bit(1) | fixedGlobalEnable(0) | fixedGlobalEnable(1);
/** FIXED_CTR_CTRL: OS and USR for each fixed counter listed. */
const fixedOn = (...idx: number[]) => idx.reduce((c, i) => c | fixedPmcCtrl(i, 3n), 0n);

interface Guest extends World {
  /** The events host perf has for the vCPU's task, created and not released. */
  readonly live: Set<PerfEvent>;
  /** The vCPU's events host perf released, in order. */
  readonly released: PerfEvent[];
  /** How many events host perf created for the vCPU's task. */
  readonly created: { n: number };
}

/** A v2 Skylake guest with 2 GP and 3 fixed counters and full-width writes, every counter enabled in GLOBAL_CTRL. */
function guest(perfCaps = PERF_CAP_FW_WRITES): Guest {
  const w = createVcpu({ perfCaps, nrGp: 2 });
  const { host, vcpu } = w;
  const live = new Set<PerfEvent>();
  const released: PerfEvent[] = [];
  const created = { n: 0 };
  const create = host.perf_event_create_kernel_counter.bind(host);
  const release = host.perf_event_release_kernel.bind(host);
  host.perf_event_create_kernel_counter = (...a) => {
    const r = create(...a);
    if (!('error' in r) && 'task' in r.target && r.target.task === vcpu.s.task) {
      live.add(r);
      created.n++;
    }
    return r;
  };
  host.perf_event_release_kernel = (ev) => {
    if (live.delete(ev)) released.push(ev);
    release(ev);
  };
  const g = { ...w, live, released, created };
  wr(g, MSR_CORE_PERF_GLOBAL_CTRL, ALL_ON);
  return g;
}

function wr(g: World, msr: number, v: bigint): void {
  val(g.vcpu.guestWrmsr(msr, v), `WRMSR 0x${msr.toString(16)}`);
}

const gpEvent = (g: Guest, i: number) => g.vcpu.s.pmu.gp_counters[i]!.perf_event;
const fixedEvent = (g: Guest, i: number) => g.vcpu.s.pmu.fixed_counters[i]!.perf_event;

/**
 * The GP and fixed counters holding a perf event, and whether the guest LBR event exists; host perf must have exactly
 * these events for the vCPU's task, no more (an event KVM dropped without releasing) and no fewer.
 */
function held(g: Guest): { gp: number[]; fixed: number[]; lbr: boolean } {
  const pmu = g.vcpu.s.pmu;
  const gp = pmu.gp_counters.slice(0, pmu.nr_arch_gp_counters).flatMap((p, i) => (p.perf_event ? [i] : []));
  const fixed = pmu.fixed_counters.slice(0, pmu.nr_arch_fixed_counters).flatMap((p, i) => (p.perf_event ? [i] : []));
  const kvm = new Set<PerfEvent>();
  for (const p of [...pmu.gp_counters, ...pmu.fixed_counters]) if (p.perf_event) kvm.add(p.perf_event);
  if (g.vcpu.s.lbr.event) kvm.add(g.vcpu.s.lbr.event);
  expect(kvm, "host perf's events for the vCPU are KVM's").toEqual(g.live);
  // pmu->event_count, which decides whether a reschedule asks for the cleanup, counts them; the cost model counts
  // every create and release host perf saw.
  expect(pmu.event_count, 'event_count').toBe(g.live.size);
  expect([g.vcpu.cost.perfCreates, g.vcpu.cost.perfReleases], 'perf creates and releases counted').toEqual([
    g.created.n,
    g.released.length,
  ]);
  return { gp, fixed, lbr: g.vcpu.s.lbr.event !== null };
}

/** The events `f` released at the host. */
function releasedBy(g: Guest, f: () => void): PerfEvent[] {
  const from = g.released.length;
  f();
  return g.released.slice(from);
}

/** The vCPU thread scheduled out and in again (a migration or a preemption), then a VM-entry: its KVM_REQ_PMU. */
function rescheduleAndEnter(g: Guest, how: 'migrate' | 'preempt' = 'preempt'): void {
  if (how === 'migrate') g.vcpu.migrate(1 - g.vcpu.s.cpu);
  else g.vcpu.preempt(() => undefined);
  g.vcpu.guestRun([]);
}

/** PMC0 and PMC1 counting, then PMC1 disabled by its selector: its event is paused, not released. */
function withPmc1Disabled(): Guest {
  const g = guest();
  wr(g, MSR_P6_EVNTSEL0, CYCLES_ON);
  wr(g, MSR_P6_EVNTSEL0 + 1, INSNS_ON);
  g.vcpu.guestRun(work(3, 10));
  wr(g, MSR_P6_EVNTSEL0 + 1, INSTRUCTIONS | COUNT);
  expect(held(g)).toEqual({ gp: [0, 1], fixed: [], lbr: false });
  return g;
}

describe('kvm_pmu_cleanup: a rescheduled vCPU releases at its next VM-entry the events of disabled counters it left alone', () => {
  it('a GP counter disabled by a write is kept at the first cleanup after the write, released at the second; an enabled one stays', () => {
    const g = withPmc1Disabled();
    const pmc1 = gpEvent(g, 1);
    const counted = val(g.vcpu.guestRdmsr(MSR_IA32_PMC0 + 1));
    expect(counted).toBe(31n); // 30 instructions run, and the WRMSR that disabled it

    g.vcpu.migrate(1);
    expect(held(g), 'kvm_arch_vcpu_load only asks for the cleanup').toEqual({ gp: [0, 1], fixed: [], lbr: false });
    expect(
      releasedBy(g, () => g.vcpu.guestRun([])),
      'PMC1 was written since the last cleanup',
    ).toEqual([]);
    expect(gpEvent(g, 1)).toBe(pmc1);

    const releases = g.vcpu.cost.perfReleases;
    expect(
      releasedBy(g, () => rescheduleAndEnter(g)),
      'PMC1: disabled, and not written since',
    ).toEqual([pmc1]);
    expect(held(g)).toEqual({ gp: [0], fixed: [], lbr: false });
    expect(g.vcpu.cost.perfReleases - releases).toBe(1);
    // pmc_stop_counter folds what the event counted into the counter before releasing it.
    expect(val(g.vcpu.guestRdmsr(MSR_IA32_PMC0 + 1))).toBe(counted);

    // PMC0 was not written since the first cleanup either, but its selector enables it.
    expect(releasedBy(g, () => rescheduleAndEnter(g, 'migrate'))).toEqual([]);
    expect(held(g)).toEqual({ gp: [0], fixed: [], lbr: false });
  });

  it('without a reschedule, no KVM_REQ_PMU releases a disabled counter’s event, before or after a cleanup', () => {
    const g = withPmc1Disabled();
    const toggle = () => {
      // Each selector change of PMC0 is a KVM_REQ_PMU handled at the next VM-entry.
      wr(g, MSR_P6_EVNTSEL0, CYCLES | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_ENABLE);
      g.vcpu.guestRun(work(1, 5));
      wr(g, MSR_P6_EVNTSEL0, CYCLES_ON);
      g.vcpu.guestRun(work(1, 5));
    };
    toggle();
    expect(held(g)).toEqual({ gp: [0, 1], fixed: [], lbr: false });
    rescheduleAndEnter(g); // the cleanup keeps PMC1 (written since the last) and empties pmc_in_use
    expect(held(g)).toEqual({ gp: [0, 1], fixed: [], lbr: false });
    toggle();
    toggle();
    expect(held(g), 'need_cleanup was cleared by the cleanup').toEqual({ gp: [0, 1], fixed: [], lbr: false });
  });

  it('a counter found disabled at its reprogram is done with: the next KVM_REQ_PMU reprograms only what it asks for', () => {
    const g = withPmc1Disabled(); // PMC1's reprogram found it disabled and paused its event
    const reprograms = g.vcpu.cost.reprograms;
    wr(g, MSR_P6_EVNTSEL0, CYCLES | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_ENABLE);
    expect(g.vcpu.cost.reprograms - reprograms, 'PMC0 only').toBe(1);
  });

  it('a vCPU whose events are all released asks for no cleanup, and one rescheduled twice before an entry cleans up once', () => {
    const g = withPmc1Disabled();
    g.vcpu.migrate(1);
    g.vcpu.preempt(() => undefined);
    g.vcpu.guestRun([]); // one cleanup: PMC1 written since the last (none yet)
    expect(held(g)).toEqual({ gp: [0, 1], fixed: [], lbr: false });
    rescheduleAndEnter(g);
    expect(held(g)).toEqual({ gp: [0], fixed: [], lbr: false });
  });
});

describe('intel_pmu_cleanup: the same cleanup releases the guest LBR event iff the guest has DEBUGCTL.LBR clear', () => {
  /** A guest with the legacy LBR format whose DEBUGCTL.LBR write created the guest LBR event, and PMC1 disabled. */
  function withLbr(): Guest {
    const g = guest(kvmSupportedPerfCaps(SKYLAKE));
    wr(g, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
    wr(g, MSR_P6_EVNTSEL0 + 1, INSNS_ON);
    g.vcpu.guestRun(work(2, 10));
    wr(g, MSR_P6_EVNTSEL0 + 1, INSTRUCTIONS | COUNT);
    expect(held(g)).toEqual({ gp: [1], fixed: [], lbr: true });
    return g;
  }

  it('DEBUGCTL.LBR set: the LBR event outlives every cleanup, beside the counters’ release', () => {
    const g = withLbr();
    const [lbr, pmc1] = [g.vcpu.s.lbr.event, gpEvent(g, 1)];
    rescheduleAndEnter(g, 'migrate');
    expect(held(g)).toEqual({ gp: [1], fixed: [], lbr: true });
    expect(releasedBy(g, () => rescheduleAndEnter(g))).toEqual([pmc1]);
    expect(held(g)).toEqual({ gp: [], fixed: [], lbr: true });
    expect(g.vcpu.s.lbr.event).toBe(lbr);
    // Events are left (the LBR's): the next reschedule still cleans up, and keeps it.
    expect(releasedBy(g, () => rescheduleAndEnter(g))).toEqual([]);
  });

  it('DEBUGCTL.LBR cleared: the LBR event goes at the next cleanup, not before, whatever pmc_in_use holds', () => {
    const g = withLbr();
    const lbr = g.vcpu.s.lbr.event!;
    wr(g, MSR_IA32_DEBUGCTLMSR, 0n);
    g.vcpu.guestRun(work(1, 5));
    expect(held(g), 'no cleanup without a reschedule').toEqual({ gp: [1], fixed: [], lbr: true });
    expect(
      releasedBy(g, () => rescheduleAndEnter(g)),
      'PMC1 was written since: only the LBR event',
    ).toEqual([lbr]);
    expect(held(g)).toEqual({ gp: [1], fixed: [], lbr: false });
  });
});

describe('pmc_in_use: the writes that keep a disabled counter’s perf event through the next cleanup (kvm_pmu_mark_pmc_in_use)', () => {
  /**
   * `idx` disabled with its event kept, a first cleanup after that (pmc_in_use emptied), then the guest's `write`,
   * then a reschedule and an entry: whether the counter still holds its event.
   */
  function keptAfter(kind: 'gp' | 'fixed', idx: number, write: (g: Guest) => void): boolean {
    const g = guest();
    if (kind === 'gp') {
      wr(g, MSR_P6_EVNTSEL0, CYCLES_ON);
      wr(g, MSR_P6_EVNTSEL0 + 1, INSNS_ON);
      g.vcpu.guestRun(work(2, 10));
      wr(g, MSR_P6_EVNTSEL0 + idx, INSTRUCTIONS | COUNT);
    } else {
      wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedOn(0, 1));
      g.vcpu.guestRun(work(2, 10));
      wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedOn(1 - idx));
    }
    const ev = kind === 'gp' ? gpEvent(g, idx) : fixedEvent(g, idx);
    expect(ev).not.toBeNull();
    rescheduleAndEnter(g, 'migrate');
    expect(kind === 'gp' ? gpEvent(g, idx) : fixedEvent(g, idx), 'kept by the first cleanup').toBe(ev);
    write(g);
    rescheduleAndEnter(g);
    const now = kind === 'gp' ? gpEvent(g, idx) : fixedEvent(g, idx);
    held(g);
    if (now === null) expect(g.released).toContain(ev);
    else expect(now).toBe(ev);
    return now !== null;
  }

  it('a GP counter’s selector or legacy PERFCTR alias, whatever the value, keeps it', () => {
    for (const i of [0, 1]) {
      expect(
        keptAfter('gp', i, (g) => wr(g, MSR_P6_EVNTSEL0 + i, INSTRUCTIONS | COUNT)),
        `EVNTSEL${i}, unchanged`,
      ).toBe(true);
      expect(
        keptAfter('gp', i, (g) => wr(g, MSR_P6_EVNTSEL0 + i, CYCLES)),
        `EVNTSEL${i}, changed`,
      ).toBe(true);
      expect(
        keptAfter('gp', i, (g) => wr(g, MSR_IA32_PERFCTR0 + i, 5n)),
        `PERFCTR${i}`,
      ).toBe(true);
    }
  });

  it('not its IA32_PMCx full-width alias (intel_msr_idx_to_pmc does not map it), nor another counter’s MSRs, nor GLOBAL_CTRL', () => {
    for (const i of [0, 1]) {
      expect(
        keptAfter('gp', i, (g) => wr(g, MSR_IA32_PMC0 + i, 5n)),
        `IA32_PMC${i}`,
      ).toBe(false);
      expect(
        keptAfter('gp', i, (g) => wr(g, MSR_IA32_PERFCTR0 + 1 - i, 5n)),
        `PERFCTR${1 - i}`,
      ).toBe(false);
      expect(
        keptAfter('gp', i, (g) => wr(g, MSR_P6_EVNTSEL0 + 1 - i, CYCLES_ON)),
        `EVNTSEL${1 - i}`,
      ).toBe(false);
      expect(
        keptAfter('gp', i, (g) => wr(g, MSR_CORE_PERF_GLOBAL_CTRL, bit(1 - i))),
        'GLOBAL_CTRL',
      ).toBe(false);
      expect(
        keptAfter('gp', i, () => undefined),
        'no write',
      ).toBe(false);
    }
  });

  it('a fixed counter’s own MSR keeps it, another fixed counter’s does not', () => {
    for (const i of [0, 1]) {
      expect(
        keptAfter('fixed', i, (g) => wr(g, MSR_CORE_PERF_FIXED_CTR0 + i, 5n)),
        `FIXED_CTR${i}`,
      ).toBe(true);
      expect(
        keptAfter('fixed', i, (g) => wr(g, MSR_CORE_PERF_FIXED_CTR0 + 1 - i, 5n)),
        `FIXED_CTR${1 - i}`,
      ).toBe(false);
      expect(
        keptAfter('fixed', i, () => undefined),
        'no write',
      ).toBe(false);
    }
  });

  it('FIXED_CTR_CTRL keeps the fixed counters whose field it changes (reprogram_fixed_counters), not the others', () => {
    for (const i of [0, 1]) {
      // Another field changed: this counter's field, already disabled, is not.
      expect(
        keptAfter('fixed', i, (g) => wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(1 - i, 1n))),
        `FIXED_CTR_CTRL, field ${1 - i}`,
      ).toBe(false);
      // This counter's field changed, still without OS or USR: PMI only.
      expect(
        keptAfter('fixed', i, (g) => wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedOn(1 - i) | fixedPmcCtrl(i, 8n))),
        `FIXED_CTR_CTRL, field ${i}`,
      ).toBe(true);
    }
  });

  it('fixed counters disabled one FIXED_CTR_CTRL write apart are released one cleanup apart', () => {
    const g = guest();
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedOn(0, 1));
    g.vcpu.guestRun(work(2, 10));
    const [f0, f1] = [fixedEvent(g, 0), fixedEvent(g, 1)];
    expect(held(g)).toEqual({ gp: [], fixed: [0, 1], lbr: false });
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedOn(0)); // fixed 1's field changes
    expect(releasedBy(g, () => rescheduleAndEnter(g, 'migrate'))).toEqual([]);
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n); // fixed 0's field changes; fixed 1's is already 0
    expect(releasedBy(g, () => rescheduleAndEnter(g))).toEqual([f1]);
    expect(held(g)).toEqual({ gp: [], fixed: [0], lbr: false });
    expect(releasedBy(g, () => rescheduleAndEnter(g))).toEqual([f0]);
    expect(held(g)).toEqual({ gp: [], fixed: [], lbr: false });
  });
});

describe('pmc_reprogram_counter: the perf event a counter gets, as host perf holds it', () => {
  const WIDTH = 1n << 48n;

  it('a GP counter: pinned, exclude_host, bound to the vCPU task, its exclusions from USR and OS, its period what is left to the wrap', () => {
    const g = guest();
    wr(g, MSR_IA32_PMC0, WIDTH - 100n);
    wr(g, MSR_P6_EVNTSEL0, CYCLES | ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_ENABLE);
    g.vcpu.guestRun([]);
    const ev = gpEvent(g, 0)!;
    expect([...g.live]).toEqual([ev]);
    expect(ev.target).toEqual({ task: g.vcpu.s.task });
    expect(ev.attr).toMatchObject({
      config: CYCLES,
      sample_period: 100n,
      pinned: true,
      exclude_host: true,
      exclude_guest: false,
      exclude_user: false,
      exclude_kernel: true,
    });
    // A write to the enabled counter sets the period again (pmc_update_sample_period).
    wr(g, MSR_IA32_PMC0, WIDTH - 7n);
    expect(gpEvent(g, 0)).toBe(ev);
    expect(ev.attr.sample_period).toBe(7n);
    // A counter at 0 wraps after 2^48 events: the whole width, not 0 (get_sample_period).
    wr(g, MSR_IA32_PMC0, 0n);
    expect(ev.attr.sample_period).toBe(WIDTH);
  });

  it('a write to a paused counter calls perf not at all; its period is set when the event resumes (pmc_update_sample_period)', () => {
    const g = guest();
    wr(g, MSR_P6_EVNTSEL0, CYCLES_ON);
    g.vcpu.guestRun(work(1, 10));
    const ev = gpEvent(g, 0)!;
    const calls = (f: () => void) => {
      const before = g.vcpu.cost.perfCalls;
      f();
      return g.vcpu.cost.perfCalls - before;
    };
    // Enabled: pmc_read_counter reads the event, then perf_event_period. Upstream computes the period from
    // pmc->counter, which leaves out the 20 cycles the event counted: 50, not 30 (report 0001).
    expect(calls(() => wr(g, MSR_IA32_PMC0, WIDTH - 30n))).toBe(2);
    expect(ev.attr.sample_period).toBe(50n);
    wr(g, MSR_P6_EVNTSEL0, CYCLES | COUNT);
    g.vcpu.guestRun([]); // paused, not released
    expect(
      calls(() => wr(g, MSR_IA32_PMC0, WIDTH - 20n)),
      'paused: no read, no period',
    ).toBe(0);
    expect(ev.attr.sample_period).toBe(50n);
    wr(g, MSR_P6_EVNTSEL0, CYCLES_ON);
    g.vcpu.guestRun([]); // the same config: pmc_resume_counter sets the period and enables the event
    expect(gpEvent(g, 0)).toBe(ev);
    expect(ev.attr.sample_period).toBe(20n);
  });

  it('IN_TX_CP takes a counting event, whose period no write sets and whose resume sets none (is_sampling_event)', () => {
    const w = createVcpu({ profile: SAPPHIRE_RAPIDS, perfCaps: PERF_CAP_FW_WRITES, cpuid: { tsx: true } });
    const wr2 = (msr: number, v: bigint) => wr(w, msr, v);
    const calls = (f: () => void) => {
      const before = w.vcpu.cost.perfCalls;
      f();
      return w.vcpu.cost.perfCalls - before;
    };
    const pmc2 = () => w.vcpu.s.pmu.gp_counters[2]!.perf_event;
    wr2(MSR_IA32_PMC0 + 2, WIDTH - 100n);
    wr2(MSR_P6_EVNTSEL0 + 2, CYCLES_ON | HSW_IN_TX_CHECKPOINTED);
    w.vcpu.guestRun(work(1, 10));
    const ev = pmc2()!;
    expect(ev.attr).toMatchObject({ config: CYCLES | HSW_IN_TX_CHECKPOINTED, sample_period: 0n });
    // On the same host, a counter without IN_TX_CP samples.
    wr2(MSR_IA32_PMC0, WIDTH - 100n);
    wr2(MSR_P6_EVNTSEL0, CYCLES_ON);
    expect(w.vcpu.s.pmu.gp_counters[0]!.perf_event!.attr.sample_period).toBe(100n);
    expect(
      calls(() => wr2(MSR_IA32_PMC0 + 2, WIDTH - 50n)),
      'the read only: no period',
    ).toBe(1);
    // The WRMSR's exit ends in a VM-entry, whose KVM_REQ_PMU reprograms the counter: pause, then enable alone.
    expect(calls(() => wr2(MSR_P6_EVNTSEL0 + 2, CYCLES | COUNT | HSW_IN_TX_CHECKPOINTED))).toBe(1);
    expect(calls(() => wr2(MSR_P6_EVNTSEL0 + 2, CYCLES_ON | HSW_IN_TX_CHECKPOINTED))).toBe(1);
    expect(pmc2()).toBe(ev);
    expect(ev.attr.sample_period).toBe(0n);
  });

  it('a fixed counter: its architectural event, the exclusions from its FIXED_CTR_CTRL field', () => {
    // KVM counts the WRMSR that enables fixed 0 as a retired instruction (kvm_pmu_instruction_retired): one less to go.
    for (const [i, event, left] of [
      [0, INSTRUCTIONS, 49n],
      [1, CYCLES, 50n],
    ] as const) {
      const g = guest();
      wr(g, MSR_CORE_PERF_FIXED_CTR0 + i, WIDTH - 50n);
      wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(i, 1n)); // OS only
      g.vcpu.guestRun([]);
      const ev = fixedEvent(g, i)!;
      expect([...g.live]).toEqual([ev]);
      expect(ev.attr, `fixed ${i}, OS`).toMatchObject({
        config: event,
        sample_period: left,
        pinned: true,
        exclude_host: true,
        exclude_user: true,
        exclude_kernel: false,
      });
      wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(i, 2n)); // USR only: another config, another event
      g.vcpu.guestRun([]);
      const user = fixedEvent(g, i)!;
      expect(user).not.toBe(ev);
      expect(g.released).toEqual([ev]);
      expect(user.attr, `fixed ${i}, USR`).toMatchObject({ config: event, exclude_user: false, exclude_kernel: true });
    }
  });
});

describe('kvm_pmu_refresh: a second KVM_SET_CPUID2 before KVM_RUN resets what the VMM set (kvm_pmu_reset)', () => {
  it('counters, selectors, FIXED_CTR_CTRL, GLOBAL_STATUS and pending reprograms go; GLOBAL_CTRL is at its RESET value again', () => {
    const w = createVcpu({ perfCaps: PERF_CAP_FW_WRITES, nrGp: 2 });
    const set = (msr: number, v: bigint) =>
      expect(w.vcpu.hostSetMsr(msr, v).ok, `KVM_SET_MSRS 0x${msr.toString(16)}`).toBe(true);
    const get = (msr: number) => hostVal(w.vcpu.hostGetMsr(msr), `KVM_GET_MSRS 0x${msr.toString(16)}`);
    set(MSR_IA32_PMC0, 123n);
    set(MSR_P6_EVNTSEL0 + 1, CYCLES_ON);
    set(MSR_CORE_PERF_FIXED_CTR0, 45n);
    set(MSR_CORE_PERF_FIXED_CTR_CTRL, fixedOn(0));
    set(MSR_CORE_PERF_GLOBAL_CTRL, ALL_ON);
    set(MSR_CORE_PERF_GLOBAL_STATUS, bit(1));
    expect(w.vcpu.setCpuid(w.vcpu.s.cpuid).ok).toBe(true);
    expect(
      [
        MSR_IA32_PMC0,
        MSR_P6_EVNTSEL0 + 1,
        MSR_CORE_PERF_FIXED_CTR0,
        MSR_CORE_PERF_FIXED_CTR_CTRL,
        MSR_CORE_PERF_GLOBAL_CTRL,
        MSR_CORE_PERF_GLOBAL_STATUS,
      ].map(get),
    ).toEqual([0n, 0n, 0n, 0n, bit(0) | bit(1), 0n]);
    // Nothing is left to reprogram: the first VM-entry creates no event and reprograms no counter.
    const reprograms = w.vcpu.cost.reprograms;
    w.vcpu.guestRun(work(1, 10));
    expect(w.vcpu.cost.reprograms - reprograms).toBe(0);
    expect(w.vcpu.cost.perfCreates).toBe(0);
  });
});

describe('kvm_pmu_refresh of a guest without GP counters', () => {
  it('a second KVM_SET_CPUID2 leaves GLOBAL_CTRL at 0, whatever the VMM set', () => {
    const w = createVcpu({ perfCaps: PERF_CAP_FW_WRITES, nrGp: 0 });
    expect(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_CTRL, fixedGlobalEnable(0)).ok).toBe(true);
    expect(w.vcpu.setCpuid(w.vcpu.s.cpuid).ok).toBe(true);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(0n);
  });
});
