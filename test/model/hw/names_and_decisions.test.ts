import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  bits,
  describeBits,
  fields,
  getField,
  hex,
  isSignExtended,
  setField,
  signExtend,
} from '../../../model/hw/bits.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { DECISIONS, decision } from '../../../model/hw/decisions.js';
import { MsrNameError, WorkError } from '../../../model/hw/errors.js';
import { msrAddress, msrName } from '../../../model/hw/msr/map.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('the decision list (every [U] fact the model relies on)', () => {
  const code = sources('model/hw')
    .filter((f) => !f.endsWith('decisions.ts'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const cited = new Set(code.match(/\bD\d+\b/g) ?? []);
  it('defines every decision the code cites, once', () => {
    const ids = DECISIONS.map((d) => d.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of cited) expect(ids, `code cites ${id}`).toContain(id);
  });
  it('has every decision cited by the code that implements it', () => {
    for (const d of DECISIONS) expect(cited, `${d.id} is cited nowhere`).toContain(d.id);
  });
  it('states question, choice, reason and reference for each', () => {
    for (const d of DECISIONS)
      for (const k of ['question', 'choice', 'why', 'ref'] as const) expect(d[k].length).toBeGreaterThan(2);
    expect(decision('D7').choice).toMatch(/dropped/);
    expect(() => decision('D999')).toThrow(/no decision D999/);
  });
});

describe("MSR addresses the model exports are the SDM's (pmu-semantics.md §2.1)", () => {
  it('pins every family base', async () => {
    const m = await import('../../../model/hw/index.js');
    expect({
      PMC0: m.MSR_IA32_PERFCTR0,
      A_PMC0: m.MSR_IA32_PMC0,
      PERFEVTSEL0: m.MSR_P6_EVNTSEL0,
      FIXED_CTR0: m.MSR_CORE_PERF_FIXED_CTR0,
      PERF_METRICS: m.MSR_PERF_METRICS,
      PERF_CAPABILITIES: m.MSR_IA32_PERF_CAPABILITIES,
      FIXED_CTR_CTRL: m.MSR_CORE_PERF_FIXED_CTR_CTRL,
      GLOBAL_STATUS: m.MSR_CORE_PERF_GLOBAL_STATUS,
      GLOBAL_CTRL: m.MSR_CORE_PERF_GLOBAL_CTRL,
      GLOBAL_STATUS_RESET: m.MSR_CORE_PERF_GLOBAL_OVF_CTRL,
      GLOBAL_STATUS_SET: m.MSR_CORE_PERF_GLOBAL_STATUS_SET,
      GLOBAL_INUSE: m.MSR_CORE_PERF_GLOBAL_INUSE,
      DEBUGCTL: m.MSR_IA32_DEBUGCTLMSR,
      LBR_SELECT: m.MSR_LBR_SELECT,
      LBR_TOS: m.MSR_LBR_TOS,
      LBR_CTL: m.MSR_ARCH_LBR_CTL,
      LBR_DEPTH: m.MSR_ARCH_LBR_DEPTH,
      LBR_FROM0: m.MSR_ARCH_LBR_FROM_0,
      LBR_TO0: m.MSR_ARCH_LBR_TO_0,
      LBR_INFO0: m.MSR_ARCH_LBR_INFO_0,
      X2APIC_LVTPC: m.X2APIC_LVTPC,
    }).toEqual({
      PMC0: 0xc1,
      A_PMC0: 0x4c1,
      PERFEVTSEL0: 0x186,
      FIXED_CTR0: 0x309,
      PERF_METRICS: 0x329,
      PERF_CAPABILITIES: 0x345,
      FIXED_CTR_CTRL: 0x38d,
      GLOBAL_STATUS: 0x38e,
      GLOBAL_CTRL: 0x38f,
      GLOBAL_STATUS_RESET: 0x390,
      GLOBAL_STATUS_SET: 0x391,
      GLOBAL_INUSE: 0x392,
      DEBUGCTL: 0x1d9,
      LBR_SELECT: 0x1c8,
      LBR_TOS: 0x1c9,
      LBR_CTL: 0x14ce,
      LBR_DEPTH: 0x14cf,
      LBR_FROM0: 0x1500,
      LBR_TO0: 0x1600,
      LBR_INFO0: 0x1200,
      X2APIC_LVTPC: 0x834,
    });
  });
});

describe('MSR names (for messages and user input)', () => {
  it('resolves architectural names in any case, and hex or decimal addresses', () => {
    expect(msrAddress('IA32_PERF_GLOBAL_CTRL')).toBe(0x38f);
    expect(msrAddress('ia32_pmc3')).toBe(0xc4);
    expect(msrAddress('IA32_LBR_5_INFO')).toBe(0x1205);
    expect(msrAddress(' 0x38E ')).toBe(0x38e);
    expect(msrAddress('393')).toBe(393);
  });
  it('rejects an unknown name with a suggestion, not a stack of guesses', () => {
    expect(() => msrAddress('IA32_PERF_GLOBAL_CTL')).toThrow(MsrNameError);
    expect(() => msrAddress('IA32_PMC9')).toThrow(/unknown MSR name 'IA32_PMC9'; did you mean IA32_PMC0/);
    expect(() => msrAddress('bogus')).toThrow(/^unknown MSR name 'bogus'$/);
  });
  it('names addresses by profile where the name depends on the version', () => {
    expect(msrName(0x390, SKYLAKE)).toBe('IA32_PERF_GLOBAL_STATUS_RESET');
    expect(msrName(0x1500)).toBe('IA32_LBR_0_FROM_IP');
    expect(msrName(0x1900)).toBe('MSR_0x1900');
  });
  it('says why an absent MSR #GPs', () => {
    const r = new Cpu(SAPPHIRE_RAPIDS).rdmsr(0x1c9);
    expect(r).toEqual({ ok: false, gp: 'MSR_LASTBRANCH_TOS (0x1c9) does not exist on sapphirerapids' });
  });
});

describe('bit helpers', () => {
  it('build, read and write fields', () => {
    const t = fields({ lo: [3, 0], flag: 7 });
    expect(setField(0xffn, t.lo, 0x5n)).toBe(0xf5n);
    expect(getField(0xabn, t.lo)).toBe(0xbn);
    expect(bits(7, 4)).toBe(0xf0n);
    expect(describeBits(1n << 33n)).toBe('bit 33');
    expect(describeBits((1n << 40n) | (1n << 33n))).toBe('bits 33,40');
    expect(hex(255)).toBe('0xff');
  });
  it('sign-extend and test canonical form', () => {
    expect(signExtend(0x8000_0000n, 31)).toBe(0xffff_ffff_8000_0000n);
    expect(signExtend(0x7fff_ffffn, 31)).toBe(0x7fff_ffffn);
    expect(isSignExtended(0xffff_8000_0000_0000n, 47)).toBe(true);
    expect(isSignExtended(0x0000_8000_0000_0000n, 47)).toBe(false);
  });
});

describe('work units that cannot happen throw a WorkError naming the field', () => {
  const cpu = new Cpu(SAPPHIRE_RAPIDS);
  const slots = { retiring: 2, badSpeculation: 2, frontendBound: 2, backendBound: 2 };
  it.each([
    ['slots.retiring', { cpl: 0, slots: { ...slots, retiring: -1 } }],
    ['slots.heavyOperations exceeds', { cpl: 0, slots: { ...slots, heavyOperations: 3 } }],
    ['slots.branchMispredicts exceeds', { cpl: 0, slots: { ...slots, branchMispredicts: 3 } }],
    ['slots.fetchLatency exceeds', { cpl: 0, slots: { ...slots, fetchLatency: 3 } }],
    ['slots.memoryBound exceeds', { cpl: 0, slots: { ...slots, memoryBound: 3 } }],
    ['slots.memoryBound must be', { cpl: 0, slots: { ...slots, memoryBound: 0.5 } }],
    ['llcMisses must be', { cpl: 0, llcMisses: Number.NaN }],
    [
      'retires 2 branches but only 1',
      {
        cpl: 0,
        instructions: 1,
        branches: [{ from: 1n, to: 2n, kind: 'COND' as const }],
        untakenBranches: 1,
      },
    ],
  ] as const)('%s', (msg, u) => {
    expect(() => cpu.step(u)).toThrow(WorkError);
    expect(() => cpu.step(u)).toThrow(msg);
  });
});
