/**
 * Counter scheduling as kernel/events/core.c (ctx_sched_in order, pinned → ERROR, flexible
 * rotation) and arch/x86/events/core.c (x86_schedule_events, fixed counters first) do it,
 * including seed 001: KVM's task-pinned exclude_host events lose to host cpu-pinned ones even
 * when the host events exclude the guest.
 */
import { describe, expect, it } from 'vitest';
import { defineProfile, leaf0aEax, leaf0aEdx } from '../../../model/hw/profile.js';
import { ICELAKE, SKYLAKE } from '../../../model/hw/profiles.js';
import { attr, type PerfEvent } from '../../../model/host/types.js';
import { HostKernel } from '../../../model/host/perf.js';
import {
  BRANCHES,
  CYCLES,
  errorOf,
  ev,
  INSTRUCTIONS,
  LLC_REFERENCES,
  rd,
  REF_TSC,
  SLOTS,
  units,
  work,
} from './util.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';

/** KVM's perf event for a guest counter (pmc_reprogram_counter): task-pinned, exclude_host. */
function kvmEvent(k: HostKernel, task: number, config: bigint): PerfEvent {
  return ev(
    k.perf_event_create_kernel_counter(attr({ config, pinned: true, exclude_host: true, sample_period: 1n << 40n }), {
      task,
    }),
  );
}

/** A host `perf stat -a` style event that stays out of guests. */
function hostPinned(k: HostKernel, cpu: number, config: bigint): PerfEvent {
  return ev(k.perf_event_open(attr({ config, pinned: true, exclude_guest: true }), { cpu }));
}

describe('seed 001: host cpu-pinned events against KVM task-pinned events', () => {
  it('a cpu-pinned exclude_guest event takes the last counter; the KVM event goes to ERROR', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const vcpu = k.createTask('vcpu0');
    k.context_switch(0, vcpu);
    const host = [0, 1, 2].map(() => hostPinned(k, 0, LLC_REFERENCES));
    const guest = kvmEvent(k, vcpu, BRANCHES);
    expect(guest.state).toBe('ACTIVE');
    expect(guest.hw_idx).toBe(3);
    const last = hostPinned(k, 0, LLC_REFERENCES); // arrives later, still wins
    expect(last.state).toBe('ACTIVE');
    expect(guest.state).toBe('ERROR');
    expect(guest.hw_idx).toBe(-1);
    expect(host.every((e) => e.state === 'ACTIVE')).toBe(true);
  });

  it('the KVM event stays in ERROR across context switches and when re-enabled under contention', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const vcpu = k.createTask('vcpu0');
    const host = [0, 1, 2, 3].map(() => hostPinned(k, 0, LLC_REFERENCES));
    const guest = kvmEvent(k, vcpu, BRANCHES);
    k.context_switch(0, vcpu);
    expect(guest.state).toBe('ERROR');
    k.context_switch(0, null);
    k.context_switch(0, vcpu);
    expect(guest.state).toBe('ERROR');
    k.perf_event_enable(guest);
    expect(guest.state).toBe('ERROR');
    k.perf_event_release_kernel(host[0]!);
    k.perf_event_enable(guest);
    expect(guest.state).toBe('ACTIVE');
  });

  it('a task-pinned event beats a cpu-flexible one', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const vcpu = k.createTask('vcpu0');
    const flex = [0, 1, 2, 3].map(() => ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 })));
    const guest = kvmEvent(k, vcpu, BRANCHES);
    k.context_switch(0, vcpu);
    expect(guest.state).toBe('ACTIVE');
    expect(flex.filter((e) => e.state === 'INACTIVE')).toHaveLength(1);
  });
});

describe('merge_sched_in', () => {
  it('once an event of a pass fails, no later event of that pass goes on, even one that would fit', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('t');
    const pinned = [REF_TSC, REF_TSC, CYCLES].map((config) =>
      ev(k.perf_event_open(attr({ config, pinned: true }), { task: t })),
    );
    const flexible = [REF_TSC, LLC_REFERENCES].map((config) => ev(k.perf_event_open(attr({ config }), { task: t })));
    k.context_switch(0, t);
    expect(pinned.map((e) => e.state)).toEqual(['ACTIVE', 'ERROR', 'ERROR']);
    expect(flexible.map((e) => e.state)).toEqual(['INACTIVE', 'INACTIVE']); // REF_TSC fails, so LLC waits too
  });
});

describe('fixed or general-purpose counter', () => {
  it('places architectural events on their fixed counter, then on the lowest free GP counter', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const open = (config: bigint) => ev(k.perf_event_open(attr({ config }), { cpu: 0 }));
    expect(open(INSTRUCTIONS).hw_idx).toBe(32);
    expect(open(CYCLES).hw_idx).toBe(33);
    expect(open(REF_TSC).hw_idx).toBe(34);
    const instr2 = open(INSTRUCTIONS);
    expect(instr2.hw_idx).toBe(0);
    // SLOTS encoding: Skylake has no fixed counter 3. GP-only has fewer choices, so it goes first.
    expect(open(0x01a4n).hw_idx).toBe(0);
    expect(instr2.hw_idx).toBe(1);
    const second = open(REF_TSC); // fixed-only: no GP fallback
    expect(second.state).toBe('INACTIVE');
    expect(rd(k.pcpu(0).hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe((7n << 32n) | 3n);
  });

  it('refuses a fixed-only pseudo-encoding whose fixed counter does not exist (H8)', () => {
    const twoFixed = defineProfile({
      name: 'two-fixed',
      family: 6,
      model: 0x3c,
      leaf0a: { eax: leaf0aEax(3, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(2, 48) },
      pdcm: false,
      perfCapabilities: 0n,
    });
    const k = new HostKernel({ profile: twoFixed, cpus: 1 });
    expect(errorOf(k.perf_event_create_kernel_counter(attr({ config: REF_TSC }), { cpu: 0 }))).toMatch(/^EINVAL/);
    expect(
      errorOf(new HostKernel({ profile: SKYLAKE, cpus: 1 }).perf_event_open(attr({ config: SLOTS }), { cpu: 0 })),
    ).toMatch(/^EINVAL/);
    const icx = new HostKernel({ profile: ICELAKE, cpus: 1 });
    expect(ev(icx.perf_event_open(attr({ config: SLOTS }), { cpu: 0 })).hw_idx).toBe(35);
    expect(ev(icx.perf_event_open(attr({ config: 0x01a4n }), { cpu: 0 })).hw_idx).toBe(0);
  });

  it('the slow path moves a running event to its fixed counter, and its count carries over', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const w = ev(k.perf_event_open(attr({ config: CYCLES, pinned: true }), { cpu: 0 }));
    const a = ev(k.perf_event_open(attr({ config: CYCLES, pinned: true }), { cpu: 0 }));
    expect([w.hw_idx, a.hw_idx]).toEqual([33, 0]);
    k.runHost(0, units(2, work(0, 1, 10)));
    k.perf_event_release_kernel(w);
    const b = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, pinned: true }), { cpu: 0 }));
    expect([a.hw_idx, b.hw_idx]).toEqual([33, 0]); // fewest choices first: b, then a on fixed 1
    k.runHost(0, units(3, work(0, 1, 10)));
    expect(k.perf_event_read_value(a)).toBe(50n);
  });

  it('an exclusive event shares the PMU with nothing (H3)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const x = ev(k.perf_event_open(attr({ config: LLC_REFERENCES, exclusive: true }), { cpu: 0 }));
    const y = ev(k.perf_event_open(attr({ config: CYCLES }), { cpu: 0 }));
    expect([x.state, y.state]).toEqual(['ACTIVE', 'INACTIVE']);
    const k2 = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const y2 = ev(k2.perf_event_open(attr({ config: CYCLES }), { cpu: 0 }));
    const x2 = ev(k2.perf_event_open(attr({ config: LLC_REFERENCES, exclusive: true }), { cpu: 0 }));
    expect([y2.state, x2.state]).toEqual(['ACTIVE', 'INACTIVE']);
  });
});

describe('multiplexing', () => {
  it('rotates flexible events on the tick so that each one counts part of the time', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const evs = [0, 1, 2, 3, 4].map(() => ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 })));
    expect(evs.map((e) => e.state)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'INACTIVE']);
    k.runHost(0, [work(0, 1, 1, 1)]);
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(evs.map((e) => e.state)).toEqual(['INACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    k.runHost(0, [work(0, 1, 1, 10)]);
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(evs.map((e) => e.state)).toEqual(['ACTIVE', 'INACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE']);
    k.runHost(0, [work(0, 1, 1, 100)]);
    expect(evs.map((e) => k.perf_event_read_value(e))).toEqual([101n, 11n, 111n, 111n, 110n]);
  });

  it('does nothing on the tick when every event fits', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    expect(k.perf_rotate_context(0)).toBe(false);
    expect(e.state).toBe('ACTIVE');
  });

  it('rotates task flexible events too', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const t = k.createTask('perf-stat');
    const evs = [0, 1, 2, 3, 4].map(() => ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { task: t })));
    k.context_switch(0, t);
    expect(evs[4]!.state).toBe('INACTIVE');
    expect(k.perf_rotate_context(0)).toBe(true);
    expect(evs[0]!.state).toBe('INACTIVE');
    expect(evs[4]!.state).toBe('ACTIVE');
  });
});

describe('perf_guest_get_msrs (intel_guest_get_msrs)', () => {
  it('gives the host the counters of non-exclude_host events and the guest those of non-exclude_guest ones (H1)', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1, nmiWatchdog: true });
    const vcpu = k.createTask('vcpu0');
    k.context_switch(0, vcpu);
    const host = hostPinned(k, 0, LLC_REFERENCES);
    const guest = kvmEvent(k, vcpu, BRANCHES);
    expect([host.hw_idx, guest.hw_idx, k.watchdog(0)!.hw_idx]).toEqual([0, 1, 33]);
    const fc1 = 1n << 33n;
    expect(k.perf_guest_get_msrs(0)).toEqual({ host: 1n | fc1, guest: 2n | fc1 });
    expect(rd(k.pcpu(0).hw, MSR_CORE_PERF_GLOBAL_CTRL)).toBe(1n | fc1);
    k.context_switch(0, null);
    expect(k.perf_guest_get_msrs(0)).toEqual({ host: 1n | fc1, guest: fc1 });
  });
});
