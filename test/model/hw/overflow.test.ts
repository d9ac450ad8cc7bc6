/**
 * Overflow, PMI delivery through LVTPC and freeze-on-PMI for counters, written from
 * pmu-semantics.md §2.6, §4.3–§4.5, §4.8, §7 items 9, 10, 14, 15 and the decisions D6–D10, D35.
 */
import { describe, expect, it } from 'vitest';
import {
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_P6_EVNTSEL0,
  MSR_IA32_PERFCTR0,
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
} from '../../../model/hw/msr/counters.js';
import { Cpu } from '../../../model/hw/cpu.js';
import {
  MSR_IA32_DEBUGCTLMSR,
  DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI,
  DEBUGCTLMSR_LBR,
} from '../../../model/hw/msr/debugctl.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  GLOBAL_STATUS_COUNTERS_FROZEN,
} from '../../../model/hw/msr/global.js';
import { type Profile } from '../../../model/hw/profile.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { X2APIC_LVTPC, APIC_DM_NMI, APIC_LVT_MASKED } from '../../../model/hw/msr/apic.js';
import { FW_WRITE, INSTR, instr, part, rd, wr } from './parts.js';

const CYCLES = 0x3cn;
const COUNT_INSTR = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTR;
const COUNT_CYCLES = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | CYCLES;

/** LVTPC: Fixed delivery, vector 0xEF, unmasked. */
const LVT_FIXED_EF = 0xefn;

const ALL_ONES_48 = 0xffff_ffff_ffffn;

/** SKYLAKE with PMC0 preset to 2^48 - k, counting instructions with the given extra EVTSEL bits. */
function armed(k: bigint, extra = 0n, lvt = LVT_FIXED_EF): Cpu {
  const cpu = new Cpu(SKYLAKE);
  wr(cpu, X2APIC_LVTPC, lvt);
  wr(cpu, MSR_IA32_PMC0, (1n << 48n) - k);
  wr(cpu, MSR_P6_EVNTSEL0, COUNT_INSTR | extra);
  return cpu;
}

describe('overflow at the all-ones boundary (§4.3)', () => {
  it('preset 2^48 - k overflows exactly at the unit that passes all-ones', () => {
    const cpu = armed(3n);
    expect(cpu.step(instr(2))).toBeNull();
    expect(rd(cpu, MSR_IA32_PERFCTR0)).toBe(ALL_ONES_48);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    cpu.step(instr(1));
    expect(rd(cpu, MSR_IA32_PERFCTR0)).toBe(0n);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n);
  });

  it('the counter wraps to the value modulo 2^width', () => {
    const cpu = armed(3n);
    cpu.step(instr(10));
    expect(rd(cpu, MSR_IA32_PERFCTR0)).toBe(7n);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n);
  });

  it('a fixed counter overflow sets GLOBAL_STATUS bit 32 + j', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR0 + 1, ALL_ONES_48 - 1n);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x30n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x2_0000_0000n);
    cpu.step({ cpl: 0, cycles: 1 });
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    cpu.step({ cpl: 0, cycles: 4 });
    expect(rd(cpu, MSR_CORE_PERF_FIXED_CTR0 + 1)).toBe(3n);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x2_0000_0000n);
  });

  it('a legacy write of 0x80000000 leaves 2^31 counts to overflow at 48 bits (§4.8 example)', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(cpu, MSR_IA32_PERFCTR0 + 1, 0x8000_0000n);
    wr(cpu, MSR_P6_EVNTSEL0 + 1, COUNT_INSTR);
    cpu.step(instr(0x7fff_ffff));
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(ALL_ONES_48);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    cpu.step(instr(1));
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(0n);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x2n);
  });

  it('the boundary follows the enumerated widths, here 32-bit GP and 40-bit fixed', () => {
    const cpu = new Cpu(part({ v: 2, nGP: 2, gpWidth: 32, fixedWidth: 40, caps: FW_WRITE }));
    wr(cpu, MSR_IA32_PERFCTR0, 0xffff_ffffn);
    wr(cpu, MSR_P6_EVNTSEL0, COUNT_INSTR);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR0, 0xff_ffff_ffffn);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0001n);
    cpu.step(instr(2));
    expect(rd(cpu, MSR_IA32_PERFCTR0)).toBe(1n);
    expect(rd(cpu, MSR_CORE_PERF_FIXED_CTR0)).toBe(1n);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1_0000_0001n);
  });

  it('writing all-ones sets no status bit and raises no PMI (D35)', () => {
    const cpu = armed(1n, ARCH_PERFMON_EVENTSEL_INT);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    expect(cpu.step(instr(0))).toBeNull();
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
  });
});

describe('status bit and PMI (§4.3, §7 item 9)', () => {
  it('the status bit is set even with INT = 0, and no PMI comes', () => {
    const cpu = armed(1n);
    expect(cpu.step(instr(1))).toBeNull();
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n);
    expect(rd(cpu, X2APIC_LVTPC)).toBe(LVT_FIXED_EF);
  });

  it('INT = 1 delivers a PMI at the end of the overflowing unit with the LVTPC vector', () => {
    const cpu = armed(1n, ARCH_PERFMON_EVENTSEL_INT);
    expect(cpu.step(instr(1))).toEqual({ vector: 0xef, nmi: false });
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n);
  });

  it('NMI delivery mode in LVTPC is reported as an NMI', () => {
    const cpu = armed(1n, ARCH_PERFMON_EVENTSEL_INT, APIC_DM_NMI);
    expect(cpu.step(instr(1))).toEqual({ vector: 0, nmi: true });
  });

  it('only delivery mode 100b (bits 10:8) is an NMI; the vector is bits 7:0', () => {
    for (let mode = 0; mode < 8; mode++) {
      const cpu = armed(1n, ARCH_PERFMON_EVENTSEL_INT, (BigInt(mode) << 8n) | 0xd2n);
      expect(cpu.step(instr(1)), `mode ${mode}`).toEqual({ vector: 0xd2, nmi: mode === 4 });
    }
  });

  it('a fixed counter raises a PMI only with its nibble PMI bit (bit 3)', () => {
    for (const [nibble, pmi] of [
      [0x3n, false],
      [0xbn, true],
    ] as const) {
      const cpu = new Cpu(SKYLAKE);
      wr(cpu, X2APIC_LVTPC, LVT_FIXED_EF);
      wr(cpu, MSR_CORE_PERF_FIXED_CTR0 + 2, ALL_ONES_48);
      wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, nibble << 8n);
      wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x4_0000_0000n);
      const d = cpu.step({ cpl: 0, tscCycles: 1 });
      expect(d !== null, `nibble 0x${nibble.toString(16)}`).toBe(pmi);
      expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x4_0000_0000n);
    }
  });

  it('run() reports the PMI after the unit that overflowed', () => {
    const cpu = armed(5n, ARCH_PERFMON_EVENTSEL_INT);
    const got = cpu.run([instr(2), instr(2), instr(2), instr(2)]);
    expect(got).toEqual([{ after: 2, pmi: { vector: 0xef, nmi: false } }]);
  });

  it('v1 has no GLOBAL_STATUS but still raises the PMI (§1.3 v1)', () => {
    const cpu = new Cpu(part({ v: 1, nGP: 2, caps: FW_WRITE }));
    wr(cpu, X2APIC_LVTPC, LVT_FIXED_EF);
    wr(cpu, MSR_IA32_PERFCTR0, 0xffff_ffffn); // legacy write: all-ones at 48 bits
    wr(cpu, MSR_P6_EVNTSEL0, COUNT_INSTR | ARCH_PERFMON_EVENTSEL_INT);
    expect(cpu.step(instr(1))).toEqual({ vector: 0xef, nmi: false });
    expect(rd(cpu, MSR_IA32_PERFCTR0)).toBe(0n);
    expect(cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS).ok).toBe(false);
  });
});

describe('LVTPC masking (§4.4, §7 item 10, D7, D10)', () => {
  it('delivery sets the LVTPC mask bit', () => {
    const cpu = armed(1n, ARCH_PERFMON_EVENTSEL_INT);
    cpu.step(instr(1));
    expect(rd(cpu, X2APIC_LVTPC)).toBe(APIC_LVT_MASKED | LVT_FIXED_EF);
  });

  it('LVTPC resets masked, so nothing is delivered, but the status bit is set (D7)', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(cpu, MSR_IA32_PMC0, ALL_ONES_48);
    wr(cpu, MSR_P6_EVNTSEL0, COUNT_INSTR | ARCH_PERFMON_EVENTSEL_INT);
    expect(cpu.step(instr(1))).toBeNull();
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n);
  });

  it('a PMI dropped while masked is not delivered on unmasking (D7)', () => {
    const cpu = armed(1n, ARCH_PERFMON_EVENTSEL_INT);
    expect(cpu.step(instr(1))).not.toBeNull();
    wr(cpu, MSR_IA32_PMC0, ALL_ONES_48);
    expect(cpu.step(instr(1))).toBeNull(); // LVTPC still masked from the first delivery
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n);
    wr(cpu, X2APIC_LVTPC, LVT_FIXED_EF);
    expect(cpu.step(instr(1))).toBeNull();
    expect(cpu.step(instr(0))).toBeNull();
  });

  it('an overflow while the status bit is still set raises another PMI once unmasked (D10)', () => {
    const cpu = armed(1n, ARCH_PERFMON_EVENTSEL_INT);
    expect(cpu.step(instr(1))).not.toBeNull();
    wr(cpu, X2APIC_LVTPC, LVT_FIXED_EF);
    wr(cpu, MSR_IA32_PMC0, ALL_ONES_48);
    expect(cpu.step(instr(1))).toEqual({ vector: 0xef, nmi: false });
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n);
  });

  it('several overflows in one unit give one PMI and all their status bits (D8)', () => {
    const cpu = armed(1n, ARCH_PERFMON_EVENTSEL_INT);
    wr(cpu, MSR_IA32_PMC0 + 1, ALL_ONES_48 - 2n);
    wr(cpu, MSR_P6_EVNTSEL0 + 1, COUNT_INSTR | ARCH_PERFMON_EVENTSEL_INT);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR0, ALL_ONES_48);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xbn);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_000fn);
    const got = cpu.run([instr(3), instr(0)]);
    expect(got).toEqual([{ after: 0, pmi: { vector: 0xef, nmi: false } }]);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1_0000_0003n);
  });
});

/**
 * FREEZE_PERFMON_ON_PMI set; PMC0 one count from overflow (INT as given), PMC1 counting cycles,
 * FIXED_CTR0 instructions, all three enabled in GLOBAL_CTRL.
 */
function freezeArmed(p: Profile, intBit: bigint, lvt = LVT_FIXED_EF): Cpu {
  const cpu = new Cpu(p);
  wr(cpu, X2APIC_LVTPC, lvt);
  wr(cpu, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI);
  wr(cpu, MSR_IA32_PMC0, ALL_ONES_48);
  wr(cpu, MSR_P6_EVNTSEL0, COUNT_INSTR | intBit);
  wr(cpu, MSR_P6_EVNTSEL0 + 1, COUNT_CYCLES);
  wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n);
  wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0003n);
  return cpu;
}

describe('FREEZE_PERFMON_ON_PMI, v4: CTR_FRZ (§4.4, §4.5, §7 item 15)', () => {
  /** SKYLAKE after `freezeArmed` and the unit that overflows PMC0. */
  function v4Frozen(intBit: bigint, lvt = LVT_FIXED_EF): Cpu {
    const cpu = freezeArmed(SKYLAKE, intBit, lvt);
    cpu.step({ cpl: 3, instructions: 1, cycles: 10 });
    return cpu;
  }

  it('a PMI sets CTR_FRZ (bit 59) and leaves GLOBAL_CTRL alone', () => {
    const cpu = v4Frozen(ARCH_PERFMON_EVENTSEL_INT);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(GLOBAL_STATUS_COUNTERS_FROZEN | 0x1n);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(0x1_0000_0003n);
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(10n); // the overflowing unit itself counted
    expect(rd(cpu, MSR_CORE_PERF_FIXED_CTR0)).toBe(1n);
  });

  it('counting stops while CTR_FRZ is set and resumes after STATUS_RESET bit 59', () => {
    const cpu = v4Frozen(ARCH_PERFMON_EVENTSEL_INT);
    cpu.step({ cpl: 3, instructions: 5, cycles: 20 });
    expect(rd(cpu, MSR_IA32_PERFCTR0)).toBe(0n);
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(10n);
    expect(rd(cpu, MSR_CORE_PERF_FIXED_CTR0)).toBe(1n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0x1n); // acknowledging the overflow alone does not unfreeze
    cpu.step({ cpl: 3, instructions: 5, cycles: 20 });
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(10n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, GLOBAL_STATUS_COUNTERS_FROZEN);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    cpu.step({ cpl: 3, instructions: 5, cycles: 20 });
    expect(rd(cpu, MSR_IA32_PERFCTR0)).toBe(5n);
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(30n);
    expect(rd(cpu, MSR_CORE_PERF_FIXED_CTR0)).toBe(6n);
  });

  it('freezing needs a PMI-enabled overflow: INT = 0 does not freeze (D6)', () => {
    const cpu = v4Frozen(0n);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n);
    cpu.step({ cpl: 3, instructions: 5, cycles: 20 });
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(30n);
  });

  it('a fixed overflow without its PMI bit does not freeze (D6)', () => {
    const cpu = new Cpu(SKYLAKE);
    wr(cpu, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR0, ALL_ONES_48);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0000n);
    cpu.step(instr(1));
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1_0000_0000n);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xbn);
    wr(cpu, MSR_CORE_PERF_FIXED_CTR0, ALL_ONES_48);
    cpu.step(instr(1));
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(GLOBAL_STATUS_COUNTERS_FROZEN | 0x1_0000_0000n);
  });

  it('the freeze happens at PMI generation even while LVTPC is masked (§4.4)', () => {
    const cpu = v4Frozen(ARCH_PERFMON_EVENTSEL_INT, APIC_LVT_MASKED);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(GLOBAL_STATUS_COUNTERS_FROZEN | 0x1n);
  });

  it('without FREEZE_PERFMON_ON_PMI a PMI freezes nothing', () => {
    const cpu = armed(1n, ARCH_PERFMON_EVENTSEL_INT);
    wr(cpu, MSR_P6_EVNTSEL0 + 1, COUNT_CYCLES);
    expect(cpu.step({ cpl: 3, instructions: 1, cycles: 10 })).not.toBeNull();
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n);
    cpu.step({ cpl: 3, cycles: 10 });
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(20n);
  });
});

describe('FREEZE_PERFMON_ON_PMI, v2/v3: GLOBAL_CTRL cleared (§4.4, §4.5, D9)', () => {
  it.each([2, 3])('v%i clears GLOBAL_CTRL; counting resumes when software rewrites it', (v) => {
    const cpu = freezeArmed(part({ v, nGP: 2, caps: FW_WRITE }), ARCH_PERFMON_EVENTSEL_INT);
    expect(cpu.step({ cpl: 3, instructions: 1, cycles: 10 })).not.toBeNull();
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(0n);
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0x1n); // no CTR_FRZ before v4
    cpu.step({ cpl: 3, instructions: 5, cycles: 20 });
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(10n);
    expect(rd(cpu, MSR_CORE_PERF_FIXED_CTR0)).toBe(1n);
    wr(cpu, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0003n);
    cpu.step({ cpl: 3, instructions: 5, cycles: 20 });
    expect(rd(cpu, MSR_IA32_PERFCTR0 + 1)).toBe(30n);
    expect(rd(cpu, MSR_CORE_PERF_FIXED_CTR0)).toBe(6n);
  });

  it('v2 does not freeze without a PMI-enabled overflow (D6)', () => {
    const cpu = new Cpu(part({ v: 2, nGP: 2, caps: FW_WRITE }));
    wr(cpu, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI);
    wr(cpu, MSR_IA32_PMC0, ALL_ONES_48);
    wr(cpu, MSR_P6_EVNTSEL0, COUNT_INSTR);
    cpu.step(instr(1));
    expect(rd(cpu, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(0x3n);
  });

  it('v1 has no FREEZE_PERFMON_ON_PMI to set (D37)', () => {
    const cpu = new Cpu(part({ v: 1, nGP: 2, caps: FW_WRITE }));
    expect(cpu.wrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_FREEZE_PERFMON_ON_PMI).ok).toBe(false);
    expect(cpu.wrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR).ok).toBe(true);
  });
});
