/**
 * Host perf's scheduling held to kernel/events/core.c event by event: which classes ctx_resched takes off and puts
 * back for each kind of event installed (and nothing else), groups going on all or none with their enabled siblings
 * (group_sched_in) and off with their leader (group_sched_out), what perf_event_release_kernel leaves of a group
 * (perf_group_detach: the siblings become singletons where they are, at the end of the group tree), the multiplexing
 * tick (perf_rotate_context, ctx_event_to_rotate, rotate_ctx), which event owns the LBRs, the mediated guest
 * context switch's scheduling, and the PMU disable nesting around all of it (perf_pmu_disable/perf_pmu_enable).
 *
 * A generated host user opens no group and never more flexible events than counters, so these state the kernel's
 * values directly. Events that start or stop are seen where perf programs them: the event select it writes.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Cpu } from '../../../model/hw/cpu.js';
import { ModelError } from '../../../model/hw/errors.js';
import { defineProfile, leaf0aEax, leaf0aEdx } from '../../../model/hw/profile.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { DecisionLog, recording } from '../../../model/hw/relied.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import { MSR_LBR_NHM_FROM } from '../../../model/hw/msr/lbr_legacy.js';
import { HOST_PERF_OPS, HostKernel, type HostPerfOps } from '../../../model/host/perf.js';
import { attr, type PerfEvent, type PerfEventAttr, type PerfTarget } from '../../../model/host/types.js';
import { CYCLES, errorOf, ev, guestLbrEvent, INSTRUCTIONS, LLC_REFERENCES, rd, units, work } from './util.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** Skylake with eight GP counters: room for every class at once. */
const WIDE = defineProfile({
  ...SKYLAKE.spec,
  name: 'skl-8gp',
  leaf0a: { eax: leaf0aEax(4, 8, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
});

/** A kernel whose event-select and FIXED_CTR_CTRL field writes are logged as [event id, 'start' | 'stop'] (x86_pmu_start/x86_pmu_stop). */
function traced(profile = SKYLAKE, cpus = 1): { k: HostKernel; log: [number, 'start' | 'stop'][] } {
  const log: [number, 'start' | 'stop'][] = [];
  const ops: HostPerfOps = {
    ...HOST_PERF_OPS,
    x86_perf_event_set_config_base(hw, e, msr, val) {
      if (msr >= MSR_P6_EVNTSEL0 && msr < MSR_P6_EVNTSEL0 + 8)
        log.push([e.id, (val & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n ? 'start' : 'stop']);
      if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL)
        log.push([e.id, ((val >> BigInt(4 * (e.hw_idx - 32))) & 0xfn) !== 0n ? 'start' : 'stop']);
      HOST_PERF_OPS.x86_perf_event_set_config_base(hw, e, msr, val);
    },
  };
  return { k: new HostKernel({ profile, cpus, ops }), log };
}

function ids(log: [number, 'start' | 'stop'][], what: 'start' | 'stop'): number[] {
  return log
    .filter(([, w]) => w === what)
    .map(([id]) => id)
    .sort((a, b) => a - b);
}

function open(k: HostKernel, target: PerfTarget, a: Partial<PerfEventAttr> = {}, config = LLC_REFERENCES): PerfEvent {
  return ev(k.perf_event_open(attr({ config, ...a }), target));
}

function member(k: HostKernel, leader: PerfEvent, a: Partial<PerfEventAttr> = {}, config = LLC_REFERENCES) {
  return ev(k.perf_event_create_kernel_counter(attr({ config, ...a }), leader.target, undefined, leader));
}

function decisions(f: () => unknown): DecisionLog {
  const l = new DecisionLog();
  recording(l, f);
  return l;
}

describe('ctx_resched: the classes an installed event takes off and puts back', () => {
  /** One running event of each class on CPU 0, the task running there. */
  function fourClasses() {
    const { k, log } = traced(WIDE);
    const t = k.createTask('t');
    k.context_switch(0, t);
    const cp = open(k, { cpu: 0 }, { pinned: true });
    const cf = open(k, { cpu: 0 });
    const tp = open(k, { task: t }, { pinned: true });
    const tf = open(k, { task: t });
    expect([cp, cf, tp, tf].map((e) => e.state)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    log.length = 0;
    return { k, log, t, cp, cf, tp, tf };
  }

  it('a cpu flexible event: task flexible and cpu flexible groups', () => {
    const { k, log, cf, tf } = fourClasses();
    const n = open(k, { cpu: 0 });
    expect(ids(log, 'stop')).toEqual([cf.id, tf.id]);
    expect(ids(log, 'start')).toEqual([cf.id, tf.id, n.id]);
  });

  it('a cpu pinned event: everything, pinned and flexible of both contexts', () => {
    const { k, log, cp, cf, tp, tf } = fourClasses();
    const n = open(k, { cpu: 0 }, { pinned: true });
    expect(ids(log, 'stop')).toEqual([cp.id, cf.id, tp.id, tf.id]);
    expect(ids(log, 'start')).toEqual([cp.id, cf.id, tp.id, tf.id, n.id]);
  });

  it('a task flexible event: the task flexible groups alone', () => {
    const { k, log, t, tf } = fourClasses();
    const n = open(k, { task: t });
    expect(ids(log, 'stop')).toEqual([tf.id]);
    expect(ids(log, 'start')).toEqual([tf.id, n.id]);
  });

  it('a task pinned event: the task pinned and flexible groups, and the cpu flexible ones', () => {
    const { k, log, t, cf, tp, tf } = fourClasses();
    const n = open(k, { task: t }, { pinned: true });
    expect(ids(log, 'stop')).toEqual([cf.id, tp.id, tf.id]);
    expect(ids(log, 'start')).toEqual([cf.id, tp.id, tf.id, n.id]);
  });

  it('without a current task, a cpu flexible event takes off only the cpu flexible groups', () => {
    const { k, log } = traced(WIDE);
    const cp = open(k, { cpu: 0 }, { pinned: true });
    const cf = open(k, { cpu: 0 });
    log.length = 0;
    const n = open(k, { cpu: 0 });
    expect(ids(log, 'stop')).toEqual([cf.id]);
    expect(ids(log, 'start')).toEqual([cf.id, n.id]);
    expect(cp.state).toBe('ACTIVE');
  });

  it('a task pinned event ahead of cpu flexible ones takes their counter; they wait, rotating (ctx_flexible_sched_in)', () => {
    const { k } = traced(SKYLAKE);
    const t = k.createTask('t');
    k.context_switch(0, t);
    const cf = [0, 1, 2, 3].map(() => open(k, { cpu: 0 }));
    const tp = open(k, { task: t }, { pinned: true });
    expect(tp.state).toBe('ACTIVE');
    expect(cf.map((e) => e.state)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE', 'INACTIVE']);
    expect(k.perf_rotate_context(0)).toBe(true); // the cpu context's rotate_necessary
    expect(cf.map((e) => e.state)).toEqual(['INACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
  });

  it('a task flexible event leaves the cpu context alone, even a cpu flexible event waiting for a counter', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    k.context_switch(0, t);
    const cf = [0, 1, 2, 3, 4].map(() => open(k, { cpu: 0 }));
    k.perf_event_release_kernel(cf[0]!); // a GP counter is free; nothing is rescheduled yet
    open(k, { task: t }, {}, INSTRUCTIONS);
    expect(cf[4]!.state).toBe('INACTIVE');
    open(k, { cpu: 0 }, {}, CYCLES); // a cpu flexible event reschedules the cpu flexible groups: now it goes on
    expect(cf[4]!.state).toBe('ACTIVE');
  });

  it('a pinned leader takes its unpinned sibling with it: the sibling is no flexible group of its own', () => {
    const { k, log } = traced(SKYLAKE);
    const l = open(k, { cpu: 0 }, { pinned: true, disabled: true });
    const s = member(k, l);
    k.perf_event_enable(l);
    expect([l.state, s.state]).toEqual(['ACTIVE', 'ACTIVE']);
    log.length = 0;
    open(k, { cpu: 0 }); // a cpu flexible event: the cpu flexible groups go off and on, the pinned group stays
    expect(log.filter(([id]) => id === l.id || id === s.id)).toEqual([]);
    expect([l.state, s.state, s.hw_idx]).toEqual(['ACTIVE', 'ACTIVE', 1]);
  });

  it('an OFF event and one in ERROR stay out across a reschedule; enabling the ERROR one retries it', () => {
    const { k } = traced(SKYLAKE);
    const pinned = [0, 1, 2, 3].map(() => open(k, { cpu: 0 }, { pinned: true }));
    const err = open(k, { cpu: 0 }, { pinned: true });
    const off = open(k, { cpu: 0 }, { disabled: true });
    expect([err.state, off.state]).toEqual(['ERROR', 'OFF']);
    k.perf_event_release_kernel(pinned[0]!);
    open(k, { cpu: 0 }, { pinned: true }, INSTRUCTIONS); // a reschedule of every class; a counter is free
    expect([err.state, off.state]).toEqual(['ERROR', 'OFF']);
    k.perf_event_enable(err); // ERROR → OFF → INACTIVE, and a reschedule
    expect(err.state).toBe('ACTIVE');
  });
});

describe('groups: group_sched_in, group_sched_out, perf_group_detach', () => {
  it('a leader goes on with its enabled siblings; a disabled sibling stays OFF and takes no counter', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const l = open(k, { cpu: 0 }, { disabled: true });
    const s1 = member(k, l);
    const off = member(k, l, { disabled: true });
    const s2 = member(k, l);
    k.perf_event_enable(l);
    expect([l, s1, off, s2].map((e) => [e.state, e.hw_idx])).toEqual([
      ['ACTIVE', 0],
      ['ACTIVE', 1],
      ['OFF', -1],
      ['ACTIVE', 2],
    ]);
    expect(rd(k.pcpu(0).hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(0b111n);
    // A sibling enabled while its group runs joins it at a reschedule: the group is collected in sibling order and,
    // with a new event in it, assigned afresh (perf_assign_events): the late sibling takes counter 2, s2 moves.
    k.perf_event_enable(off);
    expect([l, s1, off, s2].map((e) => [e.state, e.hw_idx])).toEqual([
      ['ACTIVE', 0],
      ['ACTIVE', 1],
      ['ACTIVE', 2],
      ['ACTIVE', 3],
    ]);
  });

  it('a group goes on whole or not at all, and the flexible pass stops there', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    [0, 1].map(() => open(k, { cpu: 0 }, { pinned: true }));
    const l = open(k, { cpu: 0 }, { disabled: true });
    const sibs = [0, 1].map(() => member(k, l));
    const later = open(k, { cpu: 0 }, { disabled: true });
    k.perf_event_enable(later);
    expect(later.state).toBe('ACTIVE');
    // Three counters for the group, two free: it stays out, and `later`, behind it in the tree, is not tried.
    k.perf_event_enable(l);
    expect([l, ...sibs, later].map((e) => e.state)).toEqual(['INACTIVE', 'INACTIVE', 'INACTIVE', 'INACTIVE']);
    expect(sibs.map((e) => e.hw_idx)).toEqual([-1, -1]);
    // The tick rotates no active event, so the first group, l's, goes to the end: `later` goes on, l's still not.
    expect(k.perf_rotate_context(0)).toBe(true);
    expect([l, ...sibs, later].map((e) => e.state)).toEqual(['INACTIVE', 'INACTIVE', 'INACTIVE', 'ACTIVE']);
  });

  it('disabling the leader takes its siblings off with it (INACTIVE, not OFF); enabling it puts them back', () => {
    const { k, log } = traced(SKYLAKE);
    const l = open(k, { cpu: 0 }, { disabled: true });
    const s = member(k, l);
    k.perf_event_enable(l);
    log.length = 0;
    k.perf_event_disable(l);
    expect([l.state, s.state, s.hw_idx, s.oncpu, l.oncpu]).toEqual(['OFF', 'INACTIVE', -1, -1, -1]);
    expect(ids(log, 'stop')).toEqual([l.id, s.id]);
    k.perf_event_enable(l);
    expect([l.state, s.state]).toEqual(['ACTIVE', 'ACTIVE']);
  });

  it("disabling a sibling takes it alone off; a reschedule of the context leaves it out with its group's others on", () => {
    const { k, log } = traced(SKYLAKE);
    const l = open(k, { cpu: 0 }, { disabled: true });
    const s = member(k, l);
    const s2 = member(k, l);
    k.perf_event_enable(l);
    log.length = 0;
    k.perf_event_disable(s);
    expect(log).toEqual([[s.id, 'stop']]);
    expect([l.state, s.state, s2.state]).toEqual(['ACTIVE', 'OFF', 'ACTIVE']);
    open(k, { cpu: 0 });
    expect([l.state, s.state, s2.state]).toEqual(['ACTIVE', 'OFF', 'ACTIVE']);
  });

  it('releasing an active leader stops its counter only: the siblings keep theirs and go on counting', () => {
    const { k, log } = traced(SKYLAKE);
    const l = open(k, { cpu: 0 }, { disabled: true });
    const s = member(k, l);
    k.perf_event_enable(l);
    log.length = 0;
    k.perf_event_release_kernel(l);
    expect(log).toEqual([[l.id, 'stop']]);
    expect([s.state, s.hw_idx]).toEqual(['ACTIVE', 1]);
    k.runHost(0, [work(0, 1, 1, 7)]);
    expect(k.perf_event_read_value(s)).toBe(7n);
    expect(rd(k.pcpu(0).hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(0b10n);
    // A released event is dead: state OFF, and its handle is refused.
    expect(l.state).toBe('OFF');
    expect(() => k.perf_event_read_value(l)).toThrow(ModelError);
    expect(() => k.perf_event_release_kernel(l)).toThrow(ModelError);
  });

  it('a detached sibling is a singleton at the end of the group tree: the next reschedule ranks it last', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const l = open(k, { cpu: 0 }, { disabled: true });
    const s = member(k, l);
    k.perf_event_enable(l);
    const a = open(k, { cpu: 0 });
    const b = open(k, { cpu: 0 });
    const c = open(k, { cpu: 0 });
    const e = open(k, { cpu: 0 });
    expect([l, s, a, b, c, e].map((x) => x.state)).toEqual([
      'ACTIVE',
      'ACTIVE',
      'ACTIVE',
      'ACTIVE',
      'INACTIVE',
      'INACTIVE',
    ]);
    k.perf_event_release_kernel(l);
    expect(s.state).toBe('ACTIVE'); // perf_group_detach keeps an active sibling on its counter
    const x = open(k, { cpu: 0 }, { disabled: true });
    const d = open(k, { cpu: 0 });
    // ctx_resched: a, b, c, e, then s (added to the groups at the detach), then d.
    expect([a, b, c, e, s, d].map((x) => x.state)).toEqual([
      'ACTIVE',
      'ACTIVE',
      'ACTIVE',
      'ACTIVE',
      'INACTIVE',
      'INACTIVE',
    ]);
    // A counter frees up; enabling x (created after the detach) reschedules: s, added to the groups before x, wins.
    k.perf_event_release_kernel(a);
    k.perf_event_enable(x);
    expect([s.state, x.state, d.state]).toEqual(['ACTIVE', 'INACTIVE', 'INACTIVE']);
    // As a singleton it is disabled alone, and enabled alone.
    k.perf_event_disable(s);
    expect([s.state, b.state]).toEqual(['OFF', 'ACTIVE']);
    k.perf_event_enable(s);
    expect(s.state).toBe('ACTIVE');
  });

  it('releasing a sibling leaves the group without it; releasing an inactive or a task event touches no counter', () => {
    const { k, log } = traced(SKYLAKE);
    const t = k.createTask('t');
    const l = open(k, { cpu: 0 }, { disabled: true });
    const s = member(k, l);
    const s2 = member(k, l);
    k.perf_event_enable(l);
    log.length = 0;
    k.perf_event_release_kernel(s);
    expect(log).toEqual([[s.id, 'stop']]);
    k.perf_event_disable(l);
    log.length = 0;
    k.perf_event_enable(l);
    expect(ids(log, 'start')).toEqual([l.id, s2.id]);
    const te = open(k, { task: t });
    const idle = open(k, { cpu: 0 }, { disabled: true });
    log.length = 0;
    k.perf_event_release_kernel(te);
    k.perf_event_release_kernel(idle);
    expect(log).toEqual([]);
    // The task's context no longer holds it: switching the task in schedules nothing.
    k.context_switch(0, t);
    expect(log).toEqual([]);
  });

  it("releasing a CPU's watchdog leaves that CPU without one, and the other CPU's alone", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2, nmiWatchdog: true });
    k.perf_event_release_kernel(k.watchdog(0)!);
    expect(k.watchdog(0)).toBeNull();
    expect(k.watchdog(1)!.state).toBe('ACTIVE');
    // A cpu event of CPU 1 that is not its watchdog leaves the watchdog in place.
    k.perf_event_release_kernel(open(k, { cpu: 1 }));
    expect(k.watchdog(1)).not.toBeNull();
  });
});

describe('perf_rotate_context', () => {
  it('a cpu rotation also takes the task flexible groups off and puts them back after the cpu ones', () => {
    const { k, log } = traced(SKYLAKE);
    const t = k.createTask('t');
    const tf = open(k, { task: t });
    const cf = [0, 1, 2, 3].map(() => open(k, { cpu: 0 }));
    k.context_switch(0, t);
    expect([tf.state, ...cf.map((e) => e.state)]).toEqual(['INACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    // The task's event did not fit: only the task context needs rotating; the cpu context's flag is clear.
    log.length = 0;
    expect(k.perf_rotate_context(0)).toBe(true);
    // task_rotate only: the cpu flexible groups stay where they are, the task's are rotated and still do not fit.
    expect(log).toEqual([]);
    expect(tf.state).toBe('INACTIVE');
  });

  it('with both contexts over-committed: task flexible off, cpu flexible off, cpu rotated and on, task on', () => {
    const { k, log } = traced(SKYLAKE);
    const t = k.createTask('t');
    const tf = [0, 1].map(() => open(k, { task: t }));
    const cf = [0, 1, 2, 3, 4].map(() => open(k, { cpu: 0 }));
    k.context_switch(0, t);
    expect(cf.map((e) => e.state)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'INACTIVE']);
    expect(tf.map((e) => e.state)).toEqual(['INACTIVE', 'INACTIVE']);
    log.length = 0;
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(cf.map((e) => e.state)).toEqual(['INACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    expect(ids(log, 'stop')).toEqual(cf.slice(0, 4).map((e) => e.id));
    expect(ids(log, 'start')).toEqual(cf.slice(1).map((e) => e.id));
  });

  it('a cpu rotation with a task context that fits: its flexible events go off first and back on last', () => {
    const { k, log } = traced(SKYLAKE);
    const t = k.createTask('t');
    const tf = open(k, { task: t }, {}, INSTRUCTIONS); // fixed counter 0
    const cf = [0, 1, 2, 3, 4].map(() => open(k, { cpu: 0 }));
    k.context_switch(0, t);
    expect([tf.state, ...cf.map((e) => e.state)]).toEqual([
      'ACTIVE',
      'ACTIVE',
      'ACTIVE',
      'ACTIVE',
      'ACTIVE',
      'INACTIVE',
    ]);
    log.length = 0;
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(cf.map((e) => e.state)).toEqual(['INACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    expect(log.filter(([, w]) => w === 'stop').map(([id]) => id)).toEqual([tf.id, ...cf.slice(0, 4).map((e) => e.id)]);
    expect(log.filter(([, w]) => w === 'start').map(([id]) => id)).toEqual([...cf.slice(1).map((e) => e.id), tf.id]);
    expect(tf.state).toBe('ACTIVE');
  });

  it('each task rotation moves the first active event to the end of the task tree (rotate_ctx)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    const tf = [0, 1, 2, 3, 4].map(() => open(k, { task: t }));
    k.context_switch(0, t);
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(tf.map((e) => e.state)).toEqual(['INACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    expect(k.perf_rotate_context(0)).toBe(true); // tf1 goes behind tf0
    expect(tf.map((e) => e.state)).toEqual(['ACTIVE', 'INACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(tf.map((e) => e.state)).toEqual(['ACTIVE', 'ACTIVE', 'INACTIVE', 'ACTIVE', 'ACTIVE']);
  });

  it('a cpu flag left after its flexible events are gone rotates nothing, not even the task context', () => {
    const { k, log } = traced(SKYLAKE);
    const t = k.createTask('t');
    const tf = open(k, { task: t }, {}, INSTRUCTIONS);
    const cf = [0, 1, 2, 3, 4].map(() => open(k, { cpu: 0 }));
    k.context_switch(0, t);
    for (const e of cf) k.perf_event_release_kernel(e);
    log.length = 0;
    // ctx_event_to_rotate finds no cpu event: cpu_event is NULL, so the task context is not touched either.
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(log).toEqual([]);
    expect(tf.state).toBe('ACTIVE');
    expect(k.perf_rotate_context(0)).toBe(false);
  });

  it('the event rotated is the first active one, not a disabled one ahead of it in the tree', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const off = open(k, { cpu: 0 }, { disabled: true });
    const cf = [0, 1, 2, 3, 4].map(() => open(k, { cpu: 0 }));
    expect(cf.map((e) => e.state)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'INACTIVE']);
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(cf.map((e) => e.state)).toEqual(['INACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    expect(off.state).toBe('OFF');
  });

  it('each rotation clears the flags it acted on: once everything fits the tick does nothing', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    const tf = [0, 1, 2, 3, 4].map(() => open(k, { task: t }));
    k.context_switch(0, t);
    expect(tf[4]!.state).toBe('INACTIVE');
    k.perf_event_release_kernel(tf[0]!);
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(tf.slice(1).map((e) => e.state)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    expect(k.perf_rotate_context(0)).toBe(false);
  });

  it('the cpu context alone: its flag cleared by the tick that rotates, none left when all fit', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const cf = [0, 1, 2, 3, 4].map(() => open(k, { cpu: 0 }));
    k.perf_event_release_kernel(cf[1]!);
    expect(k.perf_rotate_context(0)).toBe(true);
    expect([0, 2, 3, 4].map((i) => cf[i]!.state)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    expect(k.perf_rotate_context(0)).toBe(false);
  });

  it('with no flexible event active, the first one in the tree is rotated to the end (ctx_event_to_rotate)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const pinned = [0, 1, 2, 3].map(() => open(k, { cpu: 0 }, { pinned: true }));
    const a = open(k, { cpu: 0 });
    const b = open(k, { cpu: 0 });
    expect([a.state, b.state]).toEqual(['INACTIVE', 'INACTIVE']);
    k.perf_event_release_kernel(pinned[0]!); // a counter is free; nothing is rescheduled yet
    expect(k.perf_rotate_context(0)).toBe(true);
    expect([a.state, b.state]).toEqual(['INACTIVE', 'ACTIVE']);
  });

  it('a task without events has no task context to rotate; the tick needs host mode only when it rotates', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    k.context_switch(0, t);
    const hw = k.pcpu(0).hw;
    hw.mode = 'guest';
    expect(k.perf_rotate_context(0)).toBe(false);
    hw.mode = 'host';
    [0, 1, 2, 3, 4].map(() => open(k, { cpu: 0 }));
    hw.mode = 'guest';
    expect(() => k.perf_rotate_context(0)).toThrow(/multiplexing tick on CPU 0/);
    hw.mode = 'host';
  });
});

describe('lbrOwner', () => {
  it('null without an LBR user, else the LBR user, past events that use no LBRs', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    open(k, { cpu: 0 });
    expect(k.lbrOwner(0)).toBeNull();
    const b = ev(
      k.perf_event_open(
        attr({ config: CYCLES, sample_period: 100n, branchSample: { user: true, kernel: true, callStack: false } }),
        { cpu: 0 },
      ),
    );
    expect(k.lbrOwner(0)).toBe(b);
  });

  it('the guest LBR event once it is on, past events that use no LBRs', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('vcpu');
    open(k, { cpu: 0 });
    const g = guestLbrEvent(k, t);
    expect(k.lbrOwner(0)).toBeNull();
    k.context_switch(0, t);
    expect(k.lbrOwner(0)).toBe(g);
  });
});

describe('the mediated guest context switch (perf_load_guest_context / perf_put_guest_context scheduling)', () => {
  it("'out' takes the active exclude_guest events off, nothing else; 'in' puts them back", () => {
    const { k, log } = traced(SKYLAKE);
    const t = k.createTask('vcpu');
    k.context_switch(0, t);
    const hostOnly = open(k, { cpu: 0 }, { exclude_guest: true });
    const both = open(k, { cpu: 0 });
    const taskHostOnly = open(k, { task: t }, { exclude_guest: true });
    const off = open(k, { cpu: 0 }, { exclude_guest: true, disabled: true });
    log.length = 0;
    k.schedGuestEvents(0, 'out');
    expect(ids(log, 'stop')).toEqual([hostOnly.id, taskHostOnly.id]);
    expect([hostOnly.state, both.state, taskHostOnly.state, off.state]).toEqual([
      'INACTIVE',
      'ACTIVE',
      'INACTIVE',
      'OFF',
    ]);
    expect(rd(k.pcpu(0).hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(1n << BigInt(both.hw_idx));
    log.length = 0;
    k.schedGuestEvents(0, 'in');
    expect(ids(log, 'start')).toEqual([hostOnly.id, taskHostOnly.id]);
    expect([hostOnly.state, both.state, taskHostOnly.state, off.state]).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE', 'OFF']);
    k.pcpu(0).hw.mode = 'guest';
    expect(() => k.schedGuestEvents(0, 'in')).toThrow(/mediated guest context switch on CPU 0/);
    k.pcpu(0).hw.mode = 'host';
  });
});

describe("the mediated switch's 'in' alone", () => {
  it('takes nothing off, and with no task running schedules the cpu context only', () => {
    const { k, log } = traced(SKYLAKE);
    const hostOnly = open(k, { cpu: 0 }, { exclude_guest: true });
    log.length = 0;
    k.schedGuestEvents(0, 'in');
    expect(log).toEqual([]);
    expect(hostOnly.state).toBe('ACTIVE');
  });
});

describe('perf_pmu_disable / perf_pmu_enable', () => {
  it('GLOBAL_CTRL is cleared while perf reprograms and written once at the end (x86_pmu_disable, x86_pmu_enable; H1)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const a = open(k, { cpu: 0 });
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    const b = open(k, { cpu: 0 });
    const ctrl = spy.mock.calls.filter(([msr]) => msr === MSR_CORE_PERF_GLOBAL_CTRL).map(([, v]) => v);
    expect(ctrl).toEqual([0n, (1n << BigInt(a.hw_idx)) | (1n << BigInt(b.hw_idx))]);
    // The first write comes before any event select is touched.
    const first = spy.mock.calls.findIndex(([msr]) => msr === MSR_CORE_PERF_GLOBAL_CTRL);
    expect(
      spy.mock.calls.slice(0, first).filter(([msr]) => msr >= MSR_P6_EVNTSEL0 && msr < MSR_P6_EVNTSEL0 + 8),
    ).toEqual([]);
  });

  it('a context switch disables once and enables once, however many classes it schedules', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    open(k, { task: t }, { pinned: true });
    open(k, { task: t });
    open(k, { cpu: 0 });
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    k.context_switch(0, t);
    k.context_switch(0, null);
    const ctrl = spy.mock.calls.filter(([msr]) => msr === MSR_CORE_PERF_GLOBAL_CTRL).map(([, v]) => v);
    expect(ctrl).toEqual([0n, 0b111n, 0n, 0b010n]); // the cpu flexible event was flipped behind the task pinned one
  });

  it('nests: a reschedule inside a reschedule neither disables nor enables the PMU again (pmu_disable_count)', () => {
    let inner: (() => void) | null = null;
    // A perf patch's hook that disables another event while perf stops one: perf_pmu_disable from inside.
    const ops: HostPerfOps = {
      ...HOST_PERF_OPS,
      x86_perf_event_set_config_base(hw, e, msr, val) {
        HOST_PERF_OPS.x86_perf_event_set_config_base(hw, e, msr, val);
        const f = inner;
        inner = null;
        f?.();
      },
    };
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1, ops });
    const a = open(k, { cpu: 0 });
    const b = open(k, { cpu: 0 });
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    inner = () => k.perf_event_disable(b);
    k.perf_event_disable(a);
    const ctrl = spy.mock.calls.filter(([msr]) => msr === MSR_CORE_PERF_GLOBAL_CTRL).map(([, v]) => v);
    expect(ctrl).toEqual([0n, 0n]);
    expect([a.state, b.state]).toEqual(['OFF', 'OFF']);
  });

  it('a refused open schedules nothing and writes nothing', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    errorOf(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 3 }));
    expect(spy).not.toHaveBeenCalled();
  });
});

describe('the LBRs around scheduling (intel_pmu_lbr_add, intel_pmu_lbr_disable_all)', () => {
  const ANY = { user: true, kernel: true, callStack: false } as const;
  const lbrWipes = (spy: { mock: { calls: unknown[][] } }) =>
    spy.mock.calls.filter(([msr]) => msr === MSR_LBR_NHM_FROM).length;

  it('the first LBR user that never ran wipes the stack (H13); a second one, or one that ran before, does not', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    let a: PerfEvent | null = null;
    const l1 = decisions(() => (a = open(k, { cpu: 0 }, { sample_period: 100n, branchSample: ANY }, CYCLES)));
    expect([lbrWipes(spy), l1.has('H13')]).toEqual([1, true]);
    spy.mockClear();
    let second: PerfEvent | null = null;
    const l2 = decisions(
      () => (second = open(k, { cpu: 0 }, { sample_period: 100n, branchSample: ANY }, INSTRUCTIONS)),
    );
    expect([lbrWipes(spy), l2.has('H13')]).toEqual([0, false]);
    // Both off, then the first back on: it is the first user again, but it has run (total_time_running).
    k.perf_event_disable(a!);
    k.perf_event_disable(second!);
    expect(k.lbrOwner(0)).toBeNull();
    spy.mockClear();
    const l3 = decisions(() => k.perf_event_enable(a!));
    expect([lbrWipes(spy), l3.has('H13')]).toEqual([0, false]);
    // A plain event opened next to an LBR user wipes nothing either.
    spy.mockClear();
    open(k, { cpu: 0 });
    expect(lbrWipes(spy)).toBe(0);
  });

  it('a reschedule stops LBR recording while perf reprograms and starts it again at the end', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    open(k, { cpu: 0 }, { sample_period: 100n, branchSample: ANY }, CYCLES);
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    open(k, { cpu: 0 });
    const debugctl = spy.mock.calls.filter(([msr]) => msr === MSR_IA32_DEBUGCTLMSR).map(([, v]) => v);
    expect(debugctl.map((v) => (v & DEBUGCTLMSR_LBR) !== 0n)).toEqual([false, true]);
    expect(rd(k.pcpu(0).hw, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_LBR).toBe(DEBUGCTLMSR_LBR);
  });

  it('without an LBR user a reschedule leaves DEBUGCTL alone (cpuc->lbr_users is 0)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    open(k, { cpu: 0 });
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    open(k, { cpu: 0 });
    expect(spy.mock.calls.filter(([msr]) => msr === MSR_IA32_DEBUGCTLMSR)).toEqual([]);
  });

  it('with the guest LBR event on the CPU a reschedule leaves DEBUGCTL alone (vlbr_exclude_host)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('vcpu');
    k.context_switch(0, t);
    guestLbrEvent(k, t);
    const spy = vi.spyOn(Cpu.prototype, 'wrmsr');
    open(k, { cpu: 0 });
    expect(spy.mock.calls.filter(([msr]) => msr === MSR_IA32_DEBUGCTLMSR)).toEqual([]);
  });
});

describe('H2: perf programs a pCPU only in host mode', () => {
  it('releasing an active event and installing one are refused on a pCPU running a guest, each by its name', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = open(k, { cpu: 0 });
    const idle = open(k, { cpu: 0 }, { disabled: true });
    k.pcpu(0).hw.mode = 'guest';
    expect(() => k.perf_event_release_kernel(e)).toThrow(/perf_event_release_kernel on CPU 0 while it runs a guest/);
    expect(() => open(k, { cpu: 0 })).toThrow(/scheduling an event on CPU 0 while it runs a guest/);
    expect(() => k.runHost(0, [work(0, 1)])).toThrow(/host work on CPU 0 while it runs a guest/);
    k.perf_event_release_kernel(idle); // an inactive event touches no pCPU
    k.pcpu(0).hw.mode = 'host';
    k.perf_event_release_kernel(e);
    expect(e.state).toBe('OFF');
  });
});

describe('decisions', () => {
  it('H3 is relied on only where an exclusive event is involved', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    expect(decisions(() => open(k, { cpu: 0 })).has('H3')).toBe(false);
    expect(decisions(() => open(k, { cpu: 0 }, { exclusive: true })).has('H3')).toBe(true);
    const k2 = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    open(k2, { cpu: 0 }, { exclusive: true });
    expect(decisions(() => open(k2, { cpu: 0 })).has('H3')).toBe(true);
    // A task event meets the exclusive cpu event already on the PMU without rescheduling it.
    const k3 = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k3.createTask('t');
    k3.context_switch(0, t);
    open(k3, { cpu: 0 }, { exclusive: true, pinned: true });
    let te: PerfEvent | null = null;
    expect(decisions(() => (te = open(k3, { task: t }))).has('H3')).toBe(true);
    expect(te!.state).toBe('INACTIVE');
  });

  it('H4 is relied on where an LBR user meets another filter, not where the filters match', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    open(k, { cpu: 0 }, { sample_period: 100n, branchSample: { user: true, kernel: true, callStack: false } }, CYCLES);
    const same = { sample_period: 100n, branchSample: { user: true, kernel: true, callStack: false } };
    expect(decisions(() => open(k, { cpu: 0 }, same, INSTRUCTIONS)).has('H4')).toBe(false);
    const other = { sample_period: 100n, branchSample: { user: true, kernel: false, callStack: false } };
    let e: PerfEvent | null = null;
    expect(decisions(() => (e = open(k, { cpu: 0 }, other))).has('H4')).toBe(true);
    expect(e!.state).toBe('INACTIVE');
  });

  it('an exclusive event alone on the PMU goes on; nothing joins it', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const x = open(k, { cpu: 0 }, { exclusive: true });
    const y = open(k, { cpu: 0 });
    expect([x.state, y.state]).toEqual(['ACTIVE', 'INACTIVE']);
    k.runHost(0, units(2, work(0, 1, 1, 1)));
    expect(k.perf_event_read_value(x)).toBe(2n);
  });
});
