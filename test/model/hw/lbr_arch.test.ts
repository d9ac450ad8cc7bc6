/**
 * Architectural LBR from pmu-semantics.md §3 (and §2.12 for DEBUGCTL.LBR), plus the model's
 * decisions D21, D23-D25, D28 on its [U] facts.
 */
import { describe, expect, it } from 'vitest';
import { BRANCH_KINDS, type BranchKind } from '../../../model/hw/state.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import {
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
  ARCH_LBR_LBREN,
  ARCH_LBR_KERNEL,
  ARCH_LBR_USER,
  ARCH_LBR_ANY,
  ARCH_LBR_CALL_STACK,
} from '../../../model/hw/msr/lbr_arch.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';
import { type Profile, perfCaps } from '../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS } from '../../../model/hw/profiles.js';
import { br, isGp, KERNEL, part, rd, USER, userBranches, wr } from './parts.js';
import {
  MSR_LBR_SELECT,
  MSR_LBR_TOS,
  MSR_LBR_NHM_FROM,
  MSR_LBR_NHM_TO,
  MSR_LBR_INFO_0,
} from '../../../model/hw/msr/lbr_legacy.js';

// IA32_LBR_CTL fields (§3.2).
const CAPTURE_ALL = ARCH_LBR_LBREN | ARCH_LBR_KERNEL | ARCH_LBR_USER | ARCH_LBR_ANY;

/** A small Arch LBR part: CPUID.1CH registers as given, PMU v5. */
function archProfile(name: string, leaf1c: { eax: number; ebx: number; ecx: number }): Profile {
  return part({
    v: 5,
    name,
    model: 0x97,
    evLen: 8,
    anyDeprecated: true,
    caps: perfCaps({ lbrFmt: 0x3f, fwWrite: true }),
    leaf1c: { ...leaf1c, edx: 0 },
  });
}

const BARE = archProfile('arch-bare', { eax: 0b1010, ebx: 0, ecx: 0 }); // depths 16, 32; no filters or INFO fields
const DEEP = archProfile('arch-deep', { eax: 0x81, ebx: 0x7, ecx: 0x7 }); // depths 8 and 64

function capturing(p: Profile, ctl = CAPTURE_ALL): Cpu {
  const c = new Cpu(p);
  wr(c, MSR_ARCH_LBR_CTL, ctl & ((1n << 23n) - 1n));
  return c;
}

/** FROM of entries 0..n-1 (entry 0 newest). */
function froms(c: Cpu, n: number): bigint[] {
  return Array.from({ length: n }, (_, i) => rd(c, MSR_ARCH_LBR_FROM_0 + i));
}

describe('IA32_LBR_CTL legality follows CPUID.1CH:EBX (§3.2)', () => {
  it('SAPPHIRE_RAPIDS: every bit of 0x7F000F is legal; every other bit #GPs', () => {
    const c = new Cpu(SAPPHIRE_RAPIDS);
    expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(0n);
    expect(wr(c, MSR_ARCH_LBR_CTL, 0x7f000fn)).toBe(0x7f000fn);
    expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(0x7f000fn);
    for (const b of [4, 8, 15, 23, 31, 32, 63]) {
      expect(isGp(c.wrmsr(MSR_ARCH_LBR_CTL, 1n << BigInt(b))), `bit ${b}`).toBe(true);
      expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(0x7f000fn);
    }
  });

  it('EBX = 0: only LBREn; OS/USR, CALL_STACK and the branch-type bits #GP', () => {
    const c = new Cpu(BARE);
    expect(wr(c, MSR_ARCH_LBR_CTL, ARCH_LBR_LBREN)).toBe(ARCH_LBR_LBREN);
    for (const b of [1, 2, 3, 16, 19, 22])
      expect(isGp(c.wrmsr(MSR_ARCH_LBR_CTL, ARCH_LBR_LBREN | (1n << BigInt(b)))), `bit ${b}`).toBe(true);
  });

  it('each EBX bit unlocks exactly its field: 0 → OS/USR, 1 → 22:16, 2 → CALL_STACK', () => {
    const cpl = new Cpu(archProfile('arch-cpl', { eax: 1, ebx: 1, ecx: 0 }));
    expect(wr(cpl, MSR_ARCH_LBR_CTL, ARCH_LBR_LBREN | ARCH_LBR_KERNEL | ARCH_LBR_USER)).toBe(
      ARCH_LBR_LBREN | ARCH_LBR_KERNEL | ARCH_LBR_USER,
    );
    expect(isGp(cpl.wrmsr(MSR_ARCH_LBR_CTL, ARCH_LBR_CALL_STACK))).toBe(true);
    expect(isGp(cpl.wrmsr(MSR_ARCH_LBR_CTL, 1n << 16n))).toBe(true);
    const types = new Cpu(archProfile('arch-types', { eax: 1, ebx: 2, ecx: 0 }));
    expect(wr(types, MSR_ARCH_LBR_CTL, ARCH_LBR_ANY)).toBe(ARCH_LBR_ANY);
    expect(isGp(types.wrmsr(MSR_ARCH_LBR_CTL, ARCH_LBR_KERNEL))).toBe(true);
    expect(isGp(types.wrmsr(MSR_ARCH_LBR_CTL, ARCH_LBR_CALL_STACK))).toBe(true);
    const cs = new Cpu(archProfile('arch-cs', { eax: 1, ebx: 4, ecx: 0 }));
    expect(wr(cs, MSR_ARCH_LBR_CTL, ARCH_LBR_CALL_STACK | ARCH_LBR_LBREN)).toBe(ARCH_LBR_CALL_STACK | ARCH_LBR_LBREN);
    expect(isGp(cs.wrmsr(MSR_ARCH_LBR_CTL, ARCH_LBR_USER))).toBe(true);
    expect(isGp(cs.wrmsr(MSR_ARCH_LBR_CTL, 1n << 21n))).toBe(true);
  });
});

describe('IA32_LBR_DEPTH (§3.3; D25)', () => {
  it('accepts exactly 8·(n+1) for each bit n of CPUID.1CH:EAX[7:0]', () => {
    const cases: [Profile, number[]][] = [
      [SAPPHIRE_RAPIDS, [8, 16, 24, 32]],
      [BARE, [16, 32]],
      [DEEP, [8, 64]],
    ];
    for (const [p, legal] of cases) {
      const c = new Cpu(p);
      for (let d = 0; d <= 72; d++) {
        const a = c.wrmsr(MSR_ARCH_LBR_DEPTH, BigInt(d));
        expect(a.ok, `${p.name} depth ${d}`).toBe(legal.includes(d));
      }
      expect(isGp(c.wrmsr(MSR_ARCH_LBR_DEPTH, (1n << 32n) | 8n))).toBe(true);
    }
  });

  it('resets to the maximum enumerated depth', () => {
    expect(rd(new Cpu(SAPPHIRE_RAPIDS), MSR_ARCH_LBR_DEPTH)).toBe(32n);
    expect(rd(new Cpu(BARE), MSR_ARCH_LBR_DEPTH)).toBe(32n);
    expect(rd(new Cpu(DEEP), MSR_ARCH_LBR_DEPTH)).toBe(64n);
  });

  it('any accepted write zeroes every record, the current value included; a #GP write does not', () => {
    const c = capturing(SAPPHIRE_RAPIDS);
    c.step({ cpl: 3, cycles: 10, branches: userBranches(5) });
    expect(rd(c, MSR_ARCH_LBR_FROM_0)).not.toBe(0n);
    expect(isGp(c.wrmsr(MSR_ARCH_LBR_DEPTH, 12n))).toBe(true);
    expect(rd(c, MSR_ARCH_LBR_FROM_0)).toBe(userBranches(5)[4]!.from);
    wr(c, MSR_ARCH_LBR_DEPTH, 32n);
    expect(rd(c, MSR_ARCH_LBR_DEPTH)).toBe(32n);
    for (let i = 0; i < 32; i++) {
      expect(rd(c, MSR_ARCH_LBR_FROM_0 + i)).toBe(0n);
      expect(rd(c, MSR_ARCH_LBR_TO_0 + i)).toBe(0n);
      expect(rd(c, MSR_ARCH_LBR_INFO_0 + i)).toBe(0n);
    }
    expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(CAPTURE_ALL);
  });

  it('record MSRs at or beyond the current depth #GP on read and write (D24)', () => {
    const c = new Cpu(SAPPHIRE_RAPIDS);
    wr(c, MSR_ARCH_LBR_DEPTH, 8n);
    for (const base of [MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0]) {
      expect(c.rdmsr(base + 7).ok).toBe(true);
      expect(isGp(c.rdmsr(base + 8))).toBe(true);
      expect(isGp(c.wrmsr(base + 8, 0n))).toBe(true);
      expect(isGp(c.rdmsr(base + 31))).toBe(true);
      expect(isGp(c.rdmsr(base + 32))).toBe(true);
    }
    wr(c, MSR_ARCH_LBR_DEPTH, 32n);
    expect(c.rdmsr(MSR_ARCH_LBR_FROM_0 + 31).ok).toBe(true);
    expect(isGp(c.rdmsr(MSR_ARCH_LBR_FROM_0 + 32))).toBe(true);
    expect(new Cpu(DEEP).rdmsr(MSR_ARCH_LBR_FROM_0 + 63).ok).toBe(true);
  });
});

describe('record order: entry 0 is the newest (§3.4)', () => {
  it('shifts older records up by one per new record', () => {
    const c = capturing(SAPPHIRE_RAPIDS);
    const b = userBranches(3);
    for (const x of b) c.step({ cpl: 3, branches: [x] });
    expect(froms(c, 4)).toEqual([b[2]!.from, b[1]!.from, b[0]!.from, 0n]);
    expect(rd(c, MSR_ARCH_LBR_TO_0)).toBe(b[2]!.to);
    expect(rd(c, MSR_ARCH_LBR_TO_0 + 2)).toBe(b[0]!.to);
  });

  it('keeps only the newest `depth` records', () => {
    const c = capturing(SAPPHIRE_RAPIDS);
    wr(c, MSR_ARCH_LBR_DEPTH, 8n);
    const b = userBranches(11);
    c.step({ cpl: 3, branches: b });
    expect(froms(c, 8)).toEqual(
      b
        .slice(3)
        .reverse()
        .map((x) => x.from),
    );
  });

  it('a record MSR write reads back; FROM/TO must be canonical, INFO 55:16 reserved (D24)', () => {
    const c = new Cpu(SAPPHIRE_RAPIDS);
    expect(wr(c, MSR_ARCH_LBR_FROM_0 + 5, KERNEL)).toBe(KERNEL);
    expect(rd(c, MSR_ARCH_LBR_FROM_0 + 5)).toBe(KERNEL);
    expect(wr(c, MSR_ARCH_LBR_TO_0 + 5, USER)).toBe(USER);
    expect(isGp(c.wrmsr(MSR_ARCH_LBR_FROM_0 + 5, 0x0000_8000_0000_0000n))).toBe(true);
    expect(isGp(c.wrmsr(MSR_ARCH_LBR_TO_0 + 5, 1n << 63n))).toBe(true);
    const info = (0xfn << 60n) | (0xfn << 56n) | 0xffffn;
    expect(wr(c, MSR_ARCH_LBR_INFO_0 + 5, info)).toBe(info);
    expect(isGp(c.wrmsr(MSR_ARCH_LBR_INFO_0 + 5, 1n << 16n))).toBe(true);
    expect(isGp(c.wrmsr(MSR_ARCH_LBR_INFO_0 + 5, 1n << 55n))).toBe(true);
    expect(rd(c, MSR_ARCH_LBR_INFO_0 + 5)).toBe(info);
  });
});

describe('positive filtering in IA32_LBR_CTL (§3.2, §3.6)', () => {
  it('records nothing with LBREn = 0, even with every filter bit set', () => {
    const c = capturing(SAPPHIRE_RAPIDS, CAPTURE_ALL & ~ARCH_LBR_LBREN);
    c.step({ cpl: 3, branches: userBranches(3) });
    c.step({ cpl: 0, branches: [br('COND', KERNEL, KERNEL + 4n)] });
    expect(froms(c, 4)).toEqual([0n, 0n, 0n, 0n]);
  });

  it('OS captures ring 0 only, USR rings 1-3 only, neither captures nothing', () => {
    const run = (ctl: bigint) => {
      const c = capturing(SAPPHIRE_RAPIDS, ctl);
      c.step({ cpl: 0, branches: [br('COND', KERNEL, KERNEL + 4n)] });
      c.step({ cpl: 3, branches: [br('COND', USER, USER + 4n)] });
      c.step({ cpl: 2, branches: [br('COND', USER + 0x20n, USER + 0x24n)] });
      return froms(c, 3).filter((f) => f !== 0n);
    };
    expect(run(ARCH_LBR_LBREN | ARCH_LBR_KERNEL | ARCH_LBR_ANY)).toEqual([KERNEL]);
    expect(run(ARCH_LBR_LBREN | ARCH_LBR_USER | ARCH_LBR_ANY)).toEqual([USER + 0x20n, USER]);
    expect(run(ARCH_LBR_LBREN | ARCH_LBR_KERNEL | ARCH_LBR_USER | ARCH_LBR_ANY)).toEqual([USER + 0x20n, USER, KERNEL]);
    expect(run(ARCH_LBR_LBREN | ARCH_LBR_ANY)).toEqual([]);
  });

  const captureBit: [BranchKind, number][] = [
    ['COND', 16],
    ['NEAR_REL_JMP', 17],
    ['NEAR_IND_JMP', 18],
    ['NEAR_REL_CALL', 19],
    ['NEAR_IND_CALL', 20],
    ['NEAR_RET', 21],
    ['FAR', 22],
  ];
  for (const [kind, b] of captureBit) {
    it(`bit ${b} alone captures ${kind} and nothing else`, () => {
      const c = capturing(SAPPHIRE_RAPIDS, ARCH_LBR_LBREN | ARCH_LBR_KERNEL | ARCH_LBR_USER | (1n << BigInt(b)));
      const all = BRANCH_KINDS.map((k, i) => br(k, USER + BigInt(i) * 0x10n, USER + 0x1000n));
      c.step({ cpl: 3, branches: all });
      expect(froms(c, 2)).toEqual([all.find((x) => x.kind === kind)!.from, 0n]);
    });
  }

  it('without CPL or branch-type filtering enumerated (EBX = 0), LBREn alone captures everything', () => {
    const c = capturing(BARE, ARCH_LBR_LBREN);
    const all = BRANCH_KINDS.map((k, i) => br(k, USER + BigInt(i) * 0x10n, USER + 0x1000n));
    c.step({ cpl: 3, branches: all });
    c.step({ cpl: 0, branches: [br('COND', KERNEL, KERNEL + 4n)] });
    expect(froms(c, 8)).toEqual([KERNEL, ...all.map((x) => x.from).reverse()]);
  });
});

describe('IA32_LBR_x_INFO encoding (§3.4; D23, D28)', () => {
  const brTypes: [BranchKind, bigint][] = [
    ['COND', 0n],
    ['NEAR_IND_JMP', 1n],
    ['NEAR_REL_JMP', 2n],
    ['NEAR_IND_CALL', 3n],
    ['NEAR_REL_CALL', 4n],
    ['NEAR_RET', 5n],
    ['FAR', 8n],
  ];
  for (const [kind, t] of brTypes) {
    it(`${kind}: BR_TYPE (59:56) = ${t}`, () => {
      const c = capturing(SAPPHIRE_RAPIDS);
      c.step({ cpl: 3, branches: [br(kind, USER, USER + 0x40n)] });
      expect((rd(c, MSR_ARCH_LBR_INFO_0) >> 56n) & 0xfn).toBe(t);
    });
  }

  it('MISPRED in bit 63, CYC_CNT in 15:0 with CYC_CNT_VALID (bit 60), nothing in 55:16', () => {
    const c = capturing(SAPPHIRE_RAPIDS);
    c.step({
      cpl: 3,
      cycles: 300,
      branches: [br('NEAR_REL_CALL', USER, USER + 0x40n, { mispredict: true })],
    });
    expect(rd(c, MSR_ARCH_LBR_INFO_0)).toBe((1n << 63n) | (1n << 60n) | (4n << 56n) | 300n);
    c.step({ cpl: 3, cycles: 100_000, branches: [br('COND', USER, USER + 0x40n)] });
    expect(rd(c, MSR_ARCH_LBR_INFO_0)).toBe((1n << 60n) | 0xffffn);
    expect(rd(c, MSR_ARCH_LBR_INFO_0 + 1)).toBe((1n << 63n) | (1n << 60n) | (4n << 56n) | 300n);
  });

  it('the second branch of a unit records CYC_CNT 0 (D23)', () => {
    const c = capturing(SAPPHIRE_RAPIDS);
    c.step({
      cpl: 3,
      cycles: 50,
      branches: [br('COND', USER, USER + 4n), br('COND', USER + 8n, USER + 12n)],
    });
    expect(rd(c, MSR_ARCH_LBR_INFO_0 + 1) & 0xffffn).toBe(50n);
    expect(rd(c, MSR_ARCH_LBR_INFO_0) & 0xffffn).toBe(0n);
    expect(rd(c, MSR_ARCH_LBR_INFO_0) & (1n << 60n)).toBe(1n << 60n);
  });

  it('each field appears only when CPUID.1CH:ECX enumerates it (0 MISPRED, 1 timed, 2 BR_TYPE)', () => {
    const info = (ecx: number) => {
      const c = capturing(archProfile(`arch-ecx${ecx}`, { eax: 1, ebx: 0, ecx }), ARCH_LBR_LBREN);
      c.step({ cpl: 3, cycles: 77, branches: [br('NEAR_RET', USER, USER + 4n, { mispredict: true })] });
      return rd(c, MSR_ARCH_LBR_INFO_0);
    };
    expect(info(0)).toBe(0n);
    expect(info(1)).toBe(1n << 63n);
    expect(info(2)).toBe((1n << 60n) | 77n);
    expect(info(4)).toBe(5n << 56n);
    expect(info(7)).toBe((1n << 63n) | (1n << 60n) | (5n << 56n) | 77n);
  });
});

describe('legacy LBR interfaces on an Arch LBR part (§2.12, §3.6; §7 item 18)', () => {
  it('DEBUGCTL.LBR is accepted, reads 0 and records nothing', () => {
    const c = new Cpu(SAPPHIRE_RAPIDS);
    wr(c, MSR_ARCH_LBR_CTL, CAPTURE_ALL & ~ARCH_LBR_LBREN);
    expect(c.wrmsr(MSR_IA32_DEBUGCTLMSR, 1n | (1n << 11n)).ok).toBe(true);
    expect(rd(c, MSR_IA32_DEBUGCTLMSR)).toBe(1n << 11n);
    c.step({ cpl: 3, branches: userBranches(2) });
    expect(froms(c, 2)).toEqual([0n, 0n]);
  });

  it('LBR_CTL.LBREn records with DEBUGCTL.LBR = 0', () => {
    const c = capturing(SAPPHIRE_RAPIDS);
    expect(rd(c, MSR_IA32_DEBUGCTLMSR)).toBe(0n);
    c.step({ cpl: 3, branches: userBranches(1) });
    expect(rd(c, MSR_ARCH_LBR_FROM_0)).toBe(USER);
  });

  it('MSR_LBR_SELECT, MSR_LASTBRANCH_TOS and the 0x680/0x6C0/0xDC0 records #GP', () => {
    const c = new Cpu(SAPPHIRE_RAPIDS);
    for (const msr of [MSR_LBR_SELECT, MSR_LBR_TOS, MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO, MSR_LBR_INFO_0]) {
      expect(isGp(c.rdmsr(msr)), `RDMSR 0x${msr.toString(16)}`).toBe(true);
      expect(isGp(c.wrmsr(msr, 0n)), `WRMSR 0x${msr.toString(16)}`).toBe(true);
    }
  });

  it('reports LBR_FMT 0x3F in PERF_CAPABILITIES[5:0] (§2.10)', () => {
    expect(rd(new Cpu(SAPPHIRE_RAPIDS), MSR_IA32_PERF_CAPABILITIES) & 0x3fn).toBe(0x3fn);
  });
});

describe('Arch LBR call-stack mode (LBR_CTL bit 3; D21)', () => {
  const CALL_A = br('NEAR_REL_CALL', USER, USER + 0x1000n);
  const CALL_B = br('NEAR_IND_CALL', USER + 0x1010n, USER + 0x2000n);
  const RET_B = br('NEAR_RET', USER + 0x2040n, USER + 0x1014n);

  it('a near return pops entry 0; the rest shift down and the last entry is zeroed', () => {
    const c = capturing(SAPPHIRE_RAPIDS, CAPTURE_ALL | ARCH_LBR_CALL_STACK);
    wr(c, MSR_ARCH_LBR_DEPTH, 8n);
    c.step({ cpl: 3, branches: userBranches(8, 'NEAR_REL_CALL') });
    c.step({ cpl: 3, branches: [RET_B] });
    const b = userBranches(8, 'NEAR_REL_CALL');
    expect(froms(c, 8)).toEqual([
      ...b
        .slice(0, 7)
        .map((x) => x.from)
        .reverse(),
      0n,
    ]);
    expect(rd(c, MSR_ARCH_LBR_TO_0 + 7)).toBe(0n);
    expect(rd(c, MSR_ARCH_LBR_INFO_0 + 7)).toBe(0n);
  });

  it('call, call, return leaves the first call as entry 0', () => {
    const c = capturing(SAPPHIRE_RAPIDS, CAPTURE_ALL | ARCH_LBR_CALL_STACK);
    c.step({ cpl: 3, branches: [CALL_A, CALL_B, RET_B] });
    expect(froms(c, 2)).toEqual([CALL_A.from, 0n]);
    expect(rd(c, MSR_ARCH_LBR_TO_0)).toBe(CALL_A.to);
  });

  it('without CALL_STACK the return is recorded', () => {
    const c = capturing(SAPPHIRE_RAPIDS);
    c.step({ cpl: 3, branches: [CALL_A, CALL_B, RET_B] });
    expect(froms(c, 3)).toEqual([RET_B.from, CALL_B.from, CALL_A.from]);
  });

  it('a return the filter does not capture (bit 21 clear) does not pop', () => {
    const c = capturing(SAPPHIRE_RAPIDS, (CAPTURE_ALL & ~(1n << 21n)) | ARCH_LBR_CALL_STACK);
    c.step({ cpl: 3, branches: [CALL_A, CALL_B, RET_B] });
    expect(froms(c, 2)).toEqual([CALL_B.from, CALL_A.from]);
  });
});
