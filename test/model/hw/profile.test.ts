import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES, ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import {
  defineProfile,
  fixedExists,
  leaf0aEax,
  leaf0aEdx,
  type ProfileSpec,
  perfCaps,
} from '../../../model/hw/profile.js';
import { ProfileError } from '../../../model/hw/errors.js';
import { MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO, MSR_LBR_INFO_0 } from '../../../model/hw/msr/lbr_legacy.js';

const base: ProfileSpec = {
  name: 't',
  family: 6,
  model: 0x55,
  leaf0a: { eax: leaf0aEax(2, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
  pdcm: false,
  perfCapabilities: 0n,
};

function rejects(spec: Partial<ProfileSpec>, field: string): void {
  const run = () => defineProfile({ ...base, ...spec });
  expect(run).toThrow(ProfileError);
  try {
    run();
  } catch (e) {
    expect((e as ProfileError).field).toBe(field);
  }
}

describe('built-in profiles', () => {
  it('enumerate what their parts enumerate', () => {
    expect(SKYLAKE.version).toBe(4);
    expect(SKYLAKE.perfCapabilities).toBe(0x33c5n);
    expect(SKYLAKE.perfMetrics).toBe(false);
    expect(SKYLAKE.legacyLbr?.depth).toBe(32);
    expect(ICELAKE.perfMetrics && fixedExists(ICELAKE, 3)).toBe(true);
    expect(SAPPHIRE_RAPIDS.archLbr?.depths).toEqual([8, 16, 24, 32]);
    expect(SAPPHIRE_RAPIDS.lbrFmt).toBe(0x3f);
    expect(SAPPHIRE_RAPIDS.anyThread).toBe(false);
    expect(SAPPHIRE_RAPIDS.topdownL2).toBe(true);
    expect(Object.keys(BUILTIN_PROFILES)).toEqual(['skylake', 'icelake', 'sapphirerapids']);
  });
});

describe('defineProfile derives the enumeration (pmu-semantics.md §1.2)', () => {
  it('ignores the EDX fixed fields before v2 and the ECX bitmap before v5', () => {
    const v1 = defineProfile({ ...base, leaf0a: { ...base.leaf0a, eax: leaf0aEax(1, 2, 40, 7) } });
    expect(v1.fixedSet).toBe(0);
    const v4 = defineProfile({ ...base, leaf0a: { ...base.leaf0a, eax: leaf0aEax(4, 2, 48, 7), ecx: 0x10 } });
    expect(v4.fixedSet).toBe(0b111);
  });
  it('takes fixed counters as "i < EDX[4:0] or ECX[i]" from v5', () => {
    const v5 = defineProfile({
      ...base,
      leaf0a: { eax: leaf0aEax(5, 2, 48, 7), ebx: 0, ecx: 0b1001, edx: leaf0aEdx(1, 48) },
    });
    expect([0, 1, 2, 3].map((i) => fixedExists(v5, i))).toEqual([true, false, false, true]);
  });
  it('has AnyThread only for v3+ and not when deprecated', () => {
    expect(defineProfile(base).anyThread).toBe(false);
    const v3 = defineProfile({ ...base, leaf0a: { ...base.leaf0a, eax: leaf0aEax(3, 2, 48, 7) } });
    expect(v3.anyThread).toBe(true);
  });
});

describe('defineProfile rejects a profile that contradicts itself, naming the field', () => {
  it('PERF_CAPABILITIES without PDCM', () =>
    rejects({ perfCapabilities: perfCaps({ fwWrite: true }) }, 'perfCapabilities'));
  it('PERF_METRICS without fixed counter 3', () =>
    rejects({ pdcm: true, perfCapabilities: perfCaps({ perfMetrics: true }) }, 'perfCapabilities[15]'));
  it('metrics clear without PERF_METRICS', () =>
    rejects({ pdcm: true, perfCapabilities: 1n << 19n }, 'perfCapabilities[19]'));
  it('topdown level 2 without PERF_METRICS', () => rejects({ topdownL2: true }, 'topdownL2'));
  it('a legacy LBR format without geometry', () =>
    rejects({ pdcm: true, perfCapabilities: perfCaps({ lbrFmt: 5 }) }, 'legacyLbr'));
  it('format 5 geometry without LBR_INFO', () =>
    rejects(
      {
        pdcm: true,
        perfCapabilities: perfCaps({ lbrFmt: 5 }),
        legacyLbr: { depth: 32, fromBase: MSR_LBR_NHM_FROM, toBase: MSR_LBR_NHM_TO, select: true, callStack: true },
      },
      'legacyLbr.infoBase',
    ));
  it('LBR_FMT 0x3f without CPUID leaf 1CH', () =>
    rejects({ pdcm: true, perfCapabilities: perfCaps({ lbrFmt: 0x3f }) }, 'perfCapabilities[5:0]'));
  it('leaf 1CH without LBR_FMT 0x3f (with PDCM; without it there is no LBR_FMT to contradict)', () => {
    rejects({ pdcm: true, leaf1c: { eax: 0xf, ebx: 0, ecx: 0, edx: 0 } }, 'perfCapabilities[5:0]');
    expect(defineProfile({ ...base, leaf1c: { eax: 0xf, ebx: 0, ecx: 0, edx: 0 } }).archLbr?.maxDepth).toBe(32);
  });
  it('counters on a version-0 PMU', () =>
    rejects({ leaf0a: { eax: leaf0aEax(0, 2, 48, 0), ebx: 0, ecx: 0, edx: 0 } }, 'leaf0a.eax'));
  it('more GP counters than the MSR map holds', () =>
    rejects({ leaf0a: { ...base.leaf0a, eax: leaf0aEax(2, 9, 48, 7) } }, 'leaf0a.eax[15:8]'));
  it('a register value that is not 32-bit', () => rejects({ leaf0a: { ...base.leaf0a, ebx: -1 } }, 'leaf0a.ebx'));
  it('a family or model that is not a number', () => {
    rejects({ family: -1 }, 'family');
    rejects({ model: 1.5 }, 'model');
  });
  it('a GP counter width outside 1..64', () =>
    rejects({ leaf0a: { ...base.leaf0a, eax: leaf0aEax(2, 4, 65, 7) } }, 'leaf0a.eax[23:16]'));
  it('an event vector longer than EBX', () =>
    rejects({ leaf0a: { ...base.leaf0a, eax: leaf0aEax(2, 4, 48, 33) } }, 'leaf0a.eax[31:24]'));
  it('fixed counters beyond IA32_FIXED_CTR6', () => {
    rejects({ leaf0a: { ...base.leaf0a, edx: leaf0aEdx(8, 48) } }, 'leaf0a.edx[4:0]');
    rejects({ leaf0a: { eax: leaf0aEax(5, 4, 48, 7), ebx: 0, ecx: 0x80, edx: leaf0aEdx(3, 48) } }, 'leaf0a.ecx');
  });
  it('a fixed counter width of 0 with fixed counters enumerated', () =>
    rejects({ leaf0a: { ...base.leaf0a, edx: leaf0aEdx(3, 0) } }, 'leaf0a.edx[12:5]'));
  it('a PERF_CAPABILITIES value that is not a u64', () =>
    rejects({ pdcm: true, perfCapabilities: 1n << 64n }, 'perfCapabilities'));
  it('Arch LBR with no legal depth or with legacy geometry (below v4 it is a part of its own: D41)', () => {
    const arch = { pdcm: true, perfCapabilities: perfCaps({ lbrFmt: 0x3f }) };
    const v4 = { ...base.leaf0a, eax: leaf0aEax(4, 4, 48, 7) };
    rejects({ ...arch, leaf0a: v4, leaf1c: { eax: 0, ebx: 0, ecx: 0, edx: 0 } }, 'leaf1c.eax[7:0]');
    rejects(
      {
        ...arch,
        leaf0a: v4,
        leaf1c: { eax: 1, ebx: 0, ecx: 0, edx: 0 },
        legacyLbr: { depth: 8, fromBase: MSR_LBR_NHM_FROM, toBase: MSR_LBR_NHM_TO, select: true, callStack: false },
      },
      'legacyLbr',
    );
    expect(defineProfile({ ...base, ...arch, leaf1c: { eax: 1, ebx: 0, ecx: 0, edx: 0 } }).archLbr?.depths).toEqual([
      8,
    ]);
  });
  it('legacy LBR geometry that the format or the part cannot have', () => {
    const g = { depth: 16, fromBase: MSR_LBR_NHM_FROM, toBase: MSR_LBR_NHM_TO, select: true, callStack: false };
    rejects({ pdcm: true, perfCapabilities: perfCaps({ lbrFmt: 0 }), legacyLbr: g }, 'perfCapabilities[5:0]');
    rejects(
      { pdcm: true, perfCapabilities: perfCaps({ lbrFmt: 3 }), legacyLbr: { ...g, depth: 12 } },
      'legacyLbr.depth',
    );
    rejects(
      { pdcm: true, perfCapabilities: perfCaps({ lbrFmt: 3 }), legacyLbr: { ...g, infoBase: MSR_LBR_INFO_0 } },
      'legacyLbr.infoBase',
    );
    rejects(
      {
        pdcm: true,
        perfCapabilities: perfCaps({ lbrFmt: 3 }),
        legacyLbr: { ...g, select: false, callStack: true },
      },
      'legacyLbr.callStack',
    );
  });
  it('an undefined LBR format', () =>
    rejects({ pdcm: true, perfCapabilities: perfCaps({ lbrFmt: 9 }) }, 'perfCapabilities[5:0]'));
  it('an empty name', () => expect(() => defineProfile({ ...base, name: '' })).toThrow(ProfileError));
});
