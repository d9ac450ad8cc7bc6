/**
 * The host kernel's perf core on simulated physical CPUs, each a model/hw Cpu: cpu and task
 * events, pinned and flexible, counter scheduling and multiplexing (kernel/events/core.c), the
 * x86/Intel PMU driver that programs the counters, the PMI handler and the guest MSR switch list
 * (arch/x86/events/{core,intel/core}.c), the LBR facility (intel/lbr.c), threads on pCPUs, and the
 * NMI watchdog. It touches the hardware only through RDMSR, WRMSR, RDPMC, XSAVES and XRSTORS.
 * Where it departs from the kernel, decisions.ts says so (H1...).
 */

import { type Access } from '../hw/access.js';
import {
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_P6_EVNTSEL0,
  MSR_IA32_PERFCTR0,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_USR,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_ENABLE,
  INTEL_PMC_FIXED_RDPMC_BASE,
  INTEL_PMC_FIXED_RDPMC_METRICS,
} from '../hw/msr/counters.js';
import { bit, isSet } from '../hw/bits.js';
import { Cpu } from '../hw/cpu.js';
import {
  globalCtrlWritable,
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  STATUS,
} from '../hw/msr/global.js';
import { ModelError } from '../hw/errors.js';
import { MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0 } from '../hw/msr/lbr_arch.js';
import { relied } from '../hw/relied.js';
import { msrName } from '../hw/msr/map.js';
import { type Profile } from '../hw/profile.js';
import { type WorkUnit } from '../hw/work.js';
import { X2APIC_LVTPC, APIC_DM_NMI } from '../hw/msr/apic.js';
import {
  effectiveBranchType,
  type LbrSaved,
  intel_pmu_lbr_disable_all,
  intel_pmu_lbr_enable_all,
  intel_pmu_setup_hw_lbr_filter,
  lbrFormat,
  lbrNr,
  intel_pmu_lbr_read,
  intel_pmu_lbr_reset,
  intel_pmu_lbr_restore,
  intel_pmu_lbr_save,
} from './lbr.js';
import {
  type MediatedPmuState,
  mediated_pmu_account_event,
  mediated_pmu_unaccount_event,
  newMediatedPmuState,
} from './mediated.js';
import {
  type Constraint,
  intel_get_event_constraints,
  FIXED_BASE,
  fixedMapping,
  IDX_FIXED_SLOTS,
  IDX_METRIC_BASE,
  IDX_VLBR,
  INTEL_TD_SLOTS,
  is_topdown_idx,
  rawEventMask,
  x86_schedule_events,
} from './schedule.js';
import { MSR_PERF_METRICS } from '../hw/msr/topdown.js';
import {
  attr as makeAttr,
  type OverflowHandler,
  type PerfEvent,
  type PerfEventAttr,
  type PerfEventState,
  type PerfSample,
  type PerfTarget,
} from './types.js';

/** hw_nmi_get_sample_period(watchdog_thresh = 10): cpu_khz * 1000 * 10, for a 2 GHz part. */
export const WATCHDOG_DEFAULT_PERIOD = 20_000_000_000n;
/** PERF_COUNT_HW_CPU_CYCLES on Intel. */
export const WATCHDOG_CONFIG = 0x003cn;
const PMI_LOOP_LIMIT = 100;

/** A physical CPU as callers see it. */
export interface PhysCpu {
  readonly id: number;
  readonly hw: Cpu;
  /** The task running on it, or null for idle. */
  readonly currentTask: number | null;
}

export interface HostKernelOptions {
  readonly profile: Profile;
  readonly cpus: number;
  /** The hardlockup detector: a pinned cycles event per CPU, counting host and guest. */
  readonly nmiWatchdog?: boolean | { readonly period: bigint };
  /** perf's boot-time probe of the LBR MSRs faulted, so perf runs without LBRs (x86_pmu.lbr_nr = 0; decision H17). */
  readonly lbrProbeFaulted?: boolean;
  /** The perf functions this kernel runs (HOST_PERF_OPS: upstream's); a perf patch replaces some. */
  readonly ops?: HostPerfOps;
}

/**
 * The host side of the seam: the perf functions KVM's designs meet that a perf patch (a series, a
 * historical bug) may replace, by their kernel names. `new HostKernel({ ...o, ops: { ...HOST_PERF_OPS,
 * intel_guest_get_msrs: mine } })` runs a kernel with one of them replaced.
 */
export interface HostPerfOps {
  /** intel_guest_get_msrs: the GLOBAL_CTRL values VM-exit (host) and VM-entry (guest) load (H1). */
  intel_guest_get_msrs(host: HostKernel, cpu: number): GuestMsrs;
  /** perf presets an event's counter (x86_perf_event_set_period's wrmsrl of hwc->event_base). */
  x86_perf_event_set_event_base(hw: Cpu, event: PerfEvent, msr: number, val: bigint): void;
  /** perf writes an event's control (its event select, or its FIXED_CTR_CTRL field) at start and stop. */
  x86_perf_event_set_config_base(hw: Cpu, event: PerfEvent, msr: number, val: bigint): void;
  /** intel_get_event_constraints: the counters `config` (masked to the raw bits) may use; null: none. */
  intel_get_event_constraints(p: Profile, config: bigint, vlbr: boolean): Constraint | null;
  /** __icl_update_topdown_event: fold one topdown event's share of a FIXED_CTR3/PERF_METRICS reading into its count. */
  __icl_update_topdown_event(
    event: TopdownEvent,
    slots: bigint,
    metrics: bigint,
    lastSlots: bigint,
    lastMetric: bigint,
  ): void;
  /** icl_set_topdown_event_period: a topdown event starts; what FIXED_CTR3 and PERF_METRICS start from. */
  icl_set_topdown_event_period(hw: Cpu, event: TopdownEvent, maxPeriod: bigint): void;
  /**
   * handle_pmi_common's GLOBAL_STATUS bit 48 (PERF_METRICS overflow): `metricsEvent` is cpuc->events[48];
   * `update` is update_topdown_event(NULL).
   */
  handle_pmi_common_perf_metrics(metricsEvent: TopdownEvent | undefined, update: () => void, sample: PerfSample): void;
}

/** What the topdown functions see of an event (struct perf_event with its hw_perf_event). */
export interface TopdownEvent extends PerfEvent {
  /** event->count. */
  count: bigint;
  /** hwc->period_left. */
  period_left: bigint;
  /** hwc->saved_slots and hwc->saved_metric: FIXED_CTR3 and PERF_METRICS kept across a context switch. */
  saved_slots: bigint;
  saved_metric: bigint;
  /** hwc->idx: the counter it last had, kept after it leaves the PMU (hw_idx is then -1). */
  readonly lastIdx: number;
  readonly overflow: OverflowHandler | undefined;
}

/** struct x86_pmu_lbr: what perf tells KVM of the LBRs it manages (x86_perf_get_lbr). */
export interface X86PmuLbr {
  readonly nr: number;
  readonly from: number;
  readonly to: number;
  /** MSR_LBR_INFO_0 or IA32_LBR_0_INFO, or 0 where the format has none. */
  readonly info: number;
  readonly hasCallstack: boolean;
}

const NO_LBR: X86PmuLbr = Object.freeze({ nr: 0, from: 0, to: 0, info: 0, hasCallstack: false });

/** struct perf_guest_info_callbacks, as far as perf_guest_state() goes (decision H10). */
export interface GuestInfoCallbacks {
  readonly state: (cpu: number) => boolean;
}

export type PerfOpenResult = PerfEvent | { readonly error: string };

/** The two GLOBAL_CTRL values of the VM-entry/VM-exit MSR switch list. */
export interface GuestMsrs {
  readonly host: bigint;
  readonly guest: bigint;
}

/** The four scheduling classes, in ctx_sched_in order. */
type Pass = 'cpuPinned' | 'taskPinned' | 'cpuFlexible' | 'taskFlexible';
const PASS_ORDER: readonly Pass[] = ['cpuPinned', 'taskPinned', 'cpuFlexible', 'taskFlexible'];
/** A set of classes as bits, as the kernel's enum event_type_t is one (no Set made at every reschedule). */
type Passes = number;
const PASS: Readonly<Record<Pass, Passes>> = { cpuPinned: 1, taskPinned: 2, cpuFlexible: 4, taskFlexible: 8 };
const ALL_PASSES: Passes = PASS.cpuPinned | PASS.taskPinned | PASS.cpuFlexible | PASS.taskFlexible;

/** What an event needs of the LBR facility: users with different keys cannot share it (H4). */
interface LbrUse {
  readonly key: string;
  /** LBR_SELECT (legacy) or LBR_CTL filter (Arch LBR); null for the guest LBR event. */
  readonly config: bigint | null;
  readonly callStack: boolean;
  readonly vlbr: boolean;
}

/** struct perf_event with its struct hw_perf_event. */
class Event implements TopdownEvent {
  state: PerfEventState = 'INACTIVE';
  /** event->group_leader, null for a leader (itself in the kernel); a sibling is scheduled with its leader. */
  group_leader: Event | null = null;
  /** event->sibling_list. */
  siblings: Event[] = [];
  /** PERF_X86_EVENT_TOPDOWN: a slots leader with metric siblings, or one of those siblings. */
  topdown = false;
  saved_slots = 0n;
  saved_metric = 0n;
  hw_idx = -1;
  readonly samples: PerfSample[] = [];
  /** event->count. */
  count = 0n;
  /** hwc->prev_count: the raw counter value at the last update or preset. */
  prev_count = 0n;
  /** hwc->period_left (signed). */
  period_left: bigint;
  /** hwc->sample_period: the attr's period, or max_period for a counting event. */
  hwPeriod: bigint;
  /** hwc->idx after the event leaves the hardware: the fast path's hint. */
  lastIdx = -1;
  /** cpuc->assign: where x86_schedule_events put it, programmed at the next PMU enable. */
  assigned = -1;
  oncpu = -1;
  /** total_time_running != 0. */
  everRan = false;
  released = false;

  constructor(
    readonly id: number,
    public attr: PerfEventAttr,
    readonly target: PerfTarget,
    /** hwc->config: the EVTSEL image without EN. */
    readonly hw_config: bigint,
    readonly constraint: Constraint,
    readonly lbr: LbrUse | null,
    readonly overflow: OverflowHandler | undefined,
    /** Position in its context's group tree; rotation moves an event to the end. */
    public groupIndex: number,
    period: bigint,
  ) {
    this.hwPeriod = period;
    this.period_left = period;
  }

  get pass(): Pass {
    return 'cpu' in this.target
      ? this.attr.pinned
        ? 'cpuPinned'
        : 'cpuFlexible'
      : this.attr.pinned
        ? 'taskPinned'
        : 'taskFlexible';
  }
}

interface Task {
  readonly id: number;
  readonly name: string;
  /** The task's perf context. */
  readonly events: Event[];
  runningOn: number | null;
  /** rotate_necessary of the task context. */
  rotate: boolean;
  /** task_ctx_data exists: a call-stack LBR event was attached to the task. */
  callstackData: boolean;
  /** The saved call stack (lbr_stack_state == LBR_VALID), or null. */
  lbrSaved: LbrSaved | null;
}

/** perf_cpu_context + cpu_hw_events of one pCPU. */
interface PCpu extends PhysCpu {
  currentTask: number | null;
  /** The CPU context. */
  readonly events: Event[];
  /** cpuc->event_list: events on the hardware, in the order perf collected them. */
  x86: Event[];
  rotate: boolean;
  /** perf_pmu_disable nesting. */
  pmu_disable_count: number;
  watchdog: Event | null;
}

function must(a: Access, what: string): bigint {
  if (!a.ok) throw new ModelError(`host perf: ${what} faulted: ${a.gp}`);
  return a.value;
}

function isError(r: unknown): r is { readonly error: string } {
  return typeof r === 'object' && r !== null && 'error' in r;
}

export class HostKernel {
  readonly profile: Profile;
  private readonly cpus: PCpu[];
  private readonly tasks = new Map<number, Task>();
  private nextTask = 1;
  private nextEvent = 1;
  private nextGroup = 1;
  private guestCallbacks: GuestInfoCallbacks | null = null;
  /** The mediated vPMU accounting and per-CPU guest-context flags (model/host/mediated.ts). */
  readonly mediatedPmu: MediatedPmuState = newMediatedPmuState();
  /** Events this kernel created: a handle from another kernel is a programming error. */
  private readonly owned = new WeakSet<Event>();
  /** x86_pmu.max_period: half the counter with full-width writes, else what a 32-bit write reaches. */
  private readonly maxPeriod: bigint;
  /** x86_pmu.perfctr: IA32_A_PMC0 with full-width writes, else the legacy alias. */
  private readonly perfctr: number;
  /** Did intel_pmu_init keep the LBRs (its check_msr probe did not fault)? */
  private readonly lbrProbed: boolean;
  /** The perf functions this kernel runs. */
  readonly ops: HostPerfOps;

  /** init_hw_perf_events + perf_events_lapic_init on every CPU, then the watchdog. */
  constructor(opts: HostKernelOptions) {
    const p = opts.profile;
    if (!Number.isInteger(opts.cpus) || opts.cpus < 1)
      throw new ModelError(`host: cpus must be a positive integer, got ${opts.cpus}`);
    if (p.version < 2)
      throw new ModelError(`host perf: ${p.name} has PMU version ${p.version}; the model drives GLOBAL_CTRL (v2+)`);
    this.profile = p;
    this.maxPeriod = p.fwWrite ? p.gpMask >> 1n : (1n << 31n) - 1n;
    this.perfctr = p.fwWrite ? MSR_IA32_PMC0 : MSR_IA32_PERFCTR0;
    this.lbrProbed = opts.lbrProbeFaulted !== true;
    this.ops = opts.ops ?? HOST_PERF_OPS;
    this.cpus = [];
    for (let i = 0; i < opts.cpus; i++) {
      const hw = new Cpu(p);
      must(hw.wrmsr(X2APIC_LVTPC, APIC_DM_NMI), 'WRMSR X2APIC_LVTPC');
      this.cpus.push({
        id: i,
        hw,
        currentTask: null,
        events: [],
        x86: [],
        rotate: false,
        pmu_disable_count: 0,
        watchdog: null,
      });
      if (this.lbrFormat() !== null) intel_pmu_lbr_reset(hw);
      this.withPmu(this.cpus[i]!, () => undefined); // the first x86_pmu_enable writes GLOBAL_CTRL
    }
    const wd = opts.nmiWatchdog;
    if (wd !== undefined && wd !== false) {
      const period = wd === true ? WATCHDOG_DEFAULT_PERIOD : wd.period;
      for (const pc of this.cpus) {
        // hardlockup_detector_event_create: a pinned cycles event with a long period.
        const r = this.perf_event_create_kernel_counter(
          makeAttr({ config: WATCHDOG_CONFIG, sample_period: period, pinned: true }),
          { cpu: pc.id },
        );
        if (isError(r)) throw new ModelError(`host: NMI watchdog on CPU ${pc.id}: ${r.error}`);
        pc.watchdog = r as Event;
      }
    }
  }

  /** The LBR facility perf manages: the part's, unless the boot-time probe took it away. */
  private lbrFormat() {
    if (!this.lbrProbed && lbrFormat(this.profile) !== null) relied('H17');
    return this.lbrProbed ? lbrFormat(this.profile) : null;
  }

  /** x86_perf_get_lbr: depth and MSR bases of the LBRs perf manages; nr 0 when it manages none. */
  x86_perf_get_lbr(): X86PmuLbr {
    const p = this.profile;
    if (this.lbrFormat() === null) return NO_LBR;
    if (p.archLbr !== undefined)
      return {
        nr: lbrNr(p),
        from: MSR_ARCH_LBR_FROM_0,
        to: MSR_ARCH_LBR_TO_0,
        info: MSR_ARCH_LBR_INFO_0,
        hasCallstack: p.archLbr.callStack,
      };
    const g = p.legacyLbr!;
    return { nr: g.depth, from: g.fromBase, to: g.toBase, info: g.infoBase ?? 0, hasCallstack: g.callStack };
  }

  get nrCpus(): number {
    return this.cpus.length;
  }

  pcpu(i: number): PhysCpu {
    return this.cpu(i);
  }

  /**
   * Does host-mode work on this pCPU show anywhere: an active host user's event that counts the host (the
   * watchdog aside), or LBRs recording in host mode?
   */
  hostWorkObserved(cpu: number): boolean {
    const pc = this.cpu(cpu);
    if (pc.x86.some((e) => e !== pc.watchdog && !e.attr.exclude_host)) return true;
    return this.lbrUsers(pc) > 0 && !this.vlbr_exclude_host(pc); // perf's LBRs record in host mode
  }

  /** The watchdog event of a CPU, if the kernel booted with one. */
  watchdog(cpu: number): PerfEvent | null {
    return this.cpu(cpu).watchdog;
  }

  // ---------------------------------------------------------------- tasks and context switches

  /** copy_process: a new thread, not running anywhere. */
  createTask(name: string): number {
    const id = this.nextTask++;
    this.tasks.set(id, { id, name, events: [], runningOn: null, rotate: false, callstackData: false, lbrSaved: null });
    return id;
  }

  /** task_cpu() for a running task, else null. */
  taskCpu(task: number): number | null {
    return this.task(task).runningOn;
  }

  /**
   * context_switch on `cpu`: perf_event_task_sched_out of the old task (its counts folded, its
   * call stack saved) and perf_event_task_sched_in of the new one (decision H11).
   */
  context_switch(cpu: number, next: number | null): void {
    const pc = this.cpu(cpu);
    this.requireHost(pc, 'a context switch');
    const nt = next === null ? null : this.task(next);
    if (nt !== null && nt.runningOn !== null && nt.runningOn !== cpu)
      throw new ModelError(`host: task ${nt.id} (${nt.name}) runs on CPU ${nt.runningOn}; switch it out there first`);
    const prev = pc.currentTask;
    if (prev === next) return;
    this.withPmu(pc, () => {
      if (prev !== null) {
        const pt = this.task(prev);
        this.intel_pmu_lbr_sched_task(pc, pt, false); // intel_pmu_lbr_sched_task(sched_in = false)
        this.ctx_sched_out(pc, PASS.taskPinned | PASS.taskFlexible);
        pt.runningOn = null;
      }
      pc.currentTask = next;
      if (nt !== null) {
        nt.runningOn = cpu;
        let passes = PASS.taskPinned | PASS.taskFlexible;
        // Keep cpu pinned > task pinned > cpu flexible > task flexible: flip the cpu flexibles.
        if (nt.events.some((e) => e.attr.pinned)) {
          this.ctx_sched_out(pc, PASS.cpuFlexible);
          passes |= PASS.cpuFlexible;
        }
        this.ctx_sched_in(pc, passes);
      }
      this.intel_pmu_lbr_sched_task(pc, nt, true);
    });
  }

  // ---------------------------------------------------------------- event lifetime

  /** sys_perf_event_open for a host user: the event is created enabled. */
  perf_event_open(a: PerfEventAttr, target: PerfTarget, overflow?: OverflowHandler): PerfOpenResult {
    return this.perf_event_alloc(a, target, overflow);
  }

  /**
   * perf_event_create_kernel_counter: how KVM and the watchdog create events; `group_leader` (the parameter the
   * topdown series add) makes the event a sibling scheduled with that leader.
   */
  perf_event_create_kernel_counter(
    a: PerfEventAttr,
    target: PerfTarget,
    overflow?: OverflowHandler,
    group_leader?: PerfEvent | null,
  ): PerfOpenResult {
    return this.perf_event_alloc(a, target, overflow, group_leader ?? null);
  }

  /** perf_event_alloc + x86_pmu_event_init + perf_install_in_context. */
  private perf_event_alloc(
    a: PerfEventAttr,
    target: PerfTarget,
    overflow: OverflowHandler | undefined,
    group_leader: PerfEvent | null = null,
  ): PerfOpenResult {
    const p = this.profile;
    const leader = group_leader === null ? null : this.live(group_leader);
    if (leader !== null && (leader.group_leader !== null || JSON.stringify(leader.target) !== JSON.stringify(target)))
      return { error: 'EINVAL: a group leader of another context, or not a leader' };
    if ('cpu' in target) {
      // perf_event_alloc: (unsigned)cpu >= nr_cpu_ids without a task; ENODEV is an offline CPU's, and none is offline.
      if (!Number.isInteger(target.cpu) || target.cpu < 0 || target.cpu >= this.cpus.length)
        return { error: `EINVAL: no CPU ${target.cpu}` };
    } else if (!this.tasks.has(target.task)) {
      return { error: `ESRCH: no task ${target.task}` };
    }
    if (a.sample_period < 0n || a.sample_period >> 63n !== 0n)
      return { error: `EINVAL: sample_period 0x${a.sample_period.toString(16)}` };
    const id = this.nextEvent;
    let lbr: LbrUse | null = null;
    if (a.branchSample !== undefined && this.lbrFormat() === null)
      return { error: `EOPNOTSUPP: perf on ${p.name} manages no LBRs` };
    if (a.vlbr === true) {
      if (this.lbrFormat() === null) return { error: `EOPNOTSUPP: ${p.name} has no LBRs` };
      lbr = { key: `vlbr#${id}`, config: null, callStack: true, vlbr: true }; // H4: matches nothing
    } else if (a.branchSample !== undefined) {
      const b = effectiveBranchType(a.branchSample, a.exclude_user, a.exclude_kernel);
      const f = intel_pmu_setup_hw_lbr_filter(p, b);
      if ('error' in f) return f;
      lbr = { key: `lbr:${f.config.toString(16)}`, config: f.config, callStack: b.callStack, vlbr: false };
    }
    const raw = a.config & rawEventMask(p);
    const constraint = this.ops.intel_get_event_constraints(p, raw, a.vlbr === true);
    if (fixedMapping(raw)?.gpFallback === false) relied('H8'); // a pseudo-encoding: fixed counter j only
    if (constraint === null) return { error: `EINVAL: no counter of ${p.name} counts config 0x${raw.toString(16)}` };
    // intel_pmu_hw_config: a metric event only as a sibling of a slots leader, and the group counts topdown.
    const metric = ((constraint.mask >> BigInt(IDX_METRIC_BASE)) & 0xffn) !== 0n;
    if (metric && (leader === null || (leader.attr.config & rawEventMask(p)) !== INTEL_TD_SLOTS))
      return { error: `EINVAL: metric event 0x${raw.toString(16)} without a slots group leader` };
    // x86_pmu_hw_config: INT always (counting events fold on overflow too), USR/OS from the excludes.
    let hwConfig = ARCH_PERFMON_EVENTSEL_INT | raw;
    if (!a.exclude_user) hwConfig |= ARCH_PERFMON_EVENTSEL_USR;
    if (!a.exclude_kernel) hwConfig |= ARCH_PERFMON_EVENTSEL_OS;
    const denied = mediated_pmu_account_event(this.mediatedPmu, a); // perf_event_alloc, after event init
    if (denied !== null) return { error: denied };
    const period = a.sample_period !== 0n ? a.sample_period : this.maxPeriod;
    this.nextEvent++;
    const e = new Event(id, a, target, hwConfig, constraint, lbr, overflow, this.nextGroup++, period);
    this.owned.add(e);
    if (a.disabled === true) e.state = 'OFF';
    const off = e.state === 'OFF';
    if (leader !== null) {
      e.group_leader = leader;
      if (metric) leader.topdown = e.topdown = true;
      leader.siblings.push(e);
      // perf_install_in_context: a sibling of a running group joins it at a reschedule of its context.
      if (leader.state === 'ACTIVE' && !off) this.ctx_resched(this.cpu(leader.oncpu), leader);
      return e;
    }
    if ('cpu' in target) {
      this.cpu(target.cpu).events.push(e);
      if (!off) this.ctx_resched(this.cpu(target.cpu), e);
    } else {
      const t = this.task(target.task);
      t.events.push(e);
      if (lbr?.callStack === true) t.callstackData = true; // PERF_ATTACH_TASK_DATA
      if (t.runningOn !== null && !off) this.ctx_resched(this.cpu(t.runningOn), e);
    }
    return e;
  }

  /** perf_event_enable: OFF or ERROR → INACTIVE, then ctx_resched if its context is on a CPU. */
  perf_event_enable(ev: PerfEvent): void {
    const e = this.live(ev);
    if (e.state === 'ACTIVE' || e.state === 'INACTIVE') return;
    e.state = 'INACTIVE';
    const l = e.group_leader;
    if (l !== null) {
      if (l.state === 'ACTIVE') this.ctx_resched(this.cpu(l.oncpu), l); // the sibling goes on with its group
      return;
    }
    const c = this.ctxCpu(e);
    if (c !== null) this.ctx_resched(c, e);
  }

  /** perf_event_disable: sched out if active; an ERROR event stays in ERROR. */
  perf_event_disable(ev: PerfEvent): void {
    const e = this.live(ev);
    if (e.state === 'ACTIVE') {
      const pc = this.cpu(e.oncpu);
      this.requireHost(pc, 'perf_event_disable');
      this.withPmu(pc, () => this.event_sched_out(e));
    }
    if (e.state === 'INACTIVE') e.state = 'OFF';
  }

  /** perf_event_read_value: the count, with the live hardware delta of an active event. */
  perf_event_read_value(ev: PerfEvent): bigint {
    const e = this.live(ev);
    if (e.state === 'ACTIVE' && e.hw_idx >= 0 && e.hw_idx !== IDX_VLBR) this.intel_pmu_update(this.cpu(e.oncpu), e);
    return e.count;
  }

  /** perf_event_pause: disable, return the count, zero it when `reset`. */
  perf_event_pause(ev: PerfEvent, reset: boolean): bigint {
    const e = this.live(ev);
    this.perf_event_disable(e);
    const count = e.count;
    if (reset) e.count = 0n;
    return count;
  }

  /** perf_event_period: a new sample period, restarting an active event; false where perf says EINVAL. */
  perf_event_period(ev: PerfEvent, period: bigint): boolean {
    const e = this.live(ev);
    if (e.attr.sample_period === 0n) return false; // not a sampling event
    if (period <= 0n || period >> 63n !== 0n) return false;
    e.attr = { ...e.attr, sample_period: period };
    e.hwPeriod = period;
    if (e.state !== 'ACTIVE') {
      e.period_left = 0n;
      return true;
    }
    const pc = this.cpu(e.oncpu);
    this.requireHost(pc, 'perf_event_period');
    this.withPmu(pc, () => {
      const idx = e.hw_idx;
      this.x86_pmu_stop(pc, e);
      e.period_left = 0n; // the next set_period starts a whole period
      this.x86_pmu_start(pc, e, idx);
    });
    return true;
  }

  /**
   * perf_event_topdown_metrics (seed 002's patch 08, for KVM): set a counting topdown event's saved FIXED_CTR3 and
   * PERF_METRICS, restarting it if it runs (stop with update, then start); false (-EINVAL) for a sampling event.
   */
  perf_event_topdown_metrics(ev: PerfEvent, slots: bigint, metric: bigint): boolean {
    const e = this.live(ev);
    if (e.attr.sample_period !== 0n) return false;
    if (e.state !== 'ACTIVE') {
      [e.saved_slots, e.saved_metric] = [slots, metric];
      return true;
    }
    const pc = this.cpu(e.oncpu);
    this.requireHost(pc, 'perf_event_topdown_metrics');
    this.withPmu(pc, () => {
      const idx = e.hw_idx;
      this.x86_pmu_stop(pc, e);
      [e.saved_slots, e.saved_metric] = [slots, metric];
      this.x86_pmu_start(pc, e, idx);
    });
    return true;
  }

  /** perf_event_release_kernel: sched out, unlink from its context; the handle is dead. */
  perf_event_release_kernel(ev: PerfEvent): void {
    const e = this.live(ev);
    if (e.state === 'ACTIVE') {
      const pc = this.cpu(e.oncpu);
      this.requireHost(pc, 'perf_event_release_kernel');
      this.withPmu(pc, () => this.event_sched_out(e, false));
    }
    const list = 'cpu' in e.target ? this.cpu(e.target.cpu).events : this.task(e.target.task).events;
    if (e.group_leader !== null) {
      const sibs = e.group_leader.siblings;
      sibs.splice(sibs.indexOf(e), 1);
    } else {
      list.splice(list.indexOf(e), 1);
      // perf_group_detach: the siblings become singletons where they are.
      for (const s of e.siblings) {
        s.group_leader = null;
        s.groupIndex = this.nextGroup++;
        list.push(s);
      }
      e.siblings = [];
    }
    mediated_pmu_unaccount_event(this.mediatedPmu, e.attr);
    if ('cpu' in e.target && this.cpu(e.target.cpu).watchdog === e) this.cpu(e.target.cpu).watchdog = null;
    e.state = 'OFF';
    e.released = true;
  }

  /** perf_register_guest_info_callbacks: KVM tells perf when an NMI came from a guest (H10). */
  perf_register_guest_info_callbacks(cbs: GuestInfoCallbacks): void {
    this.guestCallbacks = cbs;
  }

  /** perf_unregister_guest_info_callbacks. */
  perf_unregister_guest_info_callbacks(): void {
    this.guestCallbacks = null;
  }

  /**
   * The scheduling half of perf_load_guest_context / perf_put_guest_context (EVENT_GUEST): the
   * exclude_guest events of the CPU and current task contexts go off the PMU, or back on.
   */
  schedGuestEvents(cpu: number, dir: 'out' | 'in'): void {
    const pc = this.cpu(cpu);
    this.requireHost(pc, 'a mediated guest context switch');
    this.withPmu(pc, () => {
      if (dir === 'out')
        for (const e of [...pc.x86]) if (e.attr.exclude_guest && e.state === 'ACTIVE') this.event_sched_out(e);
      if (dir === 'in') this.ctx_sched_in(pc, ALL_PASSES);
    });
  }

  // ---------------------------------------------------------------- guest switch list, LBR owner

  /** perf_guest_get_msrs → x86_pmu.guest_get_msrs (intel_guest_get_msrs): what VM-exit and VM-entry load. */
  perf_guest_get_msrs(cpu: number): GuestMsrs {
    return this.ops.intel_guest_get_msrs(this, cpu);
  }

  /** The active counters of the CPU's events that count in guest (or host) mode (H1). */
  activeCounters(cpu: number, mode: 'host' | 'guest'): bigint {
    return this.ctrlValue(this.cpu(cpu), mode === 'guest');
  }

  /** The event that holds the LBR facility of a CPU: the guest LBR event if active, else the first host user. */
  lbrOwner(cpu: number): PerfEvent | null {
    const pc = this.cpu(cpu);
    return pc.x86.find((e) => e.lbr?.vlbr === true) ?? pc.x86.find((e) => e.lbr !== null) ?? null;
  }

  // ---------------------------------------------------------------- work, NMIs, the tick

  /** Host-mode work on a pCPU; every PMI the LAPIC delivers runs the NMI handler. Returns the PMI count. */
  runHost(cpu: number, units: readonly WorkUnit[]): number {
    const pc = this.cpu(cpu);
    this.requireHost(pc, 'host work');
    let pmis = 0;
    for (const u of units) {
      if (pc.hw.step(u) === null) continue;
      pmis++;
      this.intel_pmu_handle_irq(cpu);
    }
    return pmis;
  }

  /**
   * intel_pmu_handle_irq (late ack): disable, read and ack GLOBAL_STATUS, fold and re-arm each
   * overflowed counter, take the samples, re-enable, unmask LVTPC. False: an unknown NMI.
   */
  intel_pmu_handle_irq(cpu: number): boolean {
    const pc = this.cpu(cpu);
    const hw = pc.hw;
    const inGuest = this.guestCallbacks !== null ? this.guestCallbacks.state(cpu) : hw.mode === 'guest';
    if (hw.mode === 'guest') relied('H2'); // the handler stands for VM-exit, handler, VM-entry
    let handled = 0;
    must(hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n), 'WRMSR GLOBAL_CTRL'); // __intel_pmu_disable_all
    let status = must(hw.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS), 'RDMSR GLOBAL_STATUS');
    for (let loops = 1; status !== 0n && loops <= PMI_LOOP_LIMIT; loops++) {
      const branches = this.lbrUsers(pc) > 0 && !this.vlbr_exclude_host(pc) ? intel_pmu_lbr_read(hw) : null; // intel_pmu_lbr_read
      must(hw.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, status), 'WRMSR GLOBAL_OVF_CTRL'); // intel_pmu_ack
      // handle_pmi_common: CondChgd and LBR_FRZ (and ASIF, which the model has not) are no overflow by themselves.
      let overflowed = status & ~(bit(STATUS.COND_CHGD) | bit(STATUS.LBR_FRZ));
      if (isSet(overflowed, STATUS.OVF_BUF)) {
        relied('H7');
        handled++; // PEBS buffer: nothing to drain (H7)
        overflowed &= globalCtrlWritable(this.profile); // status &= intel_ctrl: counters and PERF_METRICS only
      }
      if (isSet(overflowed, STATUS.PERF_METRICS_OVF)) {
        overflowed &= ~bit(STATUS.PERF_METRICS_OVF);
        handled++;
        this.ops.handle_pmi_common_perf_metrics(
          pc.x86.find((x) => x.hw_idx === IDX_METRIC_BASE),
          () => this.intel_update_topdown_event(pc, null),
          { cpu, inGuest },
        );
      }
      // Every other bit is handled, a counter's or not (the uncore's, CTR_FRZ): the NMI was perf's.
      for (let idx = 0; idx < 64; idx++) {
        if (isSet(overflowed, idx)) {
          handled++;
          const e = pc.x86.find((x) => x.hw_idx === idx);
          if (e === undefined) continue; // CTR_FRZ, the uncore's: no event has the index (LBR_FRZ's, the vLBR's, is masked)
          if (!this.intel_pmu_save_and_restart(pc, e)) continue;
          if (e.attr.sample_period === 0n) continue; // counting events use the PMI only to fold
          const sample: PerfSample =
            e.lbr !== null && !e.lbr.vlbr && branches !== null
              ? { cpu, inGuest, branches: branches.map((b) => ({ from: b.from, to: b.to })) }
              : { cpu, inGuest };
          relied('H10'); // the sample's guest/host attribution
          e.samples.push(sample);
          e.overflow?.(e, sample);
        }
      }
      status = must(hw.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS), 'RDMSR GLOBAL_STATUS');
    }
    this.intel_pmu_enable_all(pc, true);
    must(hw.wrmsr(X2APIC_LVTPC, APIC_DM_NMI), 'WRMSR X2APIC_LVTPC'); // late ack: unmask
    return handled > 0;
  }

  /** perf_rotate_context (the multiplexing hrtimer): rotate the flexible events that did not fit. */
  perf_rotate_context(cpu: number): boolean {
    const pc = this.cpu(cpu);
    const t = pc.currentTask !== null ? this.task(pc.currentTask) : null;
    const taskEpc = t !== null && t.events.length > 0;
    const cpuRotate = pc.rotate;
    const taskRotate = taskEpc && t.rotate;
    if (!cpuRotate && !taskRotate) return false;
    this.requireHost(pc, 'the multiplexing tick');
    this.withPmu(pc, () => {
      const taskEv = taskRotate ? this.ctx_event_to_rotate(pc, 'taskFlexible') : null;
      const cpuEv = cpuRotate ? this.ctx_event_to_rotate(pc, 'cpuFlexible') : null;
      if (t !== null) t.rotate = false;
      pc.rotate = false;
      const taskOut = taskEv !== null || (taskEpc && cpuEv !== null);
      if (taskOut) this.ctx_sched_out(pc, PASS.taskFlexible);
      if (cpuEv !== null) {
        this.ctx_sched_out(pc, PASS.cpuFlexible);
        cpuEv.groupIndex = this.nextGroup++; // rotate_ctx: to the end of the list
        this.ctx_sched_in(pc, PASS.cpuFlexible);
      }
      if (taskEv !== null) taskEv.groupIndex = this.nextGroup++;
      if (taskOut) this.ctx_sched_in(pc, PASS.taskFlexible);
    });
    return true;
  }

  // ---------------------------------------------------------------- scheduling (kernel/events/core.c)

  /** ctx_resched for a newly installed or enabled event. */
  private ctx_resched(pc: PCpu, e: Event): void {
    this.requireHost(pc, 'scheduling an event');
    let out: Passes = 0;
    if (pc.currentTask !== null) {
      out |= PASS.taskFlexible;
      if (e.attr.pinned) out |= PASS.taskPinned;
    }
    if ('cpu' in e.target) {
      out |= PASS.cpuFlexible;
      if (e.attr.pinned) out |= PASS.cpuPinned;
    } else if (e.attr.pinned) {
      out |= PASS.cpuFlexible;
    }
    this.withPmu(pc, () => {
      this.ctx_sched_out(pc, out);
      this.ctx_sched_in(pc, out);
    });
  }

  /** ctx_sched_out for the given classes. */
  private ctx_sched_out(pc: PCpu, passes: Passes): void {
    // A group goes by its leader's class, its siblings with it (group_sched_out). event_sched_out gives pc.x86 a new
    // array, so this loop walks the set as it was.
    for (const e of pc.x86)
      if (e.group_leader === null && e.state === 'ACTIVE' && (passes & PASS[e.pass]) !== 0) this.event_sched_out(e);
  }

  /** perf_event_sched_in restricted to the classes that were scheduled out, in priority order. */
  private ctx_sched_in(pc: PCpu, passes: Passes): void {
    for (const pass of PASS_ORDER) {
      if ((passes & PASS[pass]) === 0) continue;
      let canAddHw = true;
      for (const e of this.passEvents(pc, pass)) {
        if (e.state !== 'INACTIVE') continue; // OFF and ERROR stay out
        // merge_sched_in → group_sched_in: the leader and its enabled siblings, all or none
        if (this.group_can_go_on(pc, e, canAddHw) && this.x86_pmu_add(pc, e)) {
          e.state = 'ACTIVE';
          e.oncpu = pc.id;
          for (const m of e.siblings) {
            if (m.state !== 'INACTIVE') continue;
            m.state = 'ACTIVE';
            m.oncpu = pc.id;
          }
          continue;
        }
        canAddHw = false;
        if (e.attr.pinned) e.state = 'ERROR';
        else if (pass === 'cpuFlexible') pc.rotate = true;
        else this.task(pc.currentTask!).rotate = true;
      }
    }
  }

  /** A context's events of one class, in group-tree order. */
  private passEvents(pc: PCpu, pass: Pass): Event[] {
    const pinned = pass === 'cpuPinned' || pass === 'taskPinned';
    let list: Event[];
    if (pass === 'cpuPinned' || pass === 'cpuFlexible') list = pc.events;
    else if (pc.currentTask !== null) list = this.task(pc.currentTask).events;
    else return [];
    const out = list.filter((e) => e.attr.pinned === pinned);
    // Sorted only where a rotation moved an event: the sort's allocation showed in every reschedule.
    for (let i = 1; i < out.length; i++)
      if (out[i - 1]!.groupIndex > out[i]!.groupIndex) return out.sort((a, b) => a.groupIndex - b.groupIndex);
    return out;
  }

  /** group_can_go_on (decision H3). */
  private group_can_go_on(pc: PCpu, e: Event, canAddHw: boolean): boolean {
    if (e.attr.exclusive || pc.x86.some((x) => x.attr.exclusive)) relied('H3');
    if (pc.x86.some((x) => x.attr.exclusive)) return false;
    if (e.attr.exclusive && pc.x86.length > 0) return false;
    return canAddHw;
  }

  /** ctx_event_to_rotate: the first active flexible event, else the first flexible one. */
  private ctx_event_to_rotate(pc: PCpu, pass: Pass): Event | null {
    const list = this.passEvents(pc, pass);
    return list.find((e) => e.state === 'ACTIVE') ?? list[0] ?? null;
  }

  /** event_sched_out → x86_pmu_del; a leader's active siblings go with it (group_sched_out) unless `group` is false. */
  private event_sched_out(e: Event, group = true): void {
    const pc = this.cpu(e.oncpu);
    this.schedOutOne(pc, e);
    // Taking one event out changes no other's state: the siblings walked are those active with the leader.
    if (group) for (const x of e.siblings) if (x.state === 'ACTIVE') this.schedOutOne(pc, x);
  }

  /** One event: x86_pmu_del (stopped, out of the collected set: a new array, as callers walk the old), then INACTIVE. */
  private schedOutOne(pc: PCpu, x: Event): void {
    if (x.hw_idx >= 0) this.x86_pmu_stop(pc, x);
    pc.x86 = pc.x86.filter((y) => y !== x);
    x.assigned = -1;
    x.state = 'INACTIVE';
    x.oncpu = -1;
  }

  // ---------------------------------------------------------------- the x86 PMU driver

  /** x86_pmu_add: collect the event and schedule the whole set; false when it does not fit. */
  private x86_pmu_add(pc: PCpu, e: Event): boolean {
    const firstLbr = e.lbr !== null && !pc.x86.some((x) => x.lbr !== null);
    if (e.lbr !== null && pc.x86.some((x) => x.lbr !== null && x.lbr.key !== e.lbr!.key)) {
      relied('H4');
      return false;
    }
    const set = [...pc.x86, e];
    for (const s of e.siblings) if (s.state === 'INACTIVE') set.push(s);
    // An event is its own Schedulable (its constraint and last index): no copy of each for every reschedule.
    const assign = x86_schedule_events(set);
    if (assign === null) return false;
    for (let i = 0; i < set.length; i++) set[i]!.assigned = assign[i]!;
    pc.x86 = set;
    if (firstLbr && !e.everRan) {
      relied('H13');
      intel_pmu_lbr_reset(pc.hw); // intel_pmu_lbr_add
    }
    return true;
  }

  /** perf_pmu_disable → intel_pmu_disable_all. */
  private perf_pmu_disable(pc: PCpu): void {
    if (pc.pmu_disable_count++ > 0) return;
    this.wr(pc, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    if (this.lbrUsers(pc) > 0 && !this.vlbr_exclude_host(pc)) intel_pmu_lbr_disable_all(pc.hw);
  }

  /** perf_pmu_enable → x86_pmu_enable: move and start what was (re)assigned, then enable all. */
  private perf_pmu_enable(pc: PCpu): void {
    if (--pc.pmu_disable_count > 0) return;
    for (const e of pc.x86) if (e.hw_idx >= 0 && e.hw_idx !== e.assigned) this.x86_pmu_stop(pc, e);
    for (const e of pc.x86) if (e.hw_idx < 0) this.x86_pmu_start(pc, e, e.assigned);
    this.intel_pmu_enable_all(pc, false);
  }

  private withPmu(pc: PCpu, f: () => void): void {
    this.perf_pmu_disable(pc);
    f();
    this.perf_pmu_enable(pc);
  }

  /** __intel_pmu_enable_all: LBRs, then GLOBAL_CTRL for the mode the CPU is in (H1, H2). */
  private intel_pmu_enable_all(pc: PCpu, pmi: boolean): void {
    if (pc.hw.mode === 'guest') {
      this.wr(pc, MSR_CORE_PERF_GLOBAL_CTRL, this.ctrlValue(pc, true));
      return;
    }
    if (this.lbrUsers(pc) > 0 && !this.vlbr_exclude_host(pc)) {
      const owner = pc.x86.find((x) => x.lbr !== null)!;
      intel_pmu_lbr_enable_all(pc.hw, owner.lbr!.config, pmi);
    }
    this.wr(pc, MSR_CORE_PERF_GLOBAL_CTRL, this.ctrlValue(pc, false));
  }

  /** The active counters of events that count in guest (or host) mode (H1). */
  private ctrlValue(pc: PCpu, guest: boolean): bigint {
    let v = 0n;
    for (const e of pc.x86) {
      if (e.hw_idx < 0 || e.hw_idx === IDX_VLBR) continue;
      if (guest ? e.attr.exclude_guest : e.attr.exclude_host) continue;
      // Every metric index is GLOBAL_CTRL's one EN_PERF_METRICS bit (x86_pmu.intel_ctrl has only bit 48).
      v |= bit(Math.min(e.hw_idx, IDX_METRIC_BASE));
    }
    return v;
  }

  /** x86_pmu_start(PERF_EF_RELOAD) → intel_pmu_enable_event. */
  private x86_pmu_start(pc: PCpu, e: Event, idx: number): void {
    e.hw_idx = idx;
    e.lastIdx = idx;
    e.everRan = true;
    if (idx === IDX_VLBR) return; // a pseudo counter: the guest LBR event only owns the LBRs
    if (idx >= IDX_METRIC_BASE) return; // a metric: PERF_METRICS, enabled by GLOBAL_CTRL bit 48 alone
    this.intel_pmu_set_period(pc, e);
    if (idx < FIXED_BASE) {
      // __x86_pmu_enable_event
      this.ops.x86_perf_event_set_config_base(
        pc.hw,
        e,
        MSR_P6_EVNTSEL0 + idx,
        e.hw_config | ARCH_PERFMON_EVENTSEL_ENABLE,
      );
      return;
    }
    // intel_pmu_enable_fixed: PMI always, OS and USR as the event asks.
    const j = BigInt(4 * (idx - FIXED_BASE));
    let nibble = 8n;
    if ((e.hw_config & ARCH_PERFMON_EVENTSEL_OS) !== 0n) nibble |= 1n;
    if ((e.hw_config & ARCH_PERFMON_EVENTSEL_USR) !== 0n) nibble |= 2n;
    const ctrl = this.rd(pc, MSR_CORE_PERF_FIXED_CTR_CTRL);
    this.ops.x86_perf_event_set_config_base(
      pc.hw,
      e,
      MSR_CORE_PERF_FIXED_CTR_CTRL,
      (ctrl & ~(0xfn << j)) | (nibble << j),
    );
  }

  /** x86_pmu_stop(PERF_EF_UPDATE): disable the counter, fold its count. */
  private x86_pmu_stop(pc: PCpu, e: Event): void {
    const idx = e.hw_idx;
    if (idx >= IDX_METRIC_BASE && idx !== IDX_VLBR) {
      e.hw_idx = -1; // __clear_bit(idx, active_mask) comes before the update: a context switch, saved
      this.intel_update_topdown_event(pc, e);
      return;
    }
    if (idx !== IDX_VLBR) {
      if (idx < FIXED_BASE) {
        this.ops.x86_perf_event_set_config_base(pc.hw, e, MSR_P6_EVNTSEL0 + idx, e.hw_config); // x86_pmu_disable_event
      } else {
        const j = BigInt(4 * (idx - FIXED_BASE));
        const ctrl = this.rd(pc, MSR_CORE_PERF_FIXED_CTR_CTRL) & ~(0xfn << j); // intel_pmu_disable_fixed
        this.ops.x86_perf_event_set_config_base(pc.hw, e, MSR_CORE_PERF_FIXED_CTR_CTRL, ctrl);
      }
      if (e.topdown) {
        e.hw_idx = -1;
        this.intel_update_topdown_event(pc, e);
      } else this.x86_perf_event_update(pc, e);
    }
    e.hw_idx = -1;
  }

  /** intel_pmu_save_and_restart: fold an overflowed counter and re-arm it; true when a period elapsed. */
  private intel_pmu_save_and_restart(pc: PCpu, e: Event): boolean {
    this.intel_pmu_update(pc, e);
    return this.intel_pmu_set_period(pc, e);
  }

  /** intel_pmu_set_period (x86_pmu.set_period): a topdown event restarts through icl_set_topdown_event_period, which returns 0. */
  private intel_pmu_set_period(pc: PCpu, e: Event): boolean {
    if (!e.topdown) return this.x86_perf_event_set_period(pc, e);
    this.ops.icl_set_topdown_event_period(pc.hw, e, this.maxPeriod);
    return false;
  }

  /** intel_pmu_update (x86_pmu.update): a topdown event folds through update_topdown_event. */
  private intel_pmu_update(pc: PCpu, e: Event): void {
    if (e.topdown) this.intel_update_topdown_event(pc, e);
    else this.x86_perf_event_update(pc, e);
  }

  /**
   * intel_update_topdown_event: read FIXED_CTR3 and PERF_METRICS, fold each active topdown event's share; an
   * event that left the PMU (x86_pmu_stop, hw_idx already -1) keeps the pair for its return, otherwise both
   * registers restart from 0. `e` null: the PMI's update.
   */
  private intel_update_topdown_event(pc: PCpu, e: Event | null): void {
    const hw = pc.hw;
    const slots = must(hw.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE | 3, 0), 'RDPMC FIXED_CTR3');
    if (slots === 0n) return;
    const metrics = must(hw.rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, 0), 'RDPMC PERF_METRICS');
    const active = pc.x86.filter((x) => x.hw_idx >= 0 && is_topdown_idx(x.hw_idx));
    for (const o of active)
      this.ops.__icl_update_topdown_event(o, slots, metrics, e?.saved_slots ?? 0n, e?.saved_metric ?? 0n);
    if (e !== null && e.hw_idx < 0) {
      this.ops.__icl_update_topdown_event(e, slots, metrics, e.saved_slots, e.saved_metric);
      for (const o of [e, ...active]) [o.saved_slots, o.saved_metric] = [slots, metrics]; // update_saved_topdown_regs
      return;
    }
    this.wr(pc, MSR_CORE_PERF_FIXED_CTR0 + 3, 0n); // FIXED_CTR3 before PERF_METRICS
    this.wr(pc, MSR_PERF_METRICS, 0n);
    if (e !== null) for (const o of [e, ...active]) o.saved_slots = o.saved_metric = 0n;
  }

  /** hwc->event_base of counter `idx`: x86_pmu.perfctr (IA32_PMCx with full-width writes) or the fixed counter. */
  x86_pmu_event_addr(idx: number): number {
    return idx < FIXED_BASE ? this.perfctr + idx : MSR_CORE_PERF_FIXED_CTR0 + (idx - FIXED_BASE);
  }

  /** hwc->config_base of counter `idx`: its event select, or FIXED_CTR_CTRL. */
  x86_pmu_config_addr(idx: number): number {
    return idx < FIXED_BASE ? MSR_P6_EVNTSEL0 + idx : MSR_CORE_PERF_FIXED_CTR_CTRL;
  }

  /** hwc->event_base_rdpmc of counter `idx`: the RDPMC index. */
  x86_pmu_rdpmc_index(idx: number): number {
    return idx < FIXED_BASE ? idx : 0x4000_0000 | (idx - FIXED_BASE);
  }

  private counterMask(idx: number): bigint {
    return idx < FIXED_BASE ? this.profile.gpMask : this.profile.fixedMask; // H9
  }

  /** x86_perf_event_update: RDPMC, delta masked to the width, folded into the count. */
  private x86_perf_event_update(pc: PCpu, e: Event): void {
    const idx = e.hw_idx;
    const ecx = this.x86_pmu_rdpmc_index(idx);
    const r = pc.hw.rdpmc(ecx, 0);
    const raw = r.ok ? r.value : must(r, `RDPMC 0x${ecx.toString(16)}`);
    if (raw < e.prev_count) relied('H9'); // the delta wraps at the counter's own width
    const delta = (raw - e.prev_count) & this.counterMask(idx);
    e.prev_count = raw;
    e.count += delta;
    e.period_left -= delta;
  }

  /** x86_perf_event_set_period: preset the counter to −left; true when a period elapsed. */
  private x86_perf_event_set_period(pc: PCpu, e: Event): boolean {
    const period = e.hwPeriod;
    let left = e.period_left;
    let elapsed = false;
    if (left <= -period) {
      left = period; // way behind: skip forward
      elapsed = true;
    }
    if (left <= 0n) {
      left += period;
      elapsed = true;
    }
    e.period_left = left;
    let program = left < 2n ? 2n : left; // "certain CPUs don't like it if just 1 event is left"
    if (program > this.maxPeriod) program = this.maxPeriod;
    const idx = e.hw_idx;
    const v = -program & this.counterMask(idx);
    e.prev_count = v;
    this.ops.x86_perf_event_set_event_base(pc.hw, e, this.x86_pmu_event_addr(idx), v);
    return elapsed;
  }

  // ---------------------------------------------------------------- LBR bookkeeping (intel/lbr.c)

  /** cpuc->lbr_users. */
  private lbrUsers(pc: PCpu): number {
    return pc.x86.filter((e) => e.lbr !== null).length;
  }

  /** vlbr_exclude_host: the guest LBR event is on this CPU, so perf keeps its hands off the LBRs. */
  private vlbr_exclude_host(pc: PCpu): boolean {
    return pc.x86.some((e) => e.lbr?.vlbr === true && e.attr.exclude_host);
  }

  /** intel_pmu_lbr_sched_task: save or restore a task's call stack, or wipe the LBRs. */
  private intel_pmu_lbr_sched_task(pc: PCpu, t: Task | null, schedIn: boolean): void {
    if (this.lbrUsers(pc) === 0) return;
    if (t !== null && t.callstackData) {
      const users = pc.x86.filter((e) => e.lbr?.callStack === true && 'task' in e.target && e.target.task === t.id);
      if (!schedIn) {
        if (users.length > 0) t.lbrSaved = intel_pmu_lbr_save(pc.hw);
        return;
      }
      if (users.length === 0 || t.lbrSaved === null) intel_pmu_lbr_reset(pc.hw);
      else {
        relied('H6');
        intel_pmu_lbr_restore(pc.hw, t.lbrSaved); // always restore
      }
      t.lbrSaved = null;
      return;
    }
    // LBR entries carry no address-space tag: a new task must not see the old one's branches.
    if (schedIn) intel_pmu_lbr_reset(pc.hw);
  }

  // ---------------------------------------------------------------- helpers

  private cpu(i: number): PCpu {
    const pc = this.cpus[i];
    if (pc === undefined) throw new ModelError(`host: no CPU ${i} (have ${this.cpus.length})`);
    return pc;
  }

  private task(id: number): Task {
    const t = this.tasks.get(id);
    if (t === undefined) throw new ModelError(`host: no task ${id}`);
    return t;
  }

  /** The CPU an event's context is scheduled on, if any. */
  private ctxCpu(e: Event): PCpu | null {
    if ('cpu' in e.target) return this.cpu(e.target.cpu);
    const on = this.task(e.target.task).runningOn;
    return on === null ? null : this.cpu(on);
  }

  private live(ev: PerfEvent): Event {
    if (!(ev instanceof Event) || !this.owned.has(ev)) throw new ModelError('host perf: not an event of this kernel');
    if (ev.released) throw new ModelError(`host perf: event ${ev.id} was released`);
    return ev;
  }

  /** Decision H2: programming a pCPU needs host mode; the VMX layer exits first. */
  private requireHost(pc: PCpu, what: string): void {
    if (pc.hw.mode !== 'host')
      throw new ModelError(`host perf: ${what} on CPU ${pc.id} while it runs a guest (decision H2)`);
  }

  // The messages are built only on a fault: these run at every event update and context switch.
  private rd(pc: PCpu, msr: number): bigint {
    const a = pc.hw.rdmsr(msr);
    return a.ok ? a.value : must(a, `RDMSR ${msrName(msr)}`);
  }

  private wr(pc: PCpu, msr: number, v: bigint): void {
    const a = pc.hw.wrmsr(msr, v);
    if (!a.ok) must(a, `WRMSR ${msrName(msr)} <- 0x${v.toString(16)}`);
  }
}

/** intel_guest_get_msrs: GLOBAL_CTRL without guest-only counters for the host, without host-only ones for the guest. */
function intel_guest_get_msrs(host: HostKernel, cpu: number): GuestMsrs {
  return { host: host.activeCounters(cpu, 'host'), guest: host.activeCounters(cpu, 'guest') };
}

/** icl_get_metrics_event_value: metric byte `idx` of PERF_METRICS as slots, floor(slots · byte / 255). */
export function icl_get_metrics_event_value(metric: bigint, slots: bigint, idx: number): bigint {
  return (slots * ((metric >> BigInt(8 * idx)) & 0xffn)) / 0xffn;
}

/** icl_get_topdown_value: the slots event counts the slots, a metric event its share. */
function icl_get_topdown_value(event: TopdownEvent, slots: bigint, metrics: bigint): bigint {
  const idx = event.lastIdx;
  return idx === IDX_FIXED_SLOTS ? slots : icl_get_metrics_event_value(metrics, slots, idx - IDX_METRIC_BASE);
}

/** __icl_update_topdown_event: add what the reading adds over the last one, never a decrease. */
function __icl_update_topdown_event(
  event: TopdownEvent,
  slots: bigint,
  metrics: bigint,
  lastSlots: bigint,
  lastMetric: bigint,
): void {
  const delta = icl_get_topdown_value(event, slots, metrics);
  const last = lastSlots !== 0n ? icl_get_topdown_value(event, lastSlots, lastMetric) : 0n;
  if (delta > last) event.count += delta - last;
}

/** icl_set_topdown_event_period: both registers from 0 at the (counting) event's start, else the saved pair. */
function icl_set_topdown_event_period(hw: Cpu, event: TopdownEvent, maxPeriod: bigint): void {
  if (event.period_left === maxPeriod) {
    perf_wrmsrl(hw, event, MSR_CORE_PERF_FIXED_CTR0 + 3, 0n);
    perf_wrmsrl(hw, event, MSR_PERF_METRICS, 0n);
    event.saved_slots = event.saved_metric = 0n;
  }
  if (event.saved_slots !== 0n && event.hw_idx === IDX_FIXED_SLOTS) {
    perf_wrmsrl(hw, event, MSR_CORE_PERF_FIXED_CTR0 + 3, event.saved_slots);
    perf_wrmsrl(hw, event, MSR_PERF_METRICS, event.saved_metric);
  }
}

/** handle_pmi_common, GLOBAL_STATUS bit 48: update_topdown_event(NULL). */
function handle_pmi_common_perf_metrics(_metricsEvent: TopdownEvent | undefined, update: () => void): void {
  update();
}

/** Upstream's host perf. */
export const HOST_PERF_OPS: HostPerfOps = {
  intel_guest_get_msrs,
  x86_perf_event_set_event_base: perf_wrmsrl,
  x86_perf_event_set_config_base: perf_wrmsrl,
  intel_get_event_constraints,
  __icl_update_topdown_event,
  icl_set_topdown_event_period,
  handle_pmi_common_perf_metrics,
};

/** wrmsrl by perf: a fault is a bug of the model. */
function perf_wrmsrl(hw: Cpu, _event: PerfEvent, msr: number, val: bigint): void {
  const a = hw.wrmsr(msr, val);
  if (!a.ok) must(a, `WRMSR ${msrName(msr)} <- 0x${val.toString(16)}`);
}
