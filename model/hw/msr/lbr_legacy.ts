/**
 * Model-specific ("legacy") LBRs: MSR_LBR_SELECT, MSR_LASTBRANCH_TOS, the FROM/TO/INFO ring in
 * the profile's LBR_FMT (pmu-semantics.md §2.13, §4.7).
 */

import { type Access, gp, ok } from '../access.js';
import { bit, bits, describeBits, fieldMask, fields, isSignExtended, lowMask, signExtend } from '../bits.js';
import type { Profile } from '../profile.js';
import type { BranchKind, PmuState } from '../state.js';
import { msrFamily } from './family.js';
import { relied } from '../relied.js';
import { GLOBAL_STATUS_LBRS_FROZEN } from './global.js';
import type { MsrDef } from './types.js';

export const MSR_LBR_SELECT = 0x1c8;
export const MSR_LBR_TOS = 0x1c9;
/** The record bases of the formats the built-in parts have (MSR_LASTBRANCH_x_FROM_IP / TO_IP, MSR_LBR_INFO_x). */
export const MSR_LBR_NHM_FROM = 0x680;
export const MSR_LBR_NHM_TO = 0x6c0;
export const MSR_LBR_INFO_0 = 0xdc0;
/** The deepest legacy LBR stack (32 records, Skylake and later): the size of each record block. */
export const LEGACY_LBR_MAX_DEPTH = 32;
/** An MSR_LBR_INFO_n of any legacy depth. */
export const isLbrInfoMsr = (m: number) => m >= MSR_LBR_INFO_0 && m < MSR_LBR_INFO_0 + LEGACY_LBR_MAX_DEPTH;
export const MSR_LBR_CORE_FROM = 0x40;
export const MSR_LBR_CORE_TO = 0x60;

/** MSR_LBR_SELECT: bits 0..8 suppress (1 = do not capture), bit 9 enables call-stack mode. */
export const LBR_SELECT_FIELDS = fields({
  cplEq0: 0,
  cplNeq0: 1,
  jcc: 2,
  nearRelCall: 3,
  nearIndCall: 4,
  nearRet: 5,
  nearIndJmp: 6,
  nearRelJmp: 7,
  farBranch: 8,
  enCallstack: 9,
});

/** LBR_SELECT's bits by the kernel's names (intel/lbr.c). */
export const LBR_KERNEL = fieldMask(LBR_SELECT_FIELDS.cplEq0);
export const LBR_USER = fieldMask(LBR_SELECT_FIELDS.cplNeq0);
export const LBR_JCC = fieldMask(LBR_SELECT_FIELDS.jcc);
export const LBR_REL_CALL = fieldMask(LBR_SELECT_FIELDS.nearRelCall);
export const LBR_IND_CALL = fieldMask(LBR_SELECT_FIELDS.nearIndCall);
export const LBR_RETURN = fieldMask(LBR_SELECT_FIELDS.nearRet);
export const LBR_IND_JMP = fieldMask(LBR_SELECT_FIELDS.nearIndJmp);
export const LBR_REL_JMP = fieldMask(LBR_SELECT_FIELDS.nearRelJmp);
export const LBR_FAR = fieldMask(LBR_SELECT_FIELDS.farBranch);
export const LBR_CALL_STACK = fieldMask(LBR_SELECT_FIELDS.enCallstack);
/** LBR_SEL_MASK: every filter bit and call-stack mode. */
export const LBR_SEL_MASK =
  LBR_KERNEL |
  LBR_USER |
  LBR_JCC |
  LBR_REL_CALL |
  LBR_IND_CALL |
  LBR_RETURN |
  LBR_IND_JMP |
  LBR_REL_JMP |
  LBR_FAR |
  LBR_CALL_STACK;

/** Which LBR_SELECT bit suppresses each kind of branch. */
export const SUPPRESS_BIT: Readonly<Record<BranchKind, number>> = {
  COND: LBR_SELECT_FIELDS.jcc.lo,
  NEAR_REL_CALL: LBR_SELECT_FIELDS.nearRelCall.lo,
  NEAR_IND_CALL: LBR_SELECT_FIELDS.nearIndCall.lo,
  NEAR_RET: LBR_SELECT_FIELDS.nearRet.lo,
  NEAR_IND_JMP: LBR_SELECT_FIELDS.nearIndJmp.lo,
  NEAR_REL_JMP: LBR_SELECT_FIELDS.nearRelJmp.lo,
  FAR: LBR_SELECT_FIELDS.farBranch.lo,
};

export function lbrSelectWritable(p: Profile): bigint {
  return (LBR_SEL_MASK & ~LBR_CALL_STACK) | (p.legacyLbr?.callStack ? LBR_CALL_STACK : 0n);
}

export function legalizeLbrSelect(p: Profile, v: bigint): Access {
  const bad = v & ~lbrSelectWritable(p);
  if (bad !== 0n) relied('D18');
  return bad === 0n ? ok(v) : gp(`MSR_LBR_SELECT: reserved ${describeBits(bad)} set`);
}

const MISPRED = bit(63);
const LOW63 = lowMask(63);
const LOW61 = lowMask(61);
const ADDR48 = lowMask(48);
const CANON_LOW_END = 1n << 47n;
/** MSR_LBR_INFO.CYC_CNT: the elapsed core cycles since the previous record, saturated at 16 bits (D23). */
export const LBR_INFO_CYC_CNT = bits(15, 0);
/** MSR_LBR_INFO's writable bits: MISPRED and CYC_CNT, plus IN_TX and TSX_ABORT in format 5. */
const INFO_WRITABLE = bit(63) | LBR_INFO_CYC_CNT;
const INFO_WRITABLE_FMT5 = INFO_WRITABLE | bits(62, 61);

/** FROM as the format stores it (§2.13): flags over a sign-extended 48-bit address. */
export function encodeFrom(fmt: number, from: bigint, mispredict: boolean): bigint {
  const m = mispredict ? MISPRED : 0n;
  switch (fmt) {
    case 3:
    case 6:
      return (from & LOW63) | m;
    case 4:
      return (from & LOW61) | m; // IN_TX and TSX_ABORT stay 0: the model has no TSX
    default:
      return from;
  }
}

/** `cycles` is already saturated to 16 bits (D23). */
export function encodeTo(fmt: number, to: bigint, cycles: number): bigint {
  return fmt === 6 ? (to & ADDR48) | (BigInt(cycles) << 48n) : to;
}

export function encodeInfo(fmt: number, mispredict: boolean, cycles: number): bigint {
  if (fmt !== 5 && fmt !== 7) return 0n;
  return (mispredict ? MISPRED : 0n) | BigInt(cycles);
}

/** Bits top:47 all equal: the address part below the format's flag bits is canonical. */
function canonicalUpTo(v: bigint, top: number): boolean {
  // Below 2^47 every bit from 47 up is 0, whatever `top`: no sign extension to compute.
  return (v >= 0n && v < CANON_LOW_END) || isSignExtended(signExtend(v, top), 47);
}

/**
 * FROM writes: the address part must be canonical; the format's flag bits are free (D20). With
 * format 4 and no TSX, bits 62:61 count as sign extension (the TSX quirk of §2.13).
 */
export function legalizeLbrFrom(p: Profile, i: number, v: bigint): Access {
  relied('D20');
  const fmt = p.lbrFmt;
  const top = fmt === 3 || fmt === 6 || (fmt === 4 && !p.tsx) ? 62 : fmt === 4 ? 60 : 63;
  return canonicalUpTo(v, top)
    ? ok(v)
    : gp(`MSR_LBR_FROM_${i}: 0x${v.toString(16)} is not a canonical address for LBR_FMT ${fmt}`);
}

export function legalizeLbrTo(p: Profile, i: number, v: bigint): Access {
  relied('D20');
  if (p.lbrFmt === 6) return ok(v); // 63:48 hold the cycle count
  return (v >= 0n && v < CANON_LOW_END) || isSignExtended(v, 47)
    ? ok(v)
    : gp(`MSR_LBR_TO_${i}: 0x${v.toString(16)} is not a canonical address`);
}

/** MSR_LBR_INFO: MISPRED, IN_TX, TSX_ABORT (format 5 only) and the 16-bit cycle count (§2.13). */
export function legalizeLbrInfo(p: Profile, i: number, v: bigint): Access {
  relied('D20');
  const w = p.lbrFmt === 5 ? INFO_WRITABLE_FMT5 : INFO_WRITABLE;
  return (v | w) === w ? ok(v) : gp(`MSR_LBR_INFO_${i}: reserved ${describeBits(v & ~w)} set`);
}

/** Records one taken branch per DEBUGCTL.LBR, LBR_FRZ and LBR_SELECT (§4.7). */
export function legacyRecord(
  s: PmuState,
  from: bigint,
  to: bigint,
  kind: BranchKind,
  cpl: number,
  mispredict: boolean,
  cycles: number,
): boolean {
  const g = s.profile.legacyLbr;
  if (g === undefined || (s.debugctl & 1n) === 0n) return false;
  if ((s.globalStatus & GLOBAL_STATUS_LBRS_FROZEN) !== 0n) return false; // LBR_FRZ (v4+)
  if (s.lbrSelect !== 0n) {
    const sel = Number(s.lbrSelect); // bits 9:0 only (D18)
    if (kind === 'FAR' && (sel & 3) !== 0) relied('D22'); // only a far branch may change CPL
    if ((sel >> (cpl === 0 ? 0 : 1)) & 1) return false; // D22: the branch's own CPL
    if ((sel >> SUPPRESS_BIT[kind]) & 1) return false;
    if (kind === 'NEAR_RET' && (sel >> 9) & 1) {
      // D21: a return in call-stack mode pops the newest record instead of adding one.
      relied('D21');
      const t = s.lbrTos;
      s.lbrFrom[t] = 0n;
      s.lbrTo[t] = 0n;
      s.lbrInfo[t] = 0n;
      s.lbrTos = (t + g.depth - 1) % g.depth;
      return false;
    }
  }
  const t = (s.lbrTos + 1) % g.depth;
  const fmt = s.profile.lbrFmt;
  s.lbrTos = t;
  s.lbrFrom[t] = encodeFrom(fmt, from, mispredict);
  s.lbrTo[t] = encodeTo(fmt, to, cycles);
  if (g.infoBase !== undefined) s.lbrInfo[t] = encodeInfo(fmt, mispredict, cycles);
  if (fmt >= 5) relied('D23'); // formats 5-7 record a cycle count
  return true;
}

/** A guest's oracle profile shares its host's geometry (the same object), so it shares these ~100 defs. */
export const legacyLbrMsrs = msrFamily(['legacyLbr'], (p) => {
  const g = p.legacyLbr;
  if (g === undefined) return [];
  const defs: MsrDef[] = [
    {
      address: MSR_LBR_TOS,
      name: 'MSR_LASTBRANCH_TOS',
      read: (s) => {
        if (!s.lbrTosWritten) relied('D40');
        return ok(BigInt(s.lbrTos));
      },
      write: (s, v) => {
        // D19: a TOS beyond the ring #GPs.
        if (v >= BigInt(g.depth)) {
          relied('D19');
          return gp(`MSR_LASTBRANCH_TOS: ${v} is not below the LBR depth ${g.depth}`);
        }
        s.lbrTos = Number(v);
        s.lbrTosWritten = true;
        return ok(v);
      },
    },
  ];
  if (g.select) {
    defs.push({
      address: MSR_LBR_SELECT,
      name: 'MSR_LBR_SELECT',
      read: (s) => ok(s.lbrSelect),
      write: (s, v) => {
        const r = legalizeLbrSelect(s.profile, v);
        if (r.ok) s.lbrSelect = v;
        return r;
      },
    });
  }
  for (let i = 0; i < g.depth; i++) {
    defs.push(
      {
        address: g.fromBase + i,
        name: `MSR_LBR_FROM_${i}`,
        read: (s) => {
          if (!s.lbrTosWritten) relied('D40'); // which record holds what depends on TOS at RESET
          return ok(s.lbrFrom[i]!);
        },
        write: (s, v) => {
          const r = legalizeLbrFrom(s.profile, i, v);
          if (r.ok) s.lbrFrom[i] = v;
          return r;
        },
      },
      {
        address: g.toBase + i,
        name: `MSR_LBR_TO_${i}`,
        read: (s) => {
          if (!s.lbrTosWritten) relied('D40'); // which record holds what depends on TOS at RESET
          return ok(s.lbrTo[i]!);
        },
        write: (s, v) => {
          const r = legalizeLbrTo(s.profile, i, v);
          if (r.ok) s.lbrTo[i] = v;
          return r;
        },
      },
    );
    if (g.infoBase !== undefined) {
      defs.push({
        address: g.infoBase + i,
        name: `MSR_LBR_INFO_${i}`,
        read: (s) => {
          if (!s.lbrTosWritten) relied('D40'); // which record holds what depends on TOS at RESET
          return ok(s.lbrInfo[i]!);
        },
        write: (s, v) => {
          const r = legalizeLbrInfo(s.profile, i, v);
          if (r.ok) s.lbrInfo[i] = v;
          return r;
        },
      });
    }
  }
  return defs;
});
