/**
 * Built-in host parts. Values follow what those parts enumerate (CPUID.0AH, PERF_CAPABILITIES as
 * Linux reads them); the names say "-like" because nothing here is a measured dump of one SKU.
 */

import { defineProfile, leaf0aEax, leaf0aEdx, type Profile, perfCaps } from './profile.js';
import { MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO, MSR_LBR_INFO_0 } from './msr/lbr_legacy.js';

/** Legacy LBR (format 5 with LBR_INFO), PMU v4, no PERF_METRICS: Skylake server, HT on. */
export const SKYLAKE: Profile = defineProfile({
  name: 'skylake',
  family: 6,
  model: 0x55,
  leaf0a: { eax: leaf0aEax(4, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
  pdcm: true,
  // 0x33c5: LBR_FMT 5, PEBS trap + arch regs, record format 3, SMM_FRZ, FW_WRITE.
  perfCapabilities: perfCaps({
    lbrFmt: 5,
    pebsTrap: true,
    pebsArchReg: true,
    pebsRecFmt: 3,
    smmFrz: true,
    fwWrite: true,
  }),
  legacyLbr: {
    depth: 32,
    fromBase: MSR_LBR_NHM_FROM,
    toBase: MSR_LBR_NHM_TO,
    infoBase: MSR_LBR_INFO_0,
    select: true,
    callStack: true,
  },
});

/** PERF_METRICS and SLOTS (fixed counter 3), PMU v5, legacy LBR: Ice Lake server. */
export const ICELAKE: Profile = defineProfile({
  name: 'icelake',
  family: 6,
  model: 0x6a,
  leaf0a: { eax: leaf0aEax(5, 8, 48, 8), ebx: 0, ecx: 0, edx: leaf0aEdx(4, 48) },
  pdcm: true,
  perfCapabilities: perfCaps({
    lbrFmt: 5,
    pebsTrap: true,
    pebsArchReg: true,
    pebsRecFmt: 4,
    smmFrz: true,
    fwWrite: true,
    pebsBaseline: true,
    perfMetrics: true,
  }),
  legacyLbr: {
    depth: 32,
    fromBase: MSR_LBR_NHM_FROM,
    toBase: MSR_LBR_NHM_TO,
    infoBase: MSR_LBR_INFO_0,
    select: true,
    callStack: true,
  },
});

/** Arch LBR, PMU v5 with the fixed-counter bitmap and AnyThread deprecated, topdown level 2. */
export const SAPPHIRE_RAPIDS: Profile = defineProfile({
  name: 'sapphirerapids',
  family: 6,
  model: 0x8f,
  leaf0a: { eax: leaf0aEax(5, 8, 48, 8), ebx: 0, ecx: 0xf, edx: leaf0aEdx(4, 48, true) },
  pdcm: true,
  perfCapabilities: perfCaps({
    lbrFmt: 0x3f,
    pebsTrap: true,
    pebsArchReg: true,
    pebsRecFmt: 4,
    smmFrz: true,
    fwWrite: true,
    pebsBaseline: true,
    perfMetrics: true,
    pebsOutputPt: true,
  }),
  // Depths 8..32, LIP, CPL/branch-type filtering and call stack, MISPRED/timed/BR_TYPE.
  leaf1c: { eax: 0x8000_000f, ebx: 0x7, ecx: 0x7, edx: 0 },
  topdownL2: true,
  // RTM: not affected by TAA, so Linux's tsx=auto leaves it on; EVTSEL IN_TX/IN_TX_CP and DEBUGCTL.RTM_DEBUG exist.
  tsx: true,
});

export const BUILTIN_PROFILES: Readonly<Record<string, Profile>> = Object.freeze({
  skylake: SKYLAKE,
  icelake: ICELAKE,
  sapphirerapids: SAPPHIRE_RAPIDS,
});
