/**
 * One logical Intel CPU's PMU: RDMSR/WRMSR through the MSR file, RDPMC, work units that count,
 * overflow, freeze and raise a PMI through LVTPC, LBR recording, and XSAVES/XRSTORS of Arch LBR
 * state (pmu-semantics.md §4). It knows nothing of virtualization beyond a mode bit.
 */

import { type Access, gp, ok } from './access.js';
import { bit, bitCount, getField, isSet } from './bits.js';
import { ModelError } from './errors.js';
import { archEventIndex, fixedSource, gpSource, N_SRC, SRC } from './events.js';
import { APIC_DM, APIC_LVT_MASKED, LVTPC } from './msr/apic.js';
import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI, DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI, DEBUGCTLMSR_LBR } from './msr/debugctl.js';
import { fixedNibble, METRICS_CLEAR_EN } from './msr/counters.js';
import {
  EN_PERF_METRICS,
  GLOBAL_STATUS_COUNTERS_FROZEN,
  GLOBAL_STATUS_LBRS_FROZEN,
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  STATUS,
} from './msr/global.js';
import { ARCH_LBR_LBREN, type ArchLbrXsave, archRecord, xrstorsArchLbr, xsavesArchLbr } from './msr/lbr_arch.js';
import { legacyRecord } from './msr/lbr_legacy.js';
import { buildMsrFile, msrName } from './msr/map.js';
import { MSR_IA32_LASTINTFROMIP, MSR_IA32_LASTINTTOIP, MSR_LER_INFO, PEBS_DS_MSRS } from './msr/unmodelled.js';
import { accumulateTopdown, clearTopdown, readPerfMetrics, tallyTopdown, totalSlots } from './msr/topdown.js';
import type { MsrDef } from './msr/types.js';
import { archEventAvailable, fixedIndices, type Profile } from './profile.js';
import { relied } from './relied.js';
import { PmuState } from './state.js';
import { validateUnit, type WorkUnit } from './work.js';

/** A PMI the LAPIC delivered at a unit boundary. */
export interface PmiDelivery {
  readonly vector: number;
  /** LVTPC delivery mode NMI (Linux's choice) rather than Fixed. */
  readonly nmi: boolean;
}

export type XsaveResult =
  { readonly ok: true; readonly area: ArchLbrXsave } | { readonly ok: false; readonly gp: string };

/**
 * A counter that can count in the current configuration, decoded once per configuration. Counts
 * accumulate as a JS number in `pend` while they stay `room` short of overflow; they are flushed
 * into the bigint register before anything reads or writes architectural state.
 */
interface Active {
  readonly fixed: boolean;
  readonly idx: number;
  readonly src: number;
  readonly os: boolean;
  readonly usr: boolean;
  readonly cmask: number;
  readonly inv: boolean;
  readonly edge: boolean;
  readonly pmi: boolean;
  readonly statusBit: bigint;
  /** Increments left before the counter wraps (capped at 2^52); -1 until computed. */
  room: number;
  pend: number;
}

const ROOM_CAP = 2 ** 52;
const FREEZES = DEBUGCTLMSR_FREEZE_LBRS_ON_PMI | DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI;
const PERF_METRICS_OVF = 1n << BigInt(STATUS.PERF_METRICS_OVF);

export type CpuMode = 'host' | 'guest';

const U64 = (1n << 64n) - 1n;

/** Occurrences of each event source in the unit being stepped: scratch, filled and read within one step. */
const OCC = new Float64Array(N_SRC);

/**
 * By profile name (all the message depends on), the #GP of each absent MSR: an Access is
 * immutable, and every guest's oracle profile is a new object named 'guest'.
 */
const ABSENT_GP = new Map<string, Map<number, Access>>();

/** Global MSRs, absent below version 2 (decision D1). */
const GLOBAL_MSRS = new Set([MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_OVF_CTRL]);
/** No counter: one list for every answer that has none (nothing adds to it). */
export const NO_COUNTERS: readonly number[] = Object.freeze([]);

/** PEBS and the debug store (decision D31), the last-exception records (decision D27): absent everywhere. */
const LER_MSRS = new Set([MSR_IA32_LASTINTFROMIP, MSR_IA32_LASTINTTOIP, MSR_LER_INFO]);

export class Cpu {
  readonly profile: Profile;
  private s: PmuState;
  /** Host or guest (VMX non-root) mode: set by the virtualization layer; counting ignores it. */
  mode: CpuMode = 'host';

  private readonly msrs: ReadonlyMap<number, MsrDef>;
  protected readonly fixedIdx: readonly number[];
  private active: Active[] = [];
  private activeEpoch = -1;
  /** Topdown slots counted since the last sync, flushed into PERF_METRICS's hidden counts. */
  // a literal: a typed array costs a backing store per CPU
  private readonly tdPending: number[] = [0, 0, 0, 0, 0, 0, 0, 0, 0];
  private tdAny = false;
  /** Did the last unit stepped count on any counter? (What the world's decision W1 needs to know.) */
  counted = false;
  /**
   * Status bits of the PMI-enabled counters whose overflow's PMI the masked LVTPC dropped (D7), since the World last
   * took them: what it tells of a wrap the guest never heard of. Not architectural state.
   */
  droppedPmis = 0n;
  /**
   * How many overflows brought no PMI of their own, since the World last took them: a counter's without INT, or one
   * that rode on another counter's PMI in the same unit (D8). Each is a PMI of its own where lost counts move it (past
   * a selector write that sets INT, apart from the other wrap). Not architectural state.
   */
  quietOverflows = 0;
  /** LBR records this CPU has taken since it was made, in any mode: what tells the World a run moved LBR_TOS. */
  lbrInserts = 0;
  /** PERF_METRICS accumulates: enumerated and GLOBAL_CTRL.EN_PERF_METRICS set (D12). */
  private metricsOn = false;

  constructor(profile: Profile) {
    this.profile = profile;
    this.s = new PmuState(profile);
    this.msrs = buildMsrFile(profile);
    this.fixedIdx = fixedIndices(profile);
  }

  /** RESET: every register to its power-on value (pmu-semantics.md §4.10). */
  reset(): void {
    this.s = new PmuState(this.profile);
    this.active = [];
    this.tdPending.fill(0);
    this.tdAny = false;
    this.activeEpoch = -1;
    this.droppedPmis = 0n;
    this.quietOverflows = 0;
  }

  /**
   * The architectural state, up to date. Upper layers observe the PMU through RDMSR/RDPMC; tests
   * and mutants may reach in, so the counting cache is dropped whenever this is taken.
   */
  get state(): PmuState {
    this.sync();
    this.activeEpoch = -1;
    return this.s;
  }

  /** The architectural state, up to date, to read only: the counting cache is kept (a write here would go unseen). */
  get view(): Readonly<PmuState> {
    this.flush();
    return this.s;
  }

  /** Moves pending counts into the registers before a write; the next unit recomputes how much room is left. */
  private sync(): void {
    this.flush();
    for (const c of this.active) c.room = -1;
  }

  /** Moves pending counts into the registers before a read: each counter's room stays a lower bound, as no read adds counts. */
  private flush(): void {
    const s = this.s;
    if (this.tdAny) {
      accumulateTopdown(s, this.tdPending);
      this.tdAny = false;
    }
    const active = this.active;
    for (let k = 0; k < active.length; k++) {
      const c = active[k]!;
      if (c.pend !== 0) {
        const arr = c.fixed ? s.fixed : s.pmc;
        arr[c.idx] = arr[c.idx]! + BigInt(c.pend);
        c.pend = 0;
      }
    }
  }

  /** The counters (GP i, fixed j as 32 + j) that hold all ones, one event short of overflowing, as RDPMC reads them. */
  countersAtMinusOne(): readonly number[] {
    this.flush();
    const s = this.s;
    const p = this.profile;
    // Made only when a counter is there: the oracle asks after every instruction, and mostly none is.
    let out: number[] | null = null;
    if (p.version === 0) return NO_COUNTERS;
    for (let i = 0; i < p.nGP; i++) if (s.pmc[i] === p.gpMask) (out ??= []).push(i);
    if (p.version > 1) for (const j of this.fixedIdx) if (s.fixed[j] === p.fixedMask) (out ??= []).push(32 + j);
    return out ?? NO_COUNTERS;
  }

  /** Does this part have MSR `address` at all? */
  hasMsr(address: number): boolean {
    return this.msrs.has(address);
  }

  rdmsr(address: number): Access {
    const d = this.msrs.get(address);
    if (d === undefined) return this.absent(address);
    this.flush();
    return d.read(this.s);
  }

  wrmsr(address: number, value: bigint): Access {
    if (typeof value !== 'bigint' || value < 0n || value > U64)
      throw new ModelError(`WRMSR ${msrName(address)}: value ${String(value)} is not a u64 bigint`);
    const d = this.msrs.get(address);
    if (d === undefined) return this.absent(address);
    this.sync();
    return d.write(this.s, value);
  }

  /** The #GP of an MSR the part lacks, made once per address (generated programs probe many). */
  private absent(address: number): Access {
    if (GLOBAL_MSRS.has(address) && this.profile.version === 1) relied('D1');
    else if (PEBS_DS_MSRS.has(address)) relied('D31');
    else if (LER_MSRS.has(address)) relied('D27');
    let byAddress = ABSENT_GP.get(this.profile.name);
    if (byAddress === undefined) ABSENT_GP.set(this.profile.name, (byAddress = new Map<number, Access>()));
    let a = byAddress.get(address);
    if (a === undefined) {
      a = gp(`${msrName(address)} (0x${address.toString(16)}) does not exist on ${this.profile.name}`);
      byAddress.set(address, a);
    }
    return a;
  }

  get cr4Pce(): boolean {
    return this.s.cr4Pce;
  }
  set cr4Pce(v: boolean) {
    this.s.cr4Pce = v;
  }

  /** RDPMC (pmu-semantics.md §4.9): ECX[31:16] is a type, ECX[15:0] an index. */
  rdpmc(ecx: number, cpl = 0): Access {
    this.flush();
    const s = this.s;
    const p = this.profile;
    if (!Number.isInteger(ecx) || ecx < 0 || ecx > 0xffff_ffff)
      throw new ModelError(`RDPMC: ECX ${ecx} is not a 32-bit value`);
    if (cpl !== 0 && cpl !== 1 && cpl !== 2 && cpl !== 3) throw new ModelError(`RDPMC: CPL ${cpl} is not 0..3`);
    if (cpl > 0 && s.protectedMode && !s.cr4Pce) return gp(`RDPMC at CPL ${cpl} with CR4.PCE = 0`);
    if (p.version === 0) return gp('RDPMC: no architectural PMU (CPUID.0AH version 0)');
    const type = ecx >>> 16;
    const idx = ecx & 0xffff;
    switch (type) {
      case 0x0000:
        return idx < p.nGP ? ok(s.pmc[idx]!) : gp(`RDPMC 0x${ecx.toString(16)}: no GP counter ${idx}`);
      case 0x4000:
        return p.version >= 2 && this.fixedIdx.includes(idx)
          ? ok(s.fixed[idx]!)
          : gp(`RDPMC 0x${ecx.toString(16)}: no fixed counter ${idx}`);
      case 0x2000: {
        if (!p.perfMetrics || idx !== 0) {
          if (p.perfMetrics) relied('D34');
          return gp(`RDPMC 0x${ecx.toString(16)}: no PERF_METRICS index ${idx}`);
        }
        relied('D12');
        const v = readPerfMetrics(s);
        if (p.metricsClear && isSet(s.fixedCtrl, METRICS_CLEAR_EN)) clearTopdown(s);
        return ok(v);
      }
      default:
        return gp(`RDPMC 0x${ecx.toString(16)}: type 0x${type.toString(16)} is not a counter type`);
    }
  }

  /** XSAVES of state component 15; #GP where the part has no Arch LBR. */
  xsaves(): XsaveResult {
    if (this.profile.archLbr === undefined)
      return { ok: false, gp: `XSAVES: ${this.profile.name} has no Arch LBR state` };
    return { ok: true, area: xsavesArchLbr(this.s) };
  }

  xrstors(area: ArchLbrXsave): Access {
    if (this.profile.archLbr === undefined) return gp(`XRSTORS: ${this.profile.name} has no Arch LBR state`);
    return xrstorsArchLbr(this.s, area);
  }

  /** Recomputes the counters that can count after any control write (§4.2). */
  private refresh(): Active[] {
    this.sync();
    const s = this.s;
    const p = this.profile;
    const out: Active[] = [];
    const frozen = p.version >= 4 && isSet(s.globalStatus, STATUS.CTR_FRZ); // CTR_FRZ is a hidden disable
    if (!frozen) {
      for (let i = 0; i < p.nGP; i++) {
        const e = s.evtsel[i]!;
        if (!isSet(e, 22)) continue;
        if (p.version >= 2 && !isSet(s.globalCtrl, i)) continue;
        if (isSet(e, 32) || isSet(e, 33)) relied('D38');
        if (isSet(e, 32)) continue; // IN_TX: counts only inside transactions; no unit runs in one (D38)
        const src = gpSource(e);
        if (src === SRC.NONE) relied('D29');
        else if (!archEventAvailable(p, archEventIndex(src))) relied('D33');
        out.push({
          fixed: false,
          idx: i,
          src,
          usr: isSet(e, 16),
          os: isSet(e, 17),
          edge: isSet(e, 18),
          pmi: isSet(e, 20),
          inv: isSet(e, 23),
          cmask: Number((e >> 24n) & 0xffn),
          statusBit: 1n << BigInt(i),
          room: -1,
          pend: 0,
        });
      }
      for (const j of this.fixedIdx) {
        const f = fixedNibble(s.fixedCtrl, j);
        if ((f & 3) === 0 || !isSet(s.globalCtrl, 32 + j)) continue;
        if (fixedSource(j) === SRC.NONE) relied('D29');
        out.push({
          fixed: true,
          idx: j,
          src: fixedSource(j),
          usr: (f & 2) !== 0, // the GP entries' field order: one object shape for the hot loop
          os: (f & 1) !== 0,
          edge: false,
          pmi: (f & 8) !== 0,
          inv: false,
          cmask: 0,
          statusBit: 1n << BigInt(32 + j),
          room: -1,
          pend: 0,
        });
      }
    }
    this.active = out;
    this.activeEpoch = s.configEpoch;
    this.metricsOn = p.perfMetrics && isSet(s.globalCtrl, EN_PERF_METRICS);
    return out;
  }

  /**
   * Executes one work unit: LBR records, then counting, then overflow → status bits, freeze and
   * a PMI through LVTPC at the unit's end (§4.3, §4.4). Returns the PMI delivered, if any.
   */
  step(u: WorkUnit): PmiDelivery | null {
    validateUnit(u);
    const s = this.s;
    const p = this.profile;
    const cycles = u.cycles ?? 0;
    s.cyclesSinceLbr += cycles;

    let inserts = 0;
    let mispredicts = 0;
    const brs = u.branches;
    if (brs !== undefined) {
      const record = p.archLbr !== undefined ? archRecord : p.legacyLbr !== undefined ? legacyRecord : null;
      for (let k = 0; k < brs.length; k++) {
        const b = brs[k]!;
        const mp = b.mispredict === true;
        if (mp) mispredicts++;
        if (record === null) continue;
        // D39: only listed branches are recorded; D23: cycles since the last record, saturated.
        if (record(s, b.from, b.to, b.kind, b.cpl ?? u.cpl, mp, Math.min(s.cyclesSinceLbr, 0xffff))) {
          inserts++;
          s.cyclesSinceLbr = 0;
        }
      }
      this.lbrInserts += inserts;
    }

    const active = this.activeEpoch === s.configEpoch ? this.active : this.refresh();
    this.counted = false;
    if (active.length === 0) return null;

    const occ = OCC;
    occ[SRC.INSTRUCTIONS] = u.instructions ?? 0;
    occ[SRC.CYCLES] = cycles;
    occ[SRC.REF_CYCLES] = u.refCycles ?? 0;
    occ[SRC.TSC_CYCLES] = u.tscCycles ?? 0;
    occ[SRC.LLC_REFERENCES] = u.llcReferences ?? 0;
    occ[SRC.LLC_MISSES] = u.llcMisses ?? 0;
    occ[SRC.BRANCHES] = (brs?.length ?? 0) + (u.untakenBranches ?? 0);
    occ[SRC.BRANCH_MISSES] = mispredicts;
    const t = u.slots;
    occ[SRC.SLOTS] = t !== undefined ? totalSlots(t) : 0;
    occ[SRC.TD_BACKEND] = t?.backendBound ?? 0;
    occ[SRC.TD_BAD_SPEC] = t?.badSpeculation ?? 0;
    occ[SRC.TD_FRONTEND] = t?.frontendBound ?? 0;
    occ[SRC.TD_RETIRING] = t?.retiring ?? 0;
    occ[SRC.LBR_INSERTS] = inserts;

    const kernel = u.cpl === 0;
    let overflowed = 0n;
    let pmi = 0n; // status bits of the PMI-enabled counters that overflowed
    let slotsCounted = false;
    // Indexed loops here: the per-unit path must not allocate iterator results before it is optimized.
    for (let k = 0; k < active.length; k++) {
      const c = active[k]!;
      if (kernel ? !c.os : !c.usr) continue;
      const n = occ[c.src]!;
      let inc: number;
      if (c.cmask === 0)
        inc = n; // INV is ignored when CMASK = 0
      else {
        relied('D4');
        inc = (c.inv ? n < c.cmask : n >= c.cmask) ? 1 : 0;
      }
      if (c.edge) {
        // D5: count rising edges of the (thresholded) condition, one per unit at most.
        relied('D5');
        const cond = inc > 0;
        inc = cond && !s.edgePrev[c.idx]! ? 1 : 0;
        s.edgePrev[c.idx] = cond;
      }
      if (c.fixed && c.idx === 3) slotsCounted = true;
      if (inc === 0) continue;
      this.counted = true;
      const arr = c.fixed ? s.fixed : s.pmc;
      if (c.room < 0) {
        const left = (c.fixed ? p.fixedMask : p.gpMask) - arr[c.idx]!;
        c.room = left > BigInt(ROOM_CAP) ? ROOM_CAP : Number(left);
      }
      if (inc <= c.room) {
        c.room -= inc; // fast path: no overflow possible, stay in numbers
        c.pend += inc;
        continue;
      }
      const mask = c.fixed ? p.fixedMask : p.gpMask;
      const raw = arr[c.idx]! + BigInt(c.pend + inc);
      c.pend = 0;
      c.room = -1;
      if (raw > mask) {
        arr[c.idx] = raw & mask; // wraps modulo 2^width
        overflowed |= c.statusBit;
        if (c.pmi) {
          if (pmi !== 0n) relied('D8'); // a second PMI-enabled overflow in the unit: still one PMI
          pmi |= c.statusBit;
        } else this.quietOverflows++;
        if (c.fixed && c.idx === 3 && this.metricsOn) {
          relied('D11');
          overflowed |= PERF_METRICS_OVF;
        }
      } else {
        arr[c.idx] = raw;
      }
    }
    if (slotsCounted && t !== undefined && this.metricsOn) {
      relied('D12');
      tallyTopdown(this.tdPending, t, p.topdownL2);
      this.tdAny = true;
    }

    if (overflowed === 0n) return null;
    if (p.version >= 2) {
      if ((s.globalStatus & overflowed) !== 0n) relied('D10');
      s.globalStatus |= overflowed; // whatever INT says (§4.3); sticky if set (D10)
    }
    if (pmi === 0n) {
      if ((s.debugctl & FREEZES) !== 0n) relied('D6'); // no PMI-enabled overflow, no PMI and no freeze
      return null;
    }
    // D36: this unit's branches were recorded before the freeze its overflow causes.
    if (inserts > 0 && (s.debugctl & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI) !== 0n) relied('D36');
    const d = this.raisePmi();
    if (d === null) this.droppedPmis |= pmi;
    else if ((pmi & (pmi - 1n)) !== 0n) this.quietOverflows += bitCount(pmi) - 1;
    return d;
  }

  /** Do the LBRs record now (legacy DEBUGCTL.LBR or Arch LBR_CTL.LBREn, and no LBR_FRZ)? */
  private lbrRecording(): boolean {
    const s = this.s;
    if ((s.globalStatus & GLOBAL_STATUS_LBRS_FROZEN) !== 0n) return false;
    if (this.profile.archLbr !== undefined) return (s.lbrCtl & ARCH_LBR_LBREN) !== 0n;
    return this.profile.legacyLbr !== undefined && (s.debugctl & DEBUGCTLMSR_LBR) !== 0n;
  }

  /** Runs units in order; returns the index of each unit after which a PMI arrived. */
  run(units: readonly WorkUnit[]): { readonly after: number; readonly pmi: PmiDelivery }[] {
    const out: { after: number; pmi: PmiDelivery }[] = [];
    units.forEach((u, i) => {
      const d = this.step(u);
      if (d !== null) out.push({ after: i, pmi: d });
    });
    return out;
  }

  /**
   * FREEZE_LBRS_ON_PMI at a PMI: v4 sets LBR_FRZ, the legacy freeze (v2, v3) clears DEBUGCTL.LBR, or with Arch LBR
   * LBR_CTL.LBREn (D41).
   */
  protected freezeLbrsOnPmi(): void {
    const s = this.s;
    if (this.profile.version >= 4) s.globalStatus |= GLOBAL_STATUS_LBRS_FROZEN;
    else if (this.profile.archLbr !== undefined) {
      relied('D41');
      s.lbrCtl &= ~ARCH_LBR_LBREN;
    } else s.debugctl &= ~DEBUGCTLMSR_LBR; // legacy (v2, v3): clear DEBUGCTL.LBR
  }

  /**
   * PMI generation: freeze actions first, then the LAPIC, which drops the PMI while LVTPC is
   * masked (D7) and masks LVTPC on delivery (§4.4). One PMI per unit boundary (D8).
   */
  private raisePmi(): PmiDelivery | null {
    const s = this.s;
    const p = this.profile;
    // Both freeze bits exist from version 2 (D37): a version-1 DEBUGCTL never has them.
    if ((s.debugctl & DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI) !== 0n) {
      if (p.version >= 4) s.globalStatus |= GLOBAL_STATUS_COUNTERS_FROZEN;
      else {
        if ((s.globalCtrl & bit(EN_PERF_METRICS)) !== 0n) relied('D9');
        s.globalCtrl = 0n; // D9: legacy freeze clears all of GLOBAL_CTRL
      }
      s.configEpoch++;
    }
    if ((s.debugctl & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI) !== 0n) this.freezeLbrsOnPmi();
    if ((s.lvtpc & APIC_LVT_MASKED) !== 0n) {
      relied('D7');
      return null;
    }
    // D39: the PMI itself is no LBR record, which shows only while the LBRs still record.
    if (this.lbrRecording()) relied('D39');
    const lvt = s.lvtpc;
    s.lvtpc |= APIC_LVT_MASKED;
    return {
      vector: Number(getField(lvt, LVTPC.vector)),
      nmi: Number(getField(lvt, LVTPC.deliveryMode)) === APIC_DM.NMI,
    };
  }
}
