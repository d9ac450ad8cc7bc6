/**
 * Arbitrary CPU profiles: consistent CPUID.0AH / 1CH / PERF_CAPABILITIES values for PMU versions
 * 1 to 5, legacy LBR formats 1..7 or Arch LBR, with and without topdown.
 */

import fc from 'fast-check';
import { defineProfile, leaf0aEax, leaf0aEdx, type Profile, type ProfileSpec, perfCaps } from '../model/hw/profile.js';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO, MSR_LBR_INFO_0 } from '../model/hw/msr/lbr_legacy.js';

const widthArb = fc.oneof(
  { arbitrary: fc.constant(48), weight: 4 },
  { arbitrary: fc.constantFrom(32, 40, 64), weight: 1 },
);

const legacyLbrArb = fc.constantFrom(1, 2, 3, 4, 5, 6, 7).chain((fmt) =>
  fc.record({ depth: fc.constantFrom(4, 8, 16, 32), select: fc.boolean(), callStack: fc.boolean() }).map((g) => ({
    fmt,
    geometry: {
      depth: g.depth,
      fromBase: MSR_LBR_NHM_FROM,
      toBase: MSR_LBR_NHM_TO,
      ...(fmt === 5 || fmt === 7 ? { infoBase: MSR_LBR_INFO_0 } : {}),
      select: g.select,
      callStack: g.select && g.callStack,
    },
  })),
);

const leaf1cArb = fc
  .record({
    depths: fc.integer({ min: 1, max: 0xff }),
    lip: fc.boolean(),
    ebx: fc.nat(7),
    ecx: fc.nat(7),
  })
  .map((l) => ({ eax: (l.depths | (l.lip ? 0x8000_0000 : 0)) >>> 0, ebx: l.ebx, ecx: l.ecx, edx: 0 }));

export const profileSpecArb: fc.Arbitrary<ProfileSpec> = fc
  .record({
    version: fc.integer({ min: 1, max: 5 }),
    nGP: fc.integer({ min: 0, max: 8 }),
    gpWidth: widthArb,
    evLen: fc.integer({ min: 0, max: 13 }),
    ebx: fc.nat(0x1fff),
    nFixed: fc.integer({ min: 0, max: 4 }),
    fixedWidth: widthArb,
    bitmap: fc.nat(0x7f),
    anyDeprecated: fc.boolean(),
    pdcm: fc.boolean(),
    fwWrite: fc.boolean(),
    smmFrz: fc.boolean(),
    baseline: fc.boolean(),
    metrics: fc.boolean(),
    l2: fc.boolean(),
    lbr: fc.oneof(
      fc.constant({ kind: 'none' as const }),
      legacyLbrArb.map((l) => ({ kind: 'legacy' as const, ...l })),
      leaf1cArb.map((leaf1c) => ({ kind: 'arch' as const, leaf1c })),
    ),
  })
  .map((r): ProfileSpec => {
    const fixedSet = (r.version > 1 ? (1 << r.nFixed) - 1 : 0) | (r.version >= 5 ? r.bitmap : 0);
    const metrics = r.pdcm && r.metrics && r.version >= 2 && ((fixedSet >> 3) & 1) === 1;
    const lbr = r.pdcm ? r.lbr : { kind: 'none' as const };
    const arch = lbr.kind === 'arch' && r.version >= 4;
    return {
      name: `v${r.version}-${r.nGP}gp-${r.nFixed}fx${lbr.kind === 'legacy' ? `-lbr${lbr.fmt}` : arch ? '-archlbr' : ''}${metrics ? '-td' : ''}`,
      family: 6,
      model: 0x55,
      leaf0a: {
        eax: leaf0aEax(r.version, r.nGP, r.gpWidth, r.evLen),
        ebx: r.ebx,
        ecx: r.version >= 5 ? r.bitmap : 0,
        edx: r.version > 1 ? leaf0aEdx(r.nFixed, r.fixedWidth, r.anyDeprecated && r.version >= 5) : 0,
      },
      pdcm: r.pdcm,
      perfCapabilities: r.pdcm
        ? perfCaps({
            lbrFmt: lbr.kind === 'legacy' ? lbr.fmt : arch ? 0x3f : 0,
            fwWrite: r.fwWrite,
            smmFrz: r.smmFrz,
            pebsBaseline: r.baseline,
            perfMetrics: metrics,
          })
        : 0n,
      ...(lbr.kind === 'legacy' ? { legacyLbr: lbr.geometry } : {}),
      ...(arch && lbr.kind === 'arch' ? { leaf1c: lbr.leaf1c } : {}),
      ...(metrics && r.l2 ? { topdownL2: true } : {}),
    };
  });

/** Random consistent profiles, with the built-in parts weighted in. */
export const profileArb: fc.Arbitrary<Profile> = fc.oneof(
  { arbitrary: fc.constantFrom(...Object.values(BUILTIN_PROFILES)), weight: 1 },
  { arbitrary: profileSpecArb.map(defineProfile), weight: 3 },
);
