/**
 * IA32_PERF_GLOBAL_CTRL/STATUS/STATUS_RESET/STATUS_SET/INUSE, version gating, PERF_CAPABILITIES,
 * DEBUGCTL and the x2APIC LVTPC, written from pmu-semantics.md §1.3, §2.5–§2.10, §2.12, §4.4 and
 * the decisions D1, D14–D17 and D32.
 */
import { describe, expect, it } from 'vitest';
import {
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_INUSE,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../../model/hw/msr/global.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';
import { perfCaps } from '../../../model/hw/profile.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import { expectGp, expectOk, part, value } from './parts.js';

/** Overflows GP counter `i` (INT = 0) and fixed counter 0 in one unit, so GLOBAL_STATUS has bits i and 32. */
function overflowTwo(cpu: Cpu, i: number): void {
  expectOk(cpu.wrmsr(MSR_IA32_PMC0 + i, 0xffff_ffff_ffffn));
  expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0 + i, 0x0043_00c0n));
  expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0, 0xffff_ffff_ffffn));
  expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n));
  expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL)) | (1n << 32n)));
  expect(cpu.step({ cpl: 0, instructions: 1 })).toBeNull();
}

describe('IA32_PERF_GLOBAL_CTRL (§2.5)', () => {
  it('resets to bits nGP-1:0 set, everything else clear (§2.5, §7 item 7)', () => {
    expect(value(new Cpu(SKYLAKE).rdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(0xfn);
    expect(value(new Cpu(ICELAKE).rdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(0xffn);
    expect(value(new Cpu(part({ v: 2, nGP: 3 })).rdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(0x7n);
    expect(value(new Cpu(part({ v: 2, nGP: 0 })).rdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(0n);
  });

  it('RESET restores the reset value after a write (§4.10)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x7_0000_0000n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(0x7_0000_0000n);
    cpu.reset();
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(0xfn);
  });

  it('takes the bits of existing GP and fixed counters; others #GP (§2.5, §5)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x7_0000_000fn));
    for (const b of [4n, 31n, 35n, 47n, 48n, 63n]) expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n << b));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(0x7_0000_000fn);
  });

  it('bit 48 (EN_PERF_METRICS) exists only with PERF_CAPABILITIES[15] (§2.5)', () => {
    const icl = new Cpu(ICELAKE);
    expectOk(icl.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x1_000f_0000_00ffn));
    expect(value(icl.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(0x1_000f_0000_00ffn);
    expectOk(new Cpu(SAPPHIRE_RAPIDS).wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0000_0000n));
    expectGp(new Cpu(SKYLAKE).wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0000_0000n));
    expectGp(icl.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x10_0000_0000n)); // fixed counter 4 does not exist
  });

  it('a hole in the v5 fixed bitmap #GPs in GLOBAL_CTRL (§7 item 5)', () => {
    const cpu = new Cpu(part({ v: 5, nGP: 2, nFixed: 1, ecx: 0b1001 }));
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x9_0000_0003n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x2_0000_0000n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x4_0000_0000n));
  });
});

describe('IA32_PERF_GLOBAL_STATUS (§2.6)', () => {
  it('resets to 0 (§2.6)', () => {
    expect(value(new Cpu(SKYLAKE).rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0n);
  });

  it('is read-only: every guest write #GPs, 0 included (§2.6, §7 item 8)', () => {
    const cpu = new Cpu(SKYLAKE);
    overflowTwo(cpu, 1);
    expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS, 0n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS, 0x1n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS, 0x1_0000_0002n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0x1_0000_0002n);
  });
});

describe('IA32_PERF_GLOBAL_STATUS_RESET / OVF_CTRL (§2.7)', () => {
  it('writing 1 clears that status bit; other bits stay (§2.7)', () => {
    const cpu = new Cpu(SKYLAKE);
    overflowTwo(cpu, 2);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0x1_0000_0004n);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0x4n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0x1_0000_0000n);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0x1_0000_0000n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0n);
  });

  it('writing 0, or 1 to a clear bit, is a no-op (§2.7, §7 item 8)', () => {
    const cpu = new Cpu(SKYLAKE);
    overflowTwo(cpu, 0);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0n));
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0x2n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0x1_0000_0001n);
  });

  it('reads 0 whatever was written (D14)', () => {
    const cpu = new Cpu(SKYLAKE);
    overflowTwo(cpu, 0);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0x1n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL))).toBe(0n);
  });

  it('a 1 in a bit with no status meaning #GPs and clears nothing (§2.7, §5, D14)', () => {
    const cpu = new Cpu(SKYLAKE);
    overflowTwo(cpu, 0);
    for (const b of [4n, 35n, 48n, 54n, 55n, 60n]) expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, (1n << b) | 0x1n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0x1_0000_0001n);
  });

  it('accepted bits follow the version: 62/63 always, 61 from v3, 58/59 from v4, 48 with PERF_METRICS (D14)', () => {
    const v2 = new Cpu(part({ v: 2, nGP: 2 }));
    expectOk(v2.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0xc000_0007_0000_0003n));
    expectGp(v2.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n << 61n));
    expectGp(v2.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n << 59n));
    const v3 = new Cpu(part({ v: 3, nGP: 2 }));
    expectOk(v3.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n << 61n));
    expectGp(v3.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n << 58n));
    expectGp(v3.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n << 59n));
    expectOk(new Cpu(SKYLAKE).wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0xec00_0000_0000_0000n));
    expectOk(new Cpu(ICELAKE).wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n << 48n));
  });
});

describe('IA32_PERF_GLOBAL_STATUS_SET (§2.8, v4+)', () => {
  it('writing 1 sets that status bit; 0 is a no-op (§2.8)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 0n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0n);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 0x4_0000_0008n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0x4_0000_0008n);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 0x1n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0x4_0000_0009n);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0x4_0000_0009n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0n);
  });

  it('can set CondChgd and the freeze bits (D15) and reads 0 (D14)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 0x8c00_0000_0000_0000n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0x8c00_0000_0000_0000n);
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET))).toBe(0n);
  });

  it('bits without status meaning #GP and set nothing (§5, D14)', () => {
    const cpu = new Cpu(SKYLAKE);
    for (const b of [4n, 35n, 48n, 54n, 55n, 60n])
      expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, (1n << b) | 0x1n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0n);
  });

  it('does not exist before v4 (§1.3, §2.1)', () => {
    for (const v of [2, 3]) {
      const cpu = new Cpu(part({ v, nGP: 2 }));
      expectGp(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET));
      expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 0x1n));
    }
  });
});

describe('IA32_PERF_GLOBAL_INUSE (§2.9, v4+)', () => {
  it('reads 0 at reset', () => {
    expect(value(new Cpu(SKYLAKE).rdmsr(MSR_CORE_PERF_GLOBAL_INUSE))).toBe(0n);
  });

  it('GP bit n follows EVTSELn[7:0] != 0, whatever EN says (§2.9, §7 item 23)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0, 0xc0n)); // event select, EN = 0
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0 + 1, 0x0043_0100n)); // EN, USR, OS, umask only: event select 0
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0 + 3, 0x01n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_INUSE))).toBe(0x9n);
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0, 0n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_INUSE))).toBe(0x8n);
  });

  it('fixed bit 32+i follows the nibble enable bits 1:0 (§2.9)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x021n)); // counter 0 OS, counter 1 USR
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_INUSE))).toBe(0x3_0000_0000n);
  });

  it('bit 63 (PMI_InUse) is set by any EVTSEL.INT or fixed PMI bit, not bit 32 (§2.9)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0 + 2, 0x0010_0000n)); // INT only, event select 0
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_INUSE))).toBe(0x8000_0000_0000_0000n);
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0 + 2, 0n));
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_INUSE))).toBe(0n);
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x800n)); // counter 2 PMI only, not enabled
    expect(value(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_INUSE))).toBe(0x8000_0000_0000_0000n);
  });

  it('is read-only: a write #GPs (§2.9, §5, D16)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_INUSE, 0n));
    expectGp(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_INUSE, 0x1n));
  });
});

describe('version gating of 0x38D-0x392 (§1.3, §2.1, D1)', () => {
  const ALL = [
    MSR_CORE_PERF_FIXED_CTR_CTRL,
    MSR_CORE_PERF_GLOBAL_STATUS,
    MSR_CORE_PERF_GLOBAL_CTRL,
    MSR_CORE_PERF_GLOBAL_OVF_CTRL,
    MSR_CORE_PERF_GLOBAL_STATUS_SET,
    MSR_CORE_PERF_GLOBAL_INUSE,
  ];

  it('v1 has none of them', () => {
    const cpu = new Cpu(part({ v: 1, nGP: 2 }));
    for (const a of ALL) {
      expectGp(cpu.rdmsr(a));
      expectGp(cpu.wrmsr(a, 0n));
    }
  });

  it('v2 and v3 have 0x38D-0x390 but not 0x391/0x392', () => {
    for (const v of [2, 3]) {
      const cpu = new Cpu(part({ v, nGP: 2 }));
      for (const a of [
        MSR_CORE_PERF_FIXED_CTR_CTRL,
        MSR_CORE_PERF_GLOBAL_STATUS,
        MSR_CORE_PERF_GLOBAL_CTRL,
        MSR_CORE_PERF_GLOBAL_OVF_CTRL,
      ])
        expectOk(cpu.rdmsr(a));
      for (const a of [MSR_CORE_PERF_GLOBAL_STATUS_SET, MSR_CORE_PERF_GLOBAL_INUSE]) expectGp(cpu.rdmsr(a));
    }
  });

  it('v4 and v5 have all six', () => {
    for (const p of [SKYLAKE, ICELAKE, SAPPHIRE_RAPIDS]) {
      const cpu = new Cpu(p);
      for (const a of ALL) expectOk(cpu.rdmsr(a));
    }
  });
});

describe('IA32_PERF_CAPABILITIES (§2.10)', () => {
  it('reads the enumerated value', () => {
    expect(value(new Cpu(SKYLAKE).rdmsr(MSR_IA32_PERF_CAPABILITIES))).toBe(0x33c5n);
    const caps = perfCaps({ fwWrite: true, perfMetrics: false });
    expect(value(new Cpu(part({ v: 2, nGP: 2, caps })).rdmsr(MSR_IA32_PERF_CAPABILITIES))).toBe(0x2000n);
  });

  it('is read-only: a write #GPs, even of its own value (§2.10; KST)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectGp(cpu.wrmsr(MSR_IA32_PERF_CAPABILITIES, 0x33c5n));
    expectGp(cpu.wrmsr(MSR_IA32_PERF_CAPABILITIES, 0n));
    expect(value(cpu.rdmsr(MSR_IA32_PERF_CAPABILITIES))).toBe(0x33c5n);
  });

  it('does not exist without CPUID.01H:ECX.PDCM (§1.1)', () => {
    const cpu = new Cpu(part({ v: 4, nGP: 2 }));
    expectGp(cpu.rdmsr(MSR_IA32_PERF_CAPABILITIES));
    expectGp(cpu.wrmsr(MSR_IA32_PERF_CAPABILITIES, 0n));
  });
});

describe('IA32_DEBUGCTL (§2.12, D17)', () => {
  it('resets to 0 and takes bits 0, 1 and 6-13 on any part', () => {
    const cpu = new Cpu(part({ v: 2, nGP: 2 }));
    expect(value(cpu.rdmsr(MSR_IA32_DEBUGCTLMSR))).toBe(0n);
    expectOk(cpu.wrmsr(MSR_IA32_DEBUGCTLMSR, 0x3fc3n));
    expect(value(cpu.rdmsr(MSR_IA32_DEBUGCTLMSR))).toBe(0x3fc3n);
  });

  it('bits 5:2 and 63:16 #GP and leave the register unchanged', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_DEBUGCTLMSR, 0x1801n));
    for (const b of [2n, 3n, 4n, 5n, 16n, 32n, 63n]) expectGp(cpu.wrmsr(MSR_IA32_DEBUGCTLMSR, 1n << b));
    expect(value(cpu.rdmsr(MSR_IA32_DEBUGCTLMSR))).toBe(0x1801n);
  });

  it('FREEZE_WHILE_SMM (bit 14) needs PERF_CAPABILITIES.SMM_FRZ', () => {
    expectOk(new Cpu(SKYLAKE).wrmsr(MSR_IA32_DEBUGCTLMSR, 0x4000n));
    expectGp(new Cpu(part({ v: 4, nGP: 2, caps: 0n })).wrmsr(MSR_IA32_DEBUGCTLMSR, 0x4000n));
    expectOk(new Cpu(part({ v: 4, nGP: 2, caps: perfCaps({ smmFrz: true }) })).wrmsr(MSR_IA32_DEBUGCTLMSR, 0x4000n));
  });

  it('RTM_DEBUG (bit 15) needs TSX', () => {
    expectGp(new Cpu(SKYLAKE).wrmsr(MSR_IA32_DEBUGCTLMSR, 0x8000n));
    expectOk(new Cpu(part({ v: 4, nGP: 2, tsx: true })).wrmsr(MSR_IA32_DEBUGCTLMSR, 0x8000n));
  });

  it('with Arch LBR, DEBUGCTL.LBR is ignored and reads 0 (§2.12)', () => {
    const cpu = new Cpu(SAPPHIRE_RAPIDS);
    expectOk(cpu.wrmsr(MSR_IA32_DEBUGCTLMSR, 0x1801n));
    expect(value(cpu.rdmsr(MSR_IA32_DEBUGCTLMSR))).toBe(0x1800n);
  });
});

describe('x2APIC LVTPC at MSR 0x834 (§4.4, D32)', () => {
  it('exists on every part and resets masked (0x10000)', () => {
    for (const p of [part({ v: 1, nGP: 2 }), SKYLAKE, SAPPHIRE_RAPIDS])
      expect(value(new Cpu(p).rdmsr(X2APIC_LVTPC))).toBe(0x1_0000n);
  });

  it('vector (7:0), delivery mode (10:8) and mask (16) are writable', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(X2APIC_LVTPC, 0x4ffn));
    expect(value(cpu.rdmsr(X2APIC_LVTPC))).toBe(0x4ffn);
    expectOk(cpu.wrmsr(X2APIC_LVTPC, 0x1_07abn));
    expect(value(cpu.rdmsr(X2APIC_LVTPC))).toBe(0x1_07abn);
  });

  it('delivery status (12) is read-only and ignored on write', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(X2APIC_LVTPC, 0x10efn));
    expect(value(cpu.rdmsr(X2APIC_LVTPC))).toBe(0xefn);
  });

  it('other bits #GP and leave LVTPC unchanged', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(X2APIC_LVTPC, 0xefn));
    for (const b of [11n, 13n, 14n, 15n, 17n, 31n, 32n, 63n]) expectGp(cpu.wrmsr(X2APIC_LVTPC, (1n << b) | 0xefn));
    expect(value(cpu.rdmsr(X2APIC_LVTPC))).toBe(0xefn);
  });
});
