/**
 * kvm-unit-tests x86/pmu.c (kvm-vpmu.md §3.2) against the emulated vPMU on Skylake pCPUs, with
 * the guest QEMU's "-cpu max" gives: KVM's leaf 0xA (v2, 4 GP, 3 fixed), PDCM, the supported
 * PERF_CAPABILITIES. check_counters() runs once with the legacy IA32_PERFCTRx aliases and once
 * with the full-width IA32_PMCx aliases, as pmu.c's main() does.
 *
 * kvm-unit-tests asserts ranges because hardware over-counts around VM-exits. Here counting is
 * exact, so the tests add up what upstream KVM counts: the guest's own work units, plus one
 * instruction for every intercepted WRMSR/RDMSR/RDPMC that KVM skips while the counter is
 * enabled (kvm_skip_emulated_instruction → kvm_pmu_instruction_retired, at CPL 0, after the
 * instruction took effect). kut's start_event()/stop_event() are spelled out below so the
 * count of those instructions can be read off.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import {
  createVcpu,
  EVENTSEL_CMASK_SHIFT,
  INSTRUCTIONS,
  isGp,
  kvmSupportedPerfCaps,
  PC_VECTOR,
  val,
  work,
  type World,
} from './util.js';
import { APIC_LVT_MASKED, X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  INTEL_PMC_RDPMC_FAST,
  INTEL_PMC_FIXED_RDPMC_BASE,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../../model/hw/msr/global.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';

const NR_GP = 4;
const NR_FIXED = 3;
const WIDTH = 48;
const MASK = (1n << BigInt(WIDTH)) - 1n;
/** The loop the counters measure: 10 units of 10 instructions at CPL 0. */
const LOOP = work(10, 10);
const LOOP_INSNS = 100;

interface Cnt {
  ctr: number;
  config: bigint;
  count: bigint;
}

/** A kvm-unit-tests guest: pmu.c's helpers over the vCPU's guest instructions. */
class KutGuest {
  /** PMIs delivered during guest runs, not yet seen by check_irq. */
  private runPmis = 0;
  constructor(
    readonly w: World,
    readonly gpBase: number,
  ) {}
  get v() {
    return this.w.vcpu;
  }
  wrmsr(msr: number, x: bigint): void {
    val(this.v.guestWrmsr(msr, x), `WRMSR 0x${msr.toString(16)} <- 0x${x.toString(16)}`);
  }
  rdmsr(msr: number): bigint {
    return val(this.v.guestRdmsr(msr), `RDMSR 0x${msr.toString(16)}`);
  }
  rdpmc(ecx: number): bigint {
    return val(this.v.guestRdpmc(ecx >>> 0, 0), `RDPMC 0x${(ecx >>> 0).toString(16)}`);
  }
  isGpCounter(c: Cnt): boolean {
    return c.ctr < MSR_CORE_PERF_FIXED_CTR0 || c.ctr >= MSR_IA32_PMC0 || c.ctr === this.gpBase;
  }
  globalIdx(c: Cnt): number {
    if (c.ctr >= MSR_CORE_PERF_FIXED_CTR0 && c.ctr < MSR_CORE_PERF_FIXED_CTR0 + NR_FIXED)
      return 32 + c.ctr - MSR_CORE_PERF_FIXED_CTR0;
    return c.ctr - this.gpBase;
  }
  /** __start_event: counter, selector, global enable, LVTPC = PC_VECTOR. 2 counted instructions. */
  start(c: Cnt, count: bigint): void {
    c.count = count;
    this.wrmsr(c.ctr, count);
    const idx = this.globalIdx(c);
    if (idx < 32) {
      this.wrmsr(MSR_P6_EVNTSEL0 + idx, c.config | ARCH_PERFMON_EVENTSEL_ENABLE);
    } else {
      const shift = BigInt(4 * (idx - 32));
      let nib = 0n;
      if ((c.config & ARCH_PERFMON_EVENTSEL_OS) !== 0n) nib |= 1n;
      if ((c.config & ARCH_PERFMON_EVENTSEL_USR) !== 0n) nib |= 2n;
      if ((c.config & ARCH_PERFMON_EVENTSEL_INT) !== 0n) nib |= 8n;
      const ctrl = this.rdmsr(MSR_CORE_PERF_FIXED_CTR_CTRL);
      this.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, (ctrl & ~(0xfn << shift)) | (nib << shift));
    }
    this.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, this.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL) | (1n << BigInt(idx))); // counted
    this.wrmsr(X2APIC_LVTPC, PC_VECTOR); // counted
  }
  /** __stop_event: global disable (its RDMSR is counted), selector off, read the counter. */
  stop(c: Cnt): void {
    const idx = this.globalIdx(c);
    this.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, this.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL) & ~(1n << BigInt(idx)));
    if (idx < 32) {
      this.wrmsr(MSR_P6_EVNTSEL0 + idx, c.config & ~ARCH_PERFMON_EVENTSEL_ENABLE);
    } else {
      const shift = BigInt(4 * (idx - 32));
      this.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, this.rdmsr(MSR_CORE_PERF_FIXED_CTR_CTRL) & ~(0xfn << shift));
    }
    c.count = this.rdmsr(c.ctr);
  }
  measure(c: Cnt, count: bigint): void {
    this.start(c, count);
    this.runPmis += this.v.guestRun(LOOP).length;
    this.stop(c);
  }
  /** check_irq: interrupts are enabled only here; the handler unmasks LVTPC and EOIs. */
  checkIrq(): number {
    const pmis = this.runPmis + this.v.drainPmis().length;
    this.runPmis = 0;
    if (pmis > 0) {
      const lvtpc = this.rdmsr(X2APIC_LVTPC);
      expect(lvtpc & APIC_LVT_MASKED, 'KVM masked LVTPC when it delivered the PMI (a16eb25b09c0)').toBe(
        APIC_LVT_MASKED,
      );
      this.wrmsr(X2APIC_LVTPC, lvtpc & ~APIC_LVT_MASKED);
    }
    return pmis;
  }
}
/** Counted per measure(): GLOBAL_CTRL enable, LVTPC write, the disabling RDMSR of GLOBAL_CTRL. */
const MEASURE_OVERHEAD = 3;

function kutGuest(gpBase: number): KutGuest {
  const w = createVcpu({ profile: SKYLAKE, perfCaps: kvmSupportedPerfCaps(SKYLAKE) });
  const g = new KutGuest(w, gpBase);
  g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n); // main(): start with everything off
  expect(isGp(w.vcpu.guestRdpmc(64, 0)), 'RDPMC(64) #GPs').toBe(true);
  return g;
}

const INSNS_CFG = ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTRUCTIONS;
const BASES = [
  ['legacy IA32_PERFCTRx', MSR_IA32_PERFCTR0],
  ['full-width IA32_PMCx', MSR_IA32_PMC0],
] as const;

describe.each(BASES)('kvm-unit-tests pmu: check_counters with %s', (_name, base) => {
  const fullWrites = base === MSR_IA32_PMC0;

  it('check_counter_overflow: one more event overflows each GP counter and FC0; status bit; OVF_CTRL clears it; PMI iff INT', () => {
    const g = kutGuest(base);
    const cnt: Cnt = { ctr: base, config: INSNS_CFG, count: 0n };
    g.measure(cnt, 0n);
    expect(cnt.count, 'measure_for_overflow: the loop plus start/stop').toBe(BigInt(LOOP_INSNS + MEASURE_OVERHEAD));
    const preset = (1n - cnt.count) & ((1n << 64n) - 1n);
    expect(g.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS), 'no overflow yet').toBe(0n);
    g.checkIrq();

    // kut walks nr_gp + 1 counters, the last FC0; FC0 is also run with INT so both PMI cases are seen.
    for (let i = 0; i < NR_GP + 2; i++) {
      const fixed = i >= NR_GP;
      cnt.ctr = fixed ? MSR_CORE_PERF_FIXED_CTR0 : base + i;
      cnt.config = i % 2 === 1 ? INSNS_CFG | ARCH_PERFMON_EVENTSEL_INT : INSNS_CFG;
      let count = preset;
      if (fullWrites || fixed) count &= MASK;
      const idx = g.globalIdx(cnt);
      g.measure(cnt, count);
      expect(cnt.count, `cntr-${i}: wrapped to exactly 1`).toBe(1n);

      let status = g.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS);
      expect(status & (1n << BigInt(idx)), `status-${i}: GLOBAL_STATUS bit ${idx}`).not.toBe(0n);
      g.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, status);
      status = g.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS);
      expect(status & (1n << BigInt(idx)), `status clear-${i}`).toBe(0n);
      expect(g.checkIrq(), `irq-${i}: one PMI iff INT`).toBe(i % 2);
    }
  });

  it('check_gp_counter_cmask: CMASK=2 counts units with ≥ 2 instructions, so fewer than the instructions', () => {
    const g = kutGuest(base);
    const cnt: Cnt = { ctr: base, config: INSNS_CFG | (2n << EVENTSEL_CMASK_SHIFT), count: 0n };
    g.measure(cnt, 0n);
    // Hardware: one per 10-instruction unit. KVM's emulated instructions ignore CMASK
    // (pmc_is_event_match compares event select and umask only).
    expect(cnt.count).toBe(BigInt(LOOP.length + MEASURE_OVERHEAD));
    expect(cnt.count < BigInt(LOOP_INSNS)).toBe(true);
  });

  it('check_running_counter_wrmsr: WRMSR 0 resets a running counter; WRMSR -1 overflows it', () => {
    const g = kutGuest(base);
    const evt: Cnt = { ctr: base, config: INSNS_CFG, count: 0n };
    g.start(evt, 0n);
    g.v.guestRun(LOOP);
    g.wrmsr(base, 0n); // counted after it took effect: 1
    g.stop(evt); // its RDMSR of GLOBAL_CTRL: 2
    expect(evt.count, 'cntr').toBe(2n);

    g.wrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, g.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS));
    g.start(evt, 0n);
    let count = (1n << 64n) - 1n;
    if (fullWrites) count &= MASK;
    g.wrmsr(base, count);
    g.v.guestRun(LOOP);
    g.stop(evt);
    expect(g.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS) & 1n, 'status msr bit').toBe(1n);
  });

  it('check_rdpmc: RDPMC == RDMSR for every counter; fast RDPMC #GPs', () => {
    const g = kutGuest(base);
    for (const v of [0xff0123456789n, 0xff0189abcdefn]) {
      for (let i = 0; i < NR_GP; i++) {
        // Without full-width writes only the low 32 bits are writable, sign-extended.
        let x = fullWrites ? v : BigInt.asUintN(64, BigInt.asIntN(32, v));
        x &= MASK;
        g.wrmsr(base + i, fullWrites ? v & MASK : v);
        expect(g.rdpmc(i), `cntr-${i} 0x${v.toString(16)}`).toBe(x);
        expect(g.rdmsr(base + i), `cntr-${i} RDMSR`).toBe(x);
        expect(isGp(g.v.guestRdpmc((i | INTEL_PMC_RDPMC_FAST) >>> 0, 0)), `fast-${i}`).toBe(true);
      }
      for (let i = 0; i < NR_FIXED; i++) {
        const x = v & MASK;
        g.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + i, x);
        expect(g.rdpmc(i | INTEL_PMC_FIXED_RDPMC_BASE), `fixed cntr-${i}`).toBe(x);
        expect(g.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + i)).toBe(x);
        expect(
          isGp(g.v.guestRdpmc((i | INTEL_PMC_FIXED_RDPMC_BASE | INTEL_PMC_RDPMC_FAST) >>> 0, 0)),
          `fixed fast-${i}`,
        ).toBe(true);
      }
    }
  });

  it('check_counters_many: all GP and fixed counters count at once', () => {
    const g = kutGuest(base);
    for (let i = 0; i < NR_GP; i++) {
      g.wrmsr(base + i, 0n);
      g.wrmsr(MSR_P6_EVNTSEL0 + i, INSNS_CFG | ARCH_PERFMON_EVENTSEL_ENABLE);
    }
    for (let i = 0; i < NR_FIXED; i++) g.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + i, 0n);
    g.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x333n);
    g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0x7_0000_000fn); // counted by the instruction counters
    g.v.guestRun(LOOP);
    g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n); // not counted: everything is off
    for (let i = 0; i < NR_GP; i++) expect(g.rdmsr(base + i), `GP ${i}`).toBe(BigInt(LOOP_INSNS + 1));
    expect(g.rdmsr(MSR_CORE_PERF_FIXED_CTR0), 'FC0').toBe(BigInt(LOOP_INSNS + 1));
    expect(g.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 1), 'FC1 cycles').not.toBe(0n);
  });
});

describe('kvm-unit-tests pmu: emulated instructions', () => {
  it('check_emulated_instr: KVM-skipped instructions count exactly, the enabling WRMSR to GLOBAL_CTRL included, and overflow', () => {
    for (const int of [false, true]) {
      const g = kutGuest(MSR_IA32_PMC0);
      const K = 22n;
      g.wrmsr(MSR_P6_EVNTSEL0 + 1, INSNS_CFG | ARCH_PERFMON_EVENTSEL_ENABLE | (int ? ARCH_PERFMON_EVENTSEL_INT : 0n));
      g.wrmsr(MSR_IA32_PMC0 + 1, -K & MASK);
      g.wrmsr(X2APIC_LVTPC, PC_VECTOR);
      g.v.drainPmis();
      g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0b10n); // 1: counts itself
      for (let k = 0; k < 20; k++) g.rdmsr(MSR_IA32_PERF_CAPABILITIES); // 2..21
      g.rdpmc(1); // 22: the counter wraps to 0
      g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n); // not counted: disabled by this very write
      expect(g.rdmsr(MSR_IA32_PMC0 + 1), `INT=${int}: -22 + 22 emulated instructions`).toBe(0n);
      expect(g.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS) & 0b10n, `INT=${int}: instruction counter overflow`).toBe(0b10n);
      expect(g.checkIrq(), `INT=${int}: PMI for an emulated overflow iff INT`).toBe(int ? 1 : 0);
    }
  });

  it('emulated instructions count at CPL 0 only for counters with OS set; faulting instructions are not skipped', () => {
    const g = kutGuest(MSR_IA32_PMC0);
    g.wrmsr(MSR_P6_EVNTSEL0 + 0, ARCH_PERFMON_EVENTSEL_USR | INSTRUCTIONS | ARCH_PERFMON_EVENTSEL_ENABLE);
    g.wrmsr(MSR_P6_EVNTSEL0 + 1, ARCH_PERFMON_EVENTSEL_OS | INSTRUCTIONS | ARCH_PERFMON_EVENTSEL_ENABLE);
    g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0b11n); // OS counter: 1
    g.rdmsr(MSR_IA32_PERF_CAPABILITIES); // OS counter: 2
    expect(isGp(g.v.guestRdpmc(0, 3)), 'RDPMC at CPL 3 with CR4.PCE = 0 #GPs').toBe(true); // not skipped
    expect(isGp(g.v.guestWrmsr(MSR_IA32_PMC0 + 7, 0n)), 'WRMSR to an absent counter #GPs').toBe(true); // not skipped
    g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(g.rdmsr(MSR_IA32_PMC0), 'USR-only counter').toBe(0n);
    expect(g.rdmsr(MSR_IA32_PMC0 + 1), 'OS-only counter').toBe(2n);
  });
});

describe('kvm-unit-tests pmu: check_gp_counters_write_width', () => {
  it('legacy aliases keep the (sign-extended) low 32 bits; full-width aliases keep the counter width; over-width #GPs', () => {
    const g = kutGuest(MSR_IA32_PMC0);
    const val64 = 0xffffff0123456789n;
    const val32 = val64 & 0xffff_ffffn;
    const valMax = val64 & MASK;
    for (let i = 0; i < NR_GP; i++) {
      for (const x of [val32, valMax, val64]) {
        g.wrmsr(MSR_IA32_PERFCTR0 + i, x);
        expect(g.rdmsr(MSR_IA32_PERFCTR0 + i), `PERFCTR${i} <- 0x${x.toString(16)}`).toBe(val32);
        expect(g.rdmsr(MSR_IA32_PMC0 + i)).toBe(val32);
      }
    }
    for (let i = 0; i < NR_GP; i++) {
      g.wrmsr(MSR_IA32_PMC0 + i, val32);
      expect(g.rdmsr(MSR_IA32_PMC0 + i)).toBe(val32);
      expect(g.rdmsr(MSR_IA32_PERFCTR0 + i)).toBe(val32);
      g.wrmsr(MSR_IA32_PMC0 + i, valMax);
      expect(g.rdmsr(MSR_IA32_PMC0 + i)).toBe(valMax);
      expect(g.rdmsr(MSR_IA32_PERFCTR0 + i)).toBe(valMax);
      expect(isGp(g.v.guestWrmsr(MSR_IA32_PMC0 + i, val64)), `PMC${i} over-width #GP`).toBe(true);
      expect(g.rdmsr(MSR_IA32_PMC0 + i), 'a faulting write changes nothing').toBe(valMax);
    }
  });

  it('a guest write to a legacy alias sign-extends bit 31; a host-initiated one does not', () => {
    const g = kutGuest(MSR_IA32_PMC0);
    g.wrmsr(MSR_IA32_PERFCTR0, 0x8000_0000n);
    expect(g.rdmsr(MSR_IA32_PERFCTR0)).toBe(0xffff_8000_0000n);
    expect(g.rdmsr(MSR_IA32_PMC0)).toBe(0xffff_8000_0000n);
    expect(g.v.hostSetMsr(MSR_IA32_PERFCTR0 + 1, 0x8000_0000n).ok).toBe(true);
    expect(g.rdmsr(MSR_IA32_PERFCTR0 + 1), 'host writes are not sign-extended').toBe(0x8000_0000n);
  });
});
