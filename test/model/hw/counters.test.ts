/**
 * IA32_PMCi / IA32_A_PMCi, IA32_PERFEVTSELi, IA32_FIXED_CTRi and IA32_FIXED_CTR_CTRL, written from
 * pmu-semantics.md §1.2, §2.1–§2.4, §4.8 and §5. Addresses the model does not name are spelled out
 * as the spec lists them.
 */
import { describe, expect, it } from 'vitest';
import {
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_P6_EVNTSEL0,
  MSR_IA32_PERFCTR0,
} from '../../../model/hw/msr/counters.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { expectGp, expectOk, FW_WRITE, part, value } from './parts.js';

describe('IA32_PMCi legacy alias (§2.2, §4.8)', () => {
  it('legacy alias sign-extends EAX bit 31 to a 48-bit counter (§4.8 example)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0, 0x8000_0000n));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0xffff_8000_0000n);
  });

  it('legacy alias keeps EAX unchanged when bit 31 is clear (§2.2)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0 + 1, 0x7fff_ffffn));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0 + 1))).toBe(0x7fff_ffffn);
  });

  it('legacy alias ignores EDX and never #GPs on upper bits (§2.2; KUT 0xffffff0123456789)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0, 0xffff_ff01_2345_6789n));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0x2345_6789n);
    expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0, 0x1234_5678_9abc_def0n));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0xffff_9abc_def0n);
    expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0, 0xffff_ffff_ffff_ffffn));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0xffff_ffff_ffffn);
  });

  it('legacy alias sign-extends to whatever gpWidth CPUID enumerates (§2.2)', () => {
    const cases: [number, bigint][] = [
      [32, 0x8000_0000n],
      [40, 0xff_8000_0000n],
      [64, 0xffff_ffff_8000_0000n],
    ];
    for (const [w, want] of cases) {
      const cpu = new Cpu(part({ v: 2, gpWidth: w }));
      expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0, 0x8000_0000n));
      expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0)), `gpWidth ${w}`).toBe(want);
    }
  });

  it('legacy alias of a counter narrower than 32 bits keeps only the low gpWidth bits (§4.8)', () => {
    const cpu = new Cpu(part({ v: 2, gpWidth: 24 }));
    expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0, 0x1234_5678n));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0x34_5678n);
  });

  it('IA32_PMCi addresses counter i and no other (§2.1)', () => {
    const cpu = new Cpu(SKYLAKE);
    for (let i = 0; i < 4; i++) expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0 + i, BigInt(0x1110 * (i + 1))));
    for (let i = 0; i < 4; i++) expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0 + i))).toBe(BigInt(0x1110 * (i + 1)));
  });

  it('counters reset to 0 (§4.10)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0, 0x55n));
    cpu.reset();
    for (let i = 0; i < 4; i++) expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0 + i))).toBe(0n);
  });
});

describe('IA32_A_PMCi full-width alias (§2.2)', () => {
  it('IA32_A_PMCi exists only with PERF_CAPABILITIES.FW_WRITE (§2.2, §7 item 3)', () => {
    const noFw = new Cpu(part({ v: 4, caps: 0n }));
    expectGp(noFw.rdmsr(MSR_IA32_PMC0));
    expectGp(noFw.wrmsr(MSR_IA32_PMC0, 1n));
    const noPdcm = new Cpu(part({ v: 4 }));
    expectGp(noPdcm.rdmsr(MSR_IA32_PMC0));
    const fw = new Cpu(part({ v: 4, caps: FW_WRITE }));
    expectOk(fw.wrmsr(MSR_IA32_PMC0, 0x1234n));
    expect(value(fw.rdmsr(MSR_IA32_PMC0))).toBe(0x1234n);
  });

  it('full-width write stores the value as is, up to all-ones (§2.2)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PMC0, 0xffff_ffff_ffffn));
    expect(value(cpu.rdmsr(MSR_IA32_PMC0))).toBe(0xffff_ffff_ffffn);
    expectOk(cpu.wrmsr(MSR_IA32_PMC0, 0x8000_0000n)); // no sign extension on this alias
    expect(value(cpu.rdmsr(MSR_IA32_PMC0))).toBe(0x8000_0000n);
  });

  it('full-width write #GPs at or above gpWidth and leaves the counter alone (§2.2, §5, D3)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PMC0 + 2, 0x1234n));
    expectGp(cpu.wrmsr(MSR_IA32_PMC0 + 2, 0x1_0000_0000_0000n));
    expectGp(cpu.wrmsr(MSR_IA32_PMC0 + 2, 0x8000_0000_0000_0000n));
    expectGp(cpu.wrmsr(MSR_IA32_PMC0 + 2, 0xffff_ffff_ffff_ffffn));
    expect(value(cpu.rdmsr(MSR_IA32_PMC0 + 2))).toBe(0x1234n);
  });

  it('full-width width check follows gpWidth, here 40 bits (§2.2)', () => {
    const cpu = new Cpu(part({ v: 2, gpWidth: 40, caps: FW_WRITE }));
    expectOk(cpu.wrmsr(MSR_IA32_PMC0, 0xff_ffff_ffffn));
    expectGp(cpu.wrmsr(MSR_IA32_PMC0, 0x100_0000_0000n));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0xff_ffff_ffffn);
  });

  it('both aliases read the same register (§2.2 "one register, two addresses")', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PMC0 + 1, 0xabcd_1234_5678n));
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0 + 1))).toBe(0xabcd_1234_5678n);
    expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0 + 3, 0x8000_0001n));
    expect(value(cpu.rdmsr(MSR_IA32_PMC0 + 3))).toBe(0xffff_8000_0001n);
  });

  it('IA32_A_PMCi for i >= nGP #GPs (§2.1)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.rdmsr(MSR_IA32_PMC0 + 3));
    expectGp(cpu.rdmsr(MSR_IA32_PMC0 + 4));
    expectGp(cpu.wrmsr(MSR_IA32_PMC0 + 4, 0n));
  });
});

describe('IA32_PERFEVTSELi (§2.3)', () => {
  const EN_USR_OS_INSTR = 0x0043_00c0n;

  it('resets to 0 and reads back what was written (§2.3, §4.10)', () => {
    const cpu = new Cpu(SKYLAKE);
    for (let i = 0; i < 4; i++) expect(value(cpu.rdmsr(MSR_P6_EVNTSEL0 + i))).toBe(0n);
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0 + 3, EN_USR_OS_INSTR));
    expect(value(cpu.rdmsr(MSR_P6_EVNTSEL0 + 3))).toBe(EN_USR_OS_INSTR);
    expect(value(cpu.rdmsr(MSR_P6_EVNTSEL0))).toBe(0n);
  });

  it('accepts every field of bits 31:0 where AnyThread is enumerated (§2.3, v4)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0, 0xffff_ffffn));
    expect(value(cpu.rdmsr(MSR_P6_EVNTSEL0))).toBe(0xffff_ffffn);
  });

  it('AnyThread (bit 21) is reserved before v3 (§2.3, §5)', () => {
    const cpu = new Cpu(part({ v: 2 }));
    expectGp(cpu.wrmsr(MSR_P6_EVNTSEL0, 0x0020_0000n));
    expectGp(cpu.wrmsr(MSR_P6_EVNTSEL0, 0xffff_ffffn));
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0, 0xffdf_ffffn)); // everything else in 31:0, PC (bit 19) included
    expect(value(cpu.rdmsr(MSR_P6_EVNTSEL0))).toBe(0xffdf_ffffn);
  });

  it('AnyThread is writable on v3 and on v5 unless CPUID.0AH:EDX[15] deprecates it (§1.2, D30)', () => {
    expectOk(new Cpu(part({ v: 3 })).wrmsr(MSR_P6_EVNTSEL0, 0x0020_0000n));
    expectOk(new Cpu(ICELAKE).wrmsr(MSR_P6_EVNTSEL0, 0x0020_0000n));
    expectGp(new Cpu(SAPPHIRE_RAPIDS).wrmsr(MSR_P6_EVNTSEL0, 0x0020_0000n));
    expectGp(new Cpu(part({ v: 5, anyDeprecated: true })).wrmsr(MSR_P6_EVNTSEL0 + 1, 0x0060_00c0n));
  });

  it('reserved bits of 63:32 #GP: IN_TX without TSX, EQ and UMASK2 before v6, bit 63 (§2.3, §5)', () => {
    const cpu = new Cpu(ICELAKE);
    for (const b of [32n, 33n, 35n, 36n, 40n, 47n, 63n]) expectGp(cpu.wrmsr(MSR_P6_EVNTSEL0 + 2, 1n << b));
    expect(value(cpu.rdmsr(MSR_P6_EVNTSEL0 + 2))).toBe(0n);
  });

  it('IN_TX (bit 32) is writable with TSX on every counter; IN_TX_CP (bit 33) only on PMC2 (§2.3)', () => {
    const cpu = new Cpu(part({ v: 4, tsx: true }));
    for (let i = 0; i < 4; i++) expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0 + i, 0x1_0043_00c0n));
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0 + 2, 0x3_0043_00c0n));
    expect(value(cpu.rdmsr(MSR_P6_EVNTSEL0 + 2))).toBe(0x3_0043_00c0n);
    for (const i of [0, 1, 3]) expectGp(cpu.wrmsr(MSR_P6_EVNTSEL0 + i, 0x2_0000_0000n));
  });

  it('ADAPTIVE (bit 34) needs PERF_CAPABILITIES.PEBS_BASELINE (§2.3)', () => {
    expectOk(new Cpu(ICELAKE).wrmsr(MSR_P6_EVNTSEL0, 0x4_0000_0000n));
    expectGp(new Cpu(SKYLAKE).wrmsr(MSR_P6_EVNTSEL0, 0x4_0000_0000n));
  });

  it('a #GP write leaves the event select unchanged (§5)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0 + 1, EN_USR_OS_INSTR));
    expectGp(cpu.wrmsr(MSR_P6_EVNTSEL0 + 1, 0x1_0000_003cn));
    expect(value(cpu.rdmsr(MSR_P6_EVNTSEL0 + 1))).toBe(EN_USR_OS_INSTR);
  });
});

describe('IA32_FIXED_CTRi existence (§1.2, §2.1, §7 items 5 and 6)', () => {
  it('on v2..v4 exactly i < EDX[4:0] exist', () => {
    const v2 = new Cpu(part({ v: 2, nFixed: 3 }));
    for (let i = 0; i < 3; i++) expectOk(v2.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + i));
    expectGp(v2.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 3));
    expectGp(v2.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + 3, 0n));
    expectGp(new Cpu(SKYLAKE).rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 3));
    expectOk(new Cpu(ICELAKE).rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 3));
    expectGp(new Cpu(ICELAKE).rdmsr(0x30d));
  });

  it('before v5 the ECX bitmap means nothing', () => {
    const cpu = new Cpu(part({ v: 4, nFixed: 3, ecx: 0x10 }));
    expectGp(cpu.rdmsr(0x30d));
  });

  it('on v5 "i < EDX[4:0] or ECX[i]" allows holes', () => {
    const cpu = new Cpu(part({ v: 5, nFixed: 1, ecx: 0b1001 }));
    expectOk(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0));
    expectGp(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 1));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + 2, 0n));
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + 3, 5n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 3))).toBe(5n);
    const bitmapOnly = new Cpu(part({ v: 5, nFixed: 0, ecx: 0b100_0100 }));
    expectGp(bitmapOnly.rdmsr(MSR_CORE_PERF_FIXED_CTR0));
    expectOk(bitmapOnly.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 2));
    expectOk(bitmapOnly.rdmsr(0x30f));
  });

  it('on v1 EDX enumerates nothing: no fixed counters and no FIXED_CTR_CTRL', () => {
    const cpu = new Cpu(part({ v: 1, nFixed: 3 }));
    expectGp(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0, 0n));
    expectGp(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR_CTRL));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0n));
  });
});

describe('IA32_FIXED_CTRi values (§2.4, D2)', () => {
  it('resets to 0 and stores up to all-ones of fixedWidth', () => {
    const cpu = new Cpu(SKYLAKE);
    for (let i = 0; i < 3; i++) expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + i))).toBe(0n);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + 2, 0xffff_ffff_ffffn));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 2))).toBe(0xffff_ffff_ffffn);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 1))).toBe(0n);
  });

  it('a write at or above fixedWidth #GPs and leaves the counter alone (D2)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0, 0x77n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0, 0x1_0000_0000_0000n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0, 0x8000_0000_0000_0000n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0))).toBe(0x77n);
    const narrow = new Cpu(part({ v: 2, fixedWidth: 40 }));
    expectOk(narrow.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + 1, 0xff_ffff_ffffn));
    expectGp(narrow.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + 1, 0x100_0000_0000n));
  });
});

describe('IA32_FIXED_CTR_CTRL (§2.4)', () => {
  it('resets to 0 and takes OS/USR/PMI of every existing counter', () => {
    const cpu = new Cpu(part({ v: 2, nFixed: 3 }));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR_CTRL))).toBe(0n);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0xbbbn));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR_CTRL))).toBe(0xbbbn);
  });

  it('the nibble of an absent counter #GPs (§2.4, §5; KST)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0xb000n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x1000n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x8000_0000n));
    const icl = new Cpu(ICELAKE);
    expectOk(icl.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0xbbbbn));
    expectGp(icl.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x1_0000n));
  });

  it('nibbles of the holes in a v5 bitmap #GP (§7 item 5)', () => {
    const cpu = new Cpu(part({ v: 5, nFixed: 1, ecx: 0b1001 }));
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0xb00bn));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x10n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x200n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR_CTRL))).toBe(0xb00bn);
  });

  it('ANY (nibble bit 2) only where AnyThread is enumerated (§2.4, D30)', () => {
    expectGp(new Cpu(part({ v: 2 })).wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x4n));
    const skl = new Cpu(SKYLAKE);
    expectOk(skl.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0xfffn));
    expect(value(skl.rdmsr(MSR_CORE_PERF_FIXED_CTR_CTRL))).toBe(0xfffn);
    expectOk(new Cpu(ICELAKE).wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0xffffn));
    const spr = new Cpu(SAPPHIRE_RAPIDS);
    expectOk(spr.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0xbbbbn));
    expectGp(spr.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x400n));
  });

  it('ADAPTIVE bits 32+4i exist only with PEBS_BASELINE and for existing counters (§2.4)', () => {
    const icl = new Cpu(ICELAKE);
    expectOk(icl.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x1111_0000_0000n));
    expectGp(icl.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x1_0000_0000_0000n));
    expectGp(new Cpu(SKYLAKE).wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x1_0000_0000n));
  });

  it('other reserved bits #GP and leave the register unchanged (§2.4)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x333n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x8000_0000_0000_0333n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR_CTRL))).toBe(0x333n);
  });
});

describe('counters CPUID does not enumerate #GP (§5 first row, §7 item 25)', () => {
  it('PMCi, A_PMCi and PERFEVTSELi for i >= nGP', () => {
    const cpu = new Cpu(part({ v: 2, nGP: 2, caps: FW_WRITE }));
    for (const a of [MSR_IA32_PERFCTR0 + 1, MSR_IA32_PMC0 + 1, MSR_P6_EVNTSEL0 + 1]) expectOk(cpu.rdmsr(a));
    for (const a of [MSR_IA32_PERFCTR0 + 2, MSR_IA32_PMC0 + 2, MSR_P6_EVNTSEL0 + 2]) {
      expectGp(cpu.rdmsr(a));
      expectGp(cpu.wrmsr(a, 0n));
    }
  });

  it('with nGP = 0 even IA32_PMC0 and IA32_PERFEVTSEL0 #GP (unlike KVM, §6)', () => {
    const cpu = new Cpu(part({ v: 2, nGP: 0, gpWidth: 0 }));
    expectGp(cpu.rdmsr(MSR_IA32_PERFCTR0));
    expectGp(cpu.wrmsr(MSR_IA32_PERFCTR0, 0n));
    expectGp(cpu.wrmsr(MSR_IA32_PERFCTR0 + 1, 0n));
    expectGp(cpu.rdmsr(MSR_P6_EVNTSEL0));
  });
});
