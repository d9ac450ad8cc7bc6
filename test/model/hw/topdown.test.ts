/**
 * MSR_PERF_METRICS and FIXED_CTR3 (SLOTS) from pmu-semantics.md §2.11, §2.6 (bit 48), §4.9
 * (RDPMC type 2000H) and §7 item 22, with the model's choices D11, D12, D13 and D34.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu } from '../../../model/hw/cpu.js';
import {
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_CORE_PERF_FIXED_CTR0,
  INTEL_PMC_FIXED_RDPMC_METRICS,
} from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../../model/hw/msr/global.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { MSR_PERF_METRICS, type TopdownSlots } from '../../../model/hw/msr/topdown.js';
import { type Profile, perfCaps } from '../../../model/hw/profile.js';
import { X2APIC_LVTPC, APIC_DM_NMI } from '../../../model/hw/msr/apic.js';
import { part, rd, wr } from './parts.js';

/** IA32_FIXED_CTR3, the SLOTS counter. */
const FIXED_CTR3 = MSR_CORE_PERF_FIXED_CTR0 + 3;

const EN_SLOTS = 1n << 35n;
const EN_METRICS = 1n << 48n;
/** Fixed counter 3's nibble (bits 15:12): OS | USR, and its PMI bit. */
const CTR3_ALL_RINGS = 0x3n << 12n;
const CTR3_PMI = 0x8n << 12n;
const METRICS_CLEAR_EN = 1n << 14n;

/** PERF_METRICS with RDPMC metrics-clear mode (PERF_CAPABILITIES[19]). */
const METRICS_CLEAR = part({
  v: 5,
  name: 'metrics-clear',
  model: 0xbd,
  nGP: 8,
  evLen: 8,
  ecx: 0xf,
  nFixed: 4,
  anyDeprecated: true,
  caps: perfCaps({ fwWrite: true, perfMetrics: true, metricsClear: true }),
  topdownL2: true,
});

/** FIXED_CTR3 counting at every ring, PERF_METRICS enabled unless told otherwise. */
function slotsOn(p: Profile, opts: { metrics?: boolean; ctrl?: bigint } = {}): Cpu {
  const c = new Cpu(p);
  wr(c, MSR_CORE_PERF_FIXED_CTR_CTRL, opts.ctrl ?? CTR3_ALL_RINGS);
  wr(c, MSR_CORE_PERF_GLOBAL_CTRL, EN_SLOTS | (opts.metrics === false ? 0n : EN_METRICS));
  return c;
}

const byte = (v: bigint, k: number) => Number((v >> BigInt(8 * k)) & 0xffn);
const floorFrac = (part: number, total: number) => Math.floor((255 * part) / total);

const L1: TopdownSlots = { retiring: 40, badSpeculation: 10, frontendBound: 30, backendBound: 20 };

describe('MSR_PERF_METRICS exists only with PERF_CAPABILITIES[15] (§2.1, §2.11)', () => {
  it('ICELAKE and SAPPHIRE_RAPIDS have it (reset 0); SKYLAKE #GPs on read and write', () => {
    for (const p of [ICELAKE, SAPPHIRE_RAPIDS]) {
      expect((p.perfCapabilities >> 15n) & 1n).toBe(1n);
      expect(rd(new Cpu(p), MSR_PERF_METRICS)).toBe(0n);
    }
    const c = new Cpu(SKYLAKE);
    expect((SKYLAKE.perfCapabilities >> 15n) & 1n).toBe(0n);
    expect(c.rdmsr(MSR_PERF_METRICS).ok).toBe(false);
    expect(c.wrmsr(MSR_PERF_METRICS, 0n).ok).toBe(false);
  });

  it('GLOBAL_CTRL[48] (EN_PERF_METRICS) is writable only with PERF_METRICS (§2.5)', () => {
    expect(new Cpu(ICELAKE).wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, EN_METRICS).ok).toBe(true);
    expect(new Cpu(SKYLAKE).wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, EN_METRICS).ok).toBe(false);
  });
});

describe('FIXED_CTR3 counts slots (§1.5)', () => {
  it('adds every unit its L1 slot total', () => {
    const c = slotsOn(ICELAKE);
    c.step({ cpl: 3, slots: L1 });
    c.step({ cpl: 0, slots: { retiring: 1, badSpeculation: 2, frontendBound: 3, backendBound: 4 } });
    expect(rd(c, FIXED_CTR3)).toBe(110n);
  });

  it('follows its nibble CPL bits', () => {
    const c = slotsOn(ICELAKE, { ctrl: 0x1n << 12n }); // OS only
    c.step({ cpl: 3, slots: L1 });
    expect(rd(c, FIXED_CTR3)).toBe(0n);
    c.step({ cpl: 0, slots: L1 });
    expect(rd(c, FIXED_CTR3)).toBe(100n);
  });
});

describe('PERF_METRICS bytes (§2.11; D12)', () => {
  it('ICELAKE: L1 bytes are floor(255·slots_k/total); the L2 bytes read 0', () => {
    const c = slotsOn(ICELAKE);
    c.step({
      cpl: 3,
      slots: { ...L1, heavyOperations: 20, branchMispredicts: 5, fetchLatency: 10, memoryBound: 10 },
    });
    const v = rd(c, MSR_PERF_METRICS);
    expect([0, 1, 2, 3].map((k) => byte(v, k))).toEqual([102, 25, 76, 51]);
    expect(v >> 32n).toBe(0n);
  });

  it('SAPPHIRE_RAPIDS: L2 bytes are the same fraction of total slots', () => {
    const c = slotsOn(SAPPHIRE_RAPIDS);
    c.step({
      cpl: 3,
      slots: { ...L1, heavyOperations: 20, branchMispredicts: 5, fetchLatency: 10, memoryBound: 10 },
    });
    const v = rd(c, MSR_PERF_METRICS);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((k) => byte(v, k))).toEqual([102, 25, 76, 51, 51, 12, 25, 25]);
  });

  it('accumulates over several units: fractions of the whole period', () => {
    const c = slotsOn(ICELAKE);
    c.step({ cpl: 3, slots: { retiring: 300, badSpeculation: 0, frontendBound: 0, backendBound: 0 } });
    c.step({ cpl: 3, slots: { retiring: 0, badSpeculation: 0, frontendBound: 0, backendBound: 100 } });
    const v = rd(c, MSR_PERF_METRICS);
    expect(byte(v, 0)).toBe(floorFrac(300, 400));
    expect(byte(v, 3)).toBe(floorFrac(100, 400));
  });

  const slotsArb = fc
    .record({
      retiring: fc.nat(5000),
      badSpeculation: fc.nat(5000),
      frontendBound: fc.nat(5000),
      backendBound: fc.nat(5000),
    })
    .filter((t) => t.retiring + t.badSpeculation + t.frontendBound + t.backendBound > 0)
    .chain((t) =>
      fc.record({
        retiring: fc.constant(t.retiring),
        badSpeculation: fc.constant(t.badSpeculation),
        frontendBound: fc.constant(t.frontendBound),
        backendBound: fc.constant(t.backendBound),
        heavyOperations: fc.nat(t.retiring),
        branchMispredicts: fc.nat(t.badSpeculation),
        fetchLatency: fc.nat(t.frontendBound),
        memoryBound: fc.nat(t.backendBound),
      }),
    );

  it('property: L1 bytes sum to 0xFF within rounding (>= 0xFC), each L2 byte <= its L1 parent (SPR)', () => {
    fc.assert(
      fc.property(fc.array(slotsArb, { minLength: 1, maxLength: 4 }), (units) => {
        const c = slotsOn(SAPPHIRE_RAPIDS);
        for (const t of units) c.step({ cpl: 3, slots: t });
        const v = rd(c, MSR_PERF_METRICS);
        const b = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => byte(v, k));
        const sum = b[0]! + b[1]! + b[2]! + b[3]!;
        expect(sum).toBeLessThanOrEqual(0xff);
        expect(sum).toBeGreaterThanOrEqual(0xff - 3);
        for (let k = 0; k < 4; k++) expect(b[4 + k]!).toBeLessThanOrEqual(b[k]!);
        const total = units.reduce((s, t) => s + t.retiring + t.badSpeculation + t.frontendBound + t.backendBound, 0);
        const ret = units.reduce((s, t) => s + t.retiring, 0);
        expect(b[0]).toBe(floorFrac(ret, total));
      }),
    );
  });

  it('property: ICELAKE L2 bytes are always 0 (no level 2)', () => {
    fc.assert(
      fc.property(slotsArb, (t) => {
        const c = slotsOn(ICELAKE);
        c.step({ cpl: 3, slots: t });
        expect(rd(c, MSR_PERF_METRICS) >> 32n).toBe(0n);
      }),
    );
  });
});

describe('PERF_METRICS accumulates only while GLOBAL_CTRL[48] = 1 and FIXED_CTR3 counts (§2.11; D12)', () => {
  it('with GLOBAL_CTRL[48] = 0, SLOTS counts but PERF_METRICS stays 0', () => {
    const c = slotsOn(ICELAKE, { metrics: false });
    c.step({ cpl: 3, slots: L1 });
    expect(rd(c, FIXED_CTR3)).toBe(100n);
    expect(rd(c, MSR_PERF_METRICS)).toBe(0n);
  });

  it('units before GLOBAL_CTRL[48] is set do not enter the fractions', () => {
    const c = slotsOn(ICELAKE, { metrics: false });
    c.step({ cpl: 3, slots: { retiring: 100, badSpeculation: 0, frontendBound: 0, backendBound: 0 } });
    wr(c, FIXED_CTR3, 0n);
    wr(c, MSR_PERF_METRICS, 0n);
    wr(c, MSR_CORE_PERF_GLOBAL_CTRL, EN_SLOTS | EN_METRICS);
    c.step({ cpl: 3, slots: { retiring: 0, badSpeculation: 0, frontendBound: 0, backendBound: 100 } });
    expect(rd(c, MSR_PERF_METRICS)).toBe(0xffn << 24n);
  });

  it('no accumulation in a unit where FIXED_CTR3 does not count (CPL filter, disabled, or GLOBAL_CTRL[35] = 0)', () => {
    const osOnly = slotsOn(ICELAKE, { ctrl: 0x1n << 12n });
    osOnly.step({ cpl: 3, slots: L1 });
    expect(rd(osOnly, MSR_PERF_METRICS)).toBe(0n);
    osOnly.step({ cpl: 0, slots: { retiring: 10, badSpeculation: 0, frontendBound: 0, backendBound: 0 } });
    expect(rd(osOnly, MSR_PERF_METRICS)).toBe(0xffn);

    const off = slotsOn(ICELAKE, { ctrl: 0n });
    off.step({ cpl: 3, slots: L1 });
    expect(rd(off, MSR_PERF_METRICS)).toBe(0n);

    const c = new Cpu(ICELAKE);
    wr(c, MSR_CORE_PERF_FIXED_CTR_CTRL, CTR3_ALL_RINGS);
    wr(c, MSR_CORE_PERF_GLOBAL_CTRL, EN_METRICS);
    c.step({ cpl: 3, slots: L1 });
    expect(rd(c, FIXED_CTR3)).toBe(0n);
    expect(rd(c, MSR_PERF_METRICS)).toBe(0n);
  });
});

describe('writing both registers to 0 opens a new period (§2.11)', () => {
  for (const order of ['FIXED_CTR3 first', 'PERF_METRICS first'] as const) {
    it(`zeroes both and forgets the old period (${order})`, () => {
      const c = slotsOn(ICELAKE);
      c.step({ cpl: 3, slots: { retiring: 100, badSpeculation: 0, frontendBound: 0, backendBound: 0 } });
      expect(rd(c, MSR_PERF_METRICS)).toBe(0xffn);
      const regs = order === 'FIXED_CTR3 first' ? [FIXED_CTR3, MSR_PERF_METRICS] : [MSR_PERF_METRICS, FIXED_CTR3];
      for (const r of regs) wr(c, r, 0n);
      expect(rd(c, FIXED_CTR3)).toBe(0n);
      expect(rd(c, MSR_PERF_METRICS)).toBe(0n);
      c.step({ cpl: 3, slots: { retiring: 0, badSpeculation: 0, frontendBound: 50, backendBound: 0 } });
      expect(rd(c, FIXED_CTR3)).toBe(50n);
      expect(rd(c, MSR_PERF_METRICS)).toBe(0xffn << 16n);
    });
  }

  it('without the reset the old period keeps its weight', () => {
    const c = slotsOn(ICELAKE);
    c.step({ cpl: 3, slots: { retiring: 100, badSpeculation: 0, frontendBound: 0, backendBound: 0 } });
    c.step({ cpl: 3, slots: { retiring: 0, badSpeculation: 0, frontendBound: 100, backendBound: 0 } });
    const v = rd(c, MSR_PERF_METRICS);
    expect(byte(v, 0)).toBe(127);
    expect(byte(v, 2)).toBe(127);
  });
});

describe('PERF_METRICS writes read back (§2.11 "writes are stored verbatim"; D13)', () => {
  it('SAPPHIRE_RAPIDS: all 64 bits, with FIXED_CTR3 at 0 or not', () => {
    const c = slotsOn(SAPPHIRE_RAPIDS);
    const v = 0x1020_3040_4030_2010n;
    expect(wr(c, MSR_PERF_METRICS, v)).toBe(v);
    expect(rd(c, MSR_PERF_METRICS)).toBe(v);
    c.step({ cpl: 3, slots: L1 });
    wr(c, MSR_PERF_METRICS, v);
    expect(rd(c, MSR_PERF_METRICS)).toBe(v);
    expect(rd(c, FIXED_CTR3)).toBe(100n);
  });

  it('ICELAKE: the low 32 bits read back; bits 63:32 are ignored without #GP (D13)', () => {
    const c = new Cpu(ICELAKE);
    expect(c.wrmsr(MSR_PERF_METRICS, 0xaabb_ccdd_4030_2010n).ok).toBe(true);
    expect(rd(c, MSR_PERF_METRICS)).toBe(0x4030_2010n);
    wr(c, MSR_PERF_METRICS, 0xffff_ffffn);
    expect(rd(c, MSR_PERF_METRICS)).toBe(0xffff_ffffn);
  });

  it('a saved pair (FIXED_CTR3, PERF_METRICS) restored into a fresh CPU reads back (Linux save/restore)', () => {
    const a = slotsOn(SAPPHIRE_RAPIDS);
    a.step({ cpl: 3, slots: { ...L1, heavyOperations: 7, memoryBound: 3 } });
    const slots = rd(a, FIXED_CTR3);
    const metrics = rd(a, MSR_PERF_METRICS);
    const b = slotsOn(SAPPHIRE_RAPIDS);
    wr(b, FIXED_CTR3, slots);
    wr(b, MSR_PERF_METRICS, metrics);
    expect(rd(b, FIXED_CTR3)).toBe(slots);
    expect(rd(b, MSR_PERF_METRICS)).toBe(metrics);
  });
});

describe('FIXED_CTR3 overflow raises GLOBAL_STATUS[48] with bit 35 (§2.6, §2.11; D11)', () => {
  function nearOverflow(p: Profile, metrics: boolean, ctrl = CTR3_ALL_RINGS): Cpu {
    const c = slotsOn(p, { metrics, ctrl });
    wr(c, FIXED_CTR3, p.fixedMask - 49n); // 50 slots to overflow
    return c;
  }

  for (const p of [ICELAKE, SAPPHIRE_RAPIDS]) {
    it(`${p.name}: sets bits 35 and 48; wraps the counter`, () => {
      const c = nearOverflow(p, true);
      c.step({ cpl: 3, slots: L1 });
      expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS)).toBe((1n << 35n) | (1n << 48n));
      expect(rd(c, FIXED_CTR3)).toBe(50n);
    });
  }

  it('no overflow, no bit 48', () => {
    const c = nearOverflow(ICELAKE, true);
    c.step({ cpl: 3, slots: { retiring: 49, badSpeculation: 0, frontendBound: 0, backendBound: 0 } });
    expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
  });

  it('with GLOBAL_CTRL[48] = 0 only bit 35 is set (D11)', () => {
    const c = nearOverflow(ICELAKE, false);
    c.step({ cpl: 3, slots: L1 });
    expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(1n << 35n);
  });

  it("bit 48's PMI is FIXED_CTR3's PMI bit (D11)", () => {
    const quiet = nearOverflow(ICELAKE, true);
    wr(quiet, X2APIC_LVTPC, APIC_DM_NMI);
    expect(quiet.step({ cpl: 3, slots: L1 })).toBeNull();
    const loud = nearOverflow(ICELAKE, true, CTR3_ALL_RINGS | CTR3_PMI);
    wr(loud, X2APIC_LVTPC, APIC_DM_NMI);
    expect(loud.step({ cpl: 3, slots: L1 })).toEqual({ vector: 0, nmi: true });
    expect(rd(loud, MSR_CORE_PERF_GLOBAL_STATUS)).toBe((1n << 35n) | (1n << 48n));
  });
});

describe('RDPMC type 2000H reads PERF_METRICS (§2.11, §4.9; D34)', () => {
  it('returns the same value as RDMSR 0x329 and changes nothing by default', () => {
    const c = slotsOn(SAPPHIRE_RAPIDS);
    c.step({ cpl: 3, slots: { ...L1, fetchLatency: 15 } });
    const v = rd(c, MSR_PERF_METRICS);
    expect(v).not.toBe(0n);
    expect(c.rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS)).toEqual({ ok: true, value: v });
    expect(rd(c, MSR_PERF_METRICS)).toBe(v);
    expect(rd(c, FIXED_CTR3)).toBe(100n);
  });

  it('#GPs without PERF_METRICS (SKYLAKE) and for an index other than 0', () => {
    expect(new Cpu(SKYLAKE).rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS).ok).toBe(false);
    expect(new Cpu(ICELAKE).rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS + 1).ok).toBe(false);
  });
});

describe('RDPMC metrics-clear mode (PERF_CAPABILITIES[19] + FIXED_CTR_CTRL[14]; §2.11)', () => {
  it('clears PERF_METRICS and FIXED_CTR3 after returning the metrics', () => {
    const c = slotsOn(METRICS_CLEAR, { ctrl: CTR3_ALL_RINGS | METRICS_CLEAR_EN });
    c.step({ cpl: 3, slots: L1 });
    const v = rd(c, MSR_PERF_METRICS);
    expect(v).not.toBe(0n);
    expect(c.rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS)).toEqual({ ok: true, value: v });
    expect(rd(c, MSR_PERF_METRICS)).toBe(0n);
    expect(rd(c, FIXED_CTR3)).toBe(0n);
    c.step({ cpl: 3, slots: { retiring: 0, badSpeculation: 20, frontendBound: 0, backendBound: 0 } });
    expect(rd(c, FIXED_CTR3)).toBe(20n);
    expect(rd(c, MSR_PERF_METRICS)).toBe(0xffn << 8n);
  });

  it('does not clear with FIXED_CTR_CTRL[14] = 0, nor on RDMSR', () => {
    const c = slotsOn(METRICS_CLEAR);
    c.step({ cpl: 3, slots: L1 });
    const v = rd(c, MSR_PERF_METRICS);
    expect(c.rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS)).toEqual({ ok: true, value: v });
    expect(rd(c, MSR_PERF_METRICS)).toBe(v);
    expect(rd(c, FIXED_CTR3)).toBe(100n);
    const d = slotsOn(METRICS_CLEAR, { ctrl: CTR3_ALL_RINGS | METRICS_CLEAR_EN });
    d.step({ cpl: 3, slots: L1 });
    expect(rd(d, MSR_PERF_METRICS)).toBe(v);
    expect(rd(d, FIXED_CTR3)).toBe(100n);
  });

  it('without PERF_CAPABILITIES[19], bit 14 is not METRICS_CLEAR_EN: ICELAKE (bit 14 = AnyThread) does not clear', () => {
    const c = slotsOn(ICELAKE, { ctrl: CTR3_ALL_RINGS | METRICS_CLEAR_EN });
    c.step({ cpl: 3, slots: L1 });
    const v = rd(c, MSR_PERF_METRICS);
    expect(c.rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS)).toEqual({ ok: true, value: v });
    expect(rd(c, MSR_PERF_METRICS)).toBe(v);
    expect(rd(c, FIXED_CTR3)).toBe(100n);
  });
});
