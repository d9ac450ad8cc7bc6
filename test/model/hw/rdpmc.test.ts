/**
 * RDPMC, written from pmu-semantics.md §4.9 and the RDPMC rows of §5 and §7 (items 11, 12).
 * ECX[31:16] is the counter type (0, 4000H, 2000H); ECX[15:0] the index.
 */
import { describe, expect, it } from 'vitest';
import {
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_P6_EVNTSEL0,
  MSR_IA32_PERFCTR0,
  INTEL_PMC_FIXED_RDPMC_BASE,
  INTEL_PMC_FIXED_RDPMC_METRICS,
} from '../../../model/hw/msr/counters.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { ModelError } from '../../../model/hw/errors.js';
import { MSR_PERF_METRICS } from '../../../model/hw/msr/topdown.js';
import { expectGp, expectOk, FW_WRITE, part, value } from './parts.js';

describe('RDPMC type 0: GP counters (§4.9)', () => {
  it('reads GP counter i for ECX = i < nGP', () => {
    const cpu = new Cpu(SKYLAKE);
    for (let i = 0; i < 4; i++) expectOk(cpu.wrmsr(MSR_IA32_PMC0 + i, BigInt(0x1000_0000_0001 * (i + 1))));
    for (let i = 0; i < 4; i++) expect(value(cpu.rdpmc(i))).toBe(BigInt(0x1000_0000_0001 * (i + 1)));
  });

  it('#GPs for an index at or above nGP, or with ECX[15:8] set (§4.9, §5)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectGp(cpu.rdpmc(4));
    expectGp(cpu.rdpmc(0x40)); // KUT: RDPMC(64) #GPs
    expectGp(cpu.rdpmc(0x100));
    expectGp(cpu.rdpmc(0xffff));
    expectGp(new Cpu(part({ v: 2, nGP: 0, gpWidth: 0, caps: FW_WRITE })).rdpmc(0));
  });

  it('reads the same register as both MSR aliases (§2.2)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0 + 2, 0x8000_0000n));
    expect(value(cpu.rdpmc(2))).toBe(0xffff_8000_0000n);
    expect(value(cpu.rdpmc(2))).toBe(value(cpu.rdmsr(MSR_IA32_PMC0 + 2)));
  });

  it('reading does not change the counter (§4.9)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PMC0, 0x42n));
    expect(value(cpu.rdpmc(0))).toBe(0x42n);
    expect(value(cpu.rdpmc(0))).toBe(0x42n);
    expect(value(cpu.rdmsr(MSR_IA32_PERFCTR0))).toBe(0x42n);
  });
});

describe('RDPMC type 4000H: fixed counters (§4.9)', () => {
  it('reads fixed counter j for ECX = 4000_0000H + j', () => {
    const cpu = new Cpu(ICELAKE);
    for (let j = 0; j < 4; j++) expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + j, BigInt(0x100 + j)));
    for (let j = 0; j < 4; j++) expect(value(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + j))).toBe(BigInt(0x100 + j));
  });

  it('#GPs for a counter that does not exist, or with ECX[15:5] set (§4.9)', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + 2));
    expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + 3));
    expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + 0x20));
    expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + 0x100));
  });

  it('follows "i < EDX[4:0] or ECX[i]" on v5 (§1.2; SDM RDPMC text)', () => {
    const cpu = new Cpu(part({ v: 5, nGP: 2, nFixed: 1, ecx: 0b1001, caps: FW_WRITE }));
    expectOk(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + 0));
    expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + 1));
    expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + 2));
    expectOk(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + 3));
  });

  it('#GPs on v1, whatever CPUID.0AH:EDX says (§1.2, §7 item 6)', () => {
    expectGp(new Cpu(part({ v: 1, nGP: 2, nFixed: 3, caps: FW_WRITE })).rdpmc(INTEL_PMC_FIXED_RDPMC_BASE));
  });
});

describe('RDPMC type 2000H: PERF_METRICS (§2.11, §4.9)', () => {
  it('#GPs without PERF_CAPABILITIES[15]', () => {
    expectGp(new Cpu(SKYLAKE).rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS));
    expectGp(new Cpu(part({ v: 5, nGP: 2, nFixed: 4, caps: FW_WRITE })).rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS));
  });

  it('reads MSR_PERF_METRICS at index 0 where enumerated', () => {
    for (const p of [ICELAKE, SAPPHIRE_RAPIDS]) {
      const cpu = new Cpu(p);
      expectOk(cpu.wrmsr(MSR_PERF_METRICS, 0x1020_4080n));
      expect(value(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS))).toBe(value(cpu.rdmsr(MSR_PERF_METRICS)));
    }
  });

  it('#GPs for any other metrics index (D34)', () => {
    const cpu = new Cpu(ICELAKE);
    expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS + 1));
    expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS + 0x10));
  });
});

describe('RDPMC type field (§4.9, §7 item 11)', () => {
  it('ECX[31] (the "fast" flag of non-architectural PMUs) #GPs on an architectural PMU', () => {
    const cpu = new Cpu(SKYLAKE);
    expectGp(cpu.rdpmc(0x8000_0000));
    expectGp(cpu.rdpmc(0x8000_0001));
    expectGp(cpu.rdpmc(0xc000_0000));
    expectGp(cpu.rdpmc(0xa000_0000));
  });

  it('any other type #GPs', () => {
    const cpu = new Cpu(ICELAKE);
    for (const ecx of [0x0001_0000, 0x1000_0000, 0x6000_0000, 0x4001_0000, 0x0800_0000, 0xffff_0000])
      expectGp(cpu.rdpmc(ecx));
  });

  it('an ECX that is not a 32-bit value is a programming error (ModelError)', () => {
    const cpu = new Cpu(SKYLAKE);
    expect(() => cpu.rdpmc(-1)).toThrow(ModelError);
    expect(() => cpu.rdpmc(0x1_0000_0000)).toThrow(ModelError);
    expect(() => cpu.rdpmc(0.5)).toThrow(ModelError);
  });
});

describe('RDPMC privilege (§4.9, §7 item 12)', () => {
  it('#GPs at CPL > 0 with CR4.PCE = 0, for every counter type', () => {
    const cpu = new Cpu(ICELAKE);
    expect(cpu.cr4Pce).toBe(false);
    for (const cpl of [1, 2, 3]) {
      expectGp(cpu.rdpmc(0, cpl));
      expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE, cpl));
      expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, cpl));
    }
    expectOk(cpu.rdpmc(0, 0));
    expectOk(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE, 0));
  });

  it('CR4.PCE = 1 lets CPL 3 read', () => {
    const cpu = new Cpu(SKYLAKE);
    expectOk(cpu.wrmsr(MSR_IA32_PMC0 + 1, 0x99n));
    cpu.cr4Pce = true;
    expect(value(cpu.rdpmc(1, 3))).toBe(0x99n);
    expectOk(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE + 1, 3));
    expectGp(cpu.rdpmc(4, 3)); // PCE does not widen the index checks
  });
});

describe('RDPMC with version 0 (§4.9)', () => {
  it('#GPs: there is no architectural PMU to read', () => {
    const cpu = new Cpu(part({ v: 0, nGP: 0, gpWidth: 0, evLen: 0, caps: FW_WRITE }));
    expectGp(cpu.rdpmc(0));
    expectGp(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE));
    cpu.cr4Pce = true;
    expectGp(cpu.rdpmc(0, 3));
  });
});

describe('RDPMC values are masked to the counter width (§4.9, §7 item 12)', () => {
  it('a legacy write of 0xFFFFFFFF reads gpWidth ones, not 64', () => {
    const cases: [number, bigint][] = [
      [48, 0xffff_ffff_ffffn],
      [40, 0xff_ffff_ffffn],
    ];
    for (const [w, want] of cases) {
      const cpu = new Cpu(part({ v: 2, nGP: 2, gpWidth: w, caps: FW_WRITE }));
      expectOk(cpu.wrmsr(MSR_IA32_PERFCTR0, 0xffff_ffffn));
      expect(value(cpu.rdpmc(0)), `gpWidth ${w}`).toBe(want);
    }
  });

  it('GP and fixed counters read their wrapped values after overflow', () => {
    const cpu = new Cpu(part({ v: 2, nGP: 2, gpWidth: 40, fixedWidth: 36, caps: FW_WRITE }));
    expectOk(cpu.wrmsr(MSR_IA32_PMC0, 0xff_ffff_fffen));
    expectOk(cpu.wrmsr(MSR_P6_EVNTSEL0, 0x0043_00c0n)); // EN | OS | USR, instructions retired
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0, 0xf_ffff_ffffn));
    expectOk(cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n));
    expectOk(cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0001n));
    cpu.step({ cpl: 0, instructions: 5 });
    expect(value(cpu.rdpmc(0))).toBe(3n);
    expect(value(cpu.rdpmc(INTEL_PMC_FIXED_RDPMC_BASE))).toBe(4n);
  });
});
