/**
 * CPU profiles as data: the CPUID leaves and PERF_CAPABILITIES value a part enumerates, plus the
 * model-specific LBR geometry that no CPUID leaf gives. `defineProfile` validates a spec and
 * derives the enumeration every other module reads (pmu-semantics.md §1, §2.10, §2.13, §3.1).
 */

import { bit, lowMask } from './bits.js';
import { ProfileError, type ProfileRule } from './errors.js';
import {
  PERF_CAP_LBR_FMT,
  PERF_CAP_PERF_METRICS,
  PERF_CAP_RDPMC_METRICS_CLEAR,
  PERF_CAP_FW_WRITES,
  PERF_CAP_FREEZE_WHILE_SMM,
  PERF_CAP_PEBS_BASELINE,
} from './msr/capabilities.js';

export interface CpuidRegs {
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
}

/** Legacy LBR geometry: model-specific, taken from Linux's per-model init (pmu-semantics.md §2.13). */
export interface LegacyLbrGeometry {
  readonly depth: number;
  readonly fromBase: number;
  readonly toBase: number;
  /** MSR_LBR_INFO_0; present exactly for LBR_FMT 5 and 7. */
  readonly infoBase?: number;
  /** MSR_LBR_SELECT exists (Nehalem and later). */
  readonly select: boolean;
  /** LBR_SELECT.EN_CALLSTACK is implemented (Haswell and later). */
  readonly callStack: boolean;
}

export interface ProfileSpec {
  readonly name: string;
  /** CPUID.01H:EAX family and model, which KVM compares for legacy LBR. */
  readonly family: number;
  readonly model: number;
  /** CPUID.0AH. */
  readonly leaf0a: CpuidRegs;
  /** CPUID.01H:ECX[15]: IA32_PERF_CAPABILITIES exists. */
  readonly pdcm: boolean;
  /** IA32_PERF_CAPABILITIES; must be 0 without PDCM. */
  readonly perfCapabilities: bigint;
  /** CPUID.07H:EDX[19] and leaf 1CH, present exactly for Arch LBR parts. */
  readonly leaf1c?: CpuidRegs;
  readonly legacyLbr?: LegacyLbrGeometry;
  /** HLE/RTM: EVTSEL IN_TX/IN_TX_CP and DEBUGCTL.RTM_DEBUG are writable. */
  readonly tsx?: boolean;
  /** PERF_METRICS has the level-2 bytes 63:32 (Sapphire Rapids and later). */
  readonly topdownL2?: boolean;
}

export const LBR_FMT_ARCH = 0x3f;
/** Highest fixed counter the MSR map holds: IA32_FIXED_CTR0..6 at 0x309..0x30F. */
export const MAX_FIXED = 7;
/** IA32_PERFEVTSEL0..7 at 0x186..0x18D; 0x18E onwards is other MSRs. */
export const MAX_GP = 8;

/** Arch LBR capabilities from CPUID.1CH (pmu-semantics.md §3.1). */
export interface ArchLbrCaps {
  /** Legal IA32_LBR_DEPTH values, ascending. */
  readonly depths: readonly number[];
  readonly maxDepth: number;
  readonly lip: boolean;
  readonly cplFilter: boolean;
  readonly branchFilter: boolean;
  readonly callStack: boolean;
  readonly mispred: boolean;
  readonly timedLbr: boolean;
  readonly brType: boolean;
}

/** Everything the model reads about a part, derived once from its spec. */
export interface Profile {
  readonly name: string;
  readonly spec: ProfileSpec;
  readonly family: number;
  readonly model: number;
  readonly version: number;
  readonly nGP: number;
  readonly gpWidth: number;
  readonly gpMask: bigint;
  readonly evLen: number;
  /** CPUID.0AH:EBX: bit i = 1 means architectural event i is NOT available. */
  readonly eventsUnavailable: number;
  /** Bit i set: IA32_FIXED_CTRi exists ("i < EDX[4:0] or ECX[i]", v2+). */
  readonly fixedSet: number;
  readonly nFixedContig: number;
  readonly fixedWidth: number;
  readonly fixedMask: bigint;
  readonly anyThread: boolean;
  readonly pdcm: boolean;
  readonly perfCapabilities: bigint;
  readonly lbrFmt: number;
  readonly fwWrite: boolean;
  readonly smmFrz: boolean;
  readonly pebsBaseline: boolean;
  readonly perfMetrics: boolean;
  readonly metricsClear: boolean;
  readonly topdownL2: boolean;
  readonly tsx: boolean;
  readonly legacyLbr: LegacyLbrGeometry | undefined;
  readonly archLbr: ArchLbrCaps | undefined;
}

/**
 * perProfile's memo on each profile: derived constants, not architecture (non-enumerable, so never compared or
 * printed).
 */
const MEMO = Symbol('perProfile memo');
let memoSlots = 0;

/** Memoizes a pure function of a profile: writable masks are asked for on every MSR write. */
export function perProfile<T>(f: (p: Profile) => T): (p: Profile) => T {
  const slot = memoSlots++;
  return (p) => {
    // Every profile comes from defineProfile, which gives it the memo; anything else is computed afresh.
    const memo = (p as { readonly [MEMO]?: unknown[] })[MEMO];
    if (memo === undefined) return f(p);
    let m = memo[slot] as T | undefined;
    if (m === undefined) memo[slot] = m = f(p);
    return m;
  };
}

export function fixedExists(p: Pick<Profile, 'fixedSet'>, i: number): boolean {
  return i >= 0 && i < 32 && ((p.fixedSet >>> i) & 1) === 1;
}

export function archEventAvailable(p: Profile, i: number): boolean {
  return i < p.evLen && ((p.eventsUnavailable >>> i) & 1) === 0;
}

/** Indices of the fixed counters that exist, ascending. */
export function fixedIndices(p: Profile): number[] {
  const out: number[] = [];
  for (let i = 0; i < MAX_FIXED; i++) if (fixedExists(p, i)) out.push(i);
  return out;
}

function u32(p: string, field: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff)
    throw new ProfileError(p, field, 'not-u32', `not a 32-bit register value: ${v}`);
  return v;
}

/** Validates a spec and derives its enumeration; a contradiction throws a ProfileError naming the field. */
export function defineProfile(spec: ProfileSpec): Profile {
  const n = spec.name;
  if (typeof n !== 'string' || n.length === 0)
    throw new ProfileError(String(n), 'name', 'no-name', 'must be a non-empty string');
  const fail = (field: string, rule: ProfileRule, msg: string): never => {
    throw new ProfileError(n, field, rule, msg);
  };
  const eax = u32(n, 'leaf0a.eax', spec.leaf0a.eax);
  const ebx = u32(n, 'leaf0a.ebx', spec.leaf0a.ebx);
  const ecx = u32(n, 'leaf0a.ecx', spec.leaf0a.ecx);
  const edx = u32(n, 'leaf0a.edx', spec.leaf0a.edx);
  if (!Number.isInteger(spec.family) || spec.family < 0)
    fail('family', 'bad-family', `not a family number: ${spec.family}`);
  if (!Number.isInteger(spec.model) || spec.model < 0) fail('model', 'bad-model', `not a model number: ${spec.model}`);

  const version = eax & 0xff;
  const nGP = (eax >>> 8) & 0xff;
  const gpWidth = (eax >>> 16) & 0xff;
  const evLen = (eax >>> 24) & 0xff;
  if (version === 0 && (nGP !== 0 || gpWidth !== 0))
    fail('leaf0a.eax', 'v0-with-counters', 'version 0 (no architectural PMU) enumerates no counters');
  if (nGP > MAX_GP) fail('leaf0a.eax[15:8]', 'too-many-gp', `${nGP} GP counters; the MSR map holds at most ${MAX_GP}`);
  if (nGP > 0 && (gpWidth < 1 || gpWidth > 64))
    fail('leaf0a.eax[23:16]', 'gp-width', `GP counter width ${gpWidth} is not in 1..64`);
  if (evLen > 32)
    fail('leaf0a.eax[31:24]', 'event-vector-length', `event vector length ${evLen} exceeds the 32 bits of EBX`);

  // EDX fixed fields mean nothing before v2, the ECX bitmap nothing before v5 (pmu-semantics.md §1.2).
  const nFixedContig = version > 1 ? edx & 0x1f : 0;
  const fixedWidthRaw = version > 1 ? (edx >>> 5) & 0xff : 0;
  const bitmap = version >= 5 ? ecx : 0;
  let fixedSet = (version > 1 ? (1 << nFixedContig) - 1 : 0) | bitmap;
  fixedSet >>>= 0;
  if (nFixedContig > MAX_FIXED || fixedSet >>> MAX_FIXED !== 0)
    fail(
      version >= 5 ? 'leaf0a.ecx' : 'leaf0a.edx[4:0]',
      'fixed-beyond-map',
      `fixed counters beyond IA32_FIXED_CTR${MAX_FIXED - 1} are not in the MSR map`,
    );
  if (fixedSet !== 0 && (fixedWidthRaw < 1 || fixedWidthRaw > 64))
    fail('leaf0a.edx[12:5]', 'fixed-width', `fixed counter width ${fixedWidthRaw} is not in 1..64`);
  const fixedWidth = fixedSet !== 0 ? fixedWidthRaw : 0;
  const anyThreadDeprecated = version >= 5 && ((edx >>> 15) & 1) === 1;

  const caps = spec.perfCapabilities;
  if (typeof caps !== 'bigint' || caps < 0n || caps > (1n << 64n) - 1n)
    fail('perfCapabilities', 'caps-not-u64', 'must be a u64 bigint');
  if (!spec.pdcm && caps !== 0n)
    fail(
      'perfCapabilities',
      'caps-without-pdcm',
      'is non-zero but CPUID.01H:ECX.PDCM = 0, so IA32_PERF_CAPABILITIES does not exist',
    );
  const lbrFmt = Number(caps & PERF_CAP_LBR_FMT);
  const perfMetrics = (caps & PERF_CAP_PERF_METRICS) !== 0n;
  if (perfMetrics && !((fixedSet >>> 3) & 1))
    fail(
      'perfCapabilities[15]',
      'metrics-without-slots',
      'PERF_METRICS needs fixed counter 3 (SLOTS), which CPUID.0AH does not enumerate',
    );
  const metricsClear = (caps & PERF_CAP_RDPMC_METRICS_CLEAR) !== 0n;
  if (metricsClear && !perfMetrics)
    fail('perfCapabilities[19]', 'metrics-clear-without-metrics', 'RDPMC metrics-clear mode needs PERF_METRICS');
  if (spec.topdownL2 && !perfMetrics) fail('topdownL2', 'l2-without-metrics', 'level-2 topdown needs PERF_METRICS');

  let archLbr: ArchLbrCaps | undefined;
  if (spec.leaf1c !== undefined) {
    const a = u32(n, 'leaf1c.eax', spec.leaf1c.eax);
    const b = u32(n, 'leaf1c.ebx', spec.leaf1c.ebx);
    const c = u32(n, 'leaf1c.ecx', spec.leaf1c.ecx);
    const depths: number[] = [];
    for (let k = 0; k < 8; k++) if ((a >>> k) & 1) depths.push(8 * (k + 1));
    if (depths.length === 0) fail('leaf1c.eax[7:0]', 'arch-lbr-no-depth', 'Arch LBR enumerates no legal depth');
    // Without PDCM there is no PERF_CAPABILITIES, so no LBR_FMT to say otherwise.
    if (spec.pdcm && lbrFmt !== LBR_FMT_ARCH)
      fail(
        'perfCapabilities[5:0]',
        'arch-lbr-without-fmt-arch',
        `Arch LBR (leaf 1CH) needs LBR_FMT 0x3f, found ${lbrFmt.toString(16)}`,
      );
    if (spec.legacyLbr !== undefined)
      fail('legacyLbr', 'arch-lbr-with-legacy', 'an Arch LBR part has no model-specific LBR MSRs');
    // Below version 4 there is no LBR_FRZ: such a part freezes as versions 2 and 3 do (decision D41).
    archLbr = {
      depths,
      maxDepth: depths[depths.length - 1]!,
      lip: ((a >>> 31) & 1) === 1,
      cplFilter: (b & 1) === 1,
      branchFilter: ((b >>> 1) & 1) === 1,
      callStack: ((b >>> 2) & 1) === 1,
      mispred: (c & 1) === 1,
      timedLbr: ((c >>> 1) & 1) === 1,
      brType: ((c >>> 2) & 1) === 1,
    };
  } else if (lbrFmt === LBR_FMT_ARCH) {
    fail('perfCapabilities[5:0]', 'fmt-arch-without-leaf1c', 'LBR_FMT 0x3f (Arch LBR) without CPUID leaf 1CH');
  }

  const g = spec.legacyLbr;
  if (g !== undefined) {
    if (lbrFmt < 1 || lbrFmt > 7)
      fail(
        'perfCapabilities[5:0]',
        'legacy-geometry-fmt',
        `legacy LBR geometry given but LBR_FMT is ${lbrFmt}; the model covers formats 1..7`,
      );
    if (![4, 8, 16, 32].includes(g.depth))
      fail('legacyLbr.depth', 'legacy-depth', `${g.depth} is not a legacy LBR depth (4, 8, 16, 32)`);
    const needsInfo = lbrFmt === 5 || lbrFmt === 7;
    if (needsInfo !== (g.infoBase !== undefined))
      fail(
        'legacyLbr.infoBase',
        'legacy-info',
        `LBR_FMT ${lbrFmt} ${needsInfo ? 'needs' : 'has no'} MSR_LBR_INFO registers`,
      );
    if (g.callStack && !g.select)
      fail(
        'legacyLbr.callStack',
        'legacy-call-stack',
        'call-stack mode is an LBR_SELECT bit, but there is no LBR_SELECT',
      );
  } else if (lbrFmt >= 1 && lbrFmt <= 7) {
    fail(
      'legacyLbr',
      'legacy-without-geometry',
      `LBR_FMT ${lbrFmt} enumerates legacy LBRs, but no geometry (depth, MSR bases) is given`,
    );
  } else if (lbrFmt !== 0 && lbrFmt !== LBR_FMT_ARCH) {
    fail('perfCapabilities[5:0]', 'fmt-undefined', `LBR_FMT ${lbrFmt} is undefined`);
  }

  const profile = {
    name: n,
    spec,
    family: spec.family,
    model: spec.model,
    version,
    nGP,
    gpWidth: nGP > 0 ? gpWidth : 0,
    gpMask: nGP > 0 ? lowMask(gpWidth) : 0n,
    evLen,
    eventsUnavailable: ebx,
    fixedSet,
    nFixedContig,
    fixedWidth,
    fixedMask: fixedWidth > 0 ? lowMask(fixedWidth) : 0n,
    anyThread: version >= 3 && !anyThreadDeprecated,
    pdcm: spec.pdcm,
    perfCapabilities: caps,
    lbrFmt,
    fwWrite: (caps & PERF_CAP_FW_WRITES) !== 0n,
    smmFrz: (caps & PERF_CAP_FREEZE_WHILE_SMM) !== 0n,
    pebsBaseline: (caps & PERF_CAP_PEBS_BASELINE) !== 0n,
    perfMetrics,
    metricsClear,
    topdownL2: spec.topdownL2 === true,
    tsx: spec.tsx === true,
    legacyLbr: g,
    archLbr,
  };
  Object.defineProperty(profile, MEMO, { value: [] });
  return Object.freeze(profile);
}

/** CPUID.0AH:EAX from its fields. */
export function leaf0aEax(version: number, nGP: number, gpWidth: number, evLen: number): number {
  return (version | (nGP << 8) | (gpWidth << 16) | (evLen << 24)) >>> 0;
}

/** CPUID.0AH:EDX from its fields. */
export function leaf0aEdx(nFixedContig: number, fixedWidth: number, anyThreadDeprecated = false): number {
  return (nFixedContig | (fixedWidth << 5) | (anyThreadDeprecated ? 1 << 15 : 0)) >>> 0;
}

/** A PERF_CAPABILITIES value from its named fields. */
export function perfCaps(f: {
  lbrFmt?: number;
  pebsTrap?: boolean;
  pebsArchReg?: boolean;
  pebsRecFmt?: number;
  smmFrz?: boolean;
  fwWrite?: boolean;
  pebsBaseline?: boolean;
  perfMetrics?: boolean;
  pebsOutputPt?: boolean;
  metricsClear?: boolean;
}): bigint {
  let v = BigInt(f.lbrFmt ?? 0) & PERF_CAP_LBR_FMT;
  if (f.pebsTrap) v |= bit(6);
  if (f.pebsArchReg) v |= bit(7);
  v |= BigInt((f.pebsRecFmt ?? 0) & 0xf) << 8n;
  if (f.smmFrz) v |= PERF_CAP_FREEZE_WHILE_SMM;
  if (f.fwWrite) v |= PERF_CAP_FW_WRITES;
  if (f.pebsBaseline) v |= PERF_CAP_PEBS_BASELINE;
  if (f.perfMetrics) v |= PERF_CAP_PERF_METRICS;
  if (f.pebsOutputPt) v |= bit(16);
  if (f.metricsClear) v |= PERF_CAP_RDPMC_METRICS_CLEAR;
  return v;
}
