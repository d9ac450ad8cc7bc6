/**
 * What perf users expect of a counting or sampling event on Intel: it counts the work it was
 * asked to, at the privilege levels it was asked to, follows its task across CPUs, and the
 * kernel interfaces KVM uses (read, pause, period, release) behave as in kernel/events/core.c.
 */
import { describe, expect, it } from 'vitest';
import { defineProfile, leaf0aEax, leaf0aEdx, perfCaps } from '../../../model/hw/profile.js';
import { ModelError } from '../../../model/hw/errors.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { attr } from '../../../model/host/types.js';
import { HostKernel } from '../../../model/host/perf.js';
import { CYCLES, ev, exitGuest, INSTRUCTIONS, LLC_REFERENCES, rd, runGuest, units, work } from './util.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
} from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';

describe('boot', () => {
  it('points LVTPC at NMI delivery, unmasked, on every pCPU, and enables no counter', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 3 });
    for (let c = 0; c < 3; c++) {
      expect(rd(k.pcpu(c).hw, X2APIC_LVTPC)).toBe(0x400n);
      expect(rd(k.pcpu(c).hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(0n);
      expect(k.pcpu(c).currentTask).toBeNull();
    }
  });

  it('refuses a PMU without GLOBAL_CTRL and a CPU count that is not positive', () => {
    const v1 = defineProfile({
      name: 'v1',
      family: 6,
      model: 0xf,
      leaf0a: { eax: leaf0aEax(1, 2, 40, 7), ebx: 0, ecx: 0, edx: 0 },
      pdcm: false,
      perfCapabilities: 0n,
    });
    expect(() => new HostKernel({ profile: v1, cpus: 1 })).toThrow(ModelError);
    expect(() => new HostKernel({ profile: SKYLAKE, cpus: 0 })).toThrow(ModelError);
  });
});

describe('a counting event', () => {
  it('counts host work on its CPU, and the hardware is programmed the way x86_pmu_enable does', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    expect(e.state).toBe('ACTIVE');
    expect(e.hw_idx).toBe(0);
    const hw = k.pcpu(0).hw;
    expect(rd(hw, MSR_P6_EVNTSEL0)).toBe(
      LLC_REFERENCES |
        ARCH_PERFMON_EVENTSEL_USR |
        ARCH_PERFMON_EVENTSEL_OS |
        ARCH_PERFMON_EVENTSEL_INT |
        ARCH_PERFMON_EVENTSEL_ENABLE,
    ); // INT even for counting
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(1n);
    k.runHost(0, units(10, work(0, 5, 5, 7)));
    k.runHost(1, units(10, work(0, 5, 5, 7))); // another CPU: not counted
    expect(k.perf_event_read_value(e)).toBe(70n);
  });

  it('exclude_kernel counts only CPL 3, exclude_user only CPL 0', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const user = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, exclude_kernel: true }), { cpu: 0 }));
    const kern = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, exclude_user: true }), { cpu: 0 }));
    const fixedUser = ev(k.perf_event_open(attr({ config: INSTRUCTIONS, exclude_kernel: true }), { cpu: 0 }));
    const hw = k.pcpu(0).hw;
    expect(rd(hw, MSR_P6_EVNTSEL0) & (ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_OS)).toBe(
      ARCH_PERFMON_EVENTSEL_USR,
    );
    expect(rd(hw, MSR_P6_EVNTSEL0 + 1) & (ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_OS)).toBe(
      ARCH_PERFMON_EVENTSEL_OS,
    );
    expect(rd(hw, MSR_CORE_PERF_FIXED_CTR_CTRL) & 0xfn).toBe(0xan); // PMI | USR on fixed counter 0
    k.runHost(0, [work(3, 10, 10, 1), work(0, 20, 20, 100), work(3, 30, 30, 1000)]);
    expect(k.perf_event_read_value(user)).toBe(1001n);
    expect(k.perf_event_read_value(kern)).toBe(100n);
    expect(k.perf_event_read_value(fixedUser)).toBe(40n);
  });

  it('folds a counter that wraps through the PMI without taking a sample (max_period without full-width writes)', () => {
    const noFw = defineProfile({
      ...SKYLAKE.spec,
      name: 'skylake-nofw',
      perfCapabilities: perfCaps({ lbrFmt: 5, pebsTrap: true, pebsArchReg: true, pebsRecFmt: 3 }),
    });
    const k = new HostKernel({ profile: noFw, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    // Preset to -(2^31 - 1) through the legacy alias, so 3e9 events wrap the 48-bit counter.
    expect(rd(k.pcpu(0).hw, MSR_IA32_PERFCTR0)).toBe((1n << 48n) - ((1n << 31n) - 1n));
    expect(k.runHost(0, [work(0, 1, 1, 3_000_000_000)])).toBe(1);
    expect(e.samples).toHaveLength(0);
    expect(k.perf_event_read_value(e)).toBe(3_000_000_000n);
    k.runHost(0, [work(0, 1, 1, 5)]);
    expect(k.perf_event_read_value(e)).toBe(3_000_000_005n);
  });
});

describe('a sampling event', () => {
  it('takes a sample every period of host work, with inGuest false', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: CYCLES, sample_period: 100n }), { cpu: 0 }));
    expect(e.hw_idx).toBe(33); // fixed counter 1
    expect(k.runHost(0, units(55, work(0, 1, 10)))).toBe(5);
    expect(e.samples).toEqual(Array.from({ length: 5 }, () => ({ cpu: 0, inGuest: false })));
    expect(k.perf_event_read_value(e)).toBe(550n);
  });

  it('calls its overflow handler in NMI context with the sample', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const seen: number[] = [];
    const e = ev(
      k.perf_event_create_kernel_counter(attr({ config: LLC_REFERENCES, sample_period: 3n }), { cpu: 0 }, (x, s) =>
        seen.push(x.id, s.cpu),
      ),
    );
    k.runHost(0, units(7, work(0, 1, 1, 1)));
    expect(seen).toEqual([e.id, 0, e.id, 0]);
  });

  it('marks samples taken in guest mode, and an exclude_guest event does not count there', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const all = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 10n }), { cpu: 0 }));
    const hostOnly = ev(
      k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 10n, exclude_guest: true }), { cpu: 0 }),
    );
    const hw = k.pcpu(0).hw;
    const msrs = k.perf_guest_get_msrs(0);
    const pmis = runGuest(hw, msrs.guest, units(20, work(3, 1, 1, 1)), () => k.intel_pmu_handle_irq(0));
    expect(pmis).toBe(2);
    expect(rd(hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(msrs.guest); // the handler re-enabled for the guest (H2)
    exitGuest(hw, msrs.host);
    k.runHost(0, units(10, work(3, 1, 1, 1)));
    expect(all.samples.map((s) => s.inGuest)).toEqual([true, true, false]);
    expect(hostOnly.samples.map((s) => s.inGuest)).toEqual([false]);
    expect(k.perf_event_read_value(all)).toBe(30n);
    expect(k.perf_event_read_value(hostOnly)).toBe(10n);
  });

  it('asks registered guest-info callbacks whether the NMI came from a guest', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 2n }), { cpu: 0 }));
    k.perf_register_guest_info_callbacks({ state: (cpu) => cpu === 0 });
    k.runHost(0, units(2, work(0, 1, 1, 1)));
    k.perf_unregister_guest_info_callbacks();
    k.runHost(0, units(2, work(0, 1, 1, 1)));
    expect(e.samples.map((s) => s.inGuest)).toEqual([true, false]);
  });
});

describe('a task event', () => {
  it('counts only while its task runs, and follows the task to another CPU', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const t = k.createTask('vcpu0');
    const e = ev(k.perf_event_create_kernel_counter(attr({ config: LLC_REFERENCES, pinned: true }), { task: t }));
    expect(e.state).toBe('INACTIVE');
    k.runHost(0, units(3, work(0, 1, 1, 100))); // before it runs
    k.context_switch(0, t);
    expect(e.state).toBe('ACTIVE');
    k.runHost(0, units(4, work(0, 1, 1, 5)));
    k.context_switch(0, null);
    expect(e.state).toBe('INACTIVE');
    expect(e.hw_idx).toBe(-1);
    expect(rd(k.pcpu(0).hw, MSR_P6_EVNTSEL0) & ARCH_PERFMON_EVENTSEL_ENABLE).toBe(0n); // the counter was stopped
    k.runHost(0, units(3, work(0, 1, 1, 100)));
    k.context_switch(1, t);
    expect(k.taskCpu(t)).toBe(1);
    k.runHost(1, units(6, work(0, 1, 1, 5)));
    expect(k.perf_event_read_value(e)).toBe(50n);
  });

  it('a task runs on one CPU at a time (H11)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const t = k.createTask('t');
    k.context_switch(0, t);
    expect(() => k.context_switch(1, t)).toThrow(ModelError);
  });
});

describe('the interfaces KVM uses', () => {
  it('read includes the live delta; pause stops counting and returns the count, reset zeroes it', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('vcpu');
    k.context_switch(0, t);
    const e = ev(
      k.perf_event_create_kernel_counter(attr({ config: LLC_REFERENCES, sample_period: 50n, pinned: true }), {
        task: t,
      }),
    );
    const hw = k.pcpu(0).hw;
    k.runHost(0, units(3, work(0, 1, 1, 10)));
    expect(k.perf_event_read_value(e)).toBe(30n);
    expect(k.perf_event_pause(e, false)).toBe(30n);
    expect(e.state).toBe('OFF');
    expect(rd(hw, MSR_P6_EVNTSEL0) & ARCH_PERFMON_EVENTSEL_ENABLE).toBe(0n);
    k.runHost(0, units(3, work(0, 1, 1, 10)));
    expect(k.perf_event_read_value(e)).toBe(30n);

    expect(k.perf_event_period(e, 20n)).toBe(true);
    expect(e.attr.sample_period).toBe(20n);
    k.perf_event_enable(e);
    expect(e.state).toBe('ACTIVE');
    expect(rd(hw, MSR_IA32_PMC0)).toBe((1n << 48n) - 20n); // a whole new period, full-width alias
    k.runHost(0, units(2, work(0, 1, 1, 10)));
    expect(e.samples).toHaveLength(1);
    expect(k.perf_event_pause(e, true)).toBe(50n);
    expect(k.perf_event_read_value(e)).toBe(0n);
  });

  it('perf_event_period restarts an active event and refuses counting events and bad periods', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const s = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1000n }), { cpu: 0 }));
    const c = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    k.runHost(0, [work(0, 1, 1, 7)]);
    expect(k.perf_event_period(s, 8n)).toBe(true);
    expect(k.perf_event_read_value(s)).toBe(7n); // folded before the restart
    k.runHost(0, [work(0, 1, 1, 8)]);
    expect(s.samples).toHaveLength(1);
    expect(k.perf_event_period(c, 8n)).toBe(false);
    expect(k.perf_event_period(s, 0n)).toBe(false);
    expect(k.perf_event_period(s, 1n << 63n)).toBe(false);
  });

  it('release frees the counter; the handle is then dead', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const held = [0, 1, 2, 3].map(() =>
      ev(k.perf_event_open(attr({ config: LLC_REFERENCES, pinned: true }), { cpu: 0 })),
    );
    const late = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, pinned: true }), { cpu: 0 }));
    expect(late.state).toBe('ERROR');
    k.perf_event_release_kernel(held[2]!);
    expect(late.state).toBe('ERROR'); // an ERROR event waits to be re-enabled
    k.perf_event_enable(late);
    expect(late.state).toBe('ACTIVE');
    // A new event sends x86_schedule_events down the slow path, which reassigns in order.
    expect([held[0]!.hw_idx, held[1]!.hw_idx, held[3]!.hw_idx, late.hw_idx]).toEqual([0, 1, 2, 3]);
    expect(() => k.perf_event_read_value(held[2]!)).toThrow(ModelError);
    expect(() => k.perf_event_enable(held[2]!)).toThrow(ModelError);
    expect(() => new HostKernel({ profile: SKYLAKE, cpus: 1 }).perf_event_disable(late)).toThrow(ModelError);
  });

  it('refuses work that programs a pCPU while it runs a guest (H2)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    k.pcpu(0).hw.mode = 'guest';
    expect(() => k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 })).toThrow(ModelError);
    expect(() => k.runHost(0, [])).toThrow(ModelError);
  });

  it('rejects targets that do not exist and periods perf rejects', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    expect(k.perf_event_open(attr({ config: CYCLES }), { cpu: 1 })).toHaveProperty('error');
    expect(k.perf_event_open(attr({ config: CYCLES }), { task: 99 })).toHaveProperty('error');
    expect(k.perf_event_open(attr({ config: CYCLES, sample_period: 1n << 63n }), { cpu: 0 })).toHaveProperty('error');
  });
});

describe('with fixed counters only partly enumerated', () => {
  it('uses the legacy counter alias and max_period 2^31-1 without full-width writes', () => {
    const p = defineProfile({
      name: 'two-fixed',
      family: 6,
      model: 0x3c,
      leaf0a: { eax: leaf0aEax(3, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(2, 48) },
      pdcm: false,
      perfCapabilities: 0n,
    });
    const k = new HostKernel({ profile: p, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, sample_period: 1n << 40n }), { cpu: 0 }));
    expect(rd(k.pcpu(0).hw, MSR_IA32_PERFCTR0)).toBe((1n << 48n) - ((1n << 31n) - 1n)); // capped at max_period
    k.runHost(0, [work(0, 1, 1, 2 ** 31)]);
    expect(e.samples).toHaveLength(0); // the period has not elapsed, only the hardware wrapped
    expect(k.perf_event_read_value(e)).toBe(2n ** 31n);
  });
});
