/**
 * The world one program runs in: a host of simulated pCPUs running a vPMU design (the system
 * under test), and beside it, for each vCPU, an ideal bare-metal CPU of the guest's enumeration
 * (the oracle). Every guest command runs on both; the world records both sides' observations.
 */

import type { Access } from '../model/hw/access.js';
import { NO_COUNTERS, type PmiDelivery, type XsaveResult } from '../model/hw/cpu.js';
import type { ArchLbrXsave } from '../model/hw/msr/lbr_arch.js';
import { ProfileError } from '../model/hw/errors.js';
import { relied } from '../model/hw/relied.js';
import { bit, setBits } from '../model/hw/bits.js';
import { defineProfile, type Profile } from '../model/hw/profile.js';
import { RETIRED_AT_CPL, type WorkUnit } from '../model/hw/work.js';
import { HostKernel } from '../model/host/perf.js';
import type { PerfEvent, PerfEventAttr } from '../model/host/types.js';
import {
  type GuestCpuid,
  type GuestPmi,
  KernelOops,
  KvmIoctlError,
  type EmulatedInsn,
  type KvmPmuEventFilter,
  type VmSetup,
  type VpmuVcpu,
} from '../model/kvm/types.js';
import { counterIndexOf, isCounterControl, OracleCpu } from './oracle_filter.js';

export { counterIndexOf };
import { restoreVcpu, saveVcpu } from './restore.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_PERF_METRICS } from '../model/hw/msr/capabilities.js';
import {
  ACCEPTED,
  gpOutcome,
  type HostOp,
  type Impossible,
  type InstructionKind,
  NONE,
  type Observation,
  oopsOutcome,
  type Outcome,
  pmisOutcome,
  valueOutcome,
  type VmmOp,
} from './observation.js';

/** Vector the SUT reports for an NMI-mode PMI (decision K8); the oracle is normalised to it (W2). */
export const NMI_VECTOR = 2;

/** How a design creates a vCPU on a host, in a VM of its own the VMM set up first (VmSetup). */
export type VcpuFactory = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid } & VmSetup) => VpmuVcpu;

/** How a world builds its host kernel; a ported host-side bug substitutes its patched perf. */
export type HostKernelFactory = (opts: { profile: Profile; cpus: number }) => HostKernel;

/** Bare metal's GLOBAL_STATUS and counter registers before a guest instruction (World.savedAtExit). */
interface BareMetalBefore {
  readonly status: bigint;
  readonly pmc: readonly bigint[];
  readonly fixed: readonly bigint[];
}

export interface GuestConfig {
  readonly cpuid: GuestCpuid;
  /** What userspace writes to PERF_CAPABILITIES before the first run (ignored without PDCM). */
  readonly perfCapabilities: bigint;
  /**
   * KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY, pmuCap) on the vCPU's VM before KVM_CREATE_VCPU, as QEMU does for
   * `-cpu ...,pmu=off` (KVM_PMU_CAP_DISABLE, 1: the VM's vCPUs get no vPMU); absent: not issued.
   */
  readonly pmuCap?: bigint;
}

export interface WorldConfig {
  readonly host: Profile;
  readonly cpus: number;
  readonly guests: readonly GuestConfig[];
  readonly design: VcpuFactory;
  /** Compare each observation with bare metal as it is made (default); off to record only. */
  readonly compare?: boolean;
  /** The host kernel (default: upstream's perf); a ported host-side bug patches it here. */
  readonly hostKernel?: HostKernelFactory | undefined;
  /** Declared divergences bare metal takes on, so comparison goes on past them (W6). */
  readonly adopt?: Adoption | undefined;
}

/** A guest MSR access and the design's answer: what a declared divergence may adopt (W6). */
export interface MsrAttempt {
  /** The vCPU's index, as its observations number it. */
  readonly vcpu: number;
  readonly kind: 'rdmsr' | 'wrmsr';
  readonly msr: number;
  /** The value written (wrmsr), else null. */
  readonly value: bigint | null;
  readonly sut: Access;
  /** The vCPU's model at the time of the access. */
  readonly guest: GuestConfig;
  /**
   * KVM_SET_MSRS from the VMM (host_initiated), not a guest WRMSR, with what KVM reports it supports of
   * PERF_CAPABILITIES (its feature MSR): a host-initiated DEBUGCTL write is judged on that, not on the guest's CPUID.
   */
  readonly hostInitiated?: { readonly supportedPerfCapabilities: bigint };
}

/** How bare metal takes on declared divergences (W6): for one access, at a VMM step, or as the CPU it is. */
export interface Adoption {
  /**
   * Bare metal's #GP replaced by the design's result (the oracle then retires the access): the divergence's id, or
   * null.
   */
  readonly result: (
    a: MsrAttempt & { readonly oracle: Access },
  ) => { readonly id: string; readonly result: Access } | null;
  /**
   * The design's #GP taken by bare metal too, before any effect (the oracle's state stays as it was): the id, or null.
   */
  readonly fault: (a: MsrAttempt) => string | null;
  /**
   * A write the design accepted, of a value the declared mechanism narrows (bits dropped, a field masked): what bare
   * metal is written instead, and the id, or null.
   */
  readonly value: (a: MsrAttempt) => { readonly id: string; readonly value: bigint } | null;
  /** At a VMM step, bare metal takes on what a declared mechanism does there: the ids of those that changed it. */
  readonly step: (op: VmmOp, oracle: OracleCpu, guest: GuestConfig) => readonly string[];
  /** The declaration under which a bare-metal CPU of this guest ignores FREEZE_LBRS_ON_PMI, or null. */
  readonly noLbrFreeze: (guest: GuestConfig) => string | null;
  /**
   * A read both sides answered with different values: the declaration whose mechanism alone explains the difference,
   * bare metal then reading the design's value, or null.
   */
  readonly read: (a: MsrAttempt & { readonly oracle: Access }, history: readonly Observation[]) => string | null;
  /** The declaration under which bare metal's counters overflow when KVM's perf events do (perf's period floor), or null. */
  readonly periodFloor: (guest: GuestConfig) => string | null;
}

/**
 * What the world knows besides its observations, for judging a divergence where it happens: bare metal's side and
 * the scheduler's, never the design's state.
 */
export interface WorldFacts {
  readonly cpus: number;
  /** The pCPU vCPU `v`'s thread started on (migrations and save/restores record where it went). */
  initialCpu(v: number): number;
  /** The guest vCPU `v` was created as, before any KVM_SET_CPUID2 or KVM_SET_MSRS of the VMM's. */
  initialGuest(v: number): GuestConfig;
  /**
   * Bare metal's counter `idx` (GP i, fixed j as 32 + j) of vCPU `v` now; the value the guest's last accepted write
   * left in it (null if none); whether perf would have armed its event with one event left (the counter stood at -1
   * when written, when a control write or a reschedule re-armed it) since that write.
   */
  oracleCounter(
    v: number,
    idx: number,
  ): {
    readonly value: bigint;
    readonly written: bigint | null;
    readonly armedAtMinusOne: boolean;
    /** Armed so, it wrapped during guest work while LVTPC was masked: bare metal dropped that PMI (D7). */
    readonly pmiDropped: boolean;
  } | null;
  /** Bare metal's LVTPC of vCPU `v` now, or null. */
  oracleLvtpc(v: number): bigint | null;
  /** Every record of the kind `msr` names (legacy LBR FROM, TO or INFO) in bare metal's LBRs of vCPU `v` now, or null. */
  oracleLbrRecords(v: number, msr: number): readonly bigint[] | null;
  /**
   * The GLOBAL_STATUS bits bare metal holds now for counters that wrapped after perf would have armed them at -1 (see
   * oracleCounter), also where the guest has written the counter since, until bare metal clears the bit.
   */
  oracleArmedWrapStatus(v: number): bigint;
}

export class SetupError extends Error {
  override readonly name = 'SetupError';
}

/** The VM the VMM sets up for a guest before its vCPU: KVM_CAP_PMU_CAPABILITY where the guest asks for it. */
export function vmSetupOf(g: GuestConfig): VmSetup {
  return g.pmuCap === undefined ? {} : { pmuCap: g.pmuCap };
}

/** KVM_CREATE_VM, its VM ioctls, KVM_CREATE_VCPU: a refused VM ioctl is a setup the VMM cannot make. */
function createVcpu(
  design: VcpuFactory,
  host: HostKernel,
  opts: { cpu: number; cpuid: GuestCpuid } & VmSetup,
): VpmuVcpu {
  try {
    return design(host, opts);
  } catch (e) {
    if (e instanceof KvmIoctlError) throw new SetupError(e.message);
    throw e;
  }
}

const oracleProfiles = new WeakMap<GuestConfig, Map<Profile, Profile>>();

/** The bare-metal CPU a guest of this CPUID and PERF_CAPABILITIES would be (one per config and host). */
export function oracleProfile(host: Profile, g: GuestConfig): Profile {
  let byHost = oracleProfiles.get(g);
  if (byHost === undefined) oracleProfiles.set(g, (byHost = new Map<Profile, Profile>()));
  const cached = byHost.get(host);
  if (cached !== undefined) return cached;
  const p = oracleProfileByContent(host, g);
  byHost.set(host, p);
  return p;
}

/**
 * Per host, the oracle profiles of configs with the same content: each program draws a fresh config object, and a
 * shared (frozen) profile keeps its MSR file and per-profile caches. Bounded, since a soak draws without end.
 */
const byContent = new WeakMap<Profile, Map<string, Profile>>();
const MAX_CONTENTS = 512;
function oracleProfileByContent(host: Profile, g: GuestConfig): Profile {
  let m = byContent.get(host);
  if (m === undefined) byContent.set(host, (m = new Map<string, Profile>()));
  const c = g.cpuid;
  const r = (x: { eax: number; ebx: number; ecx: number; edx: number } | undefined) =>
    x === undefined ? '-' : `${x.eax},${x.ebx},${x.ecx},${x.edx}`;
  // Every field makeOracleProfile reads.
  const key = `${c.family}:${c.model}:${r(c.leaf0a)}:${c.pdcm}:${g.perfCapabilities}:${c.tsx}:${c.archLbr}:${r(c.leaf1c)}`;
  let p = m.get(key);
  if (p === undefined) {
    p = makeOracleProfile(host, g);
    if (m.size >= MAX_CONTENTS) m.clear();
    m.set(key, p);
  }
  return p;
}

/**
 * Why no CPU enumerates what the guest was given (its bare-metal oracle cannot be built), or null.
 * A model KVM accepts that no CPU has is a finding of its own (decision W4).
 */
export function impossibleEnumeration(host: Profile, g: GuestConfig): Impossible | null {
  try {
    oracleProfile(host, g);
    return null;
  } catch (e) {
    if (e instanceof ProfileError) {
      relied('W4');
      return { rule: e.rule, why: e.message };
    }
    throw e;
  }
}

function makeOracleProfile(host: Profile, g: GuestConfig): Profile {
  const caps = g.cpuid.pdcm ? g.perfCapabilities : 0n;
  const fmt = Number(caps & 0x3fn);
  return defineProfile({
    name: 'guest',
    family: g.cpuid.family,
    model: g.cpuid.model,
    leaf0a: g.cpuid.leaf0a,
    pdcm: g.cpuid.pdcm,
    perfCapabilities: caps,
    // The LBR geometry is model-specific: a guest with the host's format and FMS has the host's.
    ...(fmt >= 1 && fmt <= 7 && host.legacyLbr !== undefined ? { legacyLbr: host.legacyLbr } : {}),
    ...(g.cpuid.tsx === true ? { tsx: true } : {}),
    // CPUID.1CH means something only with CPUID.(7,0):EDX[19].
    ...(g.cpuid.archLbr === true ? { leaf1c: g.cpuid.leaf1c ?? { eax: 0, ebx: 0, ecx: 0, edx: 0 } } : {}),
    // The PERF_METRICS layout is model-specific too: the host's level-2 bytes with the host's model.
    ...((caps & PERF_CAP_PERF_METRICS) !== 0n && host.topdownL2 && g.cpuid.model === host.model
      ? { topdownL2: true }
      : {}),
  });
}

/** A read's outcome: its value, or #GP with the rule. */
const readOutcome = (a: Access | KernelOops): Outcome =>
  a instanceof KernelOops ? oopsOutcome(a.message) : a.ok ? valueOutcome(a.value) : gpOutcome(a.gp, a.reservedBits);
/** A write's outcome: only whether it faulted (W3). */
const writeOutcome = (a: Access | KernelOops): Outcome =>
  a instanceof KernelOops ? oopsOutcome(a.message) : a.ok ? ACCEPTED : gpOutcome(a.gp, a.reservedBits);

/**
 * A guest instruction on the design: its result, or the KernelOops its host kernel died of (the
 * design's outcome, which the observation records, never a crash of the engine).
 */
function attempt(f: () => Access): Access | KernelOops {
  try {
    return f();
  } catch (e) {
    if (e instanceof KernelOops) return e;
    throw e;
  }
}

/** What an oops shows bare metal's adoption hooks: no fault of the design to adopt (W6). */
const NO_FAULT: Access = { ok: true, value: 0n };
/** Counter `i` armed at -1 in a vCPU's write record (made with bare metal's value on first sight). */
function armedAt(m: Map<number, { written: bigint; armedAtMinusOne: boolean }>, o: OracleCpu, i: number): void {
  const w = m.get(i);
  if (w === undefined) m.set(i, { written: o.counterValue(i)!, armedAtMinusOne: true });
  else w.armedAtMinusOne = true;
}

/** No PMI around an instruction: one array for all (nothing adds to it). */
const NO_PMI: readonly GuestPmi[] = Object.freeze([]);

/** What W6 adopted for one access, for the observation to say. */
type Adopted = Observation['adopted'];

export class World implements WorldFacts {
  readonly host: HostKernel;
  readonly vcpus: VpmuVcpu[] = [];
  readonly oracles: OracleCpu[] = [];
  readonly observations: Observation[] = [];
  private step = 0;

  /** Commands compare each observation with bare metal as it is made; false once the world only records. */
  comparing: boolean;
  /**
   * Called at the first divergence a command finds while comparing, with the world as it is there; true when the
   * program goes on recording only (a declared divergence whose weaker contract judges the rest), false to throw it.
   * It is handed the world so that it need not hold it: a hook holding its own world kept every program's world past
   * minor GCs (measured on quiet programs: three times as long in them).
   */
  onDivergence: ((o: Observation, w: World) => boolean) | undefined = undefined;

  /** A command that records several observations starts its step once (the VMM's round trip). */
  beginStep(): void {
    this.step++;
  }

  get cpus(): number {
    return this.config.cpus;
  }

  initialCpu(v: number): number {
    return v % this.config.cpus;
  }

  initialGuest(v: number): GuestConfig {
    return this.config.guests[v % this.config.guests.length]!;
  }

  /** Per vCPU and counter: what the guest's last accepted write left in bare metal's counter, and whether it was armed at -1 since. */
  private readonly counterWrites: Map<number, { written: bigint; armedAtMinusOne: boolean; pmiDropped?: true }>[] = [];

  oracleCounter(v: number, idx: number) {
    const o = this.oracles[v];
    if (o === undefined) return null;
    const value = o.counterValue(idx);
    if (value === undefined) return null;
    const w = this.counterWrites[v]?.get(idx);
    return {
      value,
      written: w?.written ?? null,
      armedAtMinusOne: w?.armedAtMinusOne ?? false,
      pmiDropped: w?.pmiDropped ?? false,
    };
  }

  oracleLvtpc(v: number): bigint | null {
    return this.oracles[v]?.view.lvtpc ?? null;
  }

  /**
   * Counters bare metal held at -1 where the vCPU may exit (after an instruction KVM emulates or intercepts, at a unit
   * boundary): a reprogram there (of a counter KVM counted in software, kvm_pmu_incr_counter, or on another counter's
   * overflow) arms perf with one event left (reprogram_counter → pmc_resume_counter → perf_event_period).
   */
  private noteArmedAtMinusOne(v: number, atMinusOne: Iterable<number>): void {
    const o = this.oracles[v]!;
    const m = (this.counterWrites[v] ??= new Map());
    // Where bare metal takes on perf's period floor, it knows where perf armed at -1 but for what it cannot tell.
    // Counters it leaves out (FIXED_CTR3) stay the matcher's, as without the adoption.
    if (o.periodFloorAdopted === null) for (const i of atMinusOne) armedAt(m, o, i);
    else {
      for (const i of o.takeUnsureArms()) armedAt(m, o, i);
      for (const i of atMinusOne) if (!o.periodFloorCovers(i)) armedAt(m, o, i);
    }
  }

  oracleLbrRecords(v: number, msr: number): readonly bigint[] | null {
    const o = this.oracles[v];
    const l = o?.profile.legacyLbr;
    if (o === undefined || l === undefined) return null;
    const s = o.view;
    const kinds = [
      [l.fromBase, s.lbrFrom],
      [l.toBase, s.lbrTo],
      [l.infoBase, s.lbrInfo],
    ] as const;
    const k = kinds.find(([base]) => base !== undefined && msr >= base && msr < base + l.depth);
    return k === undefined ? null : [...k[1]];
  }

  /** Per vCPU: status bits of counters rewritten after they wrapped armed at -1, while bare metal keeps the bit. */
  private readonly armedWraps: bigint[] = [];

  oracleArmedWrapStatus(v: number): bigint {
    const o = this.oracles[v];
    if (o === undefined) return 0n;
    let bits = this.armedWraps[v] ?? 0n;
    const minusOne = (i: number) => (i < 32 ? o.profile.gpMask : o.profile.fixedMask);
    for (const [i, w] of this.counterWrites[v] ?? [])
      if (w.armedAtMinusOne && o.counterValue(i) !== minusOne(i)) bits |= 1n << BigInt(i);
    return bits & o.view.globalStatus;
  }

  /** Of the counters in status bits `bits`, those armed at -1 (since a write) or at -1 at a boundary of this run. */
  private armedOrAt(v: number, bits: bigint, atMinusOne: ReadonlySet<number>): bigint {
    let out = 0n;
    for (const i of setBits(bits))
      if (atMinusOne.has(i) || this.counterWrites[v]?.get(i)?.armedAtMinusOne === true) out |= bit(i);
    return out;
  }

  /** Counters perf armed at -1 that bare metal now holds at 0: one event past, overflowed only on bare metal. */
  private oneEventPast(v: number): readonly number[] {
    const m = this.counterWrites[v];
    const o = this.oracles[v];
    if (m === undefined || o === undefined) return NO_COUNTERS;
    let out: number[] | null = null;
    for (const [i, w] of m) if (w.armedAtMinusOne && o.counterValue(i) === 0n) (out ??= []).push(i);
    return out ?? NO_COUNTERS;
  }

  /** A write bare metal took (a guest's, or the VMM's KVM_SET_MSRS): what perf arms its counters with afterwards. */
  noteWrite(v: number, msr: number): void {
    const idx = counterIndexOf(msr);
    if (idx !== null) this.noteCounters(v, idx);
    else if (isCounterControl(msr)) this.noteCounters(v, null);
  }

  /** After a guest write or a reschedule: which of bare metal's counters perf would now arm with one event left. */
  private noteCounters(v: number, written: number | null): void {
    const o = this.oracles[v]!;
    const p = o.profile;
    const m = (this.counterWrites[v] ??= new Map());
    if (written !== null) {
      // A rewrite ends the counter's arming, not the overflow bit its wrap left on bare metal (nor its loss under KVM).
      if (m.get(written)?.armedAtMinusOne === true)
        this.armedWraps[v] = ((this.armedWraps[v] ?? 0n) | (1n << BigInt(written))) & o.view.globalStatus;
      const value = o.counterValue(written)!;
      // Adopted, a write of -1 is unsure only while the counter runs (KVM arms it from the old base); else its
      // enabling write arms it, which bare metal takes on.
      const atMinusOne = value === (written < 32 ? p.gpMask : p.fixedMask);
      const unsure = !o.periodFloorCovers(written) || o.counterRunning(written);
      m.set(written, { written: value, armedAtMinusOne: atMinusOne && unsure });
      return;
    }
    this.noteArmedAtMinusOne(v, o.countersAtMinusOne());
  }

  constructor(readonly config: WorldConfig) {
    this.comparing = config.compare !== false;
    const make = config.hostKernel ?? ((o: { profile: Profile; cpus: number }) => new HostKernel(o));
    this.host = make({ profile: config.host, cpus: config.cpus });
    config.guests.forEach((asked, i) => {
      const v = createVcpu(config.design, this.host, { cpu: i % config.cpus, cpuid: asked.cpuid, ...vmSetupOf(asked) });
      const g = this.withSupportedCaps(v, asked);
      if (g !== asked) this.models[i] = g;
      if (g.cpuid.pdcm) {
        const r = v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, g.perfCapabilities);
        if (!r.ok)
          throw new SetupError(
            `vCPU ${i}: KVM_SET_MSRS PERF_CAPABILITIES=0x${g.perfCapabilities.toString(16)}: ${r.error}`,
          );
      }
      this.vcpus.push(v);
      this.oracles.push(this.newOracle(g));
    });
  }

  /**
   * What a VMM asks for, limited to what KVM supports (W5), as QEMU masks the guest's
   * PERF_CAPABILITIES with KVM's feature MSR (a design without LBRs gets no LBR format); the
   * bare-metal oracle is built from the same limited value.
   */
  withSupportedCaps(v: VpmuVcpu, g: GuestConfig): GuestConfig {
    if (!g.cpuid.pdcm) return g;
    const supported = v.supportedPerfCapabilities();
    if ((g.perfCapabilities & ~supported) === 0n) return g;
    relied('W5');
    return { ...g, perfCapabilities: g.perfCapabilities & supported };
  }

  record(o: Omit<Observation, 'step'>): Observation {
    return this.recorded({ step: this.step, ...o });
  }

  private recorded(r: Observation): Observation {
    this.observations.push(r);
    if (r.vcpu >= 0) {
      // KVM_RUN: any guest observation, or an exit from the guest; a restored vCPU is a fresh one.
      if (r.kind !== 'vmm' || r.vmm?.op === 'irq-exit') this.ran[r.vcpu] = true;
      else if (r.vmm?.op === 'save-restore') this.ran[r.vcpu] = false;
    }
    return r;
  }

  /** Per vCPU: has it entered the guest since it was created or restored? */
  private readonly ran: boolean[] = [];

  index(v: number): number {
    return ((v % this.vcpus.length) + this.vcpus.length) % this.vcpus.length;
  }

  /**
   * The oracle executes an MSR instruction: its effect, then (if it did not fault) its
   * retirement as one instruction at `cpl`, which may overflow and deliver a PMI (decision W1).
   */
  private oracleInstruction(
    o: OracleCpu,
    cpl: number,
    effect: () => Access,
    intercepted = true,
  ): { r: Access; pmis: readonly GuestPmi[] } {
    return this.retire(o, cpl, effect(), undefined, intercepted);
  }

  /** The retirement half of oracleInstruction, for a result already known; `adopted` says what W6 took on. */
  private retire(
    o: OracleCpu,
    cpl: number,
    r: Access,
    adopted?: Adopted,
    intercepted: boolean | number = true,
  ): { r: Access; pmis: readonly GuestPmi[]; adopted?: Adopted } {
    let pmis: readonly GuestPmi[] = NO_PMI;
    if (r.ok) {
      // An instruction KVM intercepts retires in KVM's software count, the others on the counters (XSAVES, XRSTORS);
      // an MSR access (its address given) may be passed through.
      const u = RETIRED_AT_CPL[cpl]!;
      const d =
        intercepted === false
          ? o.step(u)
          : o.retireIntercepted(u, typeof intercepted === 'number' ? intercepted : null);
      if (o.counted) relied('W1');
      if (d !== null) pmis = [{ afterUnit: 0, vector: vectorOf(d) }];
    }
    return adopted === undefined ? { r, pmis } : { r, pmis, adopted };
  }

  /** The instruction's observation and the PMIs around it (the design's are reported after it: afterUnit 0). */
  private compareInstruction(
    about: Pick<Observation, 'vcpu' | 'target' | 'value' | 'cpl' | 'insn' | 'adopted'> & {
      readonly kind: InstructionKind;
    },
    sut: Outcome,
    sutPmis: readonly GuestPmi[],
    oracle: { r: Outcome; pmis: readonly GuestPmi[] },
    between?: () => readonly GuestPmi[],
  ): Observation[] {
    const step = ++this.step;
    const v = about.vcpu;
    const atMinusOne = this.oracles[v]!.countersAtMinusOne();
    // Noted first: where bare metal takes on perf's floor, what it could not tell of this instruction is among them.
    this.noteArmedAtMinusOne(v, atMinusOne);
    const past = this.oneEventPast(v);
    // Only when some bit is kept: taking the oracle's state drops its counting cache.
    const wraps = this.armedWraps[v];
    if (wraps !== undefined && wraps !== 0n) this.armedWraps[v] = wraps & this.oracles[v]!.view.globalStatus;
    // Built field by field in the order a spread gives: object spread and rest here took a fifth of a program's run.
    const insn: Partial<Mutable<Observation>> = {
      step,
      vcpu: v,
      kind: about.kind,
      target: about.target,
      value: about.value,
    };
    const pmi: Partial<Mutable<Observation>> = { step, vcpu: v, target: about.target, value: about.value };
    if (about.cpl !== undefined) insn.cpl = pmi.cpl = about.cpl;
    if (about.insn !== undefined) insn.insn = pmi.insn = about.insn;
    if (about.adopted !== undefined) insn.adopted = pmi.adopted = about.adopted;
    insn.sut = sut;
    insn.oracle = oracle.r;
    if (atMinusOne.length > 0) insn.oracleAtMinusOne = atMinusOne;
    if (past.length > 0) insn.oracleOneEventPast = past;
    const done = this.recorded(insn as Observation);
    // What happened between the instruction and the delivery of its PMIs (a VMM's save at its exit), recorded in order.
    const later = between?.();
    pmi.kind = 'pmi';
    pmi.around = about.kind;
    // Only a save at the exit adds PMIs: every other instruction keeps its one array (the per-instruction path).
    const all = later === undefined || later.length === 0 ? sutPmis : [...sutPmis, ...later];
    pmi.sut = pmisOutcome(all.length === 0 ? all : all.map((p) => ({ afterUnit: 0, vector: p.vector })));
    pmi.oracle = pmisOutcome(oracle.pmis);
    if (past.length > 0) pmi.oracleOneEventPast = past;
    const o = this.oracles[v]!;
    if (o.droppedPmis !== 0n) {
      pmi.oracleDroppedPmis = o.droppedPmis;
      o.droppedPmis = 0n;
    }
    if (o.quietOverflows !== 0) {
      pmi.oracleQuietOverflows = o.quietOverflows;
      o.quietOverflows = 0;
    }
    return [done, this.recorded(pmi as Observation)];
  }

  /** Ids of the declared divergences bare metal took on (W6), in order. */
  readonly adopted: string[] = [];

  /**
   * Bare metal's answer to a guest MSR access, with a declared divergence adopted where one says
   * so (W6), and what the observation notes of it; the hooks run only when a side faulted.
   */
  private oracleMsr(
    v: number,
    kind: 'rdmsr' | 'wrmsr',
    msr: number,
    value: bigint,
    sut: Access,
  ): { r: Access; pmis: readonly GuestPmi[]; adopted?: Adopted } {
    const o = this.oracles[v]!;
    const adopt = this.config.adopt;
    const w = kind === 'wrmsr' ? value : null;
    if (adopt !== undefined && !sut.ok) {
      const id = adopt.fault({ vcpu: v, kind, msr, value: w, sut, guest: this.guestConfig(v) });
      if (id !== null) {
        relied('W6');
        this.adopted.push(id);
        return { r: sut, pmis: [], adopted: { id, bareMetal: 'does not fault' } };
      }
    }
    // A write the design took, of a value its declared mechanism narrows: bare metal is written what it keeps.
    const narrowed =
      adopt !== undefined && kind === 'wrmsr' && sut.ok
        ? adopt.value({ vcpu: v, kind, msr, value, sut, guest: this.guestConfig(v) })
        : null;
    const written = narrowed !== null && narrowed.value !== value ? narrowed : null;
    const r = kind === 'rdmsr' ? o.rdmsr(msr) : o.wrmsr(msr, written?.value ?? value);
    if (adopt !== undefined && kind === 'rdmsr' && sut.ok && r.ok && sut.value !== r.value) {
      const id = adopt.read(
        { vcpu: v, kind, msr, value: null, sut, guest: this.guestConfig(v), oracle: r },
        this.observations,
      );
      if (id !== null) {
        relied('W6');
        this.adopted.push(id);
        return this.retire(o, 0, sut, { id, read: r.value }, msr);
      }
    }
    if (written !== null && r.ok) {
      this.adopted.push(written.id);
      return this.retire(o, 0, r, { id: written.id, written: written.value }, msr);
    }
    // Only a #GP is adopted: a faulting access left the oracle's state as it was.
    if (adopt !== undefined && !r.ok) {
      const a = adopt.result({ vcpu: v, kind, msr, value: w, sut, guest: this.guestConfig(v), oracle: r });
      if (a !== null) {
        relied('W6');
        this.adopted.push(a.id);
        return this.retire(o, 0, a.result, { id: a.id, bareMetal: 'faults' }, msr);
      }
    }
    return this.retire(o, 0, r, undefined, msr);
  }

  guestRdmsr(vcpu: number, msr: number, saveRestoreTo?: number): Observation[] {
    const v = this.index(vcpu);
    const sut = attempt(() => this.vcpus[v]!.guestRdmsr(msr, saveRestoreTo !== undefined));
    const pm = this.vcpus[v]!.drainPmis();
    const before = this.bareMetalAt(v, saveRestoreTo, sut);
    const o = this.oracleMsr(v, 'rdmsr', msr, 0n, sut instanceof KernelOops ? NO_FAULT : sut);
    const about = { vcpu: v, kind: 'rdmsr', target: msr, value: null } as const;
    return this.compareInstruction(
      o.adopted === undefined ? about : { ...about, adopted: o.adopted },
      readOutcome(sut),
      pm,
      { r: readOutcome(o.r), pmis: o.pmis },
      before && (() => this.savedAtExit(v, saveRestoreTo!, before)),
    );
  }

  guestWrmsr(vcpu: number, msr: number, value: bigint, saveRestoreTo?: number): Observation[] {
    const v = this.index(vcpu);
    const sut = attempt(() => this.vcpus[v]!.guestWrmsr(msr, value, saveRestoreTo !== undefined));
    const pm = this.vcpus[v]!.drainPmis();
    const before = this.bareMetalAt(v, saveRestoreTo, sut);
    const o = this.oracleMsr(v, 'wrmsr', msr, value, sut instanceof KernelOops ? NO_FAULT : sut);
    if (o.r.ok) this.noteWrite(v, msr);
    const about = { vcpu: v, kind: 'wrmsr', target: msr, value } as const;
    return this.compareInstruction(
      o.adopted === undefined ? about : { ...about, adopted: o.adopted },
      writeOutcome(sut),
      pm,
      { r: writeOutcome(o.r), pmis: o.pmis },
      before && (() => this.savedAtExit(v, saveRestoreTo!, before)),
    );
  }

  guestRdpmc(vcpu: number, ecx: number, cpl: number, saveRestoreTo?: number): Observation[] {
    const v = this.index(vcpu);
    const sut = attempt(() => this.vcpus[v]!.guestRdpmc(ecx, cpl, saveRestoreTo !== undefined));
    const pm = this.vcpus[v]!.drainPmis();
    const before = this.bareMetalAt(v, saveRestoreTo, sut);
    const o = this.oracleInstruction(this.oracles[v]!, cpl, () => this.oracles[v]!.rdpmc(ecx, cpl));
    return this.compareInstruction(
      { vcpu: v, kind: 'rdpmc', target: ecx, value: null, cpl },
      readOutcome(sut),
      pm,
      { r: readOutcome(o.r), pmis: o.pmis },
      before && (() => this.savedAtExit(v, saveRestoreTo!, before)),
    );
  }

  /**
   * A forced-emulation instruction: KVM emulates it; bare metal retires the instruction alone (W7), which cannot
   * fault, so both sides show it retired and the comparison is of the PMIs around it.
   */
  guestEmulate(vcpu: number, insn: EmulatedInsn, cpl: number, taken: boolean, saveRestoreTo?: number): Observation[] {
    const v = this.index(vcpu);
    this.vcpus[v]!.guestEmulate(insn, cpl, saveRestoreTo !== undefined);
    const pm = this.vcpus[v]!.drainPmis();
    const before = this.bareMetalAt(v, saveRestoreTo, null);
    const o = this.oracles[v]!;
    const pmis: GuestPmi[] = [];
    const d = o.retireIntercepted(fepUnit(insn, cpl, taken));
    if (o.counted) relied('W7');
    if (d !== null) pmis.push({ afterUnit: 0, vector: vectorOf(d) });
    return this.compareInstruction(
      { vcpu: v, kind: 'emulate', target: null, value: null, cpl, insn },
      ACCEPTED,
      pm,
      { r: ACCEPTED, pmis },
      before && (() => this.savedAtExit(v, saveRestoreTo!, before)),
    );
  }

  guestRun(vcpu: number, units: readonly WorkUnit[]): Observation[] {
    const v = this.index(vcpu);
    const inserts = this.sutLbrInserts();
    const sut = this.vcpus[v]!.guestRun(units);
    const recorded = this.sutLbrInserts() !== inserts;
    const oracle: GuestPmi[] = [];
    const o = this.oracles[v]!;
    // Counters at -1 at a unit boundary, where the design's vCPU may exit (an NMI for any counter's overflow).
    const atMinusOne = new Set<number>();
    let atEnd: readonly number[] = [];
    o.droppedPmis = 0n; // an instruction's drops went with its observation
    o.quietOverflows = 0;
    let dropped = 0n; // of counters armed at -1
    let allDropped = 0n;
    units.forEach((u, i) => {
      const d = o.step(u);
      if (d !== null) oracle.push({ afterUnit: i, vector: vectorOf(d) });
      if (o.droppedPmis !== 0n) {
        dropped |= this.armedOrAt(v, o.droppedPmis, atMinusOne);
        allDropped |= o.droppedPmis;
        o.droppedPmis = 0n;
      }
      atEnd = o.countersAtMinusOne();
      for (const c of atEnd) atMinusOne.add(c);
    });
    this.noteArmedAtMinusOne(v, atMinusOne);
    if (dropped !== 0n)
      for (const [i, w] of this.counterWrites[v]!)
        if (w.armedAtMinusOne && (dropped & (1n << BigInt(i))) !== 0n) w.pmiDropped = true;
    this.step++;
    const about = {
      vcpu: v,
      kind: 'run',
      target: null,
      value: null,
      units: units.length,
      sut: pmisOutcome(sut),
      oracle: pmisOutcome(oracle),
    } as const;
    const quiet = o.quietOverflows;
    o.quietOverflows = 0;
    const withQuiet = quiet === 0 ? about : { ...about, oracleQuietOverflows: quiet };
    const withRecorded = recorded ? { ...withQuiet, sutLbrRecorded: true as const } : withQuiet;
    const withDropped = allDropped === 0n ? withRecorded : { ...withRecorded, oracleDroppedPmis: allDropped };
    return [
      this.record(
        atMinusOne.size > 0
          ? {
              ...withDropped,
              oracleAtMinusOne: [...atMinusOne],
              ...(atEnd.length > 0 ? { oracleAtMinusOneAtEnd: atEnd } : {}),
            }
          : withDropped,
      ),
    ];
  }

  /** LBR records the host's pCPUs have taken so far (a run that moves it moved some LBR_TOS of the design's). */
  private sutLbrInserts(): number {
    let n = 0;
    for (let c = 0; c < this.host.nrCpus; c++) n += this.host.pcpu(c).hw.lbrInserts;
    return n;
  }

  /** The last Arch LBR image each side saved, per vCPU: what GuestXrstors restores. */
  private readonly xsaved: { sut: ArchLbrXsave | null; oracle: ArchLbrXsave | null }[] = [];

  /** Guest XSAVES of the Arch LBR component (after setting IA32_XSS.LBR) on both sides. */
  guestXsaves(vcpu: number): Observation[] {
    const v = this.index(vcpu);
    const sut = this.vcpus[v]!.guestXsaves();
    const pm = this.vcpus[v]!.drainPmis();
    let oracleSave: XsaveResult = { ok: false, gp: 'not run' };
    const o = this.oracleInstruction(
      this.oracles[v]!,
      0,
      () => {
        oracleSave = this.oracles[v]!.xsaves();
        return oracleSave.ok ? { ok: true, value: 0n } : { ok: false, gp: oracleSave.gp };
      },
      false,
    );
    const saved = (this.xsaved[v] ??= { sut: null, oracle: null });
    const os = oracleSave as XsaveResult; // assigned inside the closure
    if (sut.ok) saved.sut = sut.area;
    if (os.ok) saved.oracle = os.area;
    return this.compareInstruction({ vcpu: v, kind: 'xsaves', target: null, value: null }, xsaveOutcome(sut), pm, {
      r: xsaveOutcome(os),
      pmis: o.pmis,
    });
  }

  /** Guest XRSTORS of the image it last saved (an empty restore when it saved none). */
  guestXrstors(vcpu: number): Observation[] {
    const v = this.index(vcpu);
    const saved = this.xsaved[v] ?? { sut: null, oracle: null };
    const sutArea = saved.sut ?? EMPTY_ARCH_LBR;
    const oracleArea = saved.oracle ?? EMPTY_ARCH_LBR;
    const sut = this.vcpus[v]!.guestXrstors(sutArea);
    const pm = this.vcpus[v]!.drainPmis();
    const o = this.oracleInstruction(this.oracles[v]!, 0, () => this.oracles[v]!.xrstors(oracleArea), false);
    return this.compareInstruction({ vcpu: v, kind: 'xrstors', target: null, value: null }, writeOutcome(sut), pm, {
      r: writeOutcome(o.r),
      pmis: o.pmis,
    });
  }

  /** Records a VMM step on vCPU `v` that neither side can see (a new step); bare metal takes on what is declared of it. */
  private vmmStep(v: number, target: number | null, op: VmmOp, sameStep = false): void {
    if (!sameStep) this.step++;
    this.record({ vcpu: v, kind: 'vmm', target, value: null, vmm: op, sut: NONE, oracle: NONE });
    const adopt = this.config.adopt;
    if (adopt !== undefined) this.adopted.push(...adopt.step(op, this.oracles[v]!, this.guestConfig(v)));
    if (op.op === 'migrate' || op.op === 'preempt') {
      this.oracles[v]!.kvmSchedIn();
      this.noteCounters(v, null); // sched-in re-arms every event
    }
    if (op.op === 'save-restore') this.oracles[v]!.kvmRecreate();
  }

  /** Records a host user's step (vCPU -1: the host), in the current step. */
  private hostStep(target: number | null, op: HostOp): void {
    this.record({ vcpu: -1, kind: 'host', target, value: null, host: op, sut: NONE, oracle: NONE });
  }

  /**
   * Another host task preempts the vCPU thread on its pCPU and runs `units` there
   * (kvm_sched_out, the task's slice, kvm_sched_in). Bare metal has nothing to do.
   */
  preempt(vcpu: number, units: readonly WorkUnit[]): void {
    const v = this.index(vcpu);
    const x = this.vcpus[v]!;
    x.preempt(() => this.host.runHost(x.cpu, units));
    this.vmmStep(v, x.cpu, { op: 'preempt', units: units.length });
  }

  /** A host user enables, disables, reads or closes the k-th live host event (modulo how many exist). */
  hostEventOp(k: number, op: 'enable' | 'disable' | 'read' | 'close'): void {
    this.step++;
    const live = this.hostEvents;
    if (live.length === 0) return;
    const ev = live[((k % live.length) + live.length) % live.length]!;
    const index = this.opened.indexOf(ev);
    if (op === 'read') this.hostStep(null, { op, index, count: this.host.perf_event_read_value(ev) });
    else {
      for (const o of this.oracles) o.hostEventChanged();
      if (op === 'enable') this.host.perf_event_enable(ev);
      else if (op === 'disable') this.host.perf_event_disable(ev);
      else {
        this.host.perf_event_release_kernel(ev);
        live.splice(live.indexOf(ev), 1);
        this.closed.push(ev);
      }
      this.hostStep(null, { op, index });
    }
  }

  /** Host events closed by host commands, in order (their counts are final). */
  readonly closed: PerfEvent[] = [];

  /** An NMI on a pCPU while the host runs (a backtrace IPI, a watchdog): perf's handler looks at it. */
  hostNmi(cpu: number): void {
    const c = ((cpu % this.config.cpus) + this.config.cpus) % this.config.cpus;
    this.host.intel_pmu_handle_irq(c);
    this.step++;
  }

  /**
   * Bare metal's GLOBAL_STATUS and counters before a guest instruction the VMM saves the vCPU at (`cpu` defined), which
   * `savedAtExit` compares after it; undefined for any other instruction, or one that brought the host down.
   */
  private bareMetalAt(v: number, cpu: number | undefined, sut: unknown): BareMetalBefore | undefined {
    if (cpu === undefined || sut instanceof KernelOops) return undefined;
    const s = this.oracles[v]!.view;
    return { status: s.globalStatus, pmc: [...s.pmc], fixed: [...s.fixed] };
  }

  /**
   * After a guest instruction whose exit the VMM's signal interrupted (KVM_RUN returned before the next VM-entry, its
   * requests pending): the VMM saves the vCPU and restores it onto pCPU `cpu`, then KVM_RUN resumes it. The PMIs of
   * that first VM-entry, which delivers what the instruction raised. The save is at the exit only where the instruction
   * exited; a passed-through one exits for the signal alone, with nothing pending: a plain save after it.
   */
  private savedAtExit(v: number, cpu: number, before: BareMetalBefore): GuestPmi[] {
    const s = this.oracles[v]!.state;
    // Counters that moved, and those that wrapped (a version 1 PMU has no GLOBAL_STATUS to show it).
    let counted = 0n;
    let wrapped = 0n;
    const note = (now: bigint, was: bigint | undefined, i: number) => {
      if (was === undefined || now === was) return;
      counted |= 1n << BigInt(i);
      if (now < was) wrapped |= 1n << BigInt(i);
    };
    s.pmc.forEach((x, i) => note(x, before.pmc[i], i));
    s.fixed.forEach((x, j) => note(x, before.fixed[j], 32 + j));
    const overflowed = (s.globalStatus & ~before.status) | wrapped;
    const atExit = this.vcpus[v]!.returnedAtExit ? { overflowed, counted } : undefined;
    this.saveRestore(v, cpu, atExit);
    this.vcpus[v]!.resume();
    return this.vcpus[v]!.drainPmis();
  }

  /**
   * The VMM saves the vCPU, destroys it, and restores the state into a fresh vCPU whose thread
   * runs on `cpu` (live migration within one host). Bare metal has nothing to do. `atExit`: saved at an instruction's
   * exit, recorded in that instruction's step.
   */
  saveRestore(vcpu: number, cpu: number, atExit?: { readonly overflowed: bigint; readonly counted: bigint }): void {
    const v = this.index(vcpu);
    const old = this.vcpus[v]!;
    const saved = saveVcpu(old);
    old.destroy();
    const g = this.guestConfig(v);
    const fresh = createVcpu(this.config.design, this.host, {
      cpu: ((cpu % this.config.cpus) + this.config.cpus) % this.config.cpus,
      cpuid: g.cpuid,
      ...vmSetupOf(g),
    });
    restoreVcpu(fresh, saved);
    this.vcpus[v] = fresh;
    if (atExit === undefined) this.vmmStep(v, cpu, { op: 'save-restore', cpu });
    else this.vmmStep(v, cpu, { op: 'save-restore', cpu, atExit }, true);
  }

  /** Host events opened by host commands and still open, in order. */
  readonly hostEvents: PerfEvent[] = [];
  /** Every host event host commands opened, in order: a HostOp's index. */
  private readonly opened: PerfEvent[] = [];

  /** A host user opens a perf event on a pCPU (perf record/stat -a -C cpu). */
  hostOpen(cpu: number, a: PerfEventAttr): void {
    const c = ((cpu % this.config.cpus) + this.config.cpus) % this.config.cpus;
    const ev = this.host.perf_event_open(a, { cpu: c });
    this.step++;
    // A host event is no guest observation, but declared divergences may depend on it (vCPU -1: the host).
    this.hostOpened(c, { cpu: c }, a, ev);
  }

  private hostOpened(
    target: number | null,
    on: { cpu: number } | { vcpu: number },
    a: PerfEventAttr,
    ev: PerfEvent | { error: string },
  ) {
    const accepted = !('error' in ev);
    for (const o of this.oracles) {
      if (accepted && a.branchSample !== undefined) o.hostLbrUser = true;
      if (accepted && a.pinned === true) o.hostPinnedUser = true;
      o.hostEventChanged();
    }
    if (accepted) {
      this.hostEvents.push(ev);
      this.opened.push(ev);
    }
    this.hostStep(target, { op: 'open', on, attr: a, accepted, index: accepted ? this.opened.length - 1 : null });
  }

  /**
   * A host user opens a perf event on vCPU `vcpu`'s thread (perf record/stat -p <tid>), which follows it between pCPUs.
   */
  hostOpenOnThread(vcpu: number, a: PerfEventAttr): void {
    const v = this.index(vcpu);
    const task = this.host.pcpu(this.vcpus[v]!.cpu).currentTask;
    this.step++;
    if (task === null) return;
    this.hostOpened(null, { vcpu: v }, a, this.host.perf_event_open(a, { task }));
  }

  /** Host work on a pCPU (another task's time slice); the vCPU thread is preempted meanwhile. */
  hostWork(cpu: number, units: readonly WorkUnit[]): void {
    const c = ((cpu % this.config.cpus) + this.config.cpus) % this.config.cpus;
    this.host.runHost(c, units);
    this.step++;
  }

  /** The host scheduler moves the vCPU thread; bare metal has nothing to do. */
  migrate(vcpu: number, cpu: number): void {
    const v = this.index(vcpu);
    this.vcpus[v]!.migrate(((cpu % this.config.cpus) + this.config.cpus) % this.config.cpus);
    this.vmmStep(v, cpu, { op: 'migrate', cpu });
  }

  // ---- what the VMM's ioctls (vmm_ioctls.ts) change of the engine ----

  /** Each vCPU's model as the VMM last set it (KVM_SET_CPUID2 with PERF_CAPABILITIES). */
  readonly models: GuestConfig[] = [];
  /** The event filter the VMM installed, which the oracles honour. */
  oracleFilter: KvmPmuEventFilter | null = null;

  /** The guest configuration vCPU `vcpu` has now. */
  guestConfig(vcpu: number): GuestConfig {
    const v = this.index(vcpu);
    return this.models[v] ?? this.config.guests[v]!;
  }

  /** Has the vCPU entered the guest since it was created or restored (KVM_RUN: the model is then frozen)? */
  vcpuHasRun(v: number): boolean {
    return this.ran[v] ?? false;
  }

  /** The bare-metal CPU a guest of this model is, with what declared divergences it takes on as a CPU (W6). */
  private newOracle(g: GuestConfig): OracleCpu {
    const o = new OracleCpu(oracleProfile(this.config.host, g));
    const id = this.config.adopt?.noLbrFreeze(g) ?? null;
    // The hooks hold the list, not the World. Measured: with the World in them, building a conformance world took twice
    // as long, most of it spent copying earlier programs' worlds in minor GCs.
    const adopted = this.adopted;
    if (id !== null) o.lbrFreezeAdopted = () => adopted.push(id);
    const floor = this.config.adopt?.periodFloor(g) ?? null;
    if (floor !== null) o.periodFloorAdopted = () => adopted.push(floor);
    return o;
  }

  /**
   * A new vCPU model before KVM_RUN (KVM_SET_CPUID2, a new PERF_CAPABILITIES): kvm_pmu_refresh resets the vPMU, so bare
   * metal is a freshly reset CPU of that model, but for DEBUGCTL, which is no PMU state: it lives in the VMCS
   * (GUEST_IA32_DEBUGCTL), which neither kvm_vcpu_after_set_cpuid nor intel_pmu_refresh writes, only a vCPU RESET
   * (vmx_vcpu_reset), so what the VMM or the guest left there stays.
   */
  freshOracle(v: number, g: GuestConfig): void {
    const old = this.oracles[v];
    const o = this.newOracle(g);
    o.filter = this.oracleFilter;
    if (old !== undefined) o.state.debugctl = old.state.debugctl;
    this.oracles[v] = o;
    this.models[v] = g;
    this.counterWrites[v]?.clear();
  }

  /** A VMM ioctl on vCPU `v`: what KVM answered, and what its ABI (or bare metal) says to expect. */
  vmmRecord(v: number, op: VmmOp, sut: Outcome, expected: Outcome, adopted?: Adopted): Observation[] {
    this.step++;
    const o = { vcpu: v, kind: 'vmm', target: null, value: null, vmm: op, sut, oracle: expected } as const;
    return [this.record(adopted === undefined ? o : { ...o, adopted })];
  }
}

/** An XSAVES result: the image, or #GP. */
const xsaveOutcome = (r: XsaveResult): Outcome => (r.ok ? { kind: 'xsave', area: r.area } : gpOutcome(r.gp));

const EMPTY_ARCH_LBR: ArchLbrXsave = Object.freeze({
  lbrCtl: 0n,
  lbrDepth: 0n,
  lerFrom: 0n,
  lerTo: 0n,
  lerInfo: 0n,
  entries: Object.freeze([]),
});

/** Where a taken forced-emulation branch jumps on bare metal: back 16 bytes, in user or kernel text by CPL. */
const FEP_TEXT = [0xffff_ffff_8100_3000n, 0x40_3000n];

/** The branches among the instructions a guest forces KVM to emulate (ENTER and LEAVE are not branches). */
const FEP_BRANCHES: ReadonlySet<EmulatedInsn> = new Set(['jne', 'loop']);

const fepUnits = new Map<string, WorkUnit>();

/**
 * What a forced-emulation instruction retires on bare metal (W7): one instruction at its CPL, a branch for JNE and
 * LOOP (recorded in the LBRs when taken), and nothing of the prefix.
 */
export function fepUnit(insn: EmulatedInsn, cpl: number, taken: boolean): WorkUnit {
  const branch = FEP_BRANCHES.has(insn);
  const jumps = branch && taken;
  const key = `${cpl}:${branch ? (jumps ? 'taken' : 'untaken') : 'plain'}`;
  let u = fepUnits.get(key);
  if (u === undefined) {
    const text = FEP_TEXT[cpl === 0 ? 0 : 1]!;
    u = Object.freeze(
      jumps
        ? {
            cpl,
            instructions: 1,
            branches: Object.freeze([Object.freeze({ from: text + 0x10n, to: text, kind: 'COND' as const })]),
          }
        : { cpl, instructions: 1, untakenBranches: branch ? 1 : 0 },
    );
    fepUnits.set(key, u);
  }
  return u;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function vectorOf(d: PmiDelivery): number {
  if (d.nmi) relied('W2');
  return d.nmi ? NMI_VECTOR : d.vector;
}
