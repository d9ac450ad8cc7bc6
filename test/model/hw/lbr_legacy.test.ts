/**
 * Model-specific ("legacy") LBRs from pmu-semantics.md §2.13 and §4.7, plus the decisions the
 * model takes on their [U] facts (D18-D23). Expectations come from the spec, not from the code.
 */
import { describe, expect, it } from 'vitest';
import { BRANCH_KINDS, type BranchKind } from '../../../model/hw/state.js';
import { type Branch } from '../../../model/hw/work.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import {
  MSR_LBR_SELECT,
  MSR_LBR_TOS,
  legalizeLbrFrom,
  legalizeLbrTo,
  MSR_LBR_NHM_FROM,
  MSR_LBR_INFO_0,
  MSR_LBR_NHM_TO,
} from '../../../model/hw/msr/lbr_legacy.js';
import {
  MSR_P6_EVNTSEL0,
  MSR_IA32_PERFCTR0,
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
} from '../../../model/hw/msr/counters.js';
import { type Profile, perfCaps } from '../../../model/hw/profile.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { br, isGp, KERNEL, part, rd, USER, userBranches, wr } from './parts.js';

interface LegacyOpts {
  readonly fmt: number;
  readonly depth?: 4 | 8 | 16 | 32;
  readonly select?: boolean;
  readonly callStack?: boolean;
  readonly tsx?: boolean;
  readonly version?: number;
}

function legacyProfile(o: LegacyOpts): Profile {
  const select = o.select ?? true;
  return part({
    v: o.version ?? 4,
    name: `legacy-fmt${o.fmt}`,
    model: 0x3c,
    caps: perfCaps({ lbrFmt: o.fmt, fwWrite: true }),
    legacyLbr: {
      depth: o.depth ?? 16,
      fromBase: MSR_LBR_NHM_FROM,
      toBase: MSR_LBR_NHM_TO,
      ...(o.fmt === 5 || o.fmt === 7 ? { infoBase: MSR_LBR_INFO_0 } : {}),
      select,
      callStack: o.callStack ?? select,
    },
    ...(o.tsx !== undefined ? { tsx: o.tsx } : {}),
  });
}

/** The records newest first, per §2.13: the k-th most recent lives at (TOS - k) mod N. */
function newestFirst(c: Cpu): { from: bigint; to: bigint }[] {
  const n = c.profile.legacyLbr!.depth;
  const tos = Number(rd(c, MSR_LBR_TOS));
  const out: { from: bigint; to: bigint }[] = [];
  for (let k = 0; k < n; k++) {
    const i = (((tos - k) % n) + n) % n;
    out.push({ from: rd(c, MSR_LBR_NHM_FROM + i), to: rd(c, MSR_LBR_NHM_TO + i) });
  }
  return out;
}

function enabled(p: Profile): Cpu {
  const c = new Cpu(p);
  wr(c, MSR_IA32_DEBUGCTLMSR, 1n);
  return c;
}

describe('SKYLAKE built-in legacy LBR geometry (§2.13 model table)', () => {
  it('has 32 entries at FROM 0x680, TO 0x6C0, INFO 0xDC0 and nothing beyond', () => {
    const c = new Cpu(SKYLAKE);
    expect(SKYLAKE.lbrFmt).toBe(5);
    for (let i = 0; i < 32; i++) {
      expect(c.rdmsr(MSR_LBR_NHM_FROM + i).ok).toBe(true);
      expect(c.rdmsr(MSR_LBR_NHM_TO + i).ok).toBe(true);
      expect(c.rdmsr(MSR_LBR_INFO_0 + i).ok).toBe(true);
    }
    expect(isGp(c.rdmsr(MSR_LBR_NHM_FROM + 32))).toBe(true);
    expect(isGp(c.rdmsr(MSR_LBR_NHM_TO + 32))).toBe(true);
    expect(isGp(c.rdmsr(MSR_LBR_INFO_0 + 32))).toBe(true);
    expect(c.rdmsr(MSR_LBR_SELECT).ok).toBe(true);
    expect(c.rdmsr(MSR_LBR_TOS).ok).toBe(true);
  });

  it('wraps the ring at 32: after 33 records TOS is 1 and the oldest was overwritten', () => {
    const c = enabled(SKYLAKE);
    const b = userBranches(33);
    c.run(b.map((x) => ({ cpl: 3, branches: [x] })));
    expect(rd(c, MSR_LBR_TOS)).toBe(33n % 32n);
    const recs = newestFirst(c);
    expect(recs.map((r) => r.from)).toEqual(
      b
        .slice(1)
        .reverse()
        .map((x) => x.from),
    );
  });

  it('has no INFO MSRs on a format without LBR_INFO (§2.1: INFO only for LBR_FMT 5, 7)', () => {
    for (const fmt of [1, 2, 3, 4, 6]) expect(isGp(new Cpu(legacyProfile({ fmt })).rdmsr(MSR_LBR_INFO_0))).toBe(true);
  });
});

describe('MSR_LBR_SELECT (§2.13; D18)', () => {
  it('resets to 0, so every branch is captured', () => {
    const c = enabled(SKYLAKE);
    expect(rd(c, MSR_LBR_SELECT)).toBe(0n);
    c.step({ cpl: 3, branches: BRANCH_KINDS.map((k, i) => br(k, USER + BigInt(i), USER + 0x100n)) });
    c.step({ cpl: 0, branches: [br('COND', KERNEL, KERNEL + 0x40n)] });
    expect(rd(c, MSR_LBR_TOS)).toBe(8n);
  });

  it('accepts bits 0-9 where call-stack mode exists and #GPs bits 63:10', () => {
    const c = new Cpu(SKYLAKE);
    expect(wr(c, MSR_LBR_SELECT, 0x3ffn)).toBe(0x3ffn);
    expect(rd(c, MSR_LBR_SELECT)).toBe(0x3ffn);
    for (const b of [10, 11, 32, 63]) {
      expect(isGp(c.wrmsr(MSR_LBR_SELECT, 1n << BigInt(b)))).toBe(true);
      expect(rd(c, MSR_LBR_SELECT)).toBe(0x3ffn);
    }
  });

  it('#GPs EN_CALLSTACK (bit 9) on a part without call-stack mode, accepts bits 0-8', () => {
    const c = new Cpu(legacyProfile({ fmt: 3, select: true, callStack: false }));
    expect(isGp(c.wrmsr(MSR_LBR_SELECT, 1n << 9n))).toBe(true);
    expect(wr(c, MSR_LBR_SELECT, 0x1ffn)).toBe(0x1ffn);
  });

  it('does not exist on a part without LBR filtering (Core 2-like); TOS still does', () => {
    const c = new Cpu(legacyProfile({ fmt: 1, depth: 4, select: false }));
    expect(isGp(c.rdmsr(MSR_LBR_SELECT))).toBe(true);
    expect(isGp(c.wrmsr(MSR_LBR_SELECT, 0n))).toBe(true);
    expect(c.rdmsr(MSR_LBR_TOS).ok).toBe(true);
  });

  const suppress: [number, BranchKind][] = [
    [2, 'COND'],
    [3, 'NEAR_REL_CALL'],
    [4, 'NEAR_IND_CALL'],
    [5, 'NEAR_RET'],
    [6, 'NEAR_IND_JMP'],
    [7, 'NEAR_REL_JMP'],
    [8, 'FAR'],
  ];
  for (const [bitNo, kind] of suppress) {
    it(`bit ${bitNo} = 1 suppresses ${kind} and only ${kind} (suppress mode)`, () => {
      const c = enabled(SKYLAKE);
      wr(c, MSR_LBR_SELECT, 1n << BigInt(bitNo));
      const all = suppress.map(([, k], i) => br(k, USER + BigInt(i) * 0x10n, USER + 0x1000n));
      c.step({ cpl: 3, branches: all });
      const recorded = newestFirst(c)
        .slice(0, 6)
        .map((r) => r.from);
      const expected = all
        .filter((b) => b.kind !== kind)
        .reverse()
        .map((b) => b.from);
      expect(recorded).toEqual(expected);
      expect(rd(c, MSR_LBR_TOS)).toBe(6n);
    });
  }

  it('bit 0 (CPL_EQ_0) suppresses ring-0 branches only; bit 1 (CPL_NEQ_0) suppresses rings 1-3 only', () => {
    const ring = (sel: bigint) => {
      const c = enabled(SKYLAKE);
      wr(c, MSR_LBR_SELECT, sel);
      c.step({ cpl: 0, branches: [br('COND', KERNEL, KERNEL + 0x20n)] });
      c.step({ cpl: 3, branches: [br('COND', USER, USER + 0x20n)] });
      c.step({ cpl: 1, branches: [br('COND', USER + 0x40n, USER + 0x60n)] });
      return newestFirst(c)
        .filter((r) => r.from !== 0n)
        .map((r) => r.from);
    };
    expect(ring(1n)).toEqual([USER + 0x40n, USER]);
    expect(ring(2n)).toEqual([KERNEL]);
    expect(ring(3n)).toEqual([]);
  });

  it('filters on the CPL the branch carries, not the unit (D22)', () => {
    const c = enabled(SKYLAKE);
    wr(c, MSR_LBR_SELECT, 1n); // suppress ring 0
    c.step({ cpl: 0, branches: [br('FAR', KERNEL, USER, { cpl: 3 }), br('COND', KERNEL, KERNEL + 8n)] });
    expect(newestFirst(c)[0]!.from).toBe(KERNEL);
    expect(rd(c, MSR_LBR_TOS)).toBe(1n);
  });
});

describe('MSR_LASTBRANCH_TOS (§2.13; D19)', () => {
  it('points at the newest record; the k-th most recent is at (TOS - k) mod N', () => {
    const c = enabled(legacyProfile({ fmt: 1, depth: 4 }));
    const b = userBranches(6);
    for (const x of b) c.step({ cpl: 3, branches: [x] });
    expect(rd(c, MSR_LBR_TOS)).toBe(6n % 4n);
    expect(rd(c, MSR_LBR_NHM_FROM + 2)).toBe(b[5]!.from);
    expect(rd(c, MSR_LBR_NHM_TO + 2)).toBe(b[5]!.to);
    expect(newestFirst(c).map((r) => r.from)).toEqual([b[5]!.from, b[4]!.from, b[3]!.from, b[2]!.from]);
  });

  it('is writable below the depth, and the next record goes to TOS + 1', () => {
    const c = enabled(SKYLAKE);
    expect(wr(c, MSR_LBR_TOS, 31n)).toBe(31n);
    expect(rd(c, MSR_LBR_TOS)).toBe(31n);
    c.step({ cpl: 3, branches: [br('COND', USER, USER + 4n)] });
    expect(rd(c, MSR_LBR_TOS)).toBe(0n);
    expect(rd(c, MSR_LBR_NHM_FROM)).toBe(USER);
    wr(c, MSR_LBR_TOS, 7n);
    c.step({ cpl: 3, branches: [br('COND', USER + 8n, USER + 12n)] });
    expect(rd(c, MSR_LBR_NHM_FROM + 8)).toBe(USER + 8n);
  });

  it('#GPs a write >= depth and keeps the old TOS', () => {
    const c = new Cpu(legacyProfile({ fmt: 3, depth: 16 }));
    wr(c, MSR_LBR_TOS, 5n);
    for (const v of [16n, 17n, 32n, 1n << 63n]) {
      expect(isGp(c.wrmsr(MSR_LBR_TOS, v))).toBe(true);
      expect(rd(c, MSR_LBR_TOS)).toBe(5n);
    }
    expect(wr(c, MSR_LBR_TOS, 15n)).toBe(15n);
  });
});

describe('recording needs DEBUGCTL.LBR (§4.7)', () => {
  it('records nothing with DEBUGCTL.LBR = 0, and records once it is set', () => {
    const c = new Cpu(SKYLAKE);
    expect(rd(c, MSR_IA32_DEBUGCTLMSR)).toBe(0n);
    c.step({ cpl: 3, branches: userBranches(3) });
    expect(rd(c, MSR_LBR_TOS)).toBe(0n);
    expect(newestFirst(c).every((r) => r.from === 0n && r.to === 0n)).toBe(true);
    wr(c, MSR_IA32_DEBUGCTLMSR, 1n);
    c.step({ cpl: 3, branches: [br('COND', USER, USER + 0x10n)] });
    expect(rd(c, MSR_LBR_TOS)).toBe(1n);
    expect(rd(c, MSR_LBR_NHM_FROM + 1)).toBe(USER);
    expect(rd(c, MSR_LBR_NHM_TO + 1)).toBe(USER + 0x10n);
    wr(c, MSR_IA32_DEBUGCTLMSR, 0n);
    c.step({ cpl: 3, branches: userBranches(2) });
    expect(rd(c, MSR_LBR_TOS)).toBe(1n);
  });

  it('leaves untaken conditional branches out of the LBRs', () => {
    const c = enabled(SKYLAKE);
    c.step({ cpl: 3, instructions: 10, untakenBranches: 5, branches: [br('COND', USER, USER + 4n)] });
    expect(rd(c, MSR_LBR_TOS)).toBe(1n);
  });
});

describe('LBR_FMT encodings (§2.13 format table)', () => {
  /** Records one branch per unit: cycles accrue first, then the branch (D23). */
  function record1(fmt: number, b: Branch, cycles = 0): { cpu: Cpu; tos: number } {
    const cpu = enabled(legacyProfile({ fmt }));
    cpu.step({ cpl: 3, cycles, branches: [b] });
    return { cpu, tos: Number(rd(cpu, MSR_LBR_TOS)) };
  }

  for (const fmt of [1, 2]) {
    it(`format ${fmt}: FROM and TO are the plain 64-bit addresses, the MISPRED flag is nowhere`, () => {
      const { cpu, tos } = record1(fmt, br('FAR', KERNEL, USER, { mispredict: true }), 50);
      expect(rd(cpu, MSR_LBR_NHM_FROM + tos)).toBe(KERNEL);
      expect(rd(cpu, MSR_LBR_NHM_TO + tos)).toBe(USER);
    });
  }

  it('format 3: MISPRED in FROM bit 63 over a 63-bit sign-extended address; TO is the address', () => {
    const a = record1(3, br('COND', USER, USER + 0x40n, { mispredict: true }));
    expect(rd(a.cpu, MSR_LBR_NHM_FROM + a.tos)).toBe((1n << 63n) | USER);
    expect(rd(a.cpu, MSR_LBR_NHM_TO + a.tos)).toBe(USER + 0x40n);
    const b = record1(3, br('COND', KERNEL, KERNEL + 0x40n, { mispredict: false }));
    expect(rd(b.cpu, MSR_LBR_NHM_FROM + b.tos)).toBe(0x7fffffff81000000n); // bit 63 = 0: predicted
    expect(rd(b.cpu, MSR_LBR_NHM_TO + b.tos)).toBe(KERNEL + 0x40n);
    const c = record1(3, br('COND', KERNEL, KERNEL + 0x40n, { mispredict: true }));
    expect(rd(c.cpu, MSR_LBR_NHM_FROM + c.tos)).toBe(KERNEL);
  });

  it('format 4: MISPRED 63, IN_TX 62 and TSX_ABORT 61 clear outside a transaction, 60:48 sign extension', () => {
    const a = record1(4, br('COND', KERNEL, KERNEL + 0x40n, { mispredict: true }));
    expect(rd(a.cpu, MSR_LBR_NHM_FROM + a.tos)).toBe(0x9fffffff81000000n);
    expect(rd(a.cpu, MSR_LBR_NHM_TO + a.tos)).toBe(KERNEL + 0x40n);
    const b = record1(4, br('COND', USER, USER + 0x40n));
    expect(rd(b.cpu, MSR_LBR_NHM_FROM + b.tos)).toBe(USER);
  });

  it('format 5: FROM/TO are pure addresses; INFO has MISPRED in bit 63 and the cycle count in 15:0 (D23)', () => {
    const a = record1(5, br('NEAR_IND_CALL', KERNEL, KERNEL + 0x100n, { mispredict: true }), 1234);
    expect(rd(a.cpu, MSR_LBR_NHM_FROM + a.tos)).toBe(KERNEL);
    expect(rd(a.cpu, MSR_LBR_NHM_TO + a.tos)).toBe(KERNEL + 0x100n);
    expect(rd(a.cpu, MSR_LBR_INFO_0 + a.tos)).toBe((1n << 63n) | 1234n);
    const b = record1(5, br('COND', USER, USER + 8n), 7);
    expect(rd(b.cpu, MSR_LBR_INFO_0 + b.tos)).toBe(7n);
  });

  it('format 6: MISPRED in FROM bit 63; TO carries the cycle count in 63:48 over a 48-bit address', () => {
    const a = record1(6, br('COND', KERNEL, KERNEL + 0x80n, { mispredict: true }), 0x1234);
    expect(rd(a.cpu, MSR_LBR_NHM_FROM + a.tos)).toBe(KERNEL);
    expect(rd(a.cpu, MSR_LBR_NHM_TO + a.tos)).toBe((0x1234n << 48n) | ((KERNEL + 0x80n) & 0xffff_ffff_ffffn));
    const b = record1(6, br('COND', KERNEL, USER), 3);
    expect(rd(b.cpu, MSR_LBR_NHM_FROM + b.tos)).toBe(0x7fffffff81000000n);
    expect(rd(b.cpu, MSR_LBR_NHM_TO + b.tos)).toBe((3n << 48n) | USER);
  });

  it('format 7: like 5, INFO with MISPRED 63 and cycles 15:0', () => {
    const a = record1(7, br('NEAR_RET', KERNEL, USER, { mispredict: true }), 99);
    expect(rd(a.cpu, MSR_LBR_NHM_FROM + a.tos)).toBe(KERNEL);
    expect(rd(a.cpu, MSR_LBR_NHM_TO + a.tos)).toBe(USER);
    expect(rd(a.cpu, MSR_LBR_INFO_0 + a.tos)).toBe((1n << 63n) | 99n);
  });

  it('cycle counts: cycles since the previous record, saturating at 0xFFFF; a second branch of a unit gets 0 (D23)', () => {
    const c = enabled(SKYLAKE);
    c.step({ cpl: 3, cycles: 5 });
    c.step({ cpl: 3, cycles: 7, branches: [br('COND', USER, USER + 4n), br('COND', USER + 8n, USER + 12n)] });
    expect(rd(c, MSR_LBR_INFO_0 + 1)).toBe(12n);
    expect(rd(c, MSR_LBR_INFO_0 + 2)).toBe(0n);
    c.step({ cpl: 3, cycles: 40_000 });
    c.step({ cpl: 3, cycles: 40_000, branches: [br('COND', USER, USER + 4n)] });
    expect(rd(c, MSR_LBR_INFO_0 + 3)).toBe(0xffffn);
  });
});

describe('LBR record write legality (§2.13, §5; D20)', () => {
  const NONCANON = 0x0000_8000_0000_0000n;

  it('format 5 (SKYLAKE): FROM/TO must be canonical; canonical values read back', () => {
    const c = new Cpu(SKYLAKE);
    expect(wr(c, MSR_LBR_NHM_FROM + 3, KERNEL)).toBe(KERNEL);
    expect(rd(c, MSR_LBR_NHM_FROM + 3)).toBe(KERNEL);
    expect(wr(c, MSR_LBR_NHM_TO + 3, USER)).toBe(USER);
    expect(isGp(c.wrmsr(MSR_LBR_NHM_FROM + 3, NONCANON))).toBe(true);
    expect(isGp(c.wrmsr(MSR_LBR_NHM_TO + 3, NONCANON))).toBe(true);
    // no flag bits in FROM on format 5
    expect(isGp(c.wrmsr(MSR_LBR_NHM_FROM + 3, (1n << 63n) | USER))).toBe(true);
    expect(rd(c, MSR_LBR_NHM_FROM + 3)).toBe(KERNEL);
  });

  it('format 5 INFO: MISPRED, IN_TX, TSX_ABORT and cycles 15:0 are writable, 60:16 reserved', () => {
    const c = new Cpu(SKYLAKE);
    const v = (7n << 61n) | 0xffffn;
    expect(wr(c, MSR_LBR_INFO_0, v)).toBe(v);
    expect(rd(c, MSR_LBR_INFO_0)).toBe(v);
    for (const b of [16, 40, 60]) expect(isGp(c.wrmsr(MSR_LBR_INFO_0, 1n << BigInt(b)))).toBe(true);
    expect(rd(c, MSR_LBR_INFO_0)).toBe(v);
  });

  it('format 7 INFO has no TSX bits (62:61 #GP)', () => {
    const c = new Cpu(legacyProfile({ fmt: 7 }));
    expect(wr(c, MSR_LBR_INFO_0, (1n << 63n) | 5n)).toBe((1n << 63n) | 5n);
    expect(isGp(c.wrmsr(MSR_LBR_INFO_0, 1n << 62n))).toBe(true);
    expect(isGp(c.wrmsr(MSR_LBR_INFO_0, 1n << 61n))).toBe(true);
  });

  for (const fmt of [3, 6]) {
    it(`format ${fmt}: FROM bit 63 (MISPRED) is free, 62:47 must be a sign extension`, () => {
      const c = new Cpu(legacyProfile({ fmt }));
      expect(wr(c, MSR_LBR_NHM_FROM, (1n << 63n) | USER)).toBe((1n << 63n) | USER);
      expect(wr(c, MSR_LBR_NHM_FROM, 0x7fffffff81000000n)).toBe(0x7fffffff81000000n);
      expect(isGp(c.wrmsr(MSR_LBR_NHM_FROM, (1n << 62n) | USER))).toBe(true);
      expect(isGp(c.wrmsr(MSR_LBR_NHM_FROM, NONCANON))).toBe(true);
    });
  }

  it('format 6: TO bits 63:48 hold the cycle count, so any value is accepted', () => {
    const c = new Cpu(legacyProfile({ fmt: 6 }));
    expect(wr(c, MSR_LBR_NHM_TO, (0xabcdn << 48n) | 0x8000_0000_0000n)).toBe((0xabcdn << 48n) | 0x8000_0000_0000n);
  });

  it('format 3: TO must be canonical', () => {
    const c = new Cpu(legacyProfile({ fmt: 3 }));
    expect(isGp(c.wrmsr(MSR_LBR_NHM_TO, (1n << 63n) | USER))).toBe(true);
    expect(wr(c, MSR_LBR_NHM_TO, KERNEL)).toBe(KERNEL);
  });

  it('format 4 without TSX: FROM bits 62:61 must equal bit 60, so a recorded kernel FROM cannot be written back raw', () => {
    const c = enabled(legacyProfile({ fmt: 4, tsx: false }));
    c.step({ cpl: 0, branches: [br('COND', KERNEL, KERNEL + 4n)] });
    const raw = rd(c, MSR_LBR_NHM_FROM + 1);
    expect(raw & (3n << 61n)).toBe(0n); // hardware-recorded entries have 62:61 = 0
    expect(isGp(c.wrmsr(MSR_LBR_NHM_FROM + 1, raw))).toBe(true);
    expect(wr(c, MSR_LBR_NHM_FROM + 1, raw | (3n << 61n))).toBe(raw | (3n << 61n));
    expect(isGp(c.wrmsr(MSR_LBR_NHM_FROM, (1n << 61n) | USER))).toBe(true);
    expect(wr(c, MSR_LBR_NHM_FROM, (1n << 63n) | USER)).toBe((1n << 63n) | USER);
  });

  it('format 4 with TSX: IN_TX and TSX_ABORT (62:61) are free flag bits', () => {
    const c = new Cpu(legacyProfile({ fmt: 4, tsx: true }));
    expect(wr(c, MSR_LBR_NHM_FROM, (7n << 61n) | USER)).toBe((7n << 61n) | USER);
    expect(wr(c, MSR_LBR_NHM_FROM, 0x9fffffff81000000n)).toBe(0x9fffffff81000000n);
    expect(isGp(c.wrmsr(MSR_LBR_NHM_FROM, (1n << 60n) | USER))).toBe(true);
  });
});

describe('call-stack mode (LBR_SELECT bit 9; §4.7, D21)', () => {
  const CALL_A = br('NEAR_REL_CALL', USER, USER + 0x1000n);
  const CALL_B = br('NEAR_REL_CALL', USER + 0x1010n, USER + 0x2000n);
  const RET_B = br('NEAR_RET', USER + 0x2040n, USER + 0x1014n);

  it('a near return pops the newest record instead of being recorded', () => {
    const c = enabled(SKYLAKE);
    wr(c, MSR_LBR_SELECT, 1n << 9n);
    c.step({ cpl: 3, branches: [CALL_A, CALL_B] });
    expect(rd(c, MSR_LBR_TOS)).toBe(2n);
    c.step({ cpl: 3, branches: [RET_B] });
    expect(rd(c, MSR_LBR_TOS)).toBe(1n);
    expect(rd(c, MSR_LBR_NHM_FROM + 1)).toBe(CALL_A.from);
    expect(rd(c, MSR_LBR_NHM_FROM + 2)).toBe(0n);
    expect(rd(c, MSR_LBR_NHM_TO + 2)).toBe(0n);
    expect(rd(c, MSR_LBR_INFO_0 + 2)).toBe(0n);
    c.step({ cpl: 3, branches: [CALL_B] });
    expect(rd(c, MSR_LBR_TOS)).toBe(2n);
    expect(rd(c, MSR_LBR_NHM_FROM + 2)).toBe(CALL_B.from);
  });

  it('without bit 9 a return is an ordinary record', () => {
    const c = enabled(SKYLAKE);
    c.step({ cpl: 3, branches: [CALL_A, CALL_B, RET_B] });
    expect(rd(c, MSR_LBR_TOS)).toBe(3n);
    expect(rd(c, MSR_LBR_NHM_FROM + 3)).toBe(RET_B.from);
  });

  it('a return the filter suppresses (bit 5) does not pop', () => {
    const c = enabled(SKYLAKE);
    wr(c, MSR_LBR_SELECT, (1n << 9n) | (1n << 5n));
    c.step({ cpl: 3, branches: [CALL_A, CALL_B, RET_B] });
    expect(rd(c, MSR_LBR_TOS)).toBe(2n);
    expect(rd(c, MSR_LBR_NHM_FROM + 2)).toBe(CALL_B.from);
  });
});

describe('LBR_INSERTS (event 0xE4, umask 0x01; §1.4)', () => {
  function counting(p: Profile): Cpu {
    const c = new Cpu(p);
    wr(
      c,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | 0x01e4n,
    );
    wr(c, MSR_CORE_PERF_GLOBAL_CTRL, 1n);
    return c;
  }

  it('counts the records written, not the branches retired', () => {
    const c = counting(SKYLAKE);
    wr(c, MSR_IA32_DEBUGCTLMSR, 1n);
    wr(c, MSR_LBR_SELECT, 1n << 2n); // suppress Jcc
    c.step({
      cpl: 3,
      instructions: 10,
      branches: [br('COND', USER, USER + 4n), br('NEAR_REL_JMP', USER + 8n, USER + 12n), br('FAR', USER, KERNEL)],
    });
    expect(rd(c, MSR_IA32_PERFCTR0)).toBe(2n);
    expect(rd(c, MSR_LBR_TOS)).toBe(2n);
  });

  it('counts nothing while DEBUGCTL.LBR = 0', () => {
    const c = counting(SKYLAKE);
    c.step({ cpl: 3, branches: userBranches(4) });
    expect(rd(c, MSR_IA32_PERFCTR0)).toBe(0n);
  });

  it('does not count a call-stack pop', () => {
    const c = counting(SKYLAKE);
    wr(c, MSR_IA32_DEBUGCTLMSR, 1n);
    wr(c, MSR_LBR_SELECT, 1n << 9n);
    c.step({
      cpl: 3,
      branches: [br('NEAR_REL_CALL', USER, USER + 0x100n), br('NEAR_RET', USER + 0x140n, USER + 4n)],
    });
    expect(rd(c, MSR_IA32_PERFCTR0)).toBe(1n);
  });
});

describe('LBR address rules as functions (their fast path for addresses below 2^47)', () => {
  it('take no negative bigint as canonical: only a u64 is an address', () => {
    expect(legalizeLbrFrom(SKYLAKE, 0, -(1n << 60n)).ok).toBe(false);
    expect(legalizeLbrTo(SKYLAKE, 0, -(1n << 60n)).ok).toBe(false);
    expect(legalizeLbrFrom(SKYLAKE, 0, 0x7fff_ffff_fff0n).ok).toBe(true);
    expect(legalizeLbrTo(SKYLAKE, 0, 0xffff_8000_0000_0000n).ok).toBe(true);
  });
});
