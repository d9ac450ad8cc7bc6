/**
 * Host perf's event lifetime held to kernel/events/core.c and arch/x86/events: what start-up writes
 * (intel_pmu_cpu_starting's LBR reset, on every CPU, only where perf keeps the LBRs: decision H17),
 * what sys_perf_event_open refuses and with which errno (a CPU or task that does not exist, a
 * sample_period with bit 63, a branch stack perf cannot give, an event no counter counts, a metric
 * event without a slots leader, a group leader of another context or that is itself a sibling),
 * the state changes of perf_event_enable, perf_event_disable and perf_event_period, the topdown
 * metrics interface of seed 002, and which host users see host-mode work (hostWorkObserved).
 *
 * The property tests compare two hosts on the same perf model and generate no host user that asks
 * for what perf refuses, so a fault here moves both sides alike; these tests state the kernel's
 * values instead.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Cpu } from '../../../model/hw/cpu.js';
import { ModelError } from '../../../model/hw/errors.js';
import { defineProfile, leaf0aEax, leaf0aEdx, perfCaps } from '../../../model/hw/profile.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { DecisionLog, recording } from '../../../model/hw/relied.js';
import { MSR_ARCH_LBR_DEPTH } from '../../../model/hw/msr/lbr_arch.js';
import { MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO } from '../../../model/hw/msr/lbr_legacy.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { MSR_IA32_PMC0 } from '../../../model/hw/msr/counters.js';
import { attr, type PerfEventAttr } from '../../../model/host/types.js';
import { HostKernel, type TopdownEvent, WATCHDOG_CONFIG, WATCHDOG_DEFAULT_PERIOD } from '../../../model/host/perf.js';
import { CYCLES, errorOf, ev, INSTRUCTIONS, LLC_REFERENCES, NO_LBR, rd, REF_TSC, SLOTS, units, work } from './util.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** Skylake's counters on a PMU of version 2, the oldest with GLOBAL_CTRL. */
const V2 = defineProfile({
  ...SKYLAKE.spec,
  name: 'v2',
  leaf0a: { eax: leaf0aEax(2, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
});
/** Skylake's counters with fixed counters 0 and 1 only: REF_TSC's pseudo-encoding has no counter. */
const TWO_FIXED = defineProfile({
  ...SKYLAKE.spec,
  name: 'two-fixed',
  leaf0a: { eax: leaf0aEax(4, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(2, 48) },
});
/** Skylake without LBR call-stack mode. */
const NO_CALLSTACK = defineProfile({
  ...SKYLAKE.spec,
  name: 'skl-no-callstack',
  legacyLbr: { ...SKYLAKE.spec.legacyLbr!, callStack: false },
});
/** The retiring metric: metric 0 of PERF_METRICS. */
const RETIRING = 0x8000n;
const ANY_BRANCH = { user: true, kernel: true, callStack: false } as const;

/** Every WRMSR any pCPU makes while `f` runs, as [cpu object, msr, value]. */
function wrmsrs<T>(f: () => T): { result: T; writes: [Cpu, number, bigint][] } {
  const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
  try {
    const result = f();
    const writes = spy.mock.calls.map((c, i) => [spy.mock.contexts[i] as Cpu, c[0], c[1]] as [Cpu, number, bigint]);
    return { result, writes };
  } finally {
    spy.mockRestore();
  }
}

function log(f: () => unknown): DecisionLog {
  const l = new DecisionLog();
  recording(l, f);
  return l;
}

describe('start-up: init_hw_perf_events and intel_pmu_cpu_starting', () => {
  it('a version 2 PMU is enough; a CPU count that is not a whole number is refused', () => {
    expect(new HostKernel({ profile: V2, cpus: 1 }).nrCpus).toBe(1);
    expect(() => new HostKernel({ profile: SKYLAKE, cpus: 1.5 })).toThrow(ModelError);
  });

  it('every CPU wipes its legacy LBRs at start-up (CPUs need not clear them at power-up)', () => {
    const { result: k, writes } = wrmsrs(() => new HostKernel({ profile: SKYLAKE, cpus: 2 }));
    const depth = SKYLAKE.spec.legacyLbr!.depth;
    for (let c = 0; c < 2; c++) {
      const mine = writes.filter(([hw]) => hw === k.pcpu(c).hw);
      for (let i = 0; i < depth; i++) {
        expect(mine, `CPU ${c} FROM_${i}`).toContainEqual([k.pcpu(c).hw, MSR_LBR_NHM_FROM + i, 0n]);
        expect(mine, `CPU ${c} TO_${i}`).toContainEqual([k.pcpu(c).hw, MSR_LBR_NHM_TO + i, 0n]);
      }
    }
  });

  it('with Arch LBR the reset is a write of LBR_DEPTH, on every CPU', () => {
    const { result: k, writes } = wrmsrs(() => new HostKernel({ profile: SAPPHIRE_RAPIDS, cpus: 2 }));
    for (let c = 0; c < 2; c++)
      expect(writes.filter(([hw, msr]) => hw === k.pcpu(c).hw && msr === MSR_ARCH_LBR_DEPTH)).toHaveLength(1);
  });

  it('where the LBR probe faulted perf has no LBRs (H17): no reset, no branch stacks, no guest LBR event', () => {
    const { result: k, writes } = wrmsrs(() => new HostKernel({ profile: SKYLAKE, cpus: 1, lbrProbeFaulted: true }));
    expect(writes.filter(([, msr]) => msr >= MSR_LBR_NHM_FROM && msr < MSR_LBR_NHM_TO + 32)).toEqual([]);
    expect(k.x86_perf_get_lbr().nr).toBe(0);
    expect(errorOf(k.perf_event_open(attr({ config: CYCLES, branchSample: ANY_BRANCH }), { cpu: 0 }))).toMatch(
      /^EOPNOTSUPP/,
    );
    expect(errorOf(k.perf_event_create_kernel_counter(attr({ config: 0n, vlbr: true }), { cpu: 0 }))).toMatch(
      /^EOPNOTSUPP/,
    );
    expect(log(() => k.x86_perf_get_lbr()).has('H17')).toBe(true);
    // Nor did one whose probe succeeded, or one on a part without LBRs, where the probe decides nothing.
    expect(
      log(() => new HostKernel({ profile: NO_LBR, cpus: 1, lbrProbeFaulted: true }).x86_perf_get_lbr()).has('H17'),
    ).toBe(false);
    expect(log(() => new HostKernel({ profile: SKYLAKE, cpus: 1 }).x86_perf_get_lbr()).has('H17')).toBe(false);
  });

  it('x86_perf_get_lbr reports no LBR_INFO and no call stack where the part has neither', () => {
    // Sandy Bridge-like: LBR_FMT 3 has no LBR_INFO, and its LBR_SELECT no call-stack mode.
    const noInfo = defineProfile({
      name: 'snb-fmt3',
      family: 6,
      model: 0x2a,
      leaf0a: { eax: leaf0aEax(3, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
      pdcm: true,
      perfCapabilities: perfCaps({ lbrFmt: 3 }),
      legacyLbr: { depth: 16, fromBase: MSR_LBR_NHM_FROM, toBase: MSR_LBR_NHM_TO, select: true, callStack: false },
    });
    expect(new HostKernel({ profile: noInfo, cpus: 1 }).x86_perf_get_lbr()).toEqual({
      nr: 16,
      from: MSR_LBR_NHM_FROM,
      to: MSR_LBR_NHM_TO,
      info: 0,
      hasCallstack: false,
    });
    const archNoCallstack = defineProfile({
      ...SAPPHIRE_RAPIDS.spec,
      name: 'arch-lbr-no-callstack',
      leaf1c: { ...SAPPHIRE_RAPIDS.spec.leaf1c!, ebx: 0x3 },
    });
    expect(new HostKernel({ profile: archNoCallstack, cpus: 1 }).x86_perf_get_lbr().hasCallstack).toBe(false);
    expect(new HostKernel({ profile: SAPPHIRE_RAPIDS, cpus: 1 }).x86_perf_get_lbr().hasCallstack).toBe(true);
  });

  it('the watchdog is a pinned cycles event of the period asked for, the default one, or none', () => {
    const own = new HostKernel({ profile: SKYLAKE, cpus: 2, nmiWatchdog: { period: 1234n } });
    for (let c = 0; c < 2; c++) {
      const w = own.watchdog(c)!;
      expect(w.attr).toMatchObject({ config: WATCHDOG_CONFIG, sample_period: 1234n, pinned: true });
      expect(w.state).toBe('ACTIVE');
    }
    expect(new HostKernel({ profile: SKYLAKE, cpus: 1, nmiWatchdog: true }).watchdog(0)!.attr.sample_period).toBe(
      WATCHDOG_DEFAULT_PERIOD,
    );
    expect(new HostKernel({ profile: SKYLAKE, cpus: 1, nmiWatchdog: false }).watchdog(0)).toBeNull();
  });
});

describe('sys_perf_event_open refuses', () => {
  it('a CPU that does not exist with EINVAL, and installs nothing', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    for (const cpu of [-1, 2, 0.5]) {
      const { result, writes } = wrmsrs(() => k.perf_event_open(attr({ config: CYCLES }), { cpu }));
      expect(errorOf(result), `CPU ${cpu}`).toMatch(/^EINVAL/);
      expect(writes).toEqual([]);
    }
  });

  it('a task that does not exist with ESRCH', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    expect(errorOf(k.perf_event_open(attr({ config: CYCLES }), { task: 7 }))).toMatch(/^ESRCH/);
  });

  it('a sample_period with bit 63 set with EINVAL; the largest without it is accepted', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    for (const sample_period of [1n << 63n, -1n, (1n << 64n) - 1n])
      expect(errorOf(k.perf_event_open(attr({ config: CYCLES, sample_period }), { cpu: 0 }))).toMatch(/^EINVAL/);
    expect(ev(k.perf_event_open(attr({ config: CYCLES, sample_period: (1n << 63n) - 1n }), { cpu: 0 })).state).toBe(
      'ACTIVE',
    );
  });

  it('a call-stack branch stack on a part without call-stack mode with EOPNOTSUPP', () => {
    const k = new HostKernel({ profile: NO_CALLSTACK, cpus: 1 });
    const b = { ...ANY_BRANCH, callStack: true };
    expect(errorOf(k.perf_event_open(attr({ config: CYCLES, branchSample: b }), { cpu: 0 }))).toMatch(/^EOPNOTSUPP/);
    expect(k.perf_event_open(attr({ config: CYCLES, branchSample: ANY_BRANCH }), { cpu: 0 })).not.toHaveProperty(
      'error',
    );
  });

  it('an event no counter of the part counts with EINVAL (validate_event)', () => {
    const k = new HostKernel({ profile: TWO_FIXED, cpus: 1 });
    expect(errorOf(k.perf_event_open(attr({ config: REF_TSC }), { cpu: 0 }))).toMatch(/^EINVAL/);
    expect(k.perf_event_open(attr({ config: CYCLES }), { cpu: 0 })).not.toHaveProperty('error');
    // Only a fixed-only pseudo-encoding's verdict rests on decision H8, refused or not.
    expect(log(() => k.perf_event_open(attr({ config: REF_TSC }), { cpu: 0 })).has('H8')).toBe(true);
    const skl = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const l = log(() => expect(ev(skl.perf_event_open(attr({ config: REF_TSC }), { cpu: 0 })).hw_idx).toBe(34));
    expect(l.has('H8')).toBe(true);
    for (const config of [CYCLES, LLC_REFERENCES])
      expect(log(() => skl.perf_event_open(attr({ config }), { cpu: 0 })).has('H8')).toBe(false);
  });

  it('a metric event that is not the sibling of a slots leader with EINVAL', () => {
    const k = new HostKernel({ profile: ICELAKE, cpus: 1 });
    expect(errorOf(k.perf_event_open(attr({ config: RETIRING }), { cpu: 0 }))).toMatch(/^EINVAL/);
    const cycles = ev(k.perf_event_open(attr({ config: CYCLES, disabled: true }), { cpu: 0 }));
    expect(
      errorOf(k.perf_event_create_kernel_counter(attr({ config: RETIRING }), { cpu: 0 }, undefined, cycles)),
    ).toMatch(/^EINVAL/);
    const slots = ev(k.perf_event_open(attr({ config: SLOTS, disabled: true }), { cpu: 0 }));
    expect(
      k.perf_event_create_kernel_counter(attr({ config: RETIRING }), { cpu: 0 }, undefined, slots),
    ).not.toHaveProperty('error');
  });

  it('a group leader of another context, or one that is itself a sibling, with EINVAL', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const t = k.createTask('t');
    const leader = ev(k.perf_event_open(attr({ config: CYCLES }), { cpu: 0 }));
    const open = (target: { cpu: number } | { task: number }, l = leader) =>
      k.perf_event_create_kernel_counter(attr({ config: INSTRUCTIONS }), target, undefined, l);
    expect(errorOf(open({ cpu: 1 }))).toMatch(/^EINVAL/);
    expect(errorOf(open({ task: t }))).toMatch(/^EINVAL/);
    const sibling = ev(open({ cpu: 0 }));
    expect(errorOf(open({ cpu: 0 }, sibling))).toMatch(/^EINVAL/);
  });
});

describe('a group', () => {
  it('a sibling of a running leader goes on with it, unless it is created disabled', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const leader = ev(k.perf_event_open(attr({ config: CYCLES }), { cpu: 0 }));
    const sib = (a: Partial<PerfEventAttr> = {}) =>
      ev(k.perf_event_create_kernel_counter(attr({ config: LLC_REFERENCES, ...a }), { cpu: 0 }, undefined, leader));
    const on = sib();
    const off = sib({ disabled: true });
    expect([on.state, off.state]).toEqual(['ACTIVE', 'OFF']);
    k.runHost(0, [work(0, 1, 1, 5)]);
    expect(k.perf_event_read_value(on)).toBe(5n);
    k.perf_event_enable(off);
    expect(off.state).toBe('ACTIVE');
    k.runHost(0, [work(0, 1, 1, 3)]);
    expect([k.perf_event_read_value(on), k.perf_event_read_value(off)]).toEqual([8n, 3n]);
    // Enabling a sibling of a leader that is off puts it in the group's state, not on the PMU.
    k.perf_event_disable(off);
    k.perf_event_disable(leader);
    expect(on.state).toBe('INACTIVE');
    k.perf_event_enable(off);
    expect(off.state).toBe('INACTIVE');
    expect(rd(k.pcpu(0).hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(0n);
  });
});

describe('perf_event_enable and perf_event_disable', () => {
  it('enabling an event that is ACTIVE or INACTIVE changes nothing and touches no MSR', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const pinned = [0, 1, 2, 3].map(() =>
      ev(k.perf_event_open(attr({ config: LLC_REFERENCES, pinned: true }), { cpu: 0 })),
    );
    const waiting = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    expect(waiting.state).toBe('INACTIVE');
    const { writes } = wrmsrs(() => {
      k.perf_event_enable(pinned[0]!);
      k.perf_event_enable(waiting);
    });
    expect(writes).toEqual([]);
    expect([pinned[0]!.state, waiting.state]).toEqual(['ACTIVE', 'INACTIVE']);
  });

  it("a task event enabled while its task is off every CPU waits for the task's switch-in", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, disabled: true }), { task: t }));
    const { writes } = wrmsrs(() => k.perf_event_enable(e));
    expect([e.state, writes]).toEqual(['INACTIVE', []]);
    k.context_switch(0, t);
    expect(e.state).toBe('ACTIVE');
    k.runHost(0, [work(0, 1, 1, 4)]);
    expect(k.perf_event_read_value(e)).toBe(4n);
  });

  it('disabling an INACTIVE event turns it OFF; an ERROR event stays in ERROR', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const pinned = [0, 1, 2, 3].map(() =>
      ev(k.perf_event_open(attr({ config: LLC_REFERENCES, pinned: true }), { cpu: 0 })),
    );
    const waiting = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    const failed = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, pinned: true }), { cpu: 0 }));
    expect([waiting.state, failed.state]).toEqual(['INACTIVE', 'ERROR']);
    k.perf_event_disable(waiting);
    k.perf_event_disable(failed);
    expect([waiting.state, failed.state]).toEqual(['OFF', 'ERROR']);
    // A freed counter goes to neither: OFF waits for enable, ERROR for enable too.
    k.perf_event_release_kernel(pinned[0]!);
    expect([waiting.state, failed.state]).toEqual(['OFF', 'ERROR']);
    k.perf_event_enable(waiting);
    expect(waiting.state).toBe('ACTIVE');
  });

  it('disabling an active event on a CPU that runs a guest is refused (H2); an inactive one needs no PMU', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const active = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    const off = ev(k.perf_event_open(attr({ config: CYCLES, disabled: true }), { cpu: 0 }));
    k.pcpu(0).hw.mode = 'guest';
    expect(() => k.perf_event_disable(active)).toThrow(ModelError);
    expect(() => k.perf_event_period(active, 5n)).not.toThrow(); // a counting event: EINVAL before any PMU access
    k.perf_event_disable(off);
    expect(off.state).toBe('OFF');
  });
});

describe('perf_event_period', () => {
  it('the new period is the one every later overflow re-arms with', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1000n }), { cpu: 0 }));
    expect(k.perf_event_period(e, 3n)).toBe(true);
    expect(k.runHost(0, units(9, work(0, 1, 1, 1)))).toBe(3);
    expect(e.samples).toHaveLength(3);
    expect(k.perf_event_read_value(e)).toBe(9n);
  });

  it('an inactive event takes a whole new period at its next start', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 10n }), { cpu: 0 }));
    k.runHost(0, units(4, work(0, 1, 1, 1)));
    k.perf_event_disable(e);
    expect(k.perf_event_period(e, 5n)).toBe(true);
    k.perf_event_enable(e);
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe((1n << 48n) - 5n);
  });

  it('accepts 1 (run as 2, the least x86_perf_event_set_period programs) and 2^63 - 1, refuses negative periods', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 10n }), { cpu: 0 }));
    expect(k.perf_event_period(e, (1n << 63n) - 1n)).toBe(true);
    expect(k.perf_event_period(e, -1n)).toBe(false);
    expect(e.attr.sample_period).toBe((1n << 63n) - 1n);
    expect(k.perf_event_period(e, 1n)).toBe(true);
    expect(k.runHost(0, units(4, work(0, 1, 1, 1)))).toBe(2);
  });

  it('restarting an active event needs the PMU: refused while its CPU runs a guest (H2)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 10n }), { cpu: 0 }));
    k.pcpu(0).hw.mode = 'guest';
    expect(() => k.perf_event_period(e, 5n)).toThrow(ModelError);
  });
});

describe('perf_event_topdown_metrics (seed 002): the saved FIXED_CTR3 and PERF_METRICS of a counting topdown event', () => {
  const slotsUnit = {
    cpl: 0,
    instructions: 1,
    cycles: 1,
    slots: { retiring: 2, badSpeculation: 1, frontendBound: 1, backendBound: 0 },
  };
  function group(k: HostKernel, sample_period = 0n): [TopdownEvent, TopdownEvent] {
    const l = ev(k.perf_event_open(attr({ config: SLOTS, sample_period, disabled: true }), { cpu: 0 }));
    const m = ev(k.perf_event_create_kernel_counter(attr({ config: RETIRING }), { cpu: 0 }, undefined, l));
    return [l as TopdownEvent, m as TopdownEvent];
  }

  it('an event off the PMU keeps the pair for its next start', () => {
    const k = new HostKernel({ profile: ICELAKE, cpus: 1 });
    const [l, m] = group(k);
    expect(k.perf_event_topdown_metrics(m, 500n, 0x11n)).toBe(true);
    expect(k.perf_event_topdown_metrics(l, 600n, 0x22n)).toBe(true);
    expect([m.saved_slots, m.saved_metric, l.saved_slots, l.saved_metric]).toEqual([500n, 0x11n, 600n, 0x22n]);
  });

  it('a running event is stopped with its count folded, takes the pair, and counts on', () => {
    const k = new HostKernel({ profile: ICELAKE, cpus: 1 });
    const [l, m] = group(k);
    k.perf_event_enable(l);
    k.runHost(0, units(3, slotsUnit));
    const before = [k.perf_event_read_value(l), k.perf_event_read_value(m)];
    expect(before[0]).toBe(12n);
    expect(k.perf_event_topdown_metrics(m, 1000n, 0x10203040n)).toBe(true);
    expect([m.saved_slots, m.saved_metric]).toEqual([1000n, 0x10203040n]);
    expect([k.perf_event_read_value(l), k.perf_event_read_value(m)]).toEqual(before);
    expect(m.state).toBe('ACTIVE');
    k.runHost(0, units(3, slotsUnit));
    expect([k.perf_event_read_value(l), k.perf_event_read_value(m)]).toEqual([2n * before[0]!, 2n * before[1]!]);
  });

  it('a sampling event is refused (EINVAL) and keeps its pair; a running one needs the PMU (H2)', () => {
    const k = new HostKernel({ profile: ICELAKE, cpus: 1 });
    const s = ev(k.perf_event_open(attr({ config: SLOTS, sample_period: 100n }), { cpu: 0 })) as TopdownEvent;
    const { result, writes } = wrmsrs(() => k.perf_event_topdown_metrics(s, 7n, 8n));
    expect([result, writes, s.saved_slots, s.saved_metric]).toEqual([false, [], 0n, 0n]);
    const k2 = new HostKernel({ profile: ICELAKE, cpus: 1 });
    const [l] = group(k2);
    k2.perf_event_enable(l);
    k2.pcpu(0).hw.mode = 'guest';
    expect(() => k2.perf_event_topdown_metrics(l, 7n, 8n)).toThrow(ModelError);
  });
});

describe('hostWorkObserved: whether host-mode work shows in any host user but the watchdog', () => {
  const branchy = {
    ...work(0, 4, 4, 3),
    branches: [
      { from: 0xffff_ffff_8100_0000n, to: 0xffff_ffff_8100_0040n, kind: 'NEAR_REL_CALL' as const },
      { from: 0xffff_ffff_8100_0080n, to: 0xffff_ffff_8100_0100n, kind: 'NEAR_RET' as const },
    ],
  };
  const lbrs = (k: HostKernel): bigint[] =>
    Array.from({ length: SKYLAKE.spec.legacyLbr!.depth }, (_, i) => [
      rd(k.pcpu(0).hw, MSR_LBR_NHM_FROM + i),
      rd(k.pcpu(0).hw, MSR_LBR_NHM_TO + i),
    ]).flat();

  const cases: [string, Partial<PerfEventAttr>[], boolean][] = [
    ['the watchdog alone', [], false],
    ['an exclude_host counting event', [{ config: LLC_REFERENCES, exclude_host: true }], false],
    ['a disabled host event', [{ config: LLC_REFERENCES, disabled: true }], false],
    ['a host counting event', [{ config: LLC_REFERENCES }], true],
    [
      'an exclude_host branch-stack event: its LBRs record host branches',
      [{ config: CYCLES, exclude_host: true, branchSample: ANY_BRANCH }],
      true,
    ],
    [
      "KVM's guest LBR event, which keeps perf off the LBRs in host mode",
      [{ config: 0n, vlbr: true, exclude_host: true }],
      false,
    ],
    ['a guest LBR event that does not exclude the host', [{ config: 0n, vlbr: true }], true],
  ];
  for (const [name, events, observed] of cases)
    it(`${name}: ${observed ? 'seen' : 'unseen'}`, () => {
      const k = new HostKernel({ profile: SKYLAKE, cpus: 1, nmiWatchdog: true });
      const es = events.map((a) => ev(k.perf_event_create_kernel_counter(attr({ config: 0n, ...a }), { cpu: 0 })));
      expect(k.hostWorkObserved(0)).toBe(observed);
      // The answer is what host work then does to the host users' counts and the LBRs.
      const counts = es.map((e) => k.perf_event_read_value(e));
      const before = lbrs(k);
      k.runHost(0, units(2, branchy));
      const changed =
        es.some((e, i) => k.perf_event_read_value(e) !== counts[i]) || lbrs(k).some((v, i) => v !== before[i]);
      expect(changed).toBe(observed);
    });
});

describe('context_switch: perf_event_task_sched_out and perf_event_task_sched_in', () => {
  it('switching to the task already running changes nothing and touches no MSR', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { task: t }));
    k.context_switch(0, t);
    const { writes } = wrmsrs(() => k.context_switch(0, t));
    expect([writes, e.state, k.taskCpu(t)]).toEqual([[], 'ACTIVE', 0]);
    expect(() => {
      k.pcpu(0).hw.mode = 'guest';
      k.context_switch(0, null);
    }).toThrow(ModelError);
  });

  it("the old task's events leave the PMU and stop counting; the task runs nowhere", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const [a, b] = [k.createTask('a'), k.createTask('b')];
    const ea = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { task: a }));
    const eb = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { task: b }));
    k.context_switch(0, a);
    k.runHost(0, [work(0, 1, 1, 2)]);
    k.context_switch(0, b);
    expect([ea.state, eb.state, k.taskCpu(a), k.taskCpu(b), k.pcpu(0).currentTask]).toEqual([
      'INACTIVE',
      'ACTIVE',
      null,
      0,
      b,
    ]);
    k.runHost(0, [work(0, 1, 1, 5)]);
    k.context_switch(0, null);
    expect([k.perf_event_read_value(ea), k.perf_event_read_value(eb), eb.state, k.taskCpu(b)]).toEqual([
      2n,
      5n,
      'INACTIVE',
      null,
    ]);
  });

  it("a task's pinned event goes before the CPU's flexible ones, which give up a counter to it", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const flex = [0, 1, 2, 3].map(() => ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 })));
    const t = k.createTask('t');
    const pinned = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, pinned: true }), { task: t }));
    const taskFlex = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { task: t }));
    k.context_switch(0, t);
    expect([pinned.state, taskFlex.state]).toEqual(['ACTIVE', 'INACTIVE']);
    expect(flex.filter((e) => e.state === 'ACTIVE')).toHaveLength(3);
    // Off the CPU, its counter goes back to the CPU's flexible events at the next rotation tick.
    k.context_switch(0, null);
    expect(flex.filter((e) => e.state === 'ACTIVE')).toHaveLength(3);
    k.perf_rotate_context(0);
    expect(flex.map((e) => e.state)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
  });
});

describe('perf_event_read_value', () => {
  it('the guest LBR event takes no counter: its count stays 0 and reading it reads no counter', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const vlbr = ev(
      k.perf_event_create_kernel_counter(attr({ config: 0n, vlbr: true, exclude_host: true }), { cpu: 0 }),
    );
    expect(vlbr.state).toBe('ACTIVE');
    k.runHost(0, units(3, work(0, 1, 1, 1)));
    expect(k.perf_event_read_value(vlbr)).toBe(0n);
  });
});
