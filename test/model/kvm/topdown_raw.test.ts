/**
 * Seed 002's proposal (model/kvm/series/topdown_raw.ts: Dapeng Mi, "Enable topdown metrics feature for KVM vPMU" v4)
 * driven as KVM is, one mechanism at a time (series.md §1.2–§1.4): the slots+vmetrics group a PERF_METRICS write arms
 * and FIXED_CTR3's reprogram builds (its two perf events, created disabled and enabled whole, a refused member
 * releasing the leader), the group paused into extra_config and resumed whole, released with FIXED_CTR3 and by the
 * lazy cleanup, PERF_METRICS pushed to a running group, the metrics overflow that sets GLOBAL_STATUS bit 48 with a PMI,
 * RDPMC's metrics type, and the capability, CPUID-version and reserved-bit gates. Expectations are the series' (patch
 * N/13 as series.md reads it), measured against bare metal where the guest sees a window of PERF_METRICS.
 */
import { describe, expect, it } from 'vitest';
import { defineProfile, type Profile } from '../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import type { WorkUnit } from '../../../model/hw/work.js';
import { PERF_CAP_PERF_METRICS } from '../../../model/hw/msr/capabilities.js';
import { INTEL_PMC_FIXED_RDPMC_METRICS, MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../../model/hw/msr/global.js';
import { MSR_PERF_METRICS, type TopdownSlots } from '../../../model/hw/msr/topdown.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import { HostKernel, type TopdownEvent } from '../../../model/host/perf.js';
import { attr, type PerfEvent } from '../../../model/host/types.js';
import { INTEL_TD_METRIC_RETIRING, INTEL_TD_SLOTS } from '../../../model/host/schedule.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { PSEUDO_ARCH_TOPDOWN_SLOTS } from '../../../model/kvm/series/fixed_ctr3.js';
import {
  INTEL_FIXED_VMETRICS_EVENT,
  TOPDOWN_RAW_HOST_OPS,
  TOPDOWN_RAW_OPS,
  type TopdownRawPmc,
} from '../../../model/kvm/series/topdown_raw.js';
import { topdownGuest } from '../../support/guests.js';
import { hostOk, hostVal, isGp, val } from './util.js';
import {
  A,
  B,
  bareMetrics,
  bareRead,
  FC0_BIT,
  FC0_EVENT,
  FC3,
  FC3_BIT,
  GUEST_VECTOR,
  live,
  METRICS_BIT,
  rd,
  SLOTS_ON,
  SLOTS_ON_PMI,
  spent,
  start,
  type Td as TdOf,
  type TdOptions,
  tdVcpu as tdVcpuOf,
  unit,
  wr,
  expectMetricsGateClosed,
  expectMetricsGateOpen,
} from './topdown_util.js';

const h = SAPPHIRE_RAPIDS;
/** One unit of 2^48 slots: FIXED_CTR3 counted from 0 wraps in it, and PERF_METRICS with it (pmu-semantics.md §2.11). */
const WRAP = 2 ** 46;
const wrapping: WorkUnit = unit({ retiring: WRAP, badSpeculation: WRAP, frontendBound: WRAP, backendBound: WRAP });

type Td = TdOf<TopdownRawPmc>;
const tdVcpu = (o: TdOptions = {}): Td => tdVcpuOf<TopdownRawPmc>(TOPDOWN_RAW_OPS, TOPDOWN_RAW_HOST_OPS, o);

describe('pmc_reprogram_counter (patches 10/13, 11/13): FIXED_CTR3 armed by a PERF_METRICS write leads a vmetrics group', () => {
  it('the group: a pinned counting slots leader created disabled, an unpinned vmetrics member in its group, both enabled', () => {
    const t = tdVcpu();
    wr(t, FC3, 0n);
    wr(t, MSR_PERF_METRICS, 0n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    expect(t.created, 'the write only arms topdown mode').toEqual([]);
    const cost = spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x2n << 12n)); // USR only
    // Two creates; the push of {FIXED_CTR3, PERF_METRICS} to each event and the enable of each.
    expect(cost).toEqual({ creates: 2, releases: 0, calls: 4 });
    const [leader, member] = t.created as TopdownEvent[];
    expect(t.created).toHaveLength(2);
    expect(leader!.attr).toMatchObject({
      config: PSEUDO_ARCH_TOPDOWN_SLOTS,
      sample_period: 0n,
      pinned: true,
      disabled: true,
      exclude_host: true,
      exclude_user: false,
      exclude_kernel: true,
    });
    expect(member!.attr).toMatchObject({
      config: INTEL_FIXED_VMETRICS_EVENT,
      sample_period: 0n,
      pinned: false,
      exclude_host: true,
      exclude_user: false,
      exclude_kernel: true,
    });
    expect(t.leaderOf.get(leader!)).toBeNull();
    expect(t.leaderOf.get(member!)).toBe(leader);
    expect([leader!.state, member!.state]).toEqual(['ACTIVE', 'ACTIVE']);
    expect([t.fc3.perf_event, t.fc3.metrics_event]).toEqual([leader, member]);
    // pmu->event_count counts counters holding events: FIXED_CTR3 is one, its group one entry.
    expect(t.vcpu.s.pmu.event_count).toBe(1);
  });

  it('without a PERF_METRICS write FIXED_CTR3 gets a lone slots event (KVM cannot tell a lone slots user)', () => {
    const t = tdVcpu();
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON))).toEqual({
      creates: 1,
      releases: 0,
      calls: 0,
    });
    expect(t.fc3.metrics_event).toBeNull();
    expect(t.created.map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS]);
  });

  it('a PERF_METRICS write while FIXED_CTR3 has a lone slots event only arms topdown mode: the group waits for a new config', () => {
    const t = tdVcpu();
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON);
    const lone = t.created[0];
    // Neither write reaches the lone event: it is no group, so nothing is pushed to it (series.md §1.4.3).
    expect(
      spent(t, () => {
        wr(t, MSR_PERF_METRICS, 0x11n);
        wr(t, MSR_PERF_METRICS, 0x22n);
      }),
    ).toEqual({ creates: 0, releases: 0, calls: 0 });
    // The same config resumes the lone event.
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    expect(live(t)).toEqual([lone]);
    // A new FIXED_CTR_CTRL field releases it and builds the group.
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x2n << 12n);
    expect(live(t).map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS, INTEL_FIXED_VMETRICS_EVENT]);
  });

  it('a member perf refuses releases the leader and fails the reprogram; the next KVM_REQ_PMU retries the group', () => {
    const t = tdVcpu();
    wr(t, MSR_PERF_METRICS, 0n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | FC0_BIT);
    t.refuse.add(INTEL_FIXED_VMETRICS_EVENT);
    // Two creates tried, the leader released again.
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON))).toEqual({
      creates: 2,
      releases: 1,
      calls: 0,
    });
    expect(live(t)).toEqual([]);
    expect([t.fc3.perf_event, t.fc3.metrics_event]).toEqual([null, null]);
    expect(t.vcpu.s.pmu.event_count).toBe(0);
    t.refuse.clear();
    t.vcpu.guestRun([unit(A)]);
    expect(t.created, 'no request, no retry').toHaveLength(1);
    // FIXED_CTR0's enable is a KVM_REQ_PMU: FIXED_CTR3's failed reprogram is retried after it.
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON | 0x3n);
    expect(live(t).map((e) => e.attr.config)).toEqual([
      FC0_EVENT,
      PSEUDO_ARCH_TOPDOWN_SLOTS,
      INTEL_FIXED_VMETRICS_EVENT,
    ]);
    expect([t.fc3.perf_event, t.fc3.metrics_event]).toEqual(live(t).slice(1));
  });

  it('a leader perf refuses fails the reprogram before any member; the next KVM_REQ_PMU creates the group', () => {
    const t = tdVcpu();
    wr(t, MSR_PERF_METRICS, 0n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | FC0_BIT);
    t.refuse.add(PSEUDO_ARCH_TOPDOWN_SLOTS);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON))).toEqual({
      creates: 1,
      releases: 0,
      calls: 0,
    });
    expect(t.created).toEqual([]);
    t.refuse.clear();
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON | 0x3n);
    expect(live(t).map((e) => e.attr.config)).toEqual([
      FC0_EVENT,
      PSEUDO_ARCH_TOPDOWN_SLOTS,
      INTEL_FIXED_VMETRICS_EVENT,
    ]);
  });
});

describe('the group over windows (patches 10/13, 11/13): paused into extra_config, resumed whole', () => {
  it('each window the guest opens and closes with GLOBAL_CTRL reads bare metal’s PERF_METRICS for that window', () => {
    const t = tdVcpu();
    start(t);
    const [leader, member] = t.created;
    t.vcpu.guestRun([unit(A), unit(A)]);
    // The pause: the leader's count into the counter, the member's raw PERF_METRICS into extra_config.
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n))).toEqual({ creates: 0, releases: 0, calls: 2 });
    expect(rd(t, MSR_PERF_METRICS)).toBe(bareMetrics([unit(A), unit(A)]));
    expect(bareMetrics([unit(A)])).not.toBe(bareMetrics([unit(B)]));
    // The resume enables both events again: no new event.
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT))).toEqual({
      creates: 0,
      releases: 0,
      calls: 2,
    });
    t.vcpu.guestRun([unit(B)]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(bareMetrics([unit(B)]));
    expect(val(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, 0))).toBe(bareMetrics([unit(B)]));
    expect(rd(t, FC3)).toBe(3000n);
    expect(t.created).toEqual([leader, member]);
  });

  // Bare metal keeps the last fractions over a window without slots; metrics-frozen-window declares the 0.
  it('a window without slots reads 0: the pause zeroes the member’s count as it takes it', () => {
    const t = tdVcpu();
    start(t);
    t.vcpu.guestRun([unit(A)]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(bareMetrics([unit(A)]));
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    t.vcpu.guestRun([{ cpl: 3, instructions: 5 }]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0n);
  });

  it('a reprogram of a paused group keeps extra_config: only a running group is paused into it', () => {
    const t = tdVcpu();
    start(t);
    t.vcpu.guestRun([unit(A)]);
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n); // FIXED_CTR3 off: paused
    const taken = rd(t, MSR_PERF_METRICS);
    expect(taken).toBe(bareMetrics([unit(A)]));
    // GLOBAL_CTRL's bit 35 goes: FIXED_CTR3 is reprogrammed again, found paused, and no perf call is made.
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, METRICS_BIT))).toEqual({
      creates: 0,
      releases: 0,
      calls: 0,
    });
    expect(rd(t, MSR_PERF_METRICS)).toBe(taken);
  });

  it('a PERF_METRICS write to a running group pushes {counter, PERF_METRICS} to it: the hardware window restarts', () => {
    const t = tdVcpu();
    start(t);
    const member = t.created[1] as TopdownEvent;
    t.vcpu.guestRun([unit(A)]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n); // the pause folds 1000 slots into pmc->counter
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    t.vcpu.guestRun([unit(A)]);
    expect(spent(t, () => wr(t, MSR_PERF_METRICS, 0x1234n))).toEqual({ creates: 0, releases: 0, calls: 2 });
    expect(t.fc3.max_nr_events).toBe(2);
    // perf_event_topdown_metrics: the pair is pmc->counter as last folded (not the running 2000) and the value written.
    expect([member.saved_slots, member.saved_metric]).toEqual([1000n, 0x1234n]);
    t.vcpu.guestRun([unit(B)]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    // The leader's restart zeroed both registers (icl_set_topdown_event_period): the window is B's alone.
    expect(rd(t, MSR_PERF_METRICS)).toBe(bareMetrics([unit(B)]));
    expect(rd(t, FC3)).toBe(3000n);
  });
});

describe('release (patch 10/13): pmc_release_perf_event drops both events, pmc_stop_counter topdown mode with them', () => {
  it('the lazy cleanup of a disabled FIXED_CTR3 releases the group and PERF_METRICS with it (§1.6 hazard 2)', () => {
    const t = tdVcpu();
    start(t);
    const [leader, member] = t.created;
    t.vcpu.guestRun([unit(A)]);
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(bareMetrics([unit(A)]));
    for (let i = 0; i < 2; i++) {
      t.vcpu.preempt(() => undefined);
      t.vcpu.guestRun([]); // the first cleanup keeps what was written since the last, the second releases it
    }
    expect(t.released).toEqual([leader, member]);
    expect(t.vcpu.cost.perfReleases).toBe(2);
    expect(t.vcpu.s.pmu.event_count).toBe(0);
    expect([t.fc3.perf_event, t.fc3.metrics_event, t.fc3.max_nr_events]).toEqual([null, null, 1]);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0n);
    expect(rd(t, FC3)).toBe(1000n); // the count folded in before the release
    // Topdown mode went with it: FIXED_CTR3 enabled again gets a lone slots event.
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON);
    expect(live(t).map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS]);
  });

  it('a new FIXED_CTR_CTRL field releases the group and builds another: max_nr_events and extra_config stay', () => {
    const t = tdVcpu();
    start(t);
    const first = [...t.created];
    t.vcpu.guestRun([unit(A)]);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x2n << 12n))).toEqual({
      creates: 2,
      releases: 2,
      calls: 6, // the pause of both events, the push to both new ones, their enables
    });
    expect(t.released).toEqual(first);
    expect(live(t).map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS, INTEL_FIXED_VMETRICS_EVENT]);
    expect(rd(t, MSR_PERF_METRICS)).toBe(bareMetrics([unit(A)]));
  });

  it('a vCPU reset (KVM_SET_CPUID2) stops only counters with events: a restored PERF_METRICS without one stays', () => {
    const t = tdVcpu();
    expect(hostVal(t.vcpu.hostSetMsr(MSR_PERF_METRICS, 0x40302010n))).toBe(0x40302010n);
    expect(hostOk(t.vcpu.setCpuid(t.vcpu.s.cpuid))).toBe(true);
    expect(hostVal(t.vcpu.hostGetMsr(MSR_PERF_METRICS))).toBe(0x40302010n);
    // Topdown mode stays armed: FIXED_CTR3's first enable builds the group.
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT);
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON);
    expect(t.created.map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS, INTEL_FIXED_VMETRICS_EVENT]);
  });
});

describe('the metrics overflow (patch 12/13): host PMI bit 48 calls the vmetrics event’s handler, the guest gets bit 48', () => {
  /** The group counting with LVTPC unmasked; FIXED_CTR_CTRL `ctrl`. */
  function armed(ctrl: bigint): Td {
    const t = tdVcpu();
    wr(t, X2APIC_LVTPC, BigInt(GUEST_VECTOR));
    start(t, ctrl);
    return t;
  }

  it('FIXED_CTR3 without its PMI bit: GLOBAL_STATUS bit 48 alone, and a PMI (KVM forces intr for the metrics)', () => {
    const t = armed(SLOTS_ON);
    expect(t.vcpu.guestRun([wrapping])).toEqual([{ afterUnit: 0, vector: GUEST_VECTOR }]);
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(METRICS_BIT);
  });

  it('the overflow’s KVM_REQ_PMU pauses the group: PERF_METRICS reads the window up to the wrap without a disable', () => {
    const t = armed(SLOTS_ON);
    t.vcpu.guestRun([unit(A), wrapping]);
    expect(rd(t, MSR_PERF_METRICS)).toBe(bareMetrics([unit(A), wrapping]));
  });

  it('FIXED_CTR3 reads bare metal’s count after the wrap: the host PMI restarts the slots leader from 0, not -max_period', () => {
    const t = armed(SLOTS_ON);
    t.vcpu.guestRun([unit(A), wrapping]);
    expect(rd(t, FC3)).toBe(bareRead([unit(A), wrapping], FC3));
    t.vcpu.guestRun([unit(B)]);
    expect(rd(t, FC3)).toBe(bareRead([unit(A), wrapping, unit(B)], FC3));
  });

  it('each wrap after the status is cleared sets bit 48 again with its own PMI', () => {
    const t = armed(SLOTS_ON_PMI);
    for (let i = 0; i < 3; i++) {
      expect(t.vcpu.guestRun([unit(B), wrapping])).toEqual([{ afterUnit: 1, vector: GUEST_VECTOR }]);
      expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(METRICS_BIT);
      wr(t, MSR_CORE_PERF_GLOBAL_OVF_CTRL, METRICS_BIT);
      expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
      wr(t, X2APIC_LVTPC, BigInt(GUEST_VECTOR)); // the guest's handler unmasks LVTPC
    }
  });
});

describe('RDPMC of the metrics (patch 11/13): extra_config behind the CPL check, #GP only without FIXED_CTR3', () => {
  it('CPL 0 reads extra_config for any index; CPL 3 with CR4.PCE clear #GPs first', () => {
    const t = tdVcpu();
    wr(t, MSR_PERF_METRICS, 0x0a0b0c0dn);
    expect(val(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, 0))).toBe(0x0a0b0c0dn);
    expect(val(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS | 5, 0))).toBe(0x0a0b0c0dn);
    expect(isGp(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, 3))).toBe(true);
    // Without the metrics type, RDPMC reads the counters.
    expect(val(t.vcpu.guestRdpmc(0, 0))).toBe(0n);
  });

  it('a vCPU whose PERF_CAPABILITIES has PERF_METRICS but whose CPUID has no FIXED_CTR3: RDPMC and PERF_METRICS #GP', () => {
    const t = tdVcpu({ nrFixed: 3 });
    expect(t.vcpu.s.pmu.nr_arch_fixed_counters).toBe(3);
    expect(isGp(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, 0))).toBe(true);
    expect(isGp(t.vcpu.guestRdmsr(MSR_PERF_METRICS))).toBe(true);
    expect(isGp(t.vcpu.guestWrmsr(MSR_PERF_METRICS, 0n))).toBe(true);
  });
});

describe('the gates (patches 11/13, 13/13): PERF_CAPABILITIES.PERF_METRICS and version > 1', () => {
  it('a v2 guest with the capability: PERF_METRICS, GLOBAL_CTRL, GLOBAL_OVF_CTRL and KVM_SET_MSRS GLOBAL_STATUS take bit 48', () => {
    const t = tdVcpu();
    expectMetricsGateOpen(t);
  });

  it('a v2 guest without the capability: all #GP, and KVM_SET_MSRS GLOBAL_STATUS bit 48 fails', () => {
    const t = tdVcpu({ perfCaps: topdownGuest(h).perfCapabilities & ~PERF_CAP_PERF_METRICS });
    expectMetricsGateClosed(t);
  });

  it('a v1 guest with the capability: PERF_METRICS is no MSR of its, KVM_GET_MSRS reads the advertised MSR as 0', () => {
    const t = tdVcpu({ version: 1 });
    expect(isGp(t.vcpu.guestRdmsr(MSR_PERF_METRICS))).toBe(true);
    expect(isGp(t.vcpu.guestWrmsr(MSR_PERF_METRICS, 0n))).toBe(true);
    expect(hostVal(t.vcpu.hostGetMsr(MSR_PERF_METRICS))).toBe(0n);
  });

  it('KVM offers PERF_METRICS where the host has it and its vPMU is on: not on Skylake, not without GP counters', () => {
    const supported = (p: Profile) =>
      new EmulatedVcpu(
        new HostKernel({ profile: p, cpus: 1, ops: TOPDOWN_RAW_HOST_OPS }),
        {
          cpu: 0,
          cpuid: topdownGuest(p).cpuid,
        },
        TOPDOWN_RAW_OPS,
      ).supportedPerfCapabilities() & PERF_CAP_PERF_METRICS;
    expect(supported(h)).toBe(PERF_CAP_PERF_METRICS);
    expect(supported(SKYLAKE)).toBe(0n);
    const leaf0a = h.spec.leaf0a;
    const noGp = defineProfile({
      ...h.spec,
      name: 'sapphire-rapids-nogp',
      leaf0a: { ...leaf0a, eax: leaf0a.eax & ~0xff00 },
    });
    expect(supported(noGp)).toBe(0n);
  });
});

describe('host perf with patch 09/13: a slots event gets its saved FIXED_CTR3 and PERF_METRICS back when it starts again', () => {
  /** A host slots group on `task`: the slots leader (sampling every `period`, or counting) and the retiring metric. */
  function slotsGroup(host: HostKernel, task: number, period: bigint): PerfEvent {
    const leader = host.perf_event_create_kernel_counter(
      attr({ config: INTEL_TD_SLOTS, sample_period: period, pinned: true }),
      { task },
    );
    if ('error' in leader) throw new Error(leader.error);
    const metric = host.perf_event_create_kernel_counter(
      attr({ config: INTEL_TD_METRIC_RETIRING, sample_period: 0n }),
      { task },
      undefined,
      leader,
    );
    if ('error' in metric) throw new Error(metric.error);
    return leader;
  }
  const hostUnit = (slots: TopdownSlots): WorkUnit => ({ cpl: 0, instructions: 1, slots });

  it('a sampling slots group switched out and in past another task’s group resumes from its own pair, not the other’s', () => {
    const host = new HostKernel({ profile: h, cpus: 1, ops: TOPDOWN_RAW_HOST_OPS });
    const [t1, t2] = [host.createTask('t1'), host.createTask('t2')];
    const mine = slotsGroup(host, t1, 1_000_000n);
    const other = slotsGroup(host, t2, 0n);
    const hw = host.pcpu(0).hw;
    host.context_switch(0, t1);
    host.runHost(0, [hostUnit(A)]);
    host.context_switch(0, t2); // t1's pair is saved, the registers left as they are (x86_pmu_stop)
    host.runHost(0, [hostUnit(B), hostUnit(B)]);
    host.context_switch(0, t1);
    // t1's start writes back the pair saved at its switch-out: 1000 slots and A's bytes, as bare metal has them.
    expect([val(hw.rdmsr(FC3)), val(hw.rdmsr(MSR_PERF_METRICS))]).toEqual([1000n, bareMetrics([unit(A)])]);
    host.runHost(0, [hostUnit(B)]);
    host.context_switch(0, null);
    expect([host.perf_event_read_value(mine), host.perf_event_read_value(other)]).toEqual([2000n, 2000n]);
  });
});
