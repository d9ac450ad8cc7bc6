/**
 * Architectural LBR: IA32_LBR_CTL, IA32_LBR_DEPTH, the newest-first records, and XSAVE state
 * component 15 (pmu-semantics.md §3).
 */

import { type Access, gp, ok } from '../access.js';
import { bits, describeBits, fieldMask, fields, isSignExtended, maskOf } from '../bits.js';
import { ModelError } from '../errors.js';
import { type Profile, perProfile } from '../profile.js';
import { BRANCH_KINDS, type BranchKind, type PmuState } from '../state.js';
import { msrFamily } from './family.js';
import { relied } from '../relied.js';
import { GLOBAL_STATUS_LBRS_FROZEN } from './global.js';
import type { MsrDef } from './types.js';

export const MSR_ARCH_LBR_CTL = 0x14ce;
export const MSR_ARCH_LBR_DEPTH = 0x14cf;
export const MSR_ARCH_LBR_FROM_0 = 0x1500;
export const MSR_ARCH_LBR_TO_0 = 0x1600;
export const MSR_ARCH_LBR_INFO_0 = 0x1200;
/** The deepest Arch LBR stack CPUID.1CH can enumerate (64 records): the size of each record block. */
export const ARCH_LBR_MAX_DEPTH = 64;
/** An IA32_LBR_n_INFO of any depth. */
export const isArchLbrInfoMsr = (m: number) => m >= MSR_ARCH_LBR_INFO_0 && m < MSR_ARCH_LBR_INFO_0 + ARCH_LBR_MAX_DEPTH;

/** IA32_LBR_CTL: positive filtering, 1 = capture (§3.2). */
export const LBR_CTL_FIELDS = fields({
  lbrEn: 0,
  os: 1,
  usr: 2,
  callStack: 3,
  cond: 16,
  nearRelJmp: 17,
  nearIndJmp: 18,
  nearRelCall: 19,
  nearIndCall: 20,
  nearRet: 21,
  otherBranch: 22,
});

/** LBR_CTL's bits by the kernel's names (intel/lbr.c). */
export const ARCH_LBR_LBREN = fieldMask(LBR_CTL_FIELDS.lbrEn);
export const ARCH_LBR_KERNEL = fieldMask(LBR_CTL_FIELDS.os);
export const ARCH_LBR_USER = fieldMask(LBR_CTL_FIELDS.usr);
export const ARCH_LBR_CALL_STACK = fieldMask(LBR_CTL_FIELDS.callStack);
export const ARCH_LBR_JCC = fieldMask(LBR_CTL_FIELDS.cond);
export const ARCH_LBR_REL_JMP = fieldMask(LBR_CTL_FIELDS.nearRelJmp);
export const ARCH_LBR_IND_JMP = fieldMask(LBR_CTL_FIELDS.nearIndJmp);
export const ARCH_LBR_REL_CALL = fieldMask(LBR_CTL_FIELDS.nearRelCall);
export const ARCH_LBR_IND_CALL = fieldMask(LBR_CTL_FIELDS.nearIndCall);
export const ARCH_LBR_RETURN = fieldMask(LBR_CTL_FIELDS.nearRet);
export const ARCH_LBR_OTHER_BRANCH = fieldMask(LBR_CTL_FIELDS.otherBranch);
/** ARCH_LBR_ANY: every branch type. */
export const ARCH_LBR_ANY = maskOf(LBR_CTL_FIELDS, [
  'cond',
  'nearRelJmp',
  'nearIndJmp',
  'nearRelCall',
  'nearIndCall',
  'nearRet',
  'otherBranch',
]);

/** Which LBR_CTL bit captures each kind of branch. */
export const CAPTURE_BIT: Readonly<Record<BranchKind, number>> = {
  COND: LBR_CTL_FIELDS.cond.lo,
  NEAR_REL_JMP: LBR_CTL_FIELDS.nearRelJmp.lo,
  NEAR_IND_JMP: LBR_CTL_FIELDS.nearIndJmp.lo,
  NEAR_REL_CALL: LBR_CTL_FIELDS.nearRelCall.lo,
  NEAR_IND_CALL: LBR_CTL_FIELDS.nearIndCall.lo,
  NEAR_RET: LBR_CTL_FIELDS.nearRet.lo,
  FAR: LBR_CTL_FIELDS.otherBranch.lo,
};

/** IA32_LBR_x_INFO BR_TYPE encodings (§3.4); far branches are "other" (decision D28). */
export const BR_TYPE: Readonly<Record<BranchKind, number>> = {
  COND: 0,
  NEAR_IND_JMP: 1,
  NEAR_REL_JMP: 2,
  NEAR_IND_CALL: 3,
  NEAR_REL_CALL: 4,
  NEAR_RET: 5,
  FAR: 8,
};

export const INFO_FIELDS = fields({
  cycCnt: [15, 0],
  brType: [59, 56],
  cycCntValid: 60,
  tsxAbort: 61,
  inTsx: 62,
  mispred: 63,
});

/** LBR_CTL bits CPUID.1CH enumerates; a bit of an absent feature #GPs (§3.2). */
export function lbrCtlWritable(p: Profile): bigint {
  const a = p.archLbr;
  if (a === undefined) return 0n;
  let m = ARCH_LBR_LBREN;
  if (a.cplFilter) m |= ARCH_LBR_KERNEL | ARCH_LBR_USER;
  if (a.callStack) m |= ARCH_LBR_CALL_STACK;
  if (a.branchFilter) m |= ARCH_LBR_ANY;
  return m;
}

export function legalizeLbrCtl(p: Profile, v: bigint): Access {
  const bad = v & ~lbrCtlWritable(p);
  return bad === 0n ? ok(v) : gp(`IA32_LBR_CTL: ${describeBits(bad)} reserved or not enumerated by CPUID.1CH`);
}

export function legalizeLbrDepth(p: Profile, v: bigint): Access {
  relied('D25'); // any accepted write clears every record, the same depth included
  const depths = p.archLbr?.depths ?? [];
  return depths.some((d) => BigInt(d) === v)
    ? ok(v)
    : gp(`IA32_LBR_DEPTH: ${v} is not a depth CPUID.1CH enumerates (${depths.join(', ')})`);
}

/** D24: record FROM/TO take canonical addresses only. */
export function legalizeArchAddr(name: string, v: bigint): Access {
  if (!isSignExtended(v, 47)) relied('D24');
  return isSignExtended(v, 47) ? ok(v) : gp(`${name}: 0x${v.toString(16)} is not a canonical address`);
}

/** D24: INFO bits 55:16, between the cycle count and BR_TYPE, are reserved. */
const INFO_RESERVED = bits(INFO_FIELDS.brType.lo - 1, INFO_FIELDS.cycCnt.hi + 1);

export function legalizeArchInfo(name: string, v: bigint): Access {
  const bad = v & INFO_RESERVED;
  if (bad !== 0n) relied('D24');
  return bad === 0n ? ok(v) : gp(`${name}: reserved ${describeBits(bad)} set`);
}

/** Zeroes every record, as a DEPTH write or a mismatched XRSTORS does (§3.3, §3.5). */
function clearRecords(s: PmuState): void {
  s.alFrom.fill(0n);
  s.alTo.fill(0n);
  s.alInfo.fill(0n);
  s.alHead = 0;
}

/** Where architectural entry k (0 = newest) is stored in the ring. */
export function archSlot(s: PmuState, k: number): number {
  return (s.alHead + k) % s.lbrDepth;
}

const BR_TYPE_FIELD: Readonly<Record<BranchKind, bigint>> = Object.fromEntries(
  Object.entries(BR_TYPE).map(([k, v]) => [k, BigInt(v) << BigInt(INFO_FIELDS.brType.lo)]),
) as Record<BranchKind, bigint>;
const MISPRED = fieldMask(INFO_FIELDS.mispred);
const CYC_CNT_VALID = fieldMask(INFO_FIELDS.cycCntValid);

/** INFO of a new record: each field only where CPUID.1CH:ECX enumerates it (§3.1, §3.4). */
export function encodeArchInfo(p: Profile, kind: BranchKind, mispredict: boolean, cycles: number): bigint {
  const a = p.archLbr!;
  let v = 0n;
  if (a.mispred && mispredict) v |= MISPRED;
  if (a.brType) v |= BR_TYPE_FIELD[kind];
  if (a.timedLbr) v |= CYC_CNT_VALID | BigInt(cycles);
  return v;
}

const KIND_INDEX = Object.fromEntries(BRANCH_KINDS.map((k, i) => [k, i])) as Record<BranchKind, number>;

/** encodeArchInfo without the cycle count, per profile, kind and mispredict: the per-branch hot path. */
const infoTemplates = perProfile((p: Profile): bigint[] =>
  BRANCH_KINDS.flatMap((k) => [encodeArchInfo(p, k, false, 0), encodeArchInfo(p, k, true, 0)]),
);
function infoTemplate(p: Profile, kind: BranchKind, mispredict: boolean): bigint {
  return infoTemplates(p)[KIND_INDEX[kind] * 2 + (mispredict ? 1 : 0)]!;
}

/** Records one taken branch per LBR_CTL and LBR_FRZ; entry 0 is the newest (§3.4, §4.7). */
export function archRecord(
  s: PmuState,
  from: bigint,
  to: bigint,
  kind: BranchKind,
  cpl: number,
  mispredict: boolean,
  cycles: number,
): boolean {
  const a = s.profile.archLbr;
  if (a === undefined || (s.lbrCtl & ARCH_LBR_LBREN) === 0n) return false;
  if ((s.globalStatus & GLOBAL_STATUS_LBRS_FROZEN) !== 0n) return false;
  const c = Number(s.lbrCtl); // bits 22:0 only (legalizeLbrCtl)
  if (kind === 'FAR' && a.cplFilter) relied('D22'); // only a far branch may change CPL
  if (a.cplFilter && !((c >> (cpl === 0 ? LBR_CTL_FIELDS.os.lo : LBR_CTL_FIELDS.usr.lo)) & 1)) return false;
  if (a.branchFilter && !((c >> CAPTURE_BIT[kind]) & 1)) return false;
  const d = s.lbrDepth;
  if (kind === 'NEAR_RET' && a.callStack && (c >> LBR_CTL_FIELDS.callStack.lo) & 1) {
    // D21: a return in call-stack mode pops the newest record; the freed slot becomes the oldest.
    relied('D21');
    const h = s.alHead;
    s.alFrom[h] = 0n;
    s.alTo[h] = 0n;
    s.alInfo[h] = 0n;
    s.alHead = (h + 1) % d;
    return false;
  }
  const h = (s.alHead + d - 1) % d; // the oldest record's slot becomes entry 0
  s.alHead = h;
  s.alFrom[h] = from;
  s.alTo[h] = to;
  const info = infoTemplate(s.profile, kind, mispredict);
  s.alInfo[h] = a.timedLbr && cycles !== 0 ? info | BigInt(cycles) : info;
  if (a.timedLbr) relied('D23');
  if (kind === 'FAR' && a.brType) relied('D28');
  return true;
}

/** One record of XSAVE component 15. */
export interface ArchLbrEntry {
  readonly from: bigint;
  readonly to: bigint;
  readonly info: bigint;
}

/** XSAVE state component 15 (Linux `struct arch_lbr_state`): 40 + 24·depth bytes. */
export interface ArchLbrXsave {
  readonly lbrCtl: bigint;
  readonly lbrDepth: bigint;
  readonly lerFrom: bigint;
  readonly lerTo: bigint;
  readonly lerInfo: bigint;
  readonly entries: readonly ArchLbrEntry[];
}

export function xsaveSize(area: ArchLbrXsave): number {
  return 40 + 24 * area.entries.length;
}

export function xsavesArchLbr(s: PmuState): ArchLbrXsave {
  relied('D27'); // the LER fields are stored values no branch updates
  const entries: ArchLbrEntry[] = [];
  for (let k = 0; k < s.lbrDepth; k++) {
    const i = archSlot(s, k);
    entries.push({ from: s.alFrom[i]!, to: s.alTo[i]!, info: s.alInfo[i]! });
  }
  return Object.freeze({
    lbrCtl: s.lbrCtl,
    lbrDepth: BigInt(s.lbrDepth),
    lerFrom: s.lerFrom,
    lerTo: s.lerTo,
    lerInfo: s.lerInfo,
    entries: Object.freeze(entries),
  });
}

/**
 * XRSTORS of component 15: loads LBR_CTL and LER; loads the records only when the saved depth
 * equals IA32_LBR_DEPTH, and zeroes them otherwise (§3.5). DEPTH itself is not loaded (D26).
 */
export function xrstorsArchLbr(s: PmuState, area: ArchLbrXsave): Access {
  relied('D26');
  if (area.entries.length !== Number(area.lbrDepth))
    throw new ModelError(
      `malformed Arch LBR XSAVE area: lbr_depth ${area.lbrDepth} but ${area.entries.length} records (${xsaveSize(area)} bytes)`,
    );
  const ctl = legalizeLbrCtl(s.profile, area.lbrCtl);
  if (!ctl.ok) return gp(`XRSTORS: ${ctl.gp}`);
  const match = area.lbrDepth === BigInt(s.lbrDepth);
  if (match) {
    for (let k = 0; k < area.entries.length; k++) {
      const e = area.entries[k]!;
      const r =
        [
          legalizeArchAddr(`XRSTORS IA32_LBR_${k}_FROM_IP`, e.from),
          legalizeArchAddr(`XRSTORS IA32_LBR_${k}_TO_IP`, e.to),
          legalizeArchInfo(`XRSTORS IA32_LBR_${k}_INFO`, e.info),
        ].find((x) => !x.ok) ?? null;
      if (r !== null) return r;
    }
  }
  s.lbrCtl = area.lbrCtl;
  s.lerFrom = area.lerFrom;
  s.lerTo = area.lerTo;
  s.lerInfo = area.lerInfo;
  if (match) {
    s.alHead = 0;
    area.entries.forEach((e, k) => {
      s.alFrom[k] = e.from;
      s.alTo[k] = e.to;
      s.alInfo[k] = e.info;
    });
  } else {
    clearRecords(s);
  }
  return ok(0n);
}

/** A record MSR beyond the current depth #GPs (D24). */
function recordDef(
  address: number,
  name: string,
  k: number,
  get: (s: PmuState) => bigint[],
  legalize: (name: string, v: bigint) => Access,
): MsrDef {
  const beyond = (s: PmuState) => {
    relied('D24');
    return gp(`${name}: record ${k} is beyond IA32_LBR_DEPTH ${s.lbrDepth}`);
  };
  return {
    address,
    name,
    read: (s) => (k < s.lbrDepth ? ok(get(s)[archSlot(s, k)]!) : beyond(s)),
    write: (s, v) => {
      if (k >= s.lbrDepth) return beyond(s);
      const r = legalize(name, v);
      if (r.ok) get(s)[archSlot(s, k)] = v;
      return r;
    },
  };
}

export const archLbrMsrs = msrFamily(['archLbr'], (p) => {
  const a = p.archLbr;
  if (a === undefined) return [];
  const defs: MsrDef[] = [
    {
      address: MSR_ARCH_LBR_CTL,
      name: 'IA32_LBR_CTL',
      read: (s) => ok(s.lbrCtl),
      write: (s, v) => {
        const r = legalizeLbrCtl(s.profile, v);
        if (r.ok) s.lbrCtl = v;
        return r;
      },
    },
    {
      address: MSR_ARCH_LBR_DEPTH,
      name: 'IA32_LBR_DEPTH',
      read: (s) => {
        relied('D25'); // RESET left the maximum depth
        return ok(BigInt(s.lbrDepth));
      },
      write: (s, v) => {
        const r = legalizeLbrDepth(s.profile, v);
        if (r.ok) {
          s.lbrDepth = Number(v);
          clearRecords(s); // any write resets every record (§3.3)
        }
        return r;
      },
    },
  ];
  for (let k = 0; k < a.maxDepth; k++) {
    defs.push(
      recordDef(MSR_ARCH_LBR_FROM_0 + k, `IA32_LBR_${k}_FROM_IP`, k, (s) => s.alFrom, legalizeArchAddr),
      recordDef(MSR_ARCH_LBR_TO_0 + k, `IA32_LBR_${k}_TO_IP`, k, (s) => s.alTo, legalizeArchAddr),
      recordDef(MSR_ARCH_LBR_INFO_0 + k, `IA32_LBR_${k}_INFO`, k, (s) => s.alInfo, legalizeArchInfo),
    );
  }
  return defs;
});
