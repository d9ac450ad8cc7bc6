/**
 * IA32_DEBUGCTL (0x1D9) as far as the PMU cares: LBR, FREEZE_LBRS_ON_PMI, FREEZE_PERFMON_ON_PMI
 * (pmu-semantics.md §2.12, §4.4); the freeze bits only from PMU version 2 (decision D37). The other bits are
 * stored without effect (decision D17).
 */

import { type Access, gp, ok } from '../access.js';
import { bit, describeBits, fieldMask, fields, maskOf } from '../bits.js';
import { type Profile, perProfile } from '../profile.js';
import type { PmuState } from '../state.js';
import { msrFamily } from './family.js';
import { relied } from '../relied.js';

export const MSR_IA32_DEBUGCTLMSR = 0x1d9;

export const DEBUGCTL_FIELDS = fields({
  lbr: 0,
  btf: 1,
  tr: 6,
  bts: 7,
  btint: 8,
  btsOffOs: 9,
  btsOffUsr: 10,
  freezeLbrsOnPmi: 11,
  freezePerfmonOnPmi: 12,
  enableUncorePmi: 13,
  freezeWhileSmm: 14,
  rtmDebug: 15,
});

/** DEBUGCTL's bits by the kernel's names (msr-index.h). */
export const DEBUGCTLMSR_LBR = fieldMask(DEBUGCTL_FIELDS.lbr);
export const DEBUGCTLMSR_BTF = fieldMask(DEBUGCTL_FIELDS.btf);
export const DEBUGCTLMSR_BUS_LOCK_DETECT = bit(2);
export const DEBUGCTLMSR_TR = fieldMask(DEBUGCTL_FIELDS.tr);
export const DEBUGCTLMSR_BTS = fieldMask(DEBUGCTL_FIELDS.bts);
export const DEBUGCTLMSR_BTINT = fieldMask(DEBUGCTL_FIELDS.btint);
export const DEBUGCTLMSR_BTS_OFF_OS = fieldMask(DEBUGCTL_FIELDS.btsOffOs);
export const DEBUGCTLMSR_BTS_OFF_USR = fieldMask(DEBUGCTL_FIELDS.btsOffUsr);
export const DEBUGCTLMSR_FREEZE_LBRS_ON_PMI = fieldMask(DEBUGCTL_FIELDS.freezeLbrsOnPmi);
export const DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI = fieldMask(DEBUGCTL_FIELDS.freezePerfmonOnPmi);
export const DEBUGCTLMSR_FREEZE_IN_SMM = fieldMask(DEBUGCTL_FIELDS.freezeWhileSmm);
export const DEBUGCTLMSR_RTM_DEBUG = fieldMask(DEBUGCTL_FIELDS.rtmDebug);

/** The freeze-on-PMI bits, which exist from PMU version 2 (decision D37). */
const FREEZE_BITS = DEBUGCTLMSR_FREEZE_LBRS_ON_PMI | DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI;
/** The bits whose effects the model has; any other accepted bit is stored without effect (D17). */
const MODELLED = DEBUGCTLMSR_LBR | FREEZE_BITS;

export const debugctlWritable = perProfile((p: Profile): bigint => {
  let m = maskOf(DEBUGCTL_FIELDS, ['lbr', 'btf', 'tr', 'bts', 'btint', 'btsOffOs', 'btsOffUsr', 'enableUncorePmi']);
  if (p.version >= 2) m |= FREEZE_BITS;
  if (p.smmFrz) m |= bit(DEBUGCTL_FIELDS.freezeWhileSmm.lo);
  if (p.tsx) m |= bit(DEBUGCTL_FIELDS.rtmDebug.lo);
  return m;
});

export function legalizeDebugctl(p: Profile, v: bigint): Access {
  const w = debugctlWritable(p);
  if ((v | w) === w) {
    if ((v & ~MODELLED) !== 0n) relied('D17');
    return ok(v);
  }
  if (p.version < 2 && (v & FREEZE_BITS) !== 0n) {
    relied('D37');
    return gp(`IA32_DEBUGCTL: ${describeBits(v & FREEZE_BITS)} (freeze on PMI) needs PMU version 2 or later`);
  }
  relied('D17');
  return gp(`IA32_DEBUGCTL: reserved ${describeBits(v & ~w)} set`);
}

/** With Arch LBR, DEBUGCTL.LBR is ignored and reads 0 (§2.12). */
export function readDebugctl(s: PmuState): bigint {
  return s.profile.archLbr ? s.debugctl & ~1n : s.debugctl;
}

export const debugctlMsrs = msrFamily([], () => [
  {
    address: MSR_IA32_DEBUGCTLMSR,
    name: 'IA32_DEBUGCTL',
    read: (s) => ok(readDebugctl(s)),
    write: (s, v) => {
      const r = legalizeDebugctl(s.profile, v);
      if (r.ok) s.debugctl = s.profile.archLbr ? v & ~1n : v;
      return r.ok ? ok(readDebugctl(s)) : r;
    },
  },
]);
