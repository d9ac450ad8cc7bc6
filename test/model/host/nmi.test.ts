/**
 * The PMI handler (intel_pmu_handle_irq) and the NMI watchdog (kernel/watchdog_perf.c): what a
 * handled, an unknown and a guest-mode NMI leave behind.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { attr } from '../../../model/host/types.js';
import { HostKernel, WATCHDOG_CONFIG, WATCHDOG_DEFAULT_PERIOD } from '../../../model/host/perf.js';
import { CYCLES, ev, exitGuest, LLC_REFERENCES, rd, runGuest, units, work } from './util.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';

describe('the NMI watchdog', () => {
  it('is a pinned cycles event on fixed counter 1 of every CPU that counts and samples host work', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2, nmiWatchdog: { period: 1000n } });
    const wd0 = k.watchdog(0)!;
    expect(wd0.attr).toMatchObject({ config: WATCHDOG_CONFIG, pinned: true, exclude_guest: false });
    expect([wd0.state, wd0.hw_idx, k.watchdog(1)!.hw_idx]).toEqual(['ACTIVE', 33, 33]);
    expect(k.runHost(0, units(100, work(0, 1, 25)))).toBe(2);
    expect(wd0.samples).toEqual([
      { cpu: 0, inGuest: false },
      { cpu: 0, inGuest: false },
    ]);
    expect(k.perf_event_read_value(wd0)).toBe(2500n);
    expect(k.perf_event_read_value(k.watchdog(1)!)).toBe(0n);
  });

  it('counts guest cycles too, and fires in guest mode', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1, nmiWatchdog: { period: 100n } });
    const msrs = k.perf_guest_get_msrs(0);
    expect(msrs.guest).toBe(1n << 33n);
    const hw = k.pcpu(0).hw;
    expect(runGuest(hw, msrs.guest, units(10, work(3, 1, 10)), () => k.intel_pmu_handle_irq(0))).toBe(1);
    exitGuest(hw, msrs.host);
    expect(k.watchdog(0)!.samples).toEqual([{ cpu: 0, inGuest: true }]);
  });

  it('uses a period of seconds by default, and is absent unless asked for', () => {
    expect(new HostKernel({ profile: SKYLAKE, cpus: 1, nmiWatchdog: true }).watchdog(0)!.attr.sample_period).toBe(
      WATCHDOG_DEFAULT_PERIOD,
    );
    expect(new HostKernel({ profile: SKYLAKE, cpus: 1 }).watchdog(0)).toBeNull();
  });

  it('takes fixed counter 1 away from a later cycles event, which falls back to a GP counter', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1, nmiWatchdog: true });
    expect(ev(k.perf_event_open(attr({ config: CYCLES }), { cpu: 0 })).hw_idx).toBe(0);
  });
});

describe('the PMI handler', () => {
  it('returns false for an NMI no counter raised, and still re-enables and unmasks', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    const hw = k.pcpu(0).hw;
    expect(hw.wrmsr(X2APIC_LVTPC, 0x1_0400n).ok).toBe(true); // masked, as after a delivery
    expect(k.intel_pmu_handle_irq(0)).toBe(false);
    expect(rd(hw, X2APIC_LVTPC)).toBe(0x400n);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(1n);
  });

  it('acks an overflow bit of a counter no event uses, and counts it as handled', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const hw = k.pcpu(0).hw;
    expect(hw.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 1n << 2n).ok).toBe(true);
    expect(k.intel_pmu_handle_irq(0)).toBe(true);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
  });

  it('leaves LVTPC unmasked after each handled PMI, so the next overflow is delivered', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1n }), { cpu: 0 }));
    // A period of 1 is programmed as 2 ("certain CPUs don't like it if just 1 event is left").
    expect(k.runHost(0, units(6, work(0, 1, 1, 1)))).toBe(3);
    expect(e.samples).toHaveLength(3);
    expect(rd(k.pcpu(0).hw, X2APIC_LVTPC)).toBe(0x400n);
  });
});
