/**
 * What a context switch does to the LBRs (arch/x86/events/intel/lbr.c intel_pmu_lbr_sched_task,
 * __intel_pmu_lbr_save, __intel_pmu_lbr_restore): nothing without an LBR user on the CPU; a
 * wipe at every switch-in otherwise, idle included, and none at switch-out; a task's call stack
 * saved only while one of its own call-stack events is on the PMU (lbr_callstack_users), and
 * restored only from a save made that way (lbr_stack_state LBR_VALID, back to LBR_NONE once used);
 * and at intel_pmu_lbr_add, a wipe only for a first user that never ran.
 *
 * No generated host user records a call stack in task context, so the property tests never reach
 * these branches; the values here are the kernel's.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import type { Branch, WorkUnit } from '../../../model/hw/work.js';
import { DecisionLog, recording } from '../../../model/hw/relied.js';
import { attr, type BranchSampleType, type PerfEvent } from '../../../model/host/types.js';
import { HostKernel } from '../../../model/host/perf.js';
import { intel_pmu_lbr_read } from '../../../model/host/lbr.js';
import { MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR } from '../../../model/hw/msr/debugctl.js';
import { MSR_LBR_SELECT } from '../../../model/hw/msr/lbr_legacy.js';
import { CYCLES, ev, rd } from './util.js';

const ALL: BranchSampleType = { user: true, kernel: true, callStack: false };
const USER_CALLSTACK: BranchSampleType = { user: true, kernel: false, callStack: true };

function call(i: number): Branch {
  return { from: 0x50_1000n + BigInt(i), to: 0x50_2000n + BigInt(i), kind: 'NEAR_REL_CALL', cpl: 3 };
}

/** User-mode work taking these calls (one cycle: no sampling period below is reached). */
function calls(...ids: number[]): WorkUnit {
  return { cpl: 3, instructions: ids.length, cycles: 1, branches: ids.map(call) };
}

/** The records the LBRs hold, newest first, as perf would read them. */
function stack(k: HostKernel): bigint[] {
  return intel_pmu_lbr_read(k.pcpu(0).hw).map((b) => b.from);
}

const froms = (...ids: number[]) => ids.map((i) => call(i).from);

/** A branch-stack event with a period no test reaches. */
function lbrEvent(k: HostKernel, b: BranchSampleType, target: { cpu: number } | { task: number }, disabled = false) {
  return ev(k.perf_event_open(attr({ config: CYCLES, sample_period: 1_000_000n, branchSample: b, disabled }), target));
}

describe('intel_pmu_lbr_sched_task without call-stack data', () => {
  it('with no LBR user on the CPU a switch leaves the LBRs as they were (cpuc->lbr_users == 0)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    // A task with call-stack data whose event is off: still no LBR user on the CPU.
    lbrEvent(k, USER_CALLSTACK, { task: t }, true);
    const cpuWide = lbrEvent(k, ALL, { cpu: 0 });
    k.runHost(0, [calls(1, 2)]);
    k.perf_event_release_kernel(cpuWide); // intel_pmu_lbr_del wipes nothing
    expect(stack(k)).toEqual(froms(2, 1));
    k.context_switch(0, t);
    expect(stack(k)).toEqual(froms(2, 1));
    k.context_switch(0, null);
    expect(stack(k)).toEqual(froms(2, 1));
  });

  it("a CPU's LBR user: every switch-in wipes the stack, to a task or to idle", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    lbrEvent(k, ALL, { cpu: 0 });
    k.runHost(0, [calls(1, 2)]);
    expect(stack(k)).toEqual(froms(2, 1));
    k.context_switch(0, t);
    expect(stack(k)).toEqual([]);
    k.runHost(0, [calls(3)]);
    expect(stack(k)).toEqual(froms(3));
    k.context_switch(0, null);
    expect(stack(k)).toEqual([]);
  });

  it("a task's own LBR user is wiped at its switch-in, not at its switch-out", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const [t, u] = [k.createTask('t'), k.createTask('u')];
    lbrEvent(k, ALL, { task: t });
    k.context_switch(0, t);
    k.runHost(0, [calls(1, 2)]);
    // Switching out keeps the records; u has no LBR user, so its switch-in finds none on the CPU and wipes nothing.
    k.context_switch(0, u);
    expect(stack(k)).toEqual(froms(2, 1));
    k.context_switch(0, t);
    expect(stack(k)).toEqual([]);
  });
});

describe("a task's call stack (task_ctx_data)", () => {
  /** A CPU-wide call-stack user (no task_ctx_data of its own) and a task whose call-stack event starts off. */
  function setup(): { k: HostKernel; t: number; u: number; mine: PerfEvent } {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const [t, u] = [k.createTask('t'), k.createTask('u')];
    lbrEvent(k, USER_CALLSTACK, { cpu: 0 });
    const mine = lbrEvent(k, USER_CALLSTACK, { task: t }, true);
    return { k, t, u, mine };
  }

  it("is not saved for a CPU's call-stack event: lbr_callstack_users counts the task's own events only", () => {
    const { k, t, u } = setup();
    k.context_switch(0, t);
    k.runHost(0, [calls(1, 2)]);
    k.context_switch(0, u);
    expect(stack(k)).toEqual([]);
    k.runHost(0, [calls(7)]);
    // __intel_pmu_lbr_save found no call-stack user of t: LBR_NONE, so t comes back to a wiped stack.
    k.context_switch(0, t);
    expect(stack(k)).toEqual([]);
  });

  it('enabling its event while the task is off finds nothing saved: the switch-in wipes', () => {
    const { k, t, u, mine } = setup();
    k.context_switch(0, t);
    k.runHost(0, [calls(1, 2)]);
    k.context_switch(0, u);
    k.perf_event_enable(mine);
    expect(mine.state).toBe('INACTIVE');
    k.runHost(0, [calls(7)]);
    const l = new DecisionLog();
    recording(l, () => k.context_switch(0, t));
    expect(mine.state).toBe('ACTIVE');
    expect(stack(k)).toEqual([]);
    expect(l.has('H6')).toBe(false);
  });

  it('a restored stack is used once: after a switch-out without its event the task comes back wiped', () => {
    const { k, t, u, mine } = setup();
    k.perf_event_enable(mine);
    k.context_switch(0, t);
    k.runHost(0, [calls(1, 2)]);
    k.context_switch(0, u);
    k.runHost(0, [calls(7)]);
    const l = new DecisionLog();
    recording(l, () => k.context_switch(0, t));
    expect(stack(k)).toEqual(froms(2, 1));
    expect(l.has('H6')).toBe(true); // restored without asking whether anyone touched the LBRs since
    k.perf_event_disable(mine);
    k.runHost(0, [calls(3)]);
    k.context_switch(0, u);
    k.runHost(0, [calls(8)]);
    k.perf_event_enable(mine);
    k.context_switch(0, t);
    expect(stack(k)).toEqual([]);
  });
  it("a saved stack is not restored once the task's call-stack event is off", () => {
    const { k, t, u, mine } = setup();
    k.perf_event_enable(mine);
    k.context_switch(0, t);
    k.runHost(0, [calls(1, 2)]);
    k.context_switch(0, u);
    k.perf_event_disable(mine);
    k.runHost(0, [calls(7)]);
    // __intel_pmu_lbr_restore: lbr_callstack_users is 0 at the switch-in, so it wipes whatever was saved.
    k.context_switch(0, t);
    expect(stack(k)).toEqual([]);
  });

  it("is not saved for the task's own LBR event without call-stack mode", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const [t, u] = [k.createTask('t'), k.createTask('u')];
    lbrEvent(k, USER_CALLSTACK, { task: t }, true); // gives t its task_ctx_data; the event stays off
    lbrEvent(k, ALL, { task: t });
    k.context_switch(0, t);
    k.runHost(0, [calls(1, 2)]);
    k.context_switch(0, u);
    expect(stack(k)).toEqual(froms(2, 1)); // no LBR user left on the CPU: nothing wiped
    k.context_switch(0, t);
    expect(stack(k)).toEqual([]);
  });
});

describe('intel_pmu_lbr_add and __intel_pmu_enable_all', () => {
  it('the first LBR user wipes the records only if it never ran (total_time_running)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = lbrEvent(k, ALL, { cpu: 0 });
    k.runHost(0, [calls(1, 2)]);
    k.perf_event_disable(e);
    k.perf_event_enable(e);
    expect(stack(k)).toEqual(froms(2, 1));
    k.perf_event_release_kernel(e);
    lbrEvent(k, ALL, { cpu: 0 });
    expect(stack(k)).toEqual([]);
  });

  it("the LBR filter is the LBR user's, whatever counter was added before it", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    ev(k.perf_event_open(attr({ config: CYCLES }), { cpu: 0 }));
    lbrEvent(k, { user: true, kernel: false, callStack: false }, { cpu: 0 });
    expect(rd(k.pcpu(0).hw, MSR_LBR_SELECT)).toBe(1n); // suppress CPL 0
    expect(rd(k.pcpu(0).hw, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_LBR).toBe(DEBUGCTLMSR_LBR);
  });
});
