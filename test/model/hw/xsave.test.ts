/**
 * XSAVE state component 15 (Arch LBR) from pmu-semantics.md §3.5 and §7 item 17; the model's
 * choices on its [U] facts are D24 and D26.
 */
import { describe, expect, it } from 'vitest';
import {
  type ArchLbrXsave,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
  xsaveSize,
} from '../../../model/hw/msr/lbr_arch.js';
import { type Branch } from '../../../model/hw/work.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { ModelError } from '../../../model/hw/errors.js';
import { perfCaps } from '../../../model/hw/profile.js';
import { ARCH_CAPTURE_ALL, part, rd, USER, userBranches, wr } from './parts.js';

function save(c: Cpu): ArchLbrXsave {
  const r = c.xsaves();
  if (!r.ok) throw new Error(`XSAVES: unexpected #GP (${r.gp})`);
  return r.area;
}

/** `n` distinct user-mode calls, every other one mispredicted. */
function branches(n: number): Branch[] {
  return userBranches(n, 'NEAR_REL_CALL').map((b, i) => ({ ...b, mispredict: i % 2 === 0 }));
}

/** A CPU at `depth` with `n` records (newest first in entry 0). */
function withRecords(depth: number, n: number): Cpu {
  const c = new Cpu(SAPPHIRE_RAPIDS);
  wr(c, MSR_ARCH_LBR_DEPTH, BigInt(depth));
  wr(c, MSR_ARCH_LBR_CTL, ARCH_CAPTURE_ALL);
  c.step({ cpl: 3, cycles: 40, branches: branches(n) });
  return c;
}

function records(c: Cpu): { from: bigint; to: bigint; info: bigint }[] {
  const d = Number(rd(c, MSR_ARCH_LBR_DEPTH));
  return Array.from({ length: d }, (_, i) => ({
    from: rd(c, MSR_ARCH_LBR_FROM_0 + i),
    to: rd(c, MSR_ARCH_LBR_TO_0 + i),
    info: rd(c, MSR_ARCH_LBR_INFO_0 + i),
  }));
}

describe('XSAVES of component 15 (§3.5 layout)', () => {
  it('saves lbr_ctl, lbr_depth, the LER fields and exactly `depth` {from,to,info} entries', () => {
    const c = withRecords(16, 5);
    const a = save(c);
    expect(a.lbrCtl).toBe(ARCH_CAPTURE_ALL);
    expect(a.lbrDepth).toBe(16n);
    expect(a.lerFrom).toBe(0n);
    expect(a.lerTo).toBe(0n);
    expect(a.lerInfo).toBe(0n);
    expect(a.entries).toHaveLength(16);
    expect(a.entries).toEqual(records(c));
    expect(a.entries[0]!.from).toBe(USER + 4n * 0x10n);
    expect(a.entries[5]).toEqual({ from: 0n, to: 0n, info: 0n });
  });

  it('is 40 + 24·depth bytes: 808 at depth 32, 232 at depth 8', () => {
    for (const [d, size] of [
      [8, 232],
      [16, 424],
      [24, 616],
      [32, 808],
    ] as const) {
      const a = save(withRecords(d, 3));
      expect(a.entries).toHaveLength(d);
      expect(xsaveSize(a)).toBe(size);
      expect(xsaveSize(a)).toBe(40 + 24 * d);
    }
  });

  it('does not change the state it saves', () => {
    const c = withRecords(8, 3);
    const before = records(c);
    save(c);
    expect(records(c)).toEqual(before);
    expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(ARCH_CAPTURE_ALL);
  });
});

describe('XRSTORS of component 15 (§3.5; D26)', () => {
  it('with the saved depth equal to IA32_LBR_DEPTH, restores LBR_CTL and every record', () => {
    const c = withRecords(16, 9);
    const a = save(c);
    const saved = records(c);
    wr(c, MSR_ARCH_LBR_DEPTH, 16n); // zeroes the records
    wr(c, MSR_ARCH_LBR_CTL, 0n);
    expect(records(c).every((r) => r.from === 0n)).toBe(true);
    expect(c.xrstors(a).ok).toBe(true);
    expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(ARCH_CAPTURE_ALL);
    expect(rd(c, MSR_ARCH_LBR_DEPTH)).toBe(16n);
    expect(records(c)).toEqual(saved);
  });

  it('restores records written by software, not only recorded ones', () => {
    const c = new Cpu(SAPPHIRE_RAPIDS);
    wr(c, MSR_ARCH_LBR_DEPTH, 8n);
    const entries = Array.from({ length: 8 }, (_, i) => ({
      from: 0xffffffff81000000n + BigInt(i),
      to: USER + BigInt(i),
      info: (1n << 63n) | (2n << 56n) | BigInt(i),
    }));
    const area: ArchLbrXsave = { lbrCtl: 0x1n, lbrDepth: 8n, lerFrom: 0n, lerTo: 0n, lerInfo: 0n, entries };
    expect(c.xrstors(area).ok).toBe(true);
    expect(records(c)).toEqual(entries);
    expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(1n);
  });

  it('with a different saved depth, zeroes the records, loads LBR_CTL, and leaves IA32_LBR_DEPTH alone', () => {
    const src = withRecords(32, 20);
    const a = save(src);
    const dst = withRecords(8, 8);
    wr(dst, MSR_ARCH_LBR_CTL, 0n);
    expect(dst.xrstors(a).ok).toBe(true);
    expect(rd(dst, MSR_ARCH_LBR_DEPTH)).toBe(8n);
    expect(rd(dst, MSR_ARCH_LBR_CTL)).toBe(ARCH_CAPTURE_ALL);
    expect(records(dst)).toEqual(Array.from({ length: 8 }, () => ({ from: 0n, to: 0n, info: 0n })));
  });

  it('a depth mismatch in the other direction (saved 8, current 32) also zeroes', () => {
    const a = save(withRecords(8, 8));
    const dst = withRecords(32, 30);
    expect(dst.xrstors(a).ok).toBe(true);
    expect(rd(dst, MSR_ARCH_LBR_DEPTH)).toBe(32n);
    expect(records(dst).every((r) => r.from === 0n && r.to === 0n && r.info === 0n)).toBe(true);
  });

  it('#GPs on reserved or unenumerated LBR_CTL bits in the area and changes nothing', () => {
    const c = withRecords(16, 4);
    const a = save(c);
    const before = records(c);
    for (const ctl of [1n << 4n, 1n << 23n, 1n << 63n, ARCH_CAPTURE_ALL | (1n << 15n)]) {
      expect(c.xrstors({ ...a, lbrCtl: ctl }).ok).toBe(false);
      expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(ARCH_CAPTURE_ALL);
      expect(records(c)).toEqual(before);
    }
    const noCallStack = new Cpu(
      part({
        v: 5,
        name: 'arch-no-callstack',
        model: 0x97,
        evLen: 8,
        anyDeprecated: true,
        caps: perfCaps({ lbrFmt: 0x3f }),
        leaf1c: { eax: 0x2, ebx: 0x3, ecx: 0x7, edx: 0 },
      }),
    );
    const b = save(noCallStack);
    expect(noCallStack.xrstors({ ...b, lbrCtl: 0x9n }).ok).toBe(false);
    expect(noCallStack.xrstors({ ...b, lbrCtl: 0x7n }).ok).toBe(true);
  });

  it('#GPs on a non-canonical record or reserved INFO bits when the depth matches (D24)', () => {
    const c = withRecords(8, 8);
    const a = save(c);
    const before = records(c);
    const bad = (i: number, e: Partial<{ from: bigint; to: bigint; info: bigint }>): ArchLbrXsave => ({
      ...a,
      lbrCtl: 0n,
      entries: a.entries.map((x, k) => (k === i ? { ...x, ...e } : x)),
    });
    expect(c.xrstors(bad(3, { from: 0x0000_8000_0000_0000n })).ok).toBe(false);
    expect(c.xrstors(bad(7, { to: 1n << 63n })).ok).toBe(false);
    expect(c.xrstors(bad(0, { info: 1n << 20n })).ok).toBe(false);
    expect(records(c)).toEqual(before);
    expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(ARCH_CAPTURE_ALL);
  });

  it('a malformed area (entries.length != lbrDepth) is a programming error: ModelError', () => {
    const c = withRecords(8, 2);
    const a = save(c);
    expect(() => c.xrstors({ ...a, entries: a.entries.slice(0, 7) })).toThrow(ModelError);
    expect(() => c.xrstors({ ...a, lbrDepth: 16n })).toThrow(ModelError);
  });
});

describe('XSAVES/XRSTORS without Arch LBR (§3.5: component 15 is Arch LBR state)', () => {
  it('#GP on legacy-LBR parts', () => {
    const area: ArchLbrXsave = { lbrCtl: 0n, lbrDepth: 0n, lerFrom: 0n, lerTo: 0n, lerInfo: 0n, entries: [] };
    for (const p of [SKYLAKE, ICELAKE]) {
      const c = new Cpu(p);
      expect(c.xsaves().ok).toBe(false);
      expect(c.xrstors(area).ok).toBe(false);
    }
  });
});
