/**
 * IA32_PMCi / IA32_A_PMCi, IA32_PERFEVTSELi, IA32_FIXED_CTRi, IA32_FIXED_CTR_CTRL
 * (pmu-semantics.md §2.2–§2.4, §4.8).
 */

import { type Access, gp, ok } from '../access.js';
import { bit, describeBits, fields, maskOf, signExtend } from '../bits.js';
import { fixedExists, type Profile, perProfile } from '../profile.js';
import { rebaseTopdown } from './topdown.js';
import { msrFamily } from './family.js';
import type { MsrDef } from './types.js';

export const PMC0 = 0xc1;
export const A_PMC0 = 0x4c1;
export const PERFEVTSEL0 = 0x186;
export const FIXED_CTR0 = 0x309;
export const FIXED_CTR_CTRL = 0x38d;

/** IA32_PERFEVTSELx layout (SDM Vol. 4 / pmu-semantics.md §2.3). */
export const EVTSEL = fields({
  event: [7, 0],
  umask: [15, 8],
  usr: 16,
  os: 17,
  edge: 18,
  pc: 19,
  int: 20,
  any: 21,
  en: 22,
  inv: 23,
  cmask: [31, 24],
  inTx: 32,
  inTxCp: 33,
  adaptive: 34,
});

/** Bits of EVTSELi a WRMSR may set on this part; everything else #GPs. */
export function evtselWritable(p: Profile, i: number): bigint {
  return evtselMasks(p)[i] ?? 0n;
}

const evtselMasks = perProfile((p: Profile): bigint[] => Array.from({ length: p.nGP }, (_, i) => evtselMask(p, i)));

function evtselMask(p: Profile, i: number): bigint {
  let m = maskOf(EVTSEL, ['event', 'umask', 'usr', 'os', 'edge', 'pc', 'int', 'en', 'inv', 'cmask']);
  if (p.anyThread) m |= bit(EVTSEL.any.lo); // writable, no effect: one logical CPU (D30)
  if (p.tsx) {
    m |= bit(EVTSEL.inTx.lo);
    if (i === 2) m |= bit(EVTSEL.inTxCp.lo); // IN_TX_CP is only valid on PMC2
  }
  if (p.pebsBaseline) m |= bit(EVTSEL.adaptive.lo); // D31: accepted, PEBS itself not modelled
  return m;
}

export function legalizeEvtsel(p: Profile, i: number, v: bigint): Access {
  const w = evtselWritable(p, i);
  return (v | w) === w ? ok(v) : gp(`IA32_PERFEVTSEL${i}: reserved ${describeBits(v & ~w)} set`);
}

/** Legacy alias write: EAX sign-extended to the counter width, EDX ignored; never #GPs (§2.2). */
export function writeLegacyPmc(p: Profile, v: bigint): bigint {
  return signExtend(v & 0xffff_ffffn, 31) & p.gpMask;
}

/** Full-width alias write: bits at or above gpWidth #GP (§2.2; decision D3). */
export function legalizeFullWidthPmc(p: Profile, i: number, v: bigint): Access {
  const bad = v & ~p.gpMask;
  return bad === 0n ? ok(v) : gp(`IA32_A_PMC${i}: ${describeBits(bad)} at or above the ${p.gpWidth}-bit counter width`);
}

/** Fixed counter write: bits at or above fixedWidth #GP (§2.4; decision D2, KVM masks instead). */
export function legalizeFixedCtr(p: Profile, i: number, v: bigint): Access {
  const bad = v & ~p.fixedMask;
  return bad === 0n
    ? ok(v)
    : gp(`IA32_FIXED_CTR${i}: ${describeBits(bad)} at or above the ${p.fixedWidth}-bit counter width`);
}

/** One FIXED_CTR_CTRL nibble (§2.4). */
export const FIXED_NIBBLE = fields({ enOs: 0, enUsr: 1, any: 2, pmi: 3 });
export const METRICS_CLEAR_EN = 14;

/** Bits of FIXED_CTR_CTRL a WRMSR may set: nibbles of existing counters, ANY where supported. */
export const fixedCtrlWritable = perProfile((p: Profile): bigint => {
  let m = 0n;
  for (let i = 0; i < 8; i++) {
    if (!fixedExists(p, i)) continue;
    m |= 0xbn << BigInt(4 * i);
    if (p.anyThread) m |= bit(4 * i + 2);
    if (p.pebsBaseline) m |= bit(32 + 4 * i); // D31: adaptive PEBS, accepted without effect
  }
  if (p.metricsClear) m |= bit(METRICS_CLEAR_EN);
  return m;
});

export function legalizeFixedCtrl(p: Profile, v: bigint): Access {
  const w = fixedCtrlWritable(p);
  return (v | w) === w ? ok(v) : gp(`IA32_FIXED_CTR_CTRL: reserved ${describeBits(v & ~w)} set`);
}

/** The 4-bit control of fixed counter i. */
export function fixedNibble(ctrl: bigint, i: number): number {
  return Number((ctrl >> BigInt(4 * i)) & 0xfn);
}

export const counterMsrs = msrFamily(['nGP', 'fwWrite', 'version', 'fixedSet'], (p) => {
  const defs: MsrDef[] = [];
  for (let i = 0; i < p.nGP; i++) {
    defs.push({
      address: PMC0 + i,
      name: `IA32_PMC${i}`,
      read: (s) => ok(s.pmc[i]!),
      write: (s, v) => {
        s.pmc[i] = writeLegacyPmc(s.profile, v); // a write never overflows by itself (D35)
        return ok(s.pmc[i]!);
      },
    });
    if (p.fwWrite) {
      defs.push({
        address: A_PMC0 + i,
        name: `IA32_A_PMC${i}`,
        read: (s) => ok(s.pmc[i]!),
        write: (s, v) => {
          const r = legalizeFullWidthPmc(s.profile, i, v);
          if (r.ok) s.pmc[i] = v;
          return r;
        },
      });
    }
    defs.push({
      address: PERFEVTSEL0 + i,
      name: `IA32_PERFEVTSEL${i}`,
      read: (s) => ok(s.evtsel[i]!),
      write: (s, v) => {
        const r = legalizeEvtsel(s.profile, i, v);
        if (r.ok) {
          s.evtsel[i] = v;
          s.edgePrev[i] = false; // D5: reprogramming restarts the edge detector
          s.configEpoch++;
        }
        return r;
      },
    });
  }
  if (p.version >= 2) {
    for (let i = 0; i < 8; i++) {
      if (!fixedExists(p, i)) continue;
      defs.push({
        address: FIXED_CTR0 + i,
        name: `IA32_FIXED_CTR${i}`,
        read: (s) => ok(s.fixed[i]!),
        write: (s, v) => {
          const r = legalizeFixedCtr(s.profile, i, v);
          if (r.ok) {
            s.fixed[i] = v;
            if (i === 3 && s.profile.perfMetrics) rebaseTopdown(s); // D12
          }
          return r;
        },
      });
    }
    defs.push({
      address: FIXED_CTR_CTRL,
      name: 'IA32_FIXED_CTR_CTRL',
      read: (s) => ok(s.fixedCtrl),
      write: (s, v) => {
        const r = legalizeFixedCtrl(s.profile, v);
        if (r.ok && v !== s.fixedCtrl) {
          s.fixedCtrl = v;
          s.configEpoch++;
        }
        return r;
      },
    });
  }
  return defs;
});
