/**
 * IA32_PMCi / IA32_A_PMCi, IA32_PERFEVTSELi, IA32_FIXED_CTRi, IA32_FIXED_CTR_CTRL
 * (pmu-semantics.md §2.2–§2.4, §4.8).
 */

import { type Access, gp, ok } from '../access.js';
import { bit, describeBits, fieldMask, fields, maskOf, signExtend } from '../bits.js';
import { fixedExists, type Profile, perProfile } from '../profile.js';
import { rebaseTopdown } from './topdown.js';
import { msrFamily } from './family.js';
import type { MsrDef } from './types.js';
import { relied } from '../relied.js';
import type { PmuState } from '../state.js';

export const MSR_IA32_PERFCTR0 = 0xc1;
export const MSR_IA32_PMC0 = 0x4c1;
export const MSR_P6_EVNTSEL0 = 0x186;
export const MSR_CORE_PERF_FIXED_CTR0 = 0x309;
export const MSR_CORE_PERF_FIXED_CTR_CTRL = 0x38d;
/** The P6-era names kvm_{get,set}_msr_common answer for (the P6 quirk). */
export const MSR_P6_PERFCTR0 = MSR_IA32_PERFCTR0;
export const MSR_P6_PERFCTR1 = MSR_IA32_PERFCTR0 + 1;
export const MSR_P6_EVNTSEL1 = MSR_P6_EVNTSEL0 + 1;

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

/** EVTSEL's bits by the kernel's names (perf_event.h), as the ports of perf and KVM use them. */
export const ARCH_PERFMON_EVENTSEL_EVENT = fieldMask(EVTSEL.event);
export const ARCH_PERFMON_EVENTSEL_UMASK = fieldMask(EVTSEL.umask);
export const ARCH_PERFMON_EVENTSEL_USR = fieldMask(EVTSEL.usr);
export const ARCH_PERFMON_EVENTSEL_OS = fieldMask(EVTSEL.os);
export const ARCH_PERFMON_EVENTSEL_EDGE = fieldMask(EVTSEL.edge);
export const ARCH_PERFMON_EVENTSEL_PIN_CONTROL = fieldMask(EVTSEL.pc);
export const ARCH_PERFMON_EVENTSEL_INT = fieldMask(EVTSEL.int);
export const ARCH_PERFMON_EVENTSEL_ANY = fieldMask(EVTSEL.any);
export const ARCH_PERFMON_EVENTSEL_ENABLE = fieldMask(EVTSEL.en);
export const ARCH_PERFMON_EVENTSEL_INV = fieldMask(EVTSEL.inv);
export const ARCH_PERFMON_EVENTSEL_CMASK = fieldMask(EVTSEL.cmask);
export const HSW_IN_TX = fieldMask(EVTSEL.inTx);
export const HSW_IN_TX_CHECKPOINTED = fieldMask(EVTSEL.inTxCp);
export const ICL_EVENTSEL_ADAPTIVE = fieldMask(EVTSEL.adaptive);
/** X86_RAW_EVENT_MASK: what a raw perf config may carry of a selector. */
export const X86_RAW_EVENT_MASK = maskOf(EVTSEL, ['event', 'umask', 'edge', 'inv', 'cmask']);
/** RDPMC ECX type 0x4000: the fixed counters (pmu-semantics.md §4.9). */
export const INTEL_PMC_FIXED_RDPMC_BASE = 0x4000_0000;
/** RDPMC ECX bit 31: fast (32-bit) read, which no part of the model enumerates. */
export const INTEL_PMC_RDPMC_FAST = 0x8000_0000;
/** RDPMC ECX type 0x2000: PERF_METRICS (INTEL_PMC_FIXED_RDPMC_METRICS). */
export const INTEL_PMC_FIXED_RDPMC_METRICS = 0x2000_0000;

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

/** Bits a selector may carry that the model accepts without their effect: AnyThread (D30), ADAPTIVE (D31). */
const UNMODELLED_EVTSEL = ARCH_PERFMON_EVENTSEL_ANY | ICL_EVENTSEL_ADAPTIVE;

export function legalizeEvtsel(p: Profile, i: number, v: bigint): Access {
  const w = evtselWritable(p, i);
  if ((v | w) !== w) return gp(`IA32_PERFEVTSEL${i}: reserved ${describeBits(v & ~w)} set`);
  if ((v & UNMODELLED_EVTSEL) !== 0n) relied((v & ARCH_PERFMON_EVENTSEL_ANY) !== 0n ? 'D30' : 'D31');
  return ok(v);
}

const EN_INT = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_INT;

/** A write never overflows by itself (D35): that decides an outcome only for a counter that could raise a PMI. */
function gpWritten(s: PmuState, i: number): void {
  if ((s.evtsel[i]! & EN_INT) === EN_INT) relied('D35');
}

/** Legacy alias write: EAX sign-extended to the counter width, EDX ignored; never #GPs (§2.2). */
export function writeLegacyPmc(p: Profile, v: bigint): bigint {
  return signExtend(v & 0xffff_ffffn, 31) & p.gpMask;
}

/** Full-width alias write: bits at or above gpWidth #GP (§2.2; decision D3). */
export function legalizeFullWidthPmc(p: Profile, i: number, v: bigint): Access {
  const bad = v & ~p.gpMask;
  if (bad !== 0n) relied('D3');
  return bad === 0n ? ok(v) : gp(`IA32_A_PMC${i}: ${describeBits(bad)} at or above the ${p.gpWidth}-bit counter width`);
}

/** Fixed counter write: bits at or above fixedWidth #GP (§2.4; decision D2, KVM masks instead). */
export function legalizeFixedCtr(p: Profile, i: number, v: bigint): Access {
  const bad = v & ~p.fixedMask;
  if (bad !== 0n) relied('D2');
  return bad === 0n
    ? ok(v)
    : gp(`IA32_FIXED_CTR${i}: ${describeBits(bad)} at or above the ${p.fixedWidth}-bit counter width`);
}

/** One FIXED_CTR_CTRL nibble (§2.4). */
export const FIXED_NIBBLE = fields({ enOs: 0, enUsr: 1, any: 2, pmi: 3 });
/** The nibble's bits by the kernel's names (fixed counter 0's; counter i's are these << 4i). */
export const INTEL_FIXED_0_KERNEL = fieldMask(FIXED_NIBBLE.enOs);
export const INTEL_FIXED_0_USER = fieldMask(FIXED_NIBBLE.enUsr);
export const INTEL_FIXED_0_ANYTHREAD = fieldMask(FIXED_NIBBLE.any);
export const INTEL_FIXED_0_ENABLE_PMI = fieldMask(FIXED_NIBBLE.pmi);
/** INTEL_FIXED_BITS_MASK: one counter's nibble. */
export const INTEL_FIXED_BITS_MASK = maskOf(FIXED_NIBBLE, ['enOs', 'enUsr', 'any', 'pmi']);
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

/** Per nibble, ANY (bit 2) and, above bit 31, adaptive PEBS: accepted without effect (D30, D31). */
const FIXED_ANY = 0x4444_4444n;
const FIXED_ADAPTIVE = 0xffff_ffffn << 32n;

export function legalizeFixedCtrl(p: Profile, v: bigint): Access {
  const w = fixedCtrlWritable(p);
  if ((v | w) !== w) return gp(`IA32_FIXED_CTR_CTRL: reserved ${describeBits(v & ~w)} set`);
  if ((v & FIXED_ANY) !== 0n) relied('D30');
  if ((v & FIXED_ADAPTIVE) !== 0n) relied('D31');
  return ok(v);
}

/** The 4-bit control of fixed counter i. */
export function fixedNibble(ctrl: bigint, i: number): number {
  return Number((ctrl >> BigInt(4 * i)) & 0xfn);
}

export const counterMsrs = msrFamily(['nGP', 'fwWrite', 'version', 'fixedSet'], (p) => {
  const defs: MsrDef[] = [];
  for (let i = 0; i < p.nGP; i++) {
    defs.push({
      address: MSR_IA32_PERFCTR0 + i,
      name: `IA32_PMC${i}`,
      read: (s) => ok(s.pmc[i]!),
      write: (s, v) => {
        s.pmc[i] = writeLegacyPmc(s.profile, v);
        gpWritten(s, i);
        return ok(s.pmc[i]!);
      },
    });
    if (p.fwWrite) {
      defs.push({
        address: MSR_IA32_PMC0 + i,
        name: `IA32_A_PMC${i}`,
        read: (s) => ok(s.pmc[i]!),
        write: (s, v) => {
          const r = legalizeFullWidthPmc(s.profile, i, v);
          if (r.ok) {
            s.pmc[i] = v;
            gpWritten(s, i);
          }
          return r;
        },
      });
    }
    defs.push({
      address: MSR_P6_EVNTSEL0 + i,
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
        address: MSR_CORE_PERF_FIXED_CTR0 + i,
        name: `IA32_FIXED_CTR${i}`,
        read: (s) => ok(s.fixed[i]!),
        write: (s, v) => {
          const r = legalizeFixedCtr(s.profile, i, v);
          if (r.ok) {
            s.fixed[i] = v;
            if ((fixedNibble(s.fixedCtrl, i) & 0xb) > 8) relied('D35'); // enabled, with PMI
            if (i === 3 && s.profile.perfMetrics) {
              relied('D12');
              rebaseTopdown(s);
            }
          }
          return r;
        },
      });
    }
    defs.push({
      address: MSR_CORE_PERF_FIXED_CTR_CTRL,
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
