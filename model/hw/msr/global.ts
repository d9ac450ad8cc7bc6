/**
 * IA32_PERF_GLOBAL_CTRL, _STATUS, _STATUS_RESET (OVF_CTRL), _STATUS_SET, _INUSE
 * (pmu-semantics.md §2.5–§2.9). All exist from version 2 (decision D1); SET and INUSE from v4.
 */

import { type Access, gp, ok } from '../access.js';
import { bit, describeBits } from '../bits.js';
import { fixedExists, type Profile, perProfile } from '../profile.js';
import type { PmuState } from '../state.js';
import { ARCH_PERFMON_EVENTSEL_EVENT, EVTSEL, fixedNibble } from './counters.js';
import { msrFamily } from './family.js';
import { relied } from '../relied.js';
import type { MsrDef } from './types.js';

export const MSR_CORE_PERF_GLOBAL_STATUS = 0x38e;
export const MSR_CORE_PERF_GLOBAL_CTRL = 0x38f;
export const MSR_CORE_PERF_GLOBAL_OVF_CTRL = 0x390;
export const MSR_CORE_PERF_GLOBAL_STATUS_SET = 0x391;
export const MSR_CORE_PERF_GLOBAL_INUSE = 0x392;

/** GLOBAL_STATUS bits beyond the per-counter ones. */
export const STATUS = {
  PERF_METRICS_OVF: 48,
  LBR_FRZ: 58,
  CTR_FRZ: 59,
  OVF_UNCORE: 61,
  OVF_BUF: 62,
  COND_CHGD: 63,
} as const;

export const EN_PERF_METRICS = 48;

/** The status bits by the kernel's names (perf_event.h). */
export const GLOBAL_STATUS_PERF_METRICS_OVF_BIT = STATUS.PERF_METRICS_OVF;
export const GLOBAL_STATUS_LBRS_FROZEN = bit(STATUS.LBR_FRZ);
export const GLOBAL_STATUS_COUNTERS_FROZEN = bit(STATUS.CTR_FRZ);
export const GLOBAL_STATUS_UNC_OVF = bit(STATUS.OVF_UNCORE);
export const GLOBAL_STATUS_BUFFER_OVF = bit(STATUS.OVF_BUF);
export const GLOBAL_STATUS_COND_CHG = bit(STATUS.COND_CHGD);
export const GLOBAL_CTRL_EN_PERF_METRICS = EN_PERF_METRICS;

/** Per-counter bits: GP i at bit i, fixed j at bit 32 + j. */
export const counterBits = perProfile((p: Profile): bigint => {
  let m = (1n << BigInt(p.nGP)) - 1n;
  for (let j = 0; j < 8; j++) if (fixedExists(p, j)) m |= bit(32 + j);
  return m;
});

/** GLOBAL_CTRL writable bits: existing counters, plus EN_PERF_METRICS with PERF_METRICS. */
export const globalCtrlWritable = perProfile(
  (p: Profile): bigint => counterBits(p) | (p.perfMetrics ? bit(EN_PERF_METRICS) : 0n),
);

export function legalizeGlobalCtrl(p: Profile, v: bigint): Access {
  const w = globalCtrlWritable(p);
  return (v | w) === w ? ok(v) : gp(`IA32_PERF_GLOBAL_CTRL: reserved ${describeBits(v & ~w)} set`);
}

/** Status bits that mean something on this part, i.e. that STATUS_RESET/SET accept (decision D14). */
export const statusBits = perProfile((p: Profile): bigint => {
  let m = counterBits(p) | bit(STATUS.OVF_BUF) | bit(STATUS.COND_CHGD);
  if (p.perfMetrics) m |= bit(STATUS.PERF_METRICS_OVF);
  if (p.version >= 3) m |= bit(STATUS.OVF_UNCORE);
  if (p.version >= 4) m |= bit(STATUS.LBR_FRZ) | bit(STATUS.CTR_FRZ);
  return m;
});

export function legalizeStatusReset(p: Profile, v: bigint): Access {
  const w = statusBits(p);
  if ((v | w) !== w) relied('D14');
  return (v | w) === w ? ok(v) : gp(`IA32_PERF_GLOBAL_STATUS_RESET: ${describeBits(v & ~w)} has no status meaning`);
}

export function legalizeStatusSet(p: Profile, v: bigint): Access {
  const w = statusBits(p);
  if ((v | w) !== w) relied('D14');
  return (v | w) === w ? ok(v) : gp(`IA32_PERF_GLOBAL_STATUS_SET: ${describeBits(v & ~w)} has no status meaning`);
}

/** The status bits whose setting by software D15 decides: CondChgd and the freezes. */
const SET_BY_SOFTWARE_ONLY = bit(STATUS.COND_CHGD) | bit(STATUS.LBR_FRZ) | bit(STATUS.CTR_FRZ);

/** GLOBAL_INUSE bit 63: some counter may raise a PMI. */
const INUSE_PMI = bit(63);

/** INUSE is derived, never stored (§2.9): event select non-zero, fixed enable non-zero, any PMI. */
export function readInuse(s: PmuState): bigint {
  const p = s.profile;
  let v = 0n;
  let pmi = false;
  for (let i = 0; i < p.nGP; i++) {
    const e = s.evtsel[i]!;
    if ((e & ARCH_PERFMON_EVENTSEL_EVENT) !== 0n) v |= bit(i);
    if ((e >> BigInt(EVTSEL.int.lo)) & 1n) pmi = true;
  }
  for (let j = 0; j < 8; j++) {
    if (!fixedExists(p, j)) continue;
    const f = fixedNibble(s.fixedCtrl, j);
    if ((f & 3) !== 0) v |= bit(32 + j);
    if (f & 8) pmi = true;
  }
  return pmi ? v | INUSE_PMI : v;
}

export const globalMsrs = msrFamily(['version'], (p) => {
  if (p.version < 2) return [];
  const defs: MsrDef[] = [
    {
      address: MSR_CORE_PERF_GLOBAL_CTRL,
      name: 'IA32_PERF_GLOBAL_CTRL',
      read: (s) => ok(s.globalCtrl),
      write: (s, v) => {
        const r = legalizeGlobalCtrl(s.profile, v);
        // Only a change can change what counts (VM-entry and exit rewrite it, often unchanged).
        if (r.ok && v !== s.globalCtrl) {
          s.globalCtrl = v;
          s.configEpoch++;
        }
        return r;
      },
    },
    {
      address: MSR_CORE_PERF_GLOBAL_STATUS,
      name: 'IA32_PERF_GLOBAL_STATUS',
      read: (s) => ok(s.globalStatus),
      write: () => gp('IA32_PERF_GLOBAL_STATUS is read-only'),
    },
    {
      address: MSR_CORE_PERF_GLOBAL_OVF_CTRL,
      name: p.version >= 4 ? 'IA32_PERF_GLOBAL_STATUS_RESET' : 'IA32_PERF_GLOBAL_OVF_CTRL',
      read: () => {
        relied('D14'); // reads as 0
        return ok(0n);
      },
      write: (s, v) => {
        const r = legalizeStatusReset(s.profile, v);
        if (r.ok && (s.globalStatus & v) !== 0n) {
          s.globalStatus &= ~v;
          s.configEpoch++; // clearing CTR_FRZ/LBR_FRZ unfreezes
        }
        return r;
      },
    },
  ];
  if (p.version >= 4) {
    defs.push(
      {
        address: MSR_CORE_PERF_GLOBAL_STATUS_SET,
        name: 'IA32_PERF_GLOBAL_STATUS_SET',
        read: () => {
          relied('D14');
          return ok(0n);
        },
        write: (s, v) => {
          const r = legalizeStatusSet(s.profile, v);
          if (r.ok && (s.globalStatus | v) !== s.globalStatus) {
            if ((v & SET_BY_SOFTWARE_ONLY) !== 0n) relied('D15');
            s.globalStatus |= v; // D15: setting CTR_FRZ/LBR_FRZ freezes as if hardware had
            s.configEpoch++;
          }
          return r;
        },
      },
      {
        address: MSR_CORE_PERF_GLOBAL_INUSE,
        name: 'IA32_PERF_GLOBAL_INUSE',
        read: (s) => ok(readInuse(s)),
        write: () => {
          relied('D16');
          return gp('IA32_PERF_GLOBAL_INUSE is read-only');
        },
      },
    );
  }
  return defs;
});
