/**
 * Like Xu's topdown RFC (model/kvm/series/topdown_rebuilt.ts: "KVM: x86/pmu: Enable Fixed Counter3 and Topdown Perf
 * Metrics") driven as KVM is, one mechanism at a time (series.md §2.2, §2.3): the decision for topdown mode at each
 * reprogram of FIXED_CTR3, the group it builds (the slots leader and one metric event per PERF_METRICS byte), each read
 * of FIXED_CTR3 folding the members' counts back into bytes (series.md §3's two conversions), a byte's wrap as
 * GLOBAL_STATUS bit 48 with a PMI, the pause that destroys the group, RDPMC's metrics type, and the capability and
 * reserved-bit gates. Expected bytes are bare metal's for the same window, taken through the series' arithmetic.
 */
import { describe, expect, it } from 'vitest';
import { defineProfile, type Profile } from '../../../model/hw/profile.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import type { WorkUnit } from '../../../model/hw/work.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_PERF_METRICS } from '../../../model/hw/msr/capabilities.js';
import {
  INTEL_PMC_FIXED_RDPMC_METRICS,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
} from '../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../../model/hw/msr/global.js';
import { MSR_PERF_METRICS, type TopdownSlots, totalSlots } from '../../../model/hw/msr/topdown.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import { HostKernel } from '../../../model/host/perf.js';
import { INTEL_TD_METRIC_RETIRING } from '../../../model/host/schedule.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { PSEUDO_ARCH_TOPDOWN_SLOTS } from '../../../model/kvm/series/fixed_ctr3.js';
import { TOPDOWN_REBUILT_OPS, type TopdownRebuiltPmc } from '../../../model/kvm/series/topdown_rebuilt.js';
import { topdownGuest } from '../../support/guests.js';
import { hostOk, hostVal, isGp, val } from './util.js';
import {
  A,
  B,
  bareMetrics,
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
/** FIXED_CTR0 at OS and USR. */
const FC0_ON = 0x3n;
/** perf's metric pseudo-events, INTEL_TD_METRIC_RETIRING + 0x100·i, one per PERF_METRICS byte. */
const metricConfigs = (n: number) => Array.from({ length: n }, (_, i) => INTEL_TD_METRIC_RETIRING + 0x100n * BigInt(i));
/** Every slot retiring: bare metal's byte 0 is 255, the rest 0. */
const ALL_RETIRING: TopdownSlots = { retiring: 1000, badSpeculation: 0, frontendBound: 0, backendBound: 0 };

/**
 * The bytes one fold gives (series.md §3): host perf's one read makes each metric floor(S·v/255) slots, KVM turns it
 * back into (old + floor(255·m/S) + 1) mod 256; `n` bytes, the rest 0.
 */
function rebuilt(bare: bigint, slots: bigint, old = 0n, n = 8): bigint {
  let v = 0n;
  for (let k = 0; k < n; k++) {
    const s = BigInt(8 * k);
    const m = (slots * ((bare >> s) & 0xffn)) / 255n;
    v |= ((((old >> s) & 0xffn) + (255n * m) / slots + 1n) & 0xffn) << s;
  }
  return v;
}

/** bareMetrics and the window's slots of `units`, rebuilt by one fold on top of `old`. */
const folded = (units: readonly WorkUnit[], old = 0n) =>
  rebuilt(bareMetrics(units), BigInt(units.reduce((s, u) => s + (u.slots ? totalSlots(u.slots) : 0), 0)), old);

type Td = TdOf<TopdownRebuiltPmc>;
/** Host perf is upstream's: the series' patch 3/8 is not ported. */
const tdVcpu = (o: TdOptions = {}): Td => tdVcpuOf<TopdownRebuiltPmc>(TOPDOWN_REBUILT_OPS, undefined, o);

describe('pmc_reprogram_counter (patches 7/8, 8/8): FIXED_CTR3 started from zero with bit 48 leads a metric event per byte', () => {
  it('the group: a pinned counting slots leader and eight unpinned counting metric events in its group, all enabled', () => {
    const t = tdVcpu();
    wr(t, FC3, 0n);
    wr(t, MSR_PERF_METRICS, 0n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    // Nine creates (nr_perf_metrics + 1 on Sapphire Rapids) and the enable of each.
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x2n << 12n))).toEqual({
      creates: 9,
      releases: 0,
      calls: 9,
    }); // USR only
    const [leader, ...members] = t.created;
    expect(t.created.map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS, ...metricConfigs(8)]);
    for (const [i, e] of t.created.entries()) {
      expect(e.attr, `event ${i}`).toMatchObject({
        sample_period: 0n,
        pinned: i === 0,
        disabled: true,
        exclude_host: true,
        exclude_user: false,
        exclude_kernel: true,
      });
      expect(t.leaderOf.get(e), `event ${i}`).toBe(i === 0 ? null : leader);
      expect(e.state, `event ${i}`).toBe('ACTIVE');
    }
    expect([t.fc3.perf_event, t.fc3.metric_events, t.fc3.max_nr_events]).toEqual([leader, members, 9]);
    // pmu->event_count counts counters holding events: FIXED_CTR3 is one, its group one entry.
    expect(t.vcpu.s.pmu.event_count).toBe(1);
  });

  it('Ice Lake exports four topdown events: the group has four metric events, PERF_METRICS bytes 4-7 are reserved', () => {
    const t = tdVcpu({ profile: ICELAKE });
    expect(spent(t, () => start(t))).toEqual({ creates: 5, releases: 0, calls: 5 });
    expect(t.created.map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS, ...metricConfigs(4)]);
    expect(t.fc3.max_nr_events).toBe(5);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    wr(t, MSR_PERF_METRICS, 0xffff_ffffn);
    expect(isGp(t.vcpu.guestWrmsr(MSR_PERF_METRICS, 0x1_0000_0000n))).toBe(true);
    expect(isGp(t.vcpu.guestWrmsr(MSR_PERF_METRICS, 0x8000_0000_0000_0000n))).toBe(true);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0xffff_ffffn);
  });

  it('Sapphire Rapids exports eight: every PERF_METRICS bit is writable', () => {
    const t = tdVcpu();
    wr(t, MSR_PERF_METRICS, 0xffff_ffff_ffff_ffffn);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0xffff_ffff_ffff_ffffn);
    wr(t, MSR_PERF_METRICS, 0x8000_0000_0000_0000n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0x8000_0000_0000_0000n);
  });

  // perf_metrics_is_enabled: each of its conditions alone false leaves FIXED_CTR3 a lone slots event.
  it('PERF_METRICS not 0 at the reprogram: a lone slots event, PERF_METRICS kept as written', () => {
    const t = tdVcpu();
    wr(t, MSR_PERF_METRICS, 0x10n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON))).toEqual({
      creates: 1,
      releases: 0,
      calls: 0,
    });
    expect(t.created.map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS]);
    expect(t.fc3.max_nr_events).toBe(1);
    t.vcpu.guestRun([unit(A)]);
    expect(rd(t, FC3)).toBe(1000n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0x10n);
  });

  it('FIXED_CTR3 not 0 at the reprogram: a lone slots event', () => {
    const t = tdVcpu();
    wr(t, FC3, 5n);
    wr(t, MSR_PERF_METRICS, 0n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON);
    expect(t.created.map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS]);
    t.vcpu.guestRun([unit(A)]);
    expect(rd(t, FC3)).toBe(1005n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0n);
  });

  it('another counter started from zero with bit 48 set gets its own lone event: only FIXED_CTR3 leads a group', () => {
    const t = tdVcpu();
    wr(t, MSR_PERF_METRICS, 0n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC0_BIT | METRICS_BIT);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, FC0_ON))).toEqual({ creates: 1, releases: 0, calls: 0 });
    expect(t.created.map((e) => e.attr.config)).toEqual([FC0_EVENT]);
    t.vcpu.guestRun([{ ...unit(A), instructions: 7 }]);
    expect(rd(t, MSR_CORE_PERF_FIXED_CTR0)).toBe(8n); // the run's 7 and the enabling WRMSR, which KVM counts as it skips it
    expect(rd(t, MSR_PERF_METRICS)).toBe(0n);
  });

  it('bit 48 set alone on a lone slots event still at 0: FIXED_CTR3 is reprogrammed, the lone event released for the group', () => {
    const t = tdVcpu();
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT);
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON);
    const [lone] = t.created;
    // pmc_resume_counter refuses the lone event: topdown mode now holds, and it is no group.
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT))).toEqual({
      creates: 9,
      releases: 1,
      calls: 10, // the lone event's pause, the group's nine enables
    });
    expect(t.released).toEqual([lone]);
    expect(live(t).map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS, ...metricConfigs(8)]);
  });

  it('a KVM_REQ_PMU for another counter leaves FIXED_CTR3 alone, bit 48 set or not', () => {
    const t = tdVcpu();
    wr(t, MSR_PERF_METRICS, 0x10n);
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON | FC0_ON);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT | FC0_BIT))).toEqual({
      creates: 1,
      releases: 0,
      calls: 0,
    });
    expect(live(t).map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS, FC0_EVENT]);
  });

  it('a member perf refuses releases those created and fails the reprogram; the next KVM_REQ_PMU retries the group', () => {
    const t = tdVcpu();
    wr(t, MSR_PERF_METRICS, 0n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | FC0_BIT | METRICS_BIT);
    t.refuse.add(INTEL_TD_METRIC_RETIRING + 0x300n);
    // The leader and three members created, the fourth refused, the four released again.
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON))).toEqual({
      creates: 5,
      releases: 4,
      calls: 0,
    });
    expect(t.released).toEqual(t.created);
    expect(t.created).toHaveLength(4);
    expect([t.fc3.perf_event, t.fc3.metric_events, t.fc3.max_nr_events]).toEqual([null, [], 1]);
    expect(t.vcpu.s.pmu.event_count).toBe(0);
    t.refuse.clear();
    t.vcpu.guestRun([unit(A)]);
    expect(t.created, 'no request, no retry').toHaveLength(4);
    // FIXED_CTR0's enable is a KVM_REQ_PMU: FIXED_CTR3's failed reprogram is retried after it.
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON | FC0_ON);
    expect(live(t).map((e) => e.attr.config)).toEqual([FC0_EVENT, PSEUDO_ARCH_TOPDOWN_SLOTS, ...metricConfigs(8)]);
    expect(t.vcpu.s.pmu.event_count).toBe(2);
  });

  it('a leader perf refuses fails the reprogram before any member', () => {
    const t = tdVcpu();
    wr(t, MSR_PERF_METRICS, 0n);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    t.refuse.add(PSEUDO_ARCH_TOPDOWN_SLOTS);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON))).toEqual({
      creates: 1,
      releases: 0,
      calls: 0,
    });
    expect(t.created).toEqual([]);
  });
});

describe('pmu_read_perf_metrics (patch 8/8): each read of FIXED_CTR3 folds the metric events into PERF_METRICS', () => {
  it('a window closed by GLOBAL_CTRL: the pause folds once, floor(255·m/S) + 1 per byte, and releases the group', () => {
    const t = tdVcpu();
    start(t);
    const group = [...t.created];
    t.vcpu.guestRun([unit(A), unit(A)]);
    // The leader's read and each member's, then the nine releases: a pause destroys the group.
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n))).toEqual({ creates: 0, releases: 9, calls: 9 });
    expect(t.released).toEqual(group);
    expect([t.fc3.perf_event, t.fc3.metric_events, t.fc3.max_nr_events]).toEqual([null, [], 1]);
    expect(t.vcpu.s.pmu.event_count).toBe(0);
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(A), unit(A)]));
    expect(rd(t, FC3)).toBe(2000n);
    // Nothing left to fold: reading again changes nothing.
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(A), unit(A)]));
    // The pause emulates no overflow: GLOBAL_STATUS stays clear.
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
  });

  it('each read of a running group folds the same counts again: PERF_METRICS grows with the reads (series.md §3)', () => {
    const t = tdVcpu();
    start(t);
    t.vcpu.guestRun([unit(B)]);
    const once = folded([unit(B)]);
    // The leader's read and the eight members'.
    let r = 0n;
    expect(spent(t, () => (r = rd(t, MSR_PERF_METRICS)))).toEqual({ creates: 0, releases: 0, calls: 9 });
    expect(r).toBe(once);
    expect(rd(t, FC3)).toBe(1000n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(B)], folded([unit(B)], once)));
  });

  it('a read before any slot is counted folds nothing: a zero leader delta leaves PERF_METRICS at 0', () => {
    const t = tdVcpu();
    start(t);
    expect(spent(t, () => expect(rd(t, MSR_PERF_METRICS)).toBe(0n))).toEqual({ creates: 0, releases: 0, calls: 1 });
    t.vcpu.guestRun([{ cpl: 3, instructions: 4 }]);
    expect(rd(t, FC3)).toBe(0n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0n);
  });

  it('FIXED_CTR3 written while the group runs reads the value written plus the slots since, modulo 2^48', () => {
    const t = tdVcpu();
    start(t);
    t.vcpu.guestRun([unit(A)]);
    wr(t, FC3, 5000n);
    t.vcpu.guestRun([unit(B)]);
    expect(rd(t, FC3)).toBe(6000n);
    const top = (1n << 48n) - 300n;
    wr(t, FC3, top);
    t.vcpu.guestRun([unit(A)]);
    expect(rd(t, FC3)).toBe(700n);
    expect(t.created).toHaveLength(9);
  });

  it('a byte whose metric took every slot rebuilds as 256: it reads 0, and no wrap is reported (only a byte below its old value is one)', () => {
    const t = tdVcpu();
    wr(t, X2APIC_LVTPC, BigInt(GUEST_VECTOR));
    start(t);
    t.vcpu.guestRun([unit(ALL_RETIRING)]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(bareMetrics([unit(ALL_RETIRING)]) & 0xffn).toBe(255n);
    const v = rd(t, MSR_PERF_METRICS);
    expect(v).toBe(folded([unit(ALL_RETIRING)]));
    expect(v & 0xffn).toBe(0n);
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    expect(t.vcpu.drainPmis()).toEqual([]);
  });
});

describe('a byte’s wrap (patch 8/8): GLOBAL_STATUS bit 48 instead of FIXED_CTR3’s bit 35, and a PMI', () => {
  /** The group counting with LVTPC unmasked; FIXED_CTR_CTRL `ctrl`. */
  function armed(ctrl: bigint): Td {
    const t = tdVcpu();
    wr(t, X2APIC_LVTPC, BigInt(GUEST_VECTOR));
    start(t, ctrl);
    return t;
  }

  it('FIXED_CTR3 without its PMI bit: a fold that wraps byte 0 sets bit 48 alone, with a PMI (topdown forces intr)', () => {
    const t = armed(SLOTS_ON);
    t.vcpu.guestRun([unit(A)]);
    wr(t, MSR_PERF_METRICS, 0xffn); // stored: the group's counts are not touched
    expect(t.vcpu.drainPmis()).toEqual([]);
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(A)], 0xffn));
    expect(t.vcpu.drainPmis()).toEqual([{ afterUnit: 0, vector: GUEST_VECTOR }]);
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(METRICS_BIT);
  });

  it('a fold that wraps nothing sets no status bit and no PMI', () => {
    const t = armed(SLOTS_ON_PMI);
    t.vcpu.guestRun([unit(A)]);
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(A)]));
    expect(t.vcpu.drainPmis()).toEqual([]);
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
  });

  it('the wrap is reported once: after the status is cleared, a fold that wraps nothing sets nothing', () => {
    const t = armed(SLOTS_ON_PMI);
    t.vcpu.guestRun([unit(A)]);
    wr(t, MSR_PERF_METRICS, 0xffn);
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    rd(t, MSR_PERF_METRICS);
    expect(t.vcpu.drainPmis()).toEqual([{ afterUnit: 0, vector: GUEST_VECTOR }]);
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(METRICS_BIT);
    wr(t, MSR_CORE_PERF_GLOBAL_OVF_CTRL, METRICS_BIT);
    wr(t, X2APIC_LVTPC, BigInt(GUEST_VECTOR)); // the guest's handler unmasks LVTPC
    wr(t, MSR_PERF_METRICS, 0n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(A)]));
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    expect(t.vcpu.drainPmis()).toEqual([]);
  });

  it('FIXED_CTR3’s own overflow as a lone event sets bit 35, not bit 48', () => {
    const t = tdVcpu();
    wr(t, X2APIC_LVTPC, BigInt(GUEST_VECTOR));
    wr(t, FC3, (1n << 48n) - 500n);
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON_PMI);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
    expect(t.created).toHaveLength(1);
    expect(t.vcpu.guestRun([unit(A)])).toEqual([{ afterUnit: 0, vector: GUEST_VECTOR }]);
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(FC3_BIT);
  });
});

describe('pause and resume (patches 7/8, 8/8): a group is stopped, a lone event paused and resumed', () => {
  it('a new FIXED_CTR_CTRL field stops the group without an overflow; FIXED_CTR3, now past 0, gets a lone event', () => {
    const t = tdVcpu();
    start(t);
    const group = [...t.created];
    t.vcpu.guestRun([unit(A)]);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x2n << 12n))).toEqual({
      creates: 1,
      releases: 9,
      calls: 9, // the fold of the leader and eight members
    });
    expect(t.released).toEqual(group);
    expect(live(t).map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS]);
    expect(t.fc3.max_nr_events).toBe(1);
    expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    t.vcpu.guestRun([unit(B)]);
    expect(rd(t, FC3)).toBe(2000n);
    // The lone event folds nothing: PERF_METRICS keeps the group's one fold.
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(A)]));
  });

  it('a lone slots event is paused and resumed by GLOBAL_CTRL, not released', () => {
    const t = tdVcpu();
    wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT);
    const [lone] = t.created;
    t.vcpu.guestRun([unit(A)]);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n))).toEqual({ creates: 0, releases: 0, calls: 1 });
    // The resume re-arms the sampling period and enables the event again.
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT))).toEqual({ creates: 0, releases: 0, calls: 2 });
    t.vcpu.guestRun([unit(B)]);
    expect(rd(t, FC3)).toBe(2000n);
    expect(live(t)).toEqual([lone]);
  });

  it('a window closed and opened again with GLOBAL_CTRL: no topdown mode past 0, the second window is a lone event’s', () => {
    const t = tdVcpu();
    start(t);
    t.vcpu.guestRun([unit(A)]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT))).toEqual({
      creates: 1,
      releases: 0,
      calls: 0,
    });
    t.vcpu.guestRun([unit(B)]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(A)]));
    expect(rd(t, FC3)).toBe(2000n);
  });

  it('a window without slots leaves FIXED_CTR3 and PERF_METRICS at 0: the next enable builds the group again', () => {
    const t = tdVcpu();
    start(t);
    t.vcpu.guestRun([{ cpl: 3, instructions: 3 }]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(spent(t, () => wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT))).toEqual({
      creates: 9,
      releases: 0,
      calls: 9,
    });
    t.vcpu.guestRun([unit(A)]);
    wr(t, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(A)]));
  });
});

describe('RDPMC of the metrics (patch 8/8): behind the usual checks, FIXED_CTR3 read first, then PERF_METRICS', () => {
  it('CPL 0 reads PERF_METRICS for any index, folding a running group as RDMSR does; CPL 3 with CR4.PCE clear #GPs', () => {
    const t = tdVcpu();
    start(t);
    t.vcpu.guestRun([unit(A)]);
    expect(isGp(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, 3))).toBe(true);
    const once = folded([unit(A)]);
    expect(val(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, 0))).toBe(once);
    expect(val(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS | 5, 0))).toBe(folded([unit(A)], once));
    // Without the metrics type, RDPMC reads the counter.
    expect(val(t.vcpu.guestRdpmc(0x4000_0003, 0))).toBe(1000n);
  });

  it('a vCPU with the capability but without FIXED_CTR3: RDPMC #GPs, PERF_METRICS holds what is written (no FIXED_CTR3 to read)', () => {
    const t = tdVcpu({ nrFixed: 3 });
    expect(t.vcpu.s.pmu.nr_arch_fixed_counters).toBe(3);
    expect(isGp(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, 0))).toBe(true);
    wr(t, MSR_PERF_METRICS, 0x0a0b0c0dn);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0x0a0b0c0dn);
  });

  it('a vCPU without the capability: RDPMC of the metrics #GPs', () => {
    const t = tdVcpu({ perfCaps: topdownGuest(h).perfCapabilities & ~PERF_CAP_PERF_METRICS });
    expect(isGp(t.vcpu.guestRdpmc(INTEL_PMC_FIXED_RDPMC_METRICS, 0))).toBe(true);
    expect(val(t.vcpu.guestRdpmc(0x4000_0003, 0))).toBe(0n);
  });
});

describe('the gates (patch 8/8): PERF_CAPABILITIES.PERF_METRICS, no version check', () => {
  it('with the capability: PERF_METRICS, GLOBAL_CTRL, GLOBAL_OVF_CTRL and KVM_SET_MSRS GLOBAL_STATUS take bit 48', () => {
    const t = tdVcpu();
    expectMetricsGateOpen(t);
  });

  it('without it: all #GP, and KVM_SET_MSRS of GLOBAL_STATUS bit 48 or PERF_METRICS fails', () => {
    const t = tdVcpu({ perfCaps: topdownGuest(h).perfCapabilities & ~PERF_CAP_PERF_METRICS });
    expectMetricsGateClosed(t);
    expect(isGp(t.vcpu.guestWrmsr(MSR_PERF_METRICS, 0n))).toBe(true);
    expect(hostOk(t.vcpu.hostSetMsr(MSR_PERF_METRICS, 0x10n))).toBe(false);
  });

  it('a v1 guest with the capability has PERF_METRICS: the series checks no version', () => {
    const t = tdVcpu({ version: 1 });
    wr(t, MSR_PERF_METRICS, 0x1234n);
    expect(rd(t, MSR_PERF_METRICS)).toBe(0x1234n);
  });

  it('the capability dropped by a later KVM_SET_CPUID2 takes PERF_METRICS and bit 48 with it', () => {
    const t = tdVcpu();
    expect(
      hostOk(t.vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, topdownGuest(h).perfCapabilities & ~PERF_CAP_PERF_METRICS)),
    ).toBe(true);
    expect(hostOk(t.vcpu.setCpuid(t.vcpu.s.cpuid))).toBe(true);
    expect(isGp(t.vcpu.guestRdmsr(MSR_PERF_METRICS))).toBe(true);
    expect(isGp(t.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, METRICS_BIT))).toBe(true);
  });

  it('a vCPU reset (KVM_SET_CPUID2) zeroes PERF_METRICS (intel_pmu_reset)', () => {
    const t = tdVcpu();
    expect(hostVal(t.vcpu.hostSetMsr(MSR_PERF_METRICS, 0x40302010n))).toBe(0x40302010n);
    expect(hostVal(t.vcpu.hostGetMsr(MSR_PERF_METRICS))).toBe(0x40302010n);
    expect(hostOk(t.vcpu.setCpuid(t.vcpu.s.cpuid))).toBe(true);
    expect(hostVal(t.vcpu.hostGetMsr(MSR_PERF_METRICS))).toBe(0n);
  });

  it('KVM offers PERF_METRICS where host perf exports topdown events and its vPMU is on: not on Skylake, not without GP counters', () => {
    const supported = (p: Profile) =>
      new EmulatedVcpu(
        new HostKernel({ profile: p, cpus: 1 }),
        { cpu: 0, cpuid: topdownGuest(p).cpuid },
        TOPDOWN_REBUILT_OPS,
      ).supportedPerfCapabilities() & PERF_CAP_PERF_METRICS;
    expect(supported(h)).toBe(PERF_CAP_PERF_METRICS);
    expect(supported(ICELAKE)).toBe(PERF_CAP_PERF_METRICS);
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

describe('the VMM (patch 8/8): PERF_METRICS in msrs_to_save, read through the same fold', () => {
  it('KVM_GET_MSRS of PERF_METRICS folds a running group as the guest’s read does; the restored vCPU counts on alone', () => {
    const t = tdVcpu();
    start(t);
    t.vcpu.guestRun([unit(A)]);
    const saved = hostVal(t.vcpu.hostGetMsr(MSR_PERF_METRICS));
    expect(saved).toBe(folded([unit(A)]));
    expect(rd(t, MSR_PERF_METRICS)).toBe(folded([unit(A)], saved));
    // The VMM's save: FIXED_CTR3 first (a fold), then PERF_METRICS (another), as msrs_to_save lists them.
    const msrs = [FC3, MSR_PERF_METRICS, MSR_CORE_PERF_FIXED_CTR_CTRL, MSR_CORE_PERF_GLOBAL_CTRL];
    const image = msrs.map((msr) => [msr, hostVal(t.vcpu.hostGetMsr(msr))] as const);
    expect(image[1]![1]).toBe(folded([unit(A)], folded([unit(A)], folded([unit(A)], saved))));
    const u = tdVcpu();
    for (const [msr, v] of image) expect(hostOk(u.vcpu.hostSetMsr(msr, v)), `0x${msr.toString(16)}`).toBe(true);
    // Restored past 0, FIXED_CTR3 gets a lone slots event: nothing folds into PERF_METRICS any more.
    u.vcpu.guestRun([unit(B)]);
    expect(u.created.map((e) => e.attr.config)).toEqual([PSEUDO_ARCH_TOPDOWN_SLOTS]);
    expect(rd(u, FC3)).toBe(2000n);
    expect(rd(u, MSR_PERF_METRICS)).toBe(image[1]![1]);
  });
});
