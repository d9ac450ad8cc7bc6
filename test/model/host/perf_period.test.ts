/**
 * How host perf presets and folds a counter (arch/x86/events/core.c x86_perf_event_set_period and
 * x86_perf_event_update, intel/core.c intel_pmu_save_and_restart and intel_pmu_enable_fixed): the
 * far-behind skip, the least period of 2, the max_period cap with and without full-width writes,
 * a PMI whose period has not elapsed, and where each counter lives.
 *
 * The generated host users sample with periods far above one unit's events, so none of them falls
 * a whole period behind or runs a period of 1; these tests state the kernel's presets instead.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import {
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../../model/hw/msr/global.js';
import { DecisionLog, recording } from '../../../model/hw/relied.js';
import { attr, type PerfEvent } from '../../../model/host/types.js';
import { HostKernel } from '../../../model/host/perf.js';
import { CYCLES, ev, INSTRUCTIONS, LLC_REFERENCES, NO_LBR, rd, runGuest, units, work } from './util.js';

const W48 = 1n << 48n;
/** x86_pmu.max_period with full-width writes: cntval_mask >> 1. */
const MAX_FW = (1n << 47n) - 1n;

/** A sampling LLC-references event on CPU 0 of a fresh Skylake host (it takes GP counter 0). */
function sampler(period: bigint): { k: HostKernel; e: PerfEvent } {
  const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
  const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: period }), { cpu: 0 }));
  expect(e.hw_idx).toBe(0);
  return { k, e };
}

const llc = (n: number) => work(0, 1, 1, n);

describe('x86_perf_event_set_period at the PMI', () => {
  it('exactly one period: left 0 goes up by a period, and the period elapsed', () => {
    const { k, e } = sampler(10n);
    expect(k.runHost(0, [llc(10)])).toBe(1);
    expect(e.samples).toHaveLength(1);
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe(W48 - 10n);
  });

  it('a whole period behind (left == -period) skips forward to one period, not to left + period', () => {
    const { k, e } = sampler(10n);
    expect(k.runHost(0, [llc(20)])).toBe(1);
    // "If we are way outside a reasonable range then just skip forward": left = period.
    expect(e.samples).toHaveLength(1);
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe(W48 - 10n);
    expect(k.perf_event_read_value(e)).toBe(20n);
  });

  it('more than a period behind also skips forward to one period', () => {
    const { k, e } = sampler(10n);
    expect(k.runHost(0, [llc(35)])).toBe(1);
    expect(e.samples).toHaveLength(1);
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe(W48 - 10n);
  });

  it('less than a period behind: left + period, run as 2 when 1 is left, and period_left keeps the 1', () => {
    const { k, e } = sampler(10n);
    expect(k.runHost(0, [llc(19)])).toBe(1);
    // left = 10 - 19 = -9, + 10 = 1: "certain CPUs don't like it if just 1 event is left", so -2 is programmed.
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe(W48 - 2n);
    expect(k.runHost(0, [llc(1)])).toBe(0);
    expect(k.runHost(0, [llc(1)])).toBe(1);
    // period_left was 1, not 2: 1 - 2 = -1, + 10 = 9.
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe(W48 - 9n);
    expect(e.samples).toHaveLength(2);
  });

  it('a period of 1 is run as 2 from the first start', () => {
    const { k, e } = sampler(1n);
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe(W48 - 2n);
    expect(k.runHost(0, units(4, llc(1)))).toBe(2);
    expect(e.samples).toHaveLength(2);
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe(W48 - 2n);
  });

  it('a period of 2 is programmed as it is', () => {
    const { k } = sampler(2n);
    expect(rd(k.pcpu(0).hw, MSR_IA32_PMC0)).toBe(W48 - 2n);
    expect(k.runHost(0, [llc(1)])).toBe(0);
    expect(k.runHost(0, [llc(1)])).toBe(1);
  });

  it('a period above max_period runs in max_period steps; only the step that ends the period samples', () => {
    const { k, e } = sampler(W48);
    const hw = k.pcpu(0).hw;
    expect(rd(hw, MSR_IA32_PMC0)).toBe(W48 - MAX_FW);
    expect(k.runHost(0, [llc(Number(MAX_FW))])).toBe(1);
    // period_left = 2^48 - (2^47 - 1) = 2^47 + 1 > 0: nothing elapsed, the next step is capped again.
    expect(e.samples).toEqual([]);
    expect(rd(hw, MSR_IA32_PMC0)).toBe(W48 - MAX_FW);
    expect(k.runHost(0, [llc(Number(MAX_FW))])).toBe(1);
    expect(e.samples).toEqual([]);
    expect(rd(hw, MSR_IA32_PMC0)).toBe(W48 - 2n); // period_left 2
    expect(k.runHost(0, [llc(2)])).toBe(1);
    expect(e.samples).toHaveLength(1);
    expect(k.perf_event_read_value(e)).toBe(W48);
  });

  it('a status bit whose period has not elapsed folds and re-arms the rest of the period, without a sample', () => {
    const { k, e } = sampler(10n);
    const hw = k.pcpu(0).hw;
    k.runHost(0, units(3, llc(1)));
    expect(hw.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 1n).ok).toBe(true);
    expect(k.intel_pmu_handle_irq(0)).toBe(true);
    // intel_pmu_save_and_restart: x86_perf_event_set_period returned 0, so handle_pmi_common takes no sample.
    expect(e.samples).toEqual([]);
    expect(rd(hw, MSR_IA32_PMC0)).toBe(W48 - 7n);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    expect(k.perf_event_read_value(e)).toBe(3n);
    expect(k.runHost(0, units(7, llc(1)))).toBe(1);
    expect(e.samples).toHaveLength(1);
  });
  it('the fold across the wrap is where decision H9 (each counter masked with its own width) decides', () => {
    const { k, e } = sampler(10n);
    const atPmi = new DecisionLog();
    recording(atPmi, () => k.runHost(0, [llc(10)]));
    expect(atPmi.has('H9')).toBe(true);
    k.runHost(0, [llc(3)]);
    const atRead = new DecisionLog();
    recording(atRead, () => expect(k.perf_event_read_value(e)).toBe(13n));
    expect(atRead.has('H9')).toBe(false);
  });
});

describe('max_period and the counter MSR without full-width writes', () => {
  it('a counting event is preset to -(2^31 - 1) through the legacy alias', () => {
    const k = new HostKernel({ profile: NO_LBR, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    expect(e.hw_idx).toBe(0);
    expect(k.x86_pmu_event_addr(0)).toBe(MSR_IA32_PERFCTR0);
    expect(rd(k.pcpu(0).hw, MSR_IA32_PERFCTR0)).toBe(W48 - ((1n << 31n) - 1n));
    // The PMI at 2^31 - 1 events folds them; the count runs on past it.
    expect(k.runHost(0, [llc(2 ** 31 - 1)])).toBe(1);
    expect(e.samples).toEqual([]);
    k.runHost(0, [llc(5)]);
    expect(k.perf_event_read_value(e)).toBe((1n << 31n) + 4n);
  });

  it('a sampling period above 2^31 - 1 runs in steps of 2^31 - 1', () => {
    const k = new HostKernel({ profile: NO_LBR, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1n << 32n }), { cpu: 0 }));
    expect(rd(k.pcpu(0).hw, MSR_IA32_PERFCTR0)).toBe(W48 - ((1n << 31n) - 1n));
    expect(k.runHost(0, [llc(2 ** 31 - 1), llc(2 ** 31 - 1)])).toBe(2);
    expect(e.samples).toEqual([]);
    expect(rd(k.pcpu(0).hw, MSR_IA32_PERFCTR0)).toBe(W48 - 2n);
    expect(k.runHost(0, [llc(2)])).toBe(1);
    expect(e.samples).toHaveLength(1);
  });
});

describe('where each counter lives (hwc->event_base, config_base, event_base_rdpmc)', () => {
  it('GP counters at IA32_PMCx with full-width writes, fixed counters at FIXED_CTRj and RDPMC 1 << 30 | j', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    expect([k.x86_pmu_event_addr(0), k.x86_pmu_event_addr(3)]).toEqual([MSR_IA32_PMC0, MSR_IA32_PMC0 + 3]);
    expect([k.x86_pmu_event_addr(32), k.x86_pmu_event_addr(34)]).toEqual([
      MSR_CORE_PERF_FIXED_CTR0,
      MSR_CORE_PERF_FIXED_CTR0 + 2,
    ]);
    expect([k.x86_pmu_config_addr(2), k.x86_pmu_config_addr(33)]).toEqual([
      MSR_P6_EVNTSEL0 + 2,
      MSR_CORE_PERF_FIXED_CTR_CTRL,
    ]);
    expect([k.x86_pmu_rdpmc_index(1), k.x86_pmu_rdpmc_index(32), k.x86_pmu_rdpmc_index(34)]).toEqual([
      1, 0x4000_0000, 0x4000_0002,
    ]);
  });
});

describe('intel_pmu_enable_fixed and intel_pmu_disable_fixed', () => {
  it("each fixed counter's field: PMI always, OS and USR as the event asks; stopping clears only its field", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const hw = k.pcpu(0).hw;
    const user = ev(k.perf_event_open(attr({ config: INSTRUCTIONS, exclude_kernel: true }), { cpu: 0 }));
    const kernel = ev(k.perf_event_open(attr({ config: CYCLES, exclude_user: true }), { cpu: 0 }));
    expect([user.hw_idx, kernel.hw_idx]).toEqual([32, 33]);
    expect(rd(hw, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(0x9an); // fixed 1: PMI|OS; fixed 0: PMI|USR
    k.perf_event_disable(user);
    expect(rd(hw, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(0x90n);
    const both = ev(k.perf_event_open(attr({ config: INSTRUCTIONS }), { cpu: 0 }));
    expect(both.hw_idx).toBe(32);
    expect(rd(hw, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(0x9bn);
    // x86_pmu_disable_event: a GP counter's select is written back without EN.
    const gp = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    const sel = rd(hw, MSR_P6_EVNTSEL0);
    expect(sel & (1n << 22n)).toBe(1n << 22n);
    k.perf_event_disable(gp);
    expect(rd(hw, MSR_P6_EVNTSEL0)).toBe(sel & ~(1n << 22n));
  });
});

describe('__intel_pmu_enable_all at the end of a PMI taken in guest mode (H2)', () => {
  it('GLOBAL_CTRL gets the guest value: exclude_guest counters off, and the LBRs stay as they were', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const hw = k.pcpu(0).hw;
    const guestOnly = ev(
      k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 2n, exclude_host: true }), { cpu: 0 }),
    );
    const hostOnly = ev(k.perf_event_open(attr({ config: CYCLES, exclude_guest: true }), { cpu: 0 }));
    expect([guestOnly.hw_idx, hostOnly.hw_idx]).toEqual([0, 33]);
    const msrs = k.perf_guest_get_msrs(0);
    expect(msrs).toEqual({ host: 1n << 33n, guest: 1n });
    expect(runGuest(hw, msrs.guest, units(2, llc(1)), () => k.intel_pmu_handle_irq(0))).toBe(1);
    expect(guestOnly.samples).toEqual([{ cpu: 0, inGuest: true }]);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(1n);
  });
});
