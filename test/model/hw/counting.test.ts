/**
 * Counting of work units, written from pmu-semantics.md §1.3–§1.5, §2.3, §2.4, §4.2 and §4.3 and
 * the decisions D4, D5, D29, D33 and D36. Every test programs the counters through WRMSR and
 * reads them back through RDMSR.
 */
import { describe, expect, it } from 'vitest';
import { type BranchKind } from '../../../model/hw/state.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import {
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_P6_EVNTSEL0,
  MSR_IA32_PERFCTR0,
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  HSW_IN_TX,
  ARCH_PERFMON_EVENTSEL_INV,
  ARCH_PERFMON_EVENTSEL_EDGE,
} from '../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../../model/hw/msr/global.js';
import { ICELAKE, SKYLAKE } from '../../../model/hw/profiles.js';
import { ModelError, WorkError } from '../../../model/hw/errors.js';
import { type WorkUnit } from '../../../model/hw/work.js';
import { INSTR, instr, part, value, wr } from './parts.js';

const cmask = (n: number): bigint => BigInt(n) << 24n;

/** Runs `units` and returns what GP counter `i` then reads. */
function countGp(cpu: Cpu, i: number, units: readonly WorkUnit[]): bigint {
  cpu.run(units);
  return value(cpu.rdmsr(MSR_IA32_PERFCTR0 + i));
}

/**
 * One unit with a distinct count in every field, so each encoding's count names its field:
 * 3 taken branches (2 mispredicted) + 7 untaken = 10 branches; slots 101 + 29 + 41 + 67 = 238.
 */
const RICH: WorkUnit = {
  cpl: 3,
  instructions: 1000,
  cycles: 2003,
  refCycles: 307,
  tscCycles: 4001,
  llcReferences: 53,
  llcMisses: 11,
  untakenBranches: 7,
  branches: [
    { from: 0x40_1000n, to: 0x40_2000n, kind: 'COND', mispredict: true },
    { from: 0x40_2010n, to: 0x40_3000n, kind: 'NEAR_REL_CALL' },
    { from: 0x40_3020n, to: 0x40_2015n, kind: 'NEAR_RET', mispredict: true },
  ],
  slots: { retiring: 101, badSpeculation: 29, frontendBound: 41, backendBound: 67 },
};

describe('architectural event encodings count their unit field (§1.4)', () => {
  const table: [string, bigint, bigint][] = [
    ['UnHalted Core Cycles 0x3C/0x00', 0x003cn, 2003n],
    ['Instructions Retired 0xC0/0x00', 0x00c0n, 1000n],
    ['UnHalted Reference Cycles 0x3C/0x01', 0x013cn, 307n],
    ['LLC References 0x2E/0x4F', 0x4f2en, 53n],
    ['LLC Misses 0x2E/0x41', 0x412en, 11n],
    ['Branch Instructions Retired 0xC4/0x00 (taken and untaken)', 0x00c4n, 10n],
    ['Branch Mispredicts Retired 0xC5/0x00', 0x00c5n, 2n],
    ['Topdown Slots 0xA4/0x01', 0x01a4n, 238n],
    ['Topdown Backend Bound 0xA4/0x02', 0x02a4n, 67n],
    ['Topdown Bad Speculation 0x73/0x00', 0x0073n, 29n],
    ['Topdown Frontend Bound 0x9C/0x01', 0x019cn, 41n],
    ['Topdown Retiring 0xC2/0x02', 0x02c2n, 101n],
    ['LBR Inserts 0xE4/0x01 with LBRs off', 0x01e4n, 0n],
  ];
  it.each(table)('%s', (_name, code, want) => {
    const cpu = new Cpu(ICELAKE);
    wr(
      cpu,
      MSR_P6_EVNTSEL0 + 5,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | code,
    );
    expect(countGp(cpu, 5, [RICH])).toBe(want);
  });

  it('LBR Inserts 0xE4/0x01 counts the branches the LBRs record', () => {
    const cpu = new Cpu(ICELAKE);
    wr(cpu, MSR_IA32_DEBUGCTLMSR, 0x1n);
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | 0x01e4n,
    );
    expect(countGp(cpu, 0, [RICH])).toBe(3n);
  });

  it('non-architectural encodings count nothing (D29)', () => {
    const cpu = new Cpu(ICELAKE);
    const codes = [0x023cn, 0x003dn, 0x01c0n, 0x0000n, 0x402en];
    codes.forEach((c, i) => {
      wr(
        cpu,
        MSR_P6_EVNTSEL0 + i,
        ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | c,
      );
    });
    cpu.run([RICH]);
    codes.forEach((c, i) => {
      expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0 + i)), `encoding 0x${c.toString(16)}`).toBe(0n);
    });
  });

  it('counts accumulate over units', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    expect(countGp(cpu, 0, [instr(5), instr(0), instr(12, 0)])).toBe(17n);
  });
});

describe('fixed counters 0..3 (§1.5)', () => {
  it('count instructions, core cycles, TSC-rate cycles and slots', () => {
    const cpu = new Cpu(ICELAKE);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3333n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0xf_0000_0000n);
    cpu.step(RICH);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0))).toBe(1000n);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 1))).toBe(2003n);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 2))).toBe(4001n); // TSC rate, not 0x3C/0x01 (§7 item 13)
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 3))).toBe(238n);
  });

  it('fixed counters 4..6 count nothing (D29)', () => {
    const cpu = new Cpu(part({ v: 5, nGP: 2, nFixed: 4, ecx: 0x70 }));
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x333_3333n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x7f_0000_0000n);
    cpu.step(RICH);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0))).toBe(1000n);
    for (const j of [4, 5, 6]) expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + j))).toBe(0n);
  });
});

describe('gating (§4.2)', () => {
  it('EVTSEL.EN = 0 stops a GP counter', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(cpu, MSR_P6_EVNTSEL0, ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR);
    expect(countGp(cpu, 0, [instr(9)])).toBe(0n);
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    expect(countGp(cpu, 0, [instr(9)])).toBe(9n);
  });

  it('GLOBAL_CTRL is ANDed with EN (§1.3 v2)', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    wr(
      cpu,
      MSR_P6_EVNTSEL0 + 1,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0xen);
    cpu.step(instr(9));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0n);
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0 + 1))).toBe(9n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0xfn);
    cpu.step(instr(4));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(4n);
  });

  it('a fixed counter needs nibble bits 1:0 and its GLOBAL_CTRL bit (§2.4, §4.2)', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x803n); // counter 0 OS|USR, counter 1 off, counter 2 PMI only
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x6_0000_0000n); // counter 0 globally off
    cpu.step({ cpl: 0, instructions: 7, cycles: 8, tscCycles: 9 });
    for (let j = 0; j < 3; j++) expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + j))).toBe(0n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x7_0000_0000n);
    cpu.step({ cpl: 0, instructions: 7, cycles: 8, tscCycles: 9 });
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0))).toBe(7n);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 1))).toBe(0n);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 2))).toBe(0n);
  });

  it('CTR_FRZ (v4) stops every counter until STATUS_RESET clears it (§4.2, §7 item 15, D15)', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_000fn);
    wr(cpu, MSR_CORE_PERF_GLOBAL_STATUS_SET, 1n << 59n);
    cpu.step(instr(6));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0n);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0))).toBe(0n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n << 59n);
    cpu.step(instr(6));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(6n);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0))).toBe(6n);
  });

  it('v1 counts with EN alone: there is no GLOBAL_CTRL (§1.3 v1)', () => {
    const cpu = new Cpu(part({ v: 1, nGP: 2 }));
    expect(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL).ok).toBe(false);
    wr(
      cpu,
      MSR_P6_EVNTSEL0 + 1,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    expect(countGp(cpu, 1, [instr(11), instr(3, 0)])).toBe(14n);
  });

  it('CPUID.0AH:EBX "unavailable", or an index past evLen, does not stop counting (D33)', () => {
    // instructions unavailable, LLC past evLen
    const cpu = new Cpu(part({ v: 2, nGP: 2, ebx: 0b10, evLen: 3 }));
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    wr(
      cpu,
      MSR_P6_EVNTSEL0 + 1,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | 0x4f2en,
    );
    cpu.step(RICH);
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(1000n);
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0 + 1))).toBe(53n);
  });
});

describe('IN_TX (§2.3)', () => {
  it('IN_TX counts only inside transactional regions, and no work unit runs in one', () => {
    const cpu = new Cpu(part({ v: 4, nGP: 4, tsx: true }));
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | HSW_IN_TX | INSTR,
    );
    wr(
      cpu,
      MSR_P6_EVNTSEL0 + 1,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    cpu.run([instr(5), instr(7, 0)]);
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0n);
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0 + 1))).toBe(12n);
  });
});

describe('CPL filtering per unit (§2.3 USR/OS, §2.4 nibble, D36)', () => {
  const units = [instr(1, 0), instr(10, 1), instr(100, 2), instr(1000, 3)];

  it('USR counts at CPL 1..3, OS at CPL 0, both at all, neither at none', () => {
    const cases: [bigint, bigint][] = [
      [ARCH_PERFMON_EVENTSEL_USR, 1110n],
      [ARCH_PERFMON_EVENTSEL_OS, 1n],
      [ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_OS, 1111n],
      [0n, 0n],
    ];
    for (const [flags, want] of cases) {
      const cpu = new Cpu(SKYLAKE);
      wr(cpu, MSR_P6_EVNTSEL0, ARCH_PERFMON_EVENTSEL_ENABLE | flags | INSTR);
      expect(countGp(cpu, 0, units), `flags 0x${flags.toString(16)}`).toBe(want);
    }
  });

  it('fixed nibble bit 0 (OS) counts at CPL 0, bit 1 (USR) above', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x2n); // counter 0 USR only
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0000n);
    cpu.run(units);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0))).toBe(1110n);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR0, 0n);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x1n); // OS only
    cpu.run(units);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0))).toBe(1n);
  });
});

describe('CMASK, INV and EDGE (§2.3, D4, D5)', () => {
  function gpCount(sel: bigint, occ: readonly number[]): bigint {
    const cpu = new Cpu(SKYLAKE);
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR | sel,
    );
    return countGp(
      cpu,
      0,
      occ.map((n) => instr(n)),
    );
  }

  it('CMASK != 0 adds 1 per unit with at least CMASK occurrences (D4)', () => {
    expect(gpCount(cmask(5), [4, 5, 100, 0])).toBe(2n);
  });

  it('INV with CMASK adds 1 per unit with fewer than CMASK occurrences, zero included (D4)', () => {
    expect(gpCount(cmask(5) | ARCH_PERFMON_EVENTSEL_INV, [4, 5, 100, 0])).toBe(2n);
  });

  it('INV is ignored when CMASK = 0', () => {
    expect(gpCount(ARCH_PERFMON_EVENTSEL_INV, [4, 5])).toBe(9n);
  });

  it('EDGE counts rising edges of "occurred in this unit" (D5)', () => {
    expect(gpCount(ARCH_PERFMON_EVENTSEL_EDGE, [3, 5, 0, 2, 0, 0, 1])).toBe(3n);
  });

  it('EDGE with CMASK counts rising edges of the threshold condition (D5)', () => {
    expect(gpCount(ARCH_PERFMON_EVENTSEL_EDGE | cmask(4), [5, 6, 1, 4, 3])).toBe(2n);
  });

  it('a write to the EVTSEL restarts the edge detector (D5)', () => {
    const cpu = new Cpu(SKYLAKE);
    const sel =
      ARCH_PERFMON_EVENTSEL_ENABLE |
      ARCH_PERFMON_EVENTSEL_OS |
      ARCH_PERFMON_EVENTSEL_USR |
      ARCH_PERFMON_EVENTSEL_EDGE |
      INSTR;
    wr(cpu, MSR_P6_EVNTSEL0, sel);
    cpu.step(instr(3));
    cpu.step(instr(3));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(1n);
    wr(cpu, MSR_P6_EVNTSEL0, sel);
    cpu.step(instr(3));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(2n);
  });

  it('units the CPL filter skips do not move the edge detector (D5 "previous counted unit")', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_EDGE | INSTR,
    );
    expect(countGp(cpu, 0, [instr(1, 3), instr(0, 0), instr(1, 3)])).toBe(1n);
  });
});

describe('work units that cannot happen throw WorkError (work.ts)', () => {
  const bad: [string, WorkUnit][] = [
    ['a negative count', { cpl: 0, instructions: -1 }],
    ['a fractional count', { cpl: 0, cycles: 1.5 }],
    ['a negative LLC count', { cpl: 0, llcMisses: -3 }],
    ['CPL 4', { cpl: 4 }],
    ['CPL -1', { cpl: -1 }],
    ['a fractional CPL', { cpl: 0.5 }],
    ['an unknown branch kind', { cpl: 0, branches: [{ from: 0x1000n, to: 0x2000n, kind: 'JUMP' as BranchKind }] }],
    ['a branch at CPL 7', { cpl: 0, branches: [{ from: 0x1000n, to: 0x2000n, kind: 'COND', cpl: 7 }] }],
    [
      'a non-canonical branch source',
      { cpl: 0, branches: [{ from: 0x0000_8000_0000_0000n, to: 0x2000n, kind: 'COND' }] },
    ],
    [
      'a non-canonical branch target',
      { cpl: 0, branches: [{ from: 0x1000n, to: 0x7fff_0000_0000_0000n, kind: 'COND' }] },
    ],
    ['a negative branch address', { cpl: 0, branches: [{ from: -1n, to: 0x2000n, kind: 'COND' }] }],
    [
      'more branches than instructions',
      {
        cpl: 0,
        instructions: 1,
        branches: [
          { from: 0x1000n, to: 0x2000n, kind: 'COND' },
          { from: 0x2000n, to: 0x3000n, kind: 'COND' },
        ],
      },
    ],
  ];
  it.each(bad)('%s', (_name, u) => {
    const cpu = new Cpu(SKYLAKE);
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    expect(() => cpu.step(u)).toThrow(WorkError);
    expect(() => cpu.run([instr(1), u])).toThrow(WorkError);
  });

  it('a canonical upper-half address is fine', () => {
    const cpu = new Cpu(SKYLAKE);
    const u: WorkUnit = {
      cpl: 0,
      instructions: 1,
      branches: [{ from: 0xffff_8000_0000_1000n, to: 0xffff_ffff_ffff_f000n, kind: 'FAR' }],
    };
    expect(() => cpu.step(u)).not.toThrow();
  });

  it('a rejected unit counts nothing', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(
      cpu,
      MSR_P6_EVNTSEL0,
      ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR,
    );
    expect(() => cpu.step({ cpl: 9, instructions: 5 })).toThrow(WorkError);
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0n);
  });
});

describe('a WRMSR value that is not a u64 bigint throws ModelError (cpu.ts)', () => {
  it.each([
    ['a number', 1 as unknown as bigint],
    ['a negative bigint', -1n],
    ['2^64', 1n << 64n],
  ])('%s', (_name, v) => {
    const cpu = new Cpu(SKYLAKE);
    expect(() => cpu.wrmsr(MSR_P6_EVNTSEL0, v)).toThrow(ModelError);
    expect(() => cpu.wrmsr(0x12345, v)).toThrow(ModelError); // before the existence check
  });

  it('2^64 - 1 is a value, so a reserved-bit write is a #GP result, not an exception', () => {
    const cpu = new Cpu(SKYLAKE);
    expect(cpu.wrmsr(MSR_P6_EVNTSEL0, (1n << 64n) - 1n).ok).toBe(false);
  });
});
