/**
 * One logical Intel CPU's PMU: RDMSR/WRMSR through the MSR file, RDPMC, work units that count,
 * overflow, freeze and raise a PMI through LVTPC, LBR recording, and XSAVES/XRSTORS of Arch LBR
 * state (pmu-semantics.md §4). It knows nothing of virtualization beyond a mode bit.
 */

import { type Access, gp, ok } from './access.js';
import { isSet } from './bits.js';
import { ModelError } from './errors.js';
import { fixedSource, gpSource, N_SRC, SRC } from './events.js';
import { DELIVERY_NMI, LVT_MASK } from './msr/apic.js';
import { fixedNibble, METRICS_CLEAR_EN } from './msr/counters.js';
import { EN_PERF_METRICS, STATUS } from './msr/global.js';
import { type ArchLbrXsave, archRecord, xrstorsArchLbr, xsavesArchLbr } from './msr/lbr-arch.js';
import { legacyRecord } from './msr/lbr-legacy.js';
import { buildMsrFile, msrName } from './msr/map.js';
import { accumulateTopdown, clearTopdown, readPerfMetrics, totalSlots } from './msr/topdown.js';
import type { MsrDef } from './msr/types.js';
import { fixedIndices, type Profile } from './profile.js';
import { PmuState } from './state.js';
import { validateUnit, type WorkUnit } from './work.js';

/** A PMI the LAPIC delivered at a unit boundary. */
export interface PmiDelivery {
  readonly vector: number;
  /** LVTPC delivery mode NMI (Linux's choice) rather than Fixed. */
  readonly nmi: boolean;
}

export type XsaveResult =
  | { readonly ok: true; readonly area: ArchLbrXsave }
  | { readonly ok: false; readonly gp: string };

/** A counter that can count in the current configuration, decoded once per configuration. */
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
}

export type CpuMode = 'host' | 'guest';

const U64 = (1n << 64n) - 1n;

export class Cpu {
  readonly profile: Profile;
  /** The architectural state; upper layers read it only through RDMSR/RDPMC. */
  state: PmuState;
  /** Host or guest (VMX non-root) mode: set by the virtualization layer; counting ignores it. */
  mode: CpuMode = 'host';

  private readonly msrs: ReadonlyMap<number, MsrDef>;
  private readonly fixedIdx: readonly number[];
  private active: Active[] = [];
  private activeEpoch = -1;
  private readonly occ = new Float64Array(N_SRC);

  constructor(profile: Profile) {
    this.profile = profile;
    this.state = new PmuState(profile);
    this.msrs = buildMsrFile(profile);
    this.fixedIdx = fixedIndices(profile);
  }

  /** RESET: every register to its power-on value (pmu-semantics.md §4.10). */
  reset(): void {
    this.state = new PmuState(this.profile);
    this.activeEpoch = -1;
  }

  /** Does this part have MSR `address` at all? */
  hasMsr(address: number): boolean {
    return this.msrs.has(address);
  }

  rdmsr(address: number): Access {
    const d = this.msrs.get(address);
    if (d === undefined) return gp(this.absent(address));
    return d.read(this.state);
  }

  wrmsr(address: number, value: bigint): Access {
    if (typeof value !== 'bigint' || value < 0n || value > U64)
      throw new ModelError(`WRMSR ${msrName(address)}: value ${String(value)} is not a u64 bigint`);
    const d = this.msrs.get(address);
    if (d === undefined) return gp(this.absent(address));
    return d.write(this.state, value);
  }

  private absent(address: number): string {
    return `${msrName(address)} (0x${address.toString(16)}) does not exist on ${this.profile.name}`;
  }

  get cr4Pce(): boolean {
    return this.state.cr4Pce;
  }
  set cr4Pce(v: boolean) {
    this.state.cr4Pce = v;
  }

  /** RDPMC (pmu-semantics.md §4.9): ECX[31:16] is a type, ECX[15:0] an index. */
  rdpmc(ecx: number, cpl = 0): Access {
    const s = this.state;
    const p = this.profile;
    if (!Number.isInteger(ecx) || ecx < 0 || ecx > 0xffff_ffff)
      throw new ModelError(`RDPMC: ECX ${ecx} is not a 32-bit value`);
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
        if (!p.perfMetrics || idx !== 0)
          return gp(`RDPMC 0x${ecx.toString(16)}: no PERF_METRICS index ${idx}`); // D34
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
    return { ok: true, area: xsavesArchLbr(this.state) };
  }

  xrstors(area: ArchLbrXsave): Access {
    if (this.profile.archLbr === undefined) return gp(`XRSTORS: ${this.profile.name} has no Arch LBR state`);
    return xrstorsArchLbr(this.state, area);
  }

  /** Recomputes the counters that can count after any control write (§4.2). */
  private refresh(): Active[] {
    const s = this.state;
    const p = this.profile;
    const out: Active[] = [];
    const frozen = p.version >= 4 && isSet(s.globalStatus, STATUS.CTR_FRZ); // CTR_FRZ is a hidden disable
    if (!frozen) {
      for (let i = 0; i < p.nGP; i++) {
        const e = s.evtsel[i]!;
        if (!isSet(e, 22)) continue;
        if (p.version >= 2 && !isSet(s.globalCtrl, i)) continue;
        if (isSet(e, 32)) continue; // IN_TX: counts only inside transactions; no work unit runs in one (§2.3)
        out.push({
          fixed: false,
          idx: i,
          src: gpSource(e),
          usr: isSet(e, 16),
          os: isSet(e, 17),
          edge: isSet(e, 18),
          pmi: isSet(e, 20),
          inv: isSet(e, 23),
          cmask: Number((e >> 24n) & 0xffn),
          statusBit: 1n << BigInt(i),
        });
      }
      for (const j of this.fixedIdx) {
        const f = fixedNibble(s.fixedCtrl, j);
        if ((f & 3) === 0 || !isSet(s.globalCtrl, 32 + j)) continue;
        out.push({
          fixed: true,
          idx: j,
          src: fixedSource(j),
          os: (f & 1) !== 0,
          usr: (f & 2) !== 0,
          edge: false,
          pmi: (f & 8) !== 0,
          inv: false,
          cmask: 0,
          statusBit: 1n << BigInt(32 + j),
        });
      }
    }
    this.active = out;
    this.activeEpoch = s.configEpoch;
    return out;
  }

  /**
   * Executes one work unit: LBR records, then counting, then overflow → status bits, freeze and
   * a PMI through LVTPC at the unit's end (§4.3, §4.4). Returns the PMI delivered, if any.
   */
  step(u: WorkUnit): PmiDelivery | null {
    validateUnit(u);
    const s = this.state;
    const p = this.profile;
    const cycles = u.cycles ?? 0;
    s.cyclesSinceLbr += cycles;

    let inserts = 0;
    let mispredicts = 0;
    const brs = u.branches;
    if (brs !== undefined) {
      const record = p.archLbr !== undefined ? archRecord : p.legacyLbr !== undefined ? legacyRecord : null;
      for (const b of brs) {
        const mp = b.mispredict === true;
        if (mp) mispredicts++;
        if (record === null) continue;
        const flags = { mispredict: mp, cycles: Math.min(s.cyclesSinceLbr, 0xffff) };
        if (record(s, b.from, b.to, b.kind, b.cpl ?? u.cpl, flags)) {
          inserts++;
          s.cyclesSinceLbr = 0;
        }
      }
    }

    const active = this.activeEpoch === s.configEpoch ? this.active : this.refresh();
    if (active.length === 0) return null;

    const occ = this.occ;
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
    let pmi = false;
    let slotsCounted = false;
    for (const c of active) {
      if (kernel ? !c.os : !c.usr) continue;
      const n = occ[c.src]!;
      let inc: number;
      if (c.cmask === 0)
        inc = n; // INV is ignored when CMASK = 0
      else inc = (c.inv ? n < c.cmask : n >= c.cmask) ? 1 : 0;
      if (c.edge) {
        // D5: count rising edges of the (thresholded) condition, one per unit at most.
        const cond = inc > 0;
        inc = cond && !s.edgePrev[c.idx]! ? 1 : 0;
        s.edgePrev[c.idx] = cond;
      }
      if (c.fixed && c.idx === 3) slotsCounted = true;
      if (inc === 0) continue;
      const arr = c.fixed ? s.fixed : s.pmc;
      const mask = c.fixed ? p.fixedMask : p.gpMask;
      const raw = arr[c.idx]! + BigInt(inc);
      if (raw > mask) {
        arr[c.idx] = raw & mask; // wraps modulo 2^width
        overflowed |= c.statusBit;
        if (c.pmi) pmi = true;
        if (c.fixed && c.idx === 3 && p.perfMetrics && isSet(s.globalCtrl, EN_PERF_METRICS))
          overflowed |= 1n << BigInt(STATUS.PERF_METRICS_OVF); // D11
      } else {
        arr[c.idx] = raw;
      }
    }
    if (slotsCounted && t !== undefined && p.perfMetrics && isSet(s.globalCtrl, EN_PERF_METRICS))
      accumulateTopdown(s, t); // D12

    if (overflowed === 0n) return null;
    if (p.version >= 2) s.globalStatus |= overflowed; // set whatever INT says (§4.3)
    return pmi ? this.raisePmi() : null;
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
   * PMI generation: freeze actions first, then the LAPIC, which drops the PMI while LVTPC is
   * masked (D7) and masks LVTPC on delivery (§4.4). One PMI per unit boundary (D8).
   */
  private raisePmi(): PmiDelivery | null {
    const s = this.state;
    const p = this.profile;
    if (isSet(s.debugctl, 12)) {
      if (p.version >= 4) s.globalStatus |= 1n << BigInt(STATUS.CTR_FRZ);
      else if (p.version >= 2) s.globalCtrl = 0n; // D9: legacy freeze clears all of GLOBAL_CTRL
      s.configEpoch++;
    }
    if (isSet(s.debugctl, 11)) {
      if (p.version >= 4) s.globalStatus |= 1n << BigInt(STATUS.LBR_FRZ);
      else s.debugctl &= ~1n; // legacy: clear DEBUGCTL.LBR (on v1 too: D37)
    }
    if ((s.lvtpc & LVT_MASK) !== 0n) return null;
    const lvt = Number(s.lvtpc);
    s.lvtpc |= LVT_MASK;
    return { vector: lvt & 0xff, nmi: ((lvt >> 8) & 7) === DELIVERY_NMI };
  }
}
