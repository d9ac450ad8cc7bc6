/**
 * Guest driver routines: the MSR sequences the software that drives a PMU issues, as Linux perf
 * runs them (arch/x86/events/core.c, intel/core.c, intel/lbr.c; ../shared/guest-drivers.md §1):
 * the probe at boot, enable/disable-all and counter programming, the PMI handler of each PMU
 * version (v2+: read GLOBAL_STATUS, handle each set bit, acknowledge through OVF_CTRL, which v4
 * names STATUS_RESET, re-arm with -period, unmask LVTPC, re-enable; v1: no global MSRs), the LBR
 * driver around a PMI (read TOS and records while frozen, unfreeze) and a context switch that saves
 * and restores its counters.
 *
 * A routine is a generator of guest instructions whose operands come from what the guest read
 * before, so each side (the design and bare metal) runs it on its own observations and its own
 * copy of the driver's state (cpu_hw_events). While both sides issue the same next instruction it
 * runs on both as any guest instruction does; the first time they part, the world records where
 * (an observation of kind 'driver') and the routine ends on both sides.
 */

import { lowMask, setBits } from '../model/hw/bits.js';
import type { WorkUnit } from '../model/hw/work.js';
import type { Profile } from '../model/hw/profile.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES, PERF_CAP_LBR_FMT } from '../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  INTEL_FIXED_0_ENABLE_PMI,
  INTEL_FIXED_0_KERNEL,
  INTEL_FIXED_0_USER,
  INTEL_PMC_FIXED_RDPMC_BASE,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../model/hw/msr/apic.js';
import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI, DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { MSR_LBR_SELECT, MSR_LBR_TOS } from '../model/hw/msr/lbr_legacy.js';
import { diverges, type DriverStep, type Observation, pmisOf, sameStep } from './observation.js';
import type { GuestConfig, World } from './world.js';

// ---- what a command asks of the driver (plain data: commands print and serialise it) ----

/**
 * Which driver: Linux with the fixed-counter control cached and written at enable (v6.1+), or the
 * read-modify-write of FIXED_CTR_CTRL per event (older kernels); when the handler unmasks LVTPC
 * (early: first; mid: before re-enabling, hybrid Atom; late: last, Haswell and later big cores);
 * and the LVTPC value it writes (0x400, NMI as Linux; a fixed vector as kvm-unit-tests).
 */
export interface DriverParams {
  readonly kernel: 'linux' | 'linux-old';
  readonly ack: 'early' | 'mid' | 'late';
  readonly lvtpc: bigint;
}

/** One perf event: event select and unit mask (`event | umask << 8`), rings, period (0: counting). */
export interface DriverEventSpec {
  readonly event: bigint;
  readonly usr: boolean;
  readonly os: boolean;
  readonly period: bigint;
}

/**
 * kvm-unit-tests' check_counter_overflow on one counter (x86/pmu.c): a GP counter (its index modulo the guest's), or
 * fixed counter 0 as 32; INT set or not (the test sets it on odd counters only and checks the PMI came iff INT); the
 * counter preset `left` instructions before the wrap; `fep` instructions behind the forced-emulation prefix after the
 * units, so that KVM's software count is what wraps it (check_emulated_instr).
 */
export interface DriverOverflowSpec {
  readonly counter: number;
  readonly int: boolean;
  readonly left: bigint;
  readonly fep: number;
}

/** An LBR user (perf record -b): the LBR_SELECT it asks for, and call-stack mode (no freeze, saved across switches). */
export interface DriverLbrSpec {
  readonly select: bigint;
  readonly callStack: boolean;
}

export const DEFAULT_DRIVER: DriverParams = Object.freeze({ kernel: 'linux', ack: 'late', lvtpc: 0x400n });

// ---- the driver's state, one copy per side (struct cpu_hw_events and the events on it) ----

/** A perf event on a counter (struct perf_event / hw_perf_event). */
interface Ev {
  readonly spec: DriverEventSpec;
  /** GP i, or fixed j as 32 + j (INTEL_PMC_IDX_FIXED). */
  readonly idx: number;
  /** hwc->config: the EVTSEL image without EN (GP), or the fixed field without the shift. */
  readonly config: bigint;
  readonly sampling: boolean;
  /** hwc->sample_period. */
  readonly period: bigint;
  /** hwc->period_left (signed). */
  left: bigint;
  /** hwc->prev_count, masked to the counter width. */
  prev: bigint;
  count: bigint;
  samples: number;
}

/** The LBR MSRs the driver knows of its CPU model (x86_pmu.lbr_*). */
interface LbrGeometry {
  nr: number;
  readonly from: number;
  readonly to: number;
  /** MSR_LBR_INFO_0, or 0 where the format has none. */
  readonly info: number;
  readonly select: boolean;
}

/** The call stack saved at a context switch (struct x86_perf_task_context). */
interface LbrSaved {
  readonly tos: bigint;
  readonly entries: readonly { readonly from: bigint; readonly to: bigint; readonly info: bigint }[];
  readonly select: bigint;
}

export interface Shadow {
  readonly params: DriverParams;
  readonly version: number;
  readonly nGP: number;
  readonly nFixed: number;
  /** x86_pmu.cntval_mask (Linux uses the GP width for fixed counters too). */
  readonly cntMask: bigint;
  /** x86_pmu.intel_ctrl: every counter the PMU has. */
  readonly intelCtrl: bigint;
  /** CPUID.0AH.EBX: the architectural events the CPU says it lacks (x86_pmu.events_mask). */
  readonly unavailable: number;
  lbrGeom: LbrGeometry | null;
  /** PERF_CAPABILITIES was read (it picks the counter alias and max_period). */
  probed: boolean;
  /** x86_pmu.perfctr: IA32_PMC0 with full-width writes, else the legacy alias. */
  base: number;
  maxPeriod: bigint;
  /** The probe found no working PMU: perf stays off and the driver does nothing. */
  broken: boolean;
  /** cpuc->enabled. */
  enabled: boolean;
  /** cpuc->events by counter. */
  readonly events: Map<number, Ev>;
  /** cpuc->fixed_ctrl_val and what FIXED_CTR_CTRL holds (new kernels write it at enable). */
  fixedCtrlVal: bigint;
  activeFixedCtrlVal: bigint;
  /** cpuc->lbr_users > 0: the LBR user's request. */
  lbr: DriverLbrSpec | null;
  lbrSaved: LbrSaved | null;
  /** A PMI came while a routine ran: the handler runs when the routine ends. */
  pending: boolean;
  /** NMIs the handler found no overflow for ("Uhhuh. NMI received for unknown reason"). */
  unknownNmis: number;
}

/** The driver's view of a guest: CPUID (configuration, not read) and the LBRs of its CPU model. */
export function newShadow(g: GuestConfig, host: Profile, params: DriverParams): Shadow {
  const { eax, edx } = g.cpuid.leaf0a;
  const version = eax & 0xff;
  const nGP = version === 0 ? 0 : (eax >>> 8) & 0xff;
  const nFixed = version > 1 ? edx & 0x1f : 0;
  const width = (eax >>> 16) & 0xff;
  // The model-specific LBR MSRs of the guest's family/model, offered when PERF_CAPABILITIES has an LBR format.
  const legacy = host.legacyLbr;
  const lbrFmt = g.cpuid.pdcm ? g.perfCapabilities & PERF_CAP_LBR_FMT : 0n;
  const sameModel = g.cpuid.family === host.family && g.cpuid.model === host.model;
  return {
    params,
    version,
    nGP,
    nFixed,
    cntMask: lowMask(width),
    intelCtrl: version > 1 ? lowMask(nGP) | (lowMask(nFixed) << 32n) : 0n,
    unavailable: g.cpuid.leaf0a.ebx & ((1 << ((eax >>> 24) & 0xff)) - 1),
    lbrGeom:
      legacy !== undefined && lbrFmt !== 0n && sameModel && version > 0
        ? {
            nr: legacy.depth,
            from: legacy.fromBase,
            to: legacy.toBase,
            info: legacy.infoBase ?? 0,
            select: legacy.select,
          }
        : null,
    probed: false,
    base: MSR_IA32_PERFCTR0,
    maxPeriod: (1n << 31n) - 1n,
    broken: version === 0 || nGP === 0,
    enabled: true,
    events: new Map(),
    fixedCtrlVal: 0n,
    activeFixedCtrlVal: 0n,
    lbr: null,
    lbrSaved: null,
    pending: false,
    unknownNmis: 0,
  };
}

function cloneShadow(s: Shadow): Shadow {
  const events = new Map<number, Ev>();
  for (const [k, e] of s.events) events.set(k, { ...e });
  return { ...s, lbrGeom: s.lbrGeom === null ? null : { ...s.lbrGeom }, events };
}

// ---- the instructions a routine issues, and what each tells it ----

/** What one instruction showed the guest: the value read (null for a write or a #GP), and whether a PMI came. */
export interface StepResult {
  readonly value: bigint | null;
  readonly gp: boolean;
  readonly pmi: boolean;
}

type Routine = Generator<DriverStep, void, StepResult>;
type Sub<T> = Generator<DriverStep, T, StepResult>;

function* rd(msr: number): Sub<bigint | null> {
  return (yield { op: 'rdmsr', msr }).value;
}

function* wr(msr: number, value: bigint): Sub<boolean> {
  return !(yield { op: 'wrmsr', msr, value }).gp;
}

function* rdpmc(ecx: number): Sub<bigint | null> {
  return (yield { op: 'rdpmc', ecx }).value;
}

const FIXED_EVENTS: readonly bigint[] = [0x00c0n, 0x003cn, 0x0300n];

// ---- perf core paths (arch/x86/events/core.c, intel/core.c) ----

/** The counter MSR of an event: x86_pmu_event_addr / the fixed counter. */
const counterMsr = (s: Shadow, idx: number) => (idx >= 32 ? MSR_CORE_PERF_FIXED_CTR0 + idx - 32 : s.base + idx);
/** hwc->event_base_rdpmc. */
const rdpmcIndex = (idx: number) => (idx >= 32 ? INTEL_PMC_FIXED_RDPMC_BASE | (idx - 32) : idx);
const fixedShift = (idx: number) => BigInt(4 * (idx - 32));

/** intel_pmu_init's reads that decide the counter alias and max_period (PDCM: PERF_CAPABILITIES). */
function* probeCaps(s: Shadow, g: GuestConfig): Sub<void> {
  if (s.probed) return;
  s.probed = true;
  if (!g.cpuid.pdcm) return;
  const caps = (yield* rd(MSR_IA32_PERF_CAPABILITIES)) ?? 0n;
  if ((caps & PERF_CAP_FW_WRITES) !== 0n) {
    s.base = MSR_IA32_PMC0;
    s.maxPeriod = s.cntMask >> 1n;
  }
  if ((caps & PERF_CAP_LBR_FMT) === 0n) s.lbrGeom = null;
}

/** check_msr: an LBR MSR that does not keep what is written disables the LBRs (lbr_nr = 0). */
function* check_msr(msr: number, mask: bigint): Sub<boolean> {
  const orig = yield* rd(msr);
  if (orig === null) return false;
  if (!(yield* wr(msr, orig ^ mask))) return false;
  const back = yield* rd(msr);
  yield* wr(msr, orig);
  return back === (orig ^ mask);
}

/**
 * The boot probe (intel_pmu_init, check_hw_exists, the LBR check_msr of a guest, perf_events_lapic_init)
 * and the first x86_pmu_enable.
 */
function* bootProbe(s: Shadow, g: GuestConfig): Routine {
  yield* probeCaps(s, g);
  for (let i = 0; i < s.nGP; i++)
    if ((yield* rd(MSR_P6_EVNTSEL0 + i)) === null) {
      s.broken = true; // "PMU not available due to virtualization"
      return;
    }
  if (s.version > 1 && (yield* rd(MSR_CORE_PERF_FIXED_CTR_CTRL)) === null) {
    s.broken = true;
    return;
  }
  // check_hw_exists: a counter must keep what is written to it.
  const reg = counterMsr(s, 0);
  const val = yield* rd(reg);
  if (val === null || !(yield* wr(reg, val ^ 0xffffn)) || (yield* rd(reg)) !== (val ^ 0xffffn)) {
    s.broken = true;
    return;
  }
  const geom = s.lbrGeom;
  if (geom !== null) {
    // Linux checks every record; the first and the last stand for them here (each check is four instructions).
    let ok = yield* check_msr(MSR_LBR_TOS, 0x3n);
    for (const i of geom.nr > 1 ? [0, geom.nr - 1] : [0])
      ok = ok && (yield* check_msr(geom.from + i, 0xffffn)) && (yield* check_msr(geom.to + i, 0xffffn));
    if (!ok) s.lbrGeom = null;
  }
  yield* wr(X2APIC_LVTPC, s.params.lvtpc);
  if (s.version > 1) yield* wr(MSR_CORE_PERF_GLOBAL_CTRL, s.intelCtrl);
}

/** x86_perf_event_set_period: preset the counter to -left; true when a period elapsed. */
function* set_period(s: Shadow, e: Ev): Sub<boolean> {
  let left = e.left;
  let elapsed = false;
  if (left <= -e.period) {
    left = e.period;
    elapsed = true;
  } else if (left <= 0n) {
    left += e.period;
    elapsed = true;
  }
  e.left = left;
  let program = left < 2n ? 2n : left; // "certain CPUs don't like it if just 1 event is left"
  if (program > s.maxPeriod) program = s.maxPeriod;
  e.prev = -program & s.cntMask;
  yield* wr(counterMsr(s, e.idx), e.prev);
  return elapsed;
}

/** x86_perf_event_update: RDPMC, the delta masked to the width folded in; the raw value read. */
function* update(s: Shadow, e: Ev): Sub<bigint> {
  const raw = (yield* rdpmc(rdpmcIndex(e.idx))) ?? 0n;
  const delta = (raw - e.prev) & s.cntMask;
  e.prev = raw & s.cntMask;
  e.count += delta;
  e.left -= delta;
  return raw;
}

/** intel_pmu_lbr_reset_64: the records and LBR_SELECT zeroed. */
function* lbrReset(g: LbrGeometry): Sub<void> {
  for (let i = 0; i < g.nr; i++) {
    yield* wr(g.from + i, 0n);
    yield* wr(g.to + i, 0n);
    if (g.info !== 0) yield* wr(g.info + i, 0n);
  }
  if (g.select) yield* wr(MSR_LBR_SELECT, 0n);
}

/** __intel_pmu_lbr_enable: LBR_SELECT (not from the PMI), DEBUGCTL.LBR and the freeze (none in call-stack mode). */
function* lbrEnable(s: Shadow, pmi: boolean): Sub<void> {
  const g = s.lbrGeom;
  if (s.lbr === null || g === null) return;
  if (pmi && s.version >= 4) return; // "v4 can do that as part of the GLOBAL_STATUS ack"
  if (!pmi && g.select) yield* wr(MSR_LBR_SELECT, s.lbr.select);
  const orig = yield* rd(MSR_IA32_DEBUGCTLMSR);
  if (orig === null) return;
  let d = orig | DEBUGCTLMSR_LBR;
  d = s.lbr.callStack ? d & ~DEBUGCTLMSR_FREEZE_LBRS_ON_PMI : d | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
  if (d !== orig) yield* wr(MSR_IA32_DEBUGCTLMSR, d);
}

/** __intel_pmu_lbr_disable. */
function* lbrDisable(s: Shadow): Sub<void> {
  if (s.lbr === null || s.lbrGeom === null) return;
  const d = yield* rd(MSR_IA32_DEBUGCTLMSR);
  if (d !== null) yield* wr(MSR_IA32_DEBUGCTLMSR, d & ~(DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI));
}

/** intel_pmu_lbr_read_64: TOS, then the records newest first (call-stack mode stops at an empty one). */
function* lbrRead(s: Shadow): Sub<void> {
  const g = s.lbrGeom;
  if (s.lbr === null || g === null) return;
  const tos = (yield* rd(MSR_LBR_TOS)) ?? 0n;
  for (let i = 0; i < g.nr; i++) {
    const x = Number((tos - BigInt(i)) & BigInt(g.nr - 1));
    const from = yield* rd(g.from + x);
    yield* rd(g.to + x);
    if (s.lbr.callStack && (from ?? 0n) === 0n) break;
    if (g.info !== 0) yield* rd(g.info + x);
  }
}

/** The GP counters with an active event, in order (what the v1 paths walk). */
const activeGp = (s: Shadow): Ev[] => [...s.events.values()].filter((e) => e.idx < 32).sort((a, b) => a.idx - b.idx);

/** x86_pmu_disable: intel_pmu_disable_all (v2+: GLOBAL_CTRL, then the LBRs), or x86_pmu_disable_all (v1). */
function* disableAll(s: Shadow): Sub<void> {
  if (!s.enabled) return;
  s.enabled = false;
  if (s.version > 1) {
    yield* wr(MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    yield* lbrDisable(s);
    return;
  }
  for (const e of activeGp(s)) {
    const v = yield* rd(MSR_P6_EVNTSEL0 + e.idx);
    if (v !== null && (v & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n)
      yield* wr(MSR_P6_EVNTSEL0 + e.idx, v & ~ARCH_PERFMON_EVENTSEL_ENABLE);
  }
}

/** __intel_pmu_enable_all: the LBRs, the cached FIXED_CTR_CTRL (new kernels), every counter in GLOBAL_CTRL. */
function* intelEnableAll(s: Shadow, pmi: boolean): Sub<void> {
  yield* lbrEnable(s, pmi);
  if (s.params.kernel === 'linux' && s.fixedCtrlVal !== s.activeFixedCtrlVal) {
    yield* wr(MSR_CORE_PERF_FIXED_CTR_CTRL, s.fixedCtrlVal);
    s.activeFixedCtrlVal = s.fixedCtrlVal;
  }
  yield* wr(MSR_CORE_PERF_GLOBAL_CTRL, s.intelCtrl);
}

/** x86_pmu_enable: new events started, LVTPC rewritten (perf_events_lapic_init), then enable-all. */
function* enableAll(s: Shadow, added: readonly Ev[]): Sub<void> {
  if (s.enabled) return;
  if (added.length > 0) {
    for (const e of added) yield* start(s, e);
    yield* wr(X2APIC_LVTPC, s.params.lvtpc);
  }
  s.enabled = true;
  if (s.version > 1) {
    yield* intelEnableAll(s, false);
    return;
  }
  for (const e of activeGp(s)) yield* wr(MSR_P6_EVNTSEL0 + e.idx, e.config | ARCH_PERFMON_EVENTSEL_ENABLE);
}

/** x86_pmu_start(PERF_EF_RELOAD): set_period, then intel_pmu_enable_event (v1: only while enabled). */
function* start(s: Shadow, e: Ev): Sub<void> {
  yield* set_period(s, e);
  if (e.idx < 32) {
    if (s.version > 1 || s.enabled) yield* wr(MSR_P6_EVNTSEL0 + e.idx, e.config | ARCH_PERFMON_EVENTSEL_ENABLE);
    return;
  }
  const field = 0xfn << fixedShift(e.idx);
  if (s.params.kernel === 'linux') {
    s.fixedCtrlVal = (s.fixedCtrlVal & ~field) | (e.config << fixedShift(e.idx));
    return;
  }
  const c = (yield* rd(MSR_CORE_PERF_FIXED_CTR_CTRL)) ?? 0n;
  yield* wr(MSR_CORE_PERF_FIXED_CTR_CTRL, (c & ~field) | (e.config << fixedShift(e.idx)));
}

/** x86_pmu_stop(PERF_EF_UPDATE): intel_pmu_disable_event, then the count folded. */
function* stop(s: Shadow, e: Ev): Sub<void> {
  if (e.idx < 32) yield* wr(MSR_P6_EVNTSEL0 + e.idx, e.config);
  else {
    const field = 0xfn << fixedShift(e.idx);
    if (s.params.kernel === 'linux') s.fixedCtrlVal &= ~field;
    else {
      const c = (yield* rd(MSR_CORE_PERF_FIXED_CTR_CTRL)) ?? 0n;
      yield* wr(MSR_CORE_PERF_FIXED_CTR_CTRL, c & ~field);
    }
  }
  yield* update(s, e);
}

/** The architectural events by CPUID.0AH.EBX bit: cycles, instructions, ref cycles, LLC refs/misses, branches, misses. */
const ARCH_EVENTS: readonly bigint[] = [0x003cn, 0x00c0n, 0x013cn, 0x4f2en, 0x412en, 0x00c4n, 0x00c5n];

/**
 * x86_pmu_add's counter: a fixed counter where the event has one (perf prefers them), else the first free GP; none for
 * an event CPUID.0AH.EBX marks unavailable (perf_event_open fails with -ENOENT).
 */
function schedule(s: Shadow, spec: DriverEventSpec): number | null {
  const arch = ARCH_EVENTS.indexOf(spec.event);
  if (arch >= 0 && ((s.unavailable >>> arch) & 1) === 1) return null;
  const j = FIXED_EVENTS.indexOf(spec.event);
  if (j >= 0 && j < s.nFixed && !s.events.has(32 + j)) return 32 + j;
  if (spec.event === 0x0300n) return null; // ref-cycles exist only on fixed counter 2
  for (let i = 0; i < s.nGP; i++) if (!s.events.has(i)) return i;
  return null;
}

function newEv(s: Shadow, spec: DriverEventSpec, idx: number): Ev {
  const sampling = spec.period !== 0n;
  const period = sampling ? spec.period : s.maxPeriod; // counting events take max_period and fold at each wrap
  const config =
    idx >= 32
      ? INTEL_FIXED_0_ENABLE_PMI | (spec.os ? INTEL_FIXED_0_KERNEL : 0n) | (spec.usr ? INTEL_FIXED_0_USER : 0n)
      : (spec.event & 0xffffn) |
        ARCH_PERFMON_EVENTSEL_INT |
        (spec.usr ? ARCH_PERFMON_EVENTSEL_USR : 0n) |
        (spec.os ? ARCH_PERFMON_EVENTSEL_OS : 0n);
  return { spec, idx, config, sampling, period, left: period, prev: 0n, count: 0n, samples: 0 };
}

// ---- the PMI handlers ----

/** intel_pmu_reset: what the handler does when the loop is stuck. */
function* pmuReset(s: Shadow): Sub<void> {
  for (let i = 0; i < s.nGP; i++) {
    yield* wr(MSR_P6_EVNTSEL0 + i, 0n);
    yield* wr(s.base + i, 0n);
  }
  for (let j = 0; j < s.nFixed; j++) yield* wr(MSR_CORE_PERF_FIXED_CTR0 + j, 0n);
  const st = yield* rd(MSR_CORE_PERF_GLOBAL_STATUS);
  if (st !== null && st !== 0n) yield* wr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, st);
  yield* wr(MSR_CORE_PERF_GLOBAL_CTRL, 0n);
  yield* lbrDisable(s);
}

/** intel_pmu_handle_irq + handle_pmi_common (PMU v2 to v6). */
function* handleIrq(s: Shadow): Routine {
  const lvtpc = () => wr(X2APIC_LVTPC, s.params.lvtpc);
  if (s.params.ack === 'early') yield* lvtpc();
  const wasEnabled = s.enabled;
  s.enabled = false;
  yield* wr(MSR_CORE_PERF_GLOBAL_CTRL, 0n); // __intel_pmu_disable_all(true): the LBRs are left to the freeze
  let status = (yield* rd(MSR_CORE_PERF_GLOBAL_STATUS)) ?? 0n;
  let handled = 0;
  for (let loops = 1; status !== 0n; loops++) {
    yield* lbrRead(s);
    yield* wr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, status); // intel_pmu_ack_status: the raw value read
    if (loops > 100) {
      yield* pmuReset(s); // "perfevents: irq loop stuck!"
      break;
    }
    // handle_pmi_common: CondChgd, ASCI and LBR_FRZ dropped, then what is left of intel_ctrl.
    const counters = status & s.intelCtrl;
    for (const i of setBits(counters)) {
      handled++;
      const e = s.events.get(i);
      if (e === undefined) continue;
      yield* update(s, e); // intel_pmu_save_and_restart
      if ((yield* set_period(s, e)) && e.sampling) e.samples++;
    }
    status = (yield* rd(MSR_CORE_PERF_GLOBAL_STATUS)) ?? 0n;
  }
  if (handled === 0) s.unknownNmis++;
  if (s.params.ack === 'mid') yield* lvtpc();
  s.enabled = wasEnabled;
  if (wasEnabled) yield* intelEnableAll(s, true);
  if (s.params.ack === 'late') yield* lvtpc();
}

/** x86_pmu_handle_irq (PMU v1): LVTPC first; a counter whose top bit is clear overflowed. */
function* handleIrqV1(s: Shadow): Routine {
  yield* wr(X2APIC_LVTPC, s.params.lvtpc);
  let handled = 0;
  const top = (s.cntMask + 1n) >> 1n;
  for (const e of activeGp(s)) {
    const raw = yield* update(s, e);
    if ((raw & top) !== 0n) continue; // still negative: not this counter
    handled++;
    if ((yield* set_period(s, e)) && e.sampling) e.samples++;
  }
  if (handled === 0) s.unknownNmis++;
}

function* nmi(s: Shadow): Routine {
  if (s.broken) return;
  if (s.version > 1) yield* handleIrq(s);
  else yield* handleIrqV1(s);
}

// ---- kvm-unit-tests (x86/pmu.c, lib/x86/pmu.c; ../shared/guest-drivers.md §2) ----

/**
 * check_counter_overflow for one counter: LVTPC unmasked, GLOBAL_STATUS cleared (pmu_clear_global_status), the
 * counter counting instructions from `-left` (__start_event), the units and emulated instructions, the counter
 * stopped and read (__stop_event), then the status read, acknowledged and read again. A PMI that comes on the way is
 * compared where it comes; the guest's perf handler sees it after the routine, as any PMI.
 */
function* checkOverflow(s: Shadow, g: GuestConfig, spec: DriverOverflowSpec, units: readonly WorkUnit[]): Routine {
  yield* probeCaps(s, g);
  if (s.broken) return;
  const fixed = spec.counter >= 32;
  if (fixed && s.nFixed === 0) return;
  const idx = fixed ? 32 : spec.counter % s.nGP;
  const global = s.version > 1;
  yield* wr(X2APIC_LVTPC, s.params.lvtpc);
  if (global) {
    const st = (yield* rd(MSR_CORE_PERF_GLOBAL_STATUS)) ?? 0n;
    yield* wr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, st);
  }
  const field = 0xfn << fixedShift(idx);
  let ctrl = 0n;
  if (fixed) {
    const mask = lowMask((g.cpuid.leaf0a.edx >>> 5) & 0xff);
    ctrl = (yield* rd(MSR_CORE_PERF_FIXED_CTR_CTRL)) ?? 0n;
    yield* wr(MSR_CORE_PERF_FIXED_CTR_CTRL, ctrl & ~field);
    yield* wr(MSR_CORE_PERF_FIXED_CTR0, -spec.left & mask);
    const on = INTEL_FIXED_0_KERNEL | INTEL_FIXED_0_USER | (spec.int ? INTEL_FIXED_0_ENABLE_PMI : 0n);
    yield* wr(MSR_CORE_PERF_FIXED_CTR_CTRL, (ctrl & ~field) | (on << fixedShift(idx)));
  } else {
    const config =
      0xc0n | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | (spec.int ? ARCH_PERFMON_EVENTSEL_INT : 0n);
    yield* wr(MSR_P6_EVNTSEL0 + idx, 0n);
    yield* wr(counterMsr(s, idx), -spec.left & s.cntMask);
    yield* wr(MSR_P6_EVNTSEL0 + idx, config | ARCH_PERFMON_EVENTSEL_ENABLE);
  }
  const bitOf = 1n << BigInt(idx);
  if (global) {
    const c = (yield* rd(MSR_CORE_PERF_GLOBAL_CTRL)) ?? 0n;
    yield* wr(MSR_CORE_PERF_GLOBAL_CTRL, c | bitOf);
  }
  for (const unit of units) yield { op: 'run', unit };
  for (let i = 0; i < spec.fep; i++) yield { op: 'emulate', insn: 'mov', cpl: 0 };
  if (global) {
    const c = (yield* rd(MSR_CORE_PERF_GLOBAL_CTRL)) ?? 0n;
    yield* wr(MSR_CORE_PERF_GLOBAL_CTRL, c & ~bitOf);
  }
  if (fixed) yield* wr(MSR_CORE_PERF_FIXED_CTR_CTRL, ctrl & ~field);
  else yield* wr(MSR_P6_EVNTSEL0 + idx, 0n);
  yield* rd(counterMsr(s, idx));
  if (!global) return;
  const st = (yield* rd(MSR_CORE_PERF_GLOBAL_STATUS)) ?? 0n;
  yield* wr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, st);
  yield* rd(MSR_CORE_PERF_GLOBAL_STATUS);
}

// ---- the commands' routines ----

/** A guest step a driver command asks for. */
export type DriverAction =
  | { readonly kind: 'boot'; readonly params: DriverParams }
  | { readonly kind: 'open'; readonly events: readonly DriverEventSpec[] }
  | { readonly kind: 'close'; readonly k: number }
  | { readonly kind: 'run'; readonly units: readonly WorkUnit[] }
  | { readonly kind: 'switch'; readonly units: readonly WorkUnit[] }
  | { readonly kind: 'nmi' }
  | { readonly kind: 'lbr'; readonly lbr: DriverLbrSpec }
  | { readonly kind: 'overflow'; readonly spec: DriverOverflowSpec; readonly units: readonly WorkUnit[] };

/** perf_event_open + the perf_pmu_disable/enable around x86_pmu_add (events that find no counter are left out). */
function* open(s: Shadow, g: GuestConfig, specs: readonly DriverEventSpec[]): Routine {
  yield* probeCaps(s, g);
  if (s.broken) return;
  yield* disableAll(s);
  const added: Ev[] = [];
  for (const spec of specs) {
    const idx = schedule(s, spec);
    if (idx === null) continue;
    const e = newEv(s, spec, idx);
    s.events.set(idx, e);
    added.push(e);
  }
  yield* enableAll(s, added);
}

/** perf_event_release of the k-th active event: x86_pmu_del inside perf_pmu_disable/enable. */
function* close(s: Shadow, k: number): Routine {
  const evs = [...s.events.values()].sort((a, b) => a.idx - b.idx);
  if (s.broken || evs.length === 0) return;
  const e = evs[k % evs.length]!;
  yield* disableAll(s);
  yield* stop(s, e);
  s.events.delete(e.idx);
  yield* enableAll(s, []);
}

/** An LBR user arrives (intel_pmu_lbr_add: the first one resets the LBRs); enable writes its selection. */
function* addLbr(s: Shadow, g: GuestConfig, spec: DriverLbrSpec): Routine {
  yield* probeCaps(s, g);
  if (s.broken || s.lbrGeom === null) return;
  yield* disableAll(s);
  if (s.lbr === null) yield* lbrReset(s.lbrGeom);
  s.lbr = spec;
  yield* enableAll(s, []);
}

/**
 * A context switch away from the task that owns the events and back (perf_event_task_sched_out/in):
 * the LBR call stack saved, every event stopped and its count folded; the other task's units run;
 * then the events started again at -period_left and the call stack restored.
 */
function* schedOut(s: Shadow): Sub<readonly Ev[]> {
  if (s.broken || (s.events.size === 0 && s.lbr === null)) return []; // no perf context on the task
  yield* disableAll(s);
  const g = s.lbrGeom;
  if (s.lbr !== null && g !== null && s.lbr.callStack) {
    const tos = (yield* rd(MSR_LBR_TOS)) ?? 0n;
    const entries: { from: bigint; to: bigint; info: bigint }[] = [];
    for (let i = 0; i < g.nr; i++) {
      const x = Number((tos - BigInt(i)) & BigInt(g.nr - 1));
      const from = (yield* rd(g.from + x)) ?? 0n;
      if (from === 0n) break;
      const to = (yield* rd(g.to + x)) ?? 0n;
      const info = g.info !== 0 ? ((yield* rd(g.info + x)) ?? 0n) : 0n;
      entries.push({ from, to, info });
    }
    const select = g.select ? ((yield* rd(MSR_LBR_SELECT)) ?? 0n) : 0n;
    s.lbrSaved = { tos, entries, select };
  }
  const evs = [...s.events.values()].sort((a, b) => a.idx - b.idx);
  for (const e of evs) yield* stop(s, e);
  s.events.clear();
  yield* enableAll(s, []);
  return evs;
}

function* schedIn(s: Shadow, evs: readonly Ev[]): Sub<void> {
  if (s.broken || (evs.length === 0 && s.lbr === null)) return;
  yield* disableAll(s);
  for (const e of evs) s.events.set(e.idx, e);
  yield* enableAll(s, evs);
  const g = s.lbrGeom;
  if (s.lbr === null || g === null) return;
  const saved = s.lbrSaved;
  if (!s.lbr.callStack || saved === null) {
    yield* lbrReset(g);
    return;
  }
  // __intel_pmu_lbr_restore: the saved entries from TOS downward, zeros for the rest.
  for (let i = 0; i < g.nr; i++) {
    const x = Number((saved.tos - BigInt(i)) & BigInt(g.nr - 1));
    const e = saved.entries[i];
    yield* wr(g.from + x, e?.from ?? 0n);
    yield* wr(g.to + x, e?.to ?? 0n);
    if (g.info !== 0) yield* wr(g.info + x, e?.info ?? 0n);
  }
  yield* wr(MSR_LBR_TOS, saved.tos);
  if (g.select) yield* wr(MSR_LBR_SELECT, saved.select);
  s.lbrSaved = null;
}

// ---- running a routine on both sides ----

/** The driver state of each side, per vCPU of a world (guest memory survives migration and save/restore). */
const shadows = new WeakMap<World, Map<number, { sut: Shadow; oracle: Shadow }>>();

type BothShadows = { sut: Shadow; oracle: Shadow };

function shadowMap(w: World): Map<number, BothShadows> {
  let m = shadows.get(w);
  if (m === undefined) shadows.set(w, (m = new Map<number, BothShadows>()));
  return m;
}

function shadowsOf(w: World, v: number): BothShadows {
  const m = shadowMap(w);
  let s = m.get(v);
  if (s === undefined) {
    const fresh = newShadow(w.guestConfig(v), w.config.host, DEFAULT_DRIVER);
    m.set(v, (s = { sut: fresh, oracle: cloneShadow(fresh) }));
  }
  return s;
}

/** Executes one step on both sides: the observations and what each side learned. */
function execute(w: World, v: number, step: DriverStep): { obs: Observation[]; sut: StepResult; oracle: StepResult } {
  const obs =
    step.op === 'rdmsr'
      ? w.guestRdmsr(v, step.msr)
      : step.op === 'wrmsr'
        ? w.guestWrmsr(v, step.msr, step.value)
        : step.op === 'rdpmc'
          ? w.guestRdpmc(v, step.ecx, 0)
          : step.op === 'emulate'
            ? w.guestEmulate(v, step.insn, step.cpl, false)
            : w.guestRun(v, [step.unit]);
  const main = obs[0]!;
  const pmi = obs.find((o) => o.kind === 'pmi') ?? main;
  const result = (side: 'sut' | 'oracle'): StepResult => ({
    value: main[side].kind === 'value' ? main[side].value : null,
    gp: main[side].kind === 'gp',
    pmi: pmisOf(pmi[side]).length > 0,
  });
  return { obs, sut: result('sut'), oracle: result('oracle') };
}

/** The two sides' routines and shadows, or null for a side with nothing to run. */
interface Sides {
  readonly sut: Routine | null;
  readonly oracle: Routine | null;
}

/**
 * Steps both sides' routines together. `check` sees each step's observations (the command throws
 * there at a divergence when the world compares). Where the sides issue different steps, the world
 * records a 'driver' observation (the step each side would take, and the first observation of the
 * routine where the sides differed) and both routines end. False when they parted.
 */
function lockstep(
  w: World,
  v: number,
  name: string,
  sides: Sides,
  sh: { sut: Shadow; oracle: Shadow },
  check: (obs: readonly Observation[]) => void,
): boolean {
  let cause: number | null = null;
  let s = sides.sut?.next() ?? null;
  let o = sides.oracle?.next() ?? null;
  for (;;) {
    const sd = s === null || s.done === true ? null : s.value;
    const od = o === null || o.done === true ? null : o.value;
    if (sd === null && od === null) return true;
    if (sd === null || od === null || !sameStep(sd, od)) {
      w.beginStep();
      const fork = w.record({
        vcpu: v,
        kind: 'driver',
        target: null,
        value: null,
        driver: { routine: name, cause },
        sut: { kind: 'step', step: sd },
        oracle: { kind: 'step', step: od },
      });
      check([fork]);
      return false;
    }
    const r = execute(w, v, sd);
    check(r.obs);
    if (cause === null) {
      const d = r.obs.find(diverges);
      if (d !== undefined) cause = d.step;
    }
    if (r.sut.pmi) sh.sut.pending = true;
    if (r.oracle.pmi) sh.oracle.pending = true;
    s = sides.sut!.next(r.sut);
    o = sides.oracle!.next(r.oracle);
  }
}

/** At most this many handler runs per command: a PMI storm on one side shows long before. */
const MAX_HANDLER_RUNS = 3;

/** Runs the PMI handler on each side that has a PMI pending, until neither has; false if the sides parted. */
function drainPmis(
  w: World,
  v: number,
  sh: { sut: Shadow; oracle: Shadow },
  check: (obs: readonly Observation[]) => void,
): boolean {
  for (let n = 0; n < MAX_HANDLER_RUNS && (sh.sut.pending || sh.oracle.pending); n++) {
    const sides = {
      sut: sh.sut.pending ? nmi(sh.sut) : null,
      oracle: sh.oracle.pending ? nmi(sh.oracle) : null,
    };
    sh.sut.pending = false;
    sh.oracle.pending = false;
    if (!lockstep(w, v, 'PMI handler', sides, sh, check)) return false;
  }
  return true;
}

/** One driver command on vCPU `vcpu`: its routine on both sides, each on its own observations, then any pending PMI. */
export function runDriver(w: World, vcpu: number, a: DriverAction, check: (obs: readonly Observation[]) => void): void {
  const v = w.index(vcpu);
  const g = w.guestConfig(v);
  if (a.kind === 'boot') {
    const fresh = newShadow(g, w.config.host, a.params);
    shadowMap(w).set(v, { sut: fresh, oracle: cloneShadow(fresh) });
  }
  const sh = shadowsOf(w, v);
  const both = (name: string, mk: (s: Shadow) => Routine) =>
    lockstep(w, v, name, { sut: mk(sh.sut), oracle: mk(sh.oracle) }, sh, check) && drainPmis(w, v, sh, check);
  switch (a.kind) {
    case 'boot':
      both('boot probe', (s) => bootProbe(s, g));
      return;
    case 'open':
      both('perf_event_open', (s) => open(s, g, a.events));
      return;
    case 'close':
      both('perf_event_release', (s) => close(s, a.k));
      return;
    case 'lbr':
      both('LBR user', (s) => addLbr(s, g, a.lbr));
      return;
    case 'overflow':
      both('check_counter_overflow', (s) => checkOverflow(s, g, a.spec, a.units));
      return;
    case 'nmi':
      sh.sut.pending = !sh.sut.broken;
      sh.oracle.pending = !sh.oracle.broken;
      drainPmis(w, v, sh, check);
      return;
    case 'run':
      // Unit by unit: a PMI after a unit runs the handler before the next one.
      for (const unit of a.units)
        if (
          !both('workload', function* () {
            yield { op: 'run', unit };
          })
        )
          return;
      return;
    case 'switch': {
      const out = { sut: [] as readonly Ev[], oracle: [] as readonly Ev[] };
      const ran = lockstep(
        w,
        v,
        'context switch out',
        {
          sut: (function* () {
            out.sut = yield* schedOut(sh.sut);
          })(),
          oracle: (function* () {
            out.oracle = yield* schedOut(sh.oracle);
          })(),
        },
        sh,
        check,
      );
      if (!ran || !drainPmis(w, v, sh, check)) return;
      for (const unit of a.units)
        if (
          !both('other task', function* () {
            yield { op: 'run', unit };
          })
        )
          return;
      const sides = { sut: schedIn(sh.sut, out.sut), oracle: schedIn(sh.oracle, out.oracle) };
      if (lockstep(w, v, 'context switch in', sides, sh, check)) drainPmis(w, v, sh, check);
      return;
    }
  }
}
