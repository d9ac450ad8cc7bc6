/**
 * What the tests of both topdown series share: a vCPU of the series on a host with PERF_METRICS, set up as the
 * selftests do, whose host perf records each event KVM creates (with its group leader) and releases and can refuse a
 * config; the guest's writes and reads; Linux's topdown start; bare metal's registers after the same work.
 */
import { expect } from 'vitest';
import { bit } from '../../../model/hw/bits.js';
import { Cpu } from '../../../model/hw/cpu.js';
import type { Profile } from '../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS } from '../../../model/hw/profiles.js';
import type { WorkUnit } from '../../../model/hw/work.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';
import { MSR_CORE_PERF_FIXED_CTR0, MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../../model/hw/msr/counters.js';
import {
  GLOBAL_STATUS_PERF_METRICS_OVF_BIT,
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../../model/hw/msr/global.js';
import { MSR_PERF_METRICS, type TopdownSlots } from '../../../model/hw/msr/topdown.js';
import { HostKernel, type HostPerfOps } from '../../../model/host/perf.js';
import type { PerfEvent } from '../../../model/host/types.js';
import type { EmulatedOps } from '../../../model/kvm/emulated/ops.js';
import type { KvmPmc } from '../../../model/kvm/emulated/state.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { topdownGuest } from '../../support/guests.js';
import { hostOk, isGp, val } from './util.js';

export const FC3 = MSR_CORE_PERF_FIXED_CTR0 + 3;
/** FIXED_CTR_CTRL: FIXED_CTR3 at OS and USR, with and without its PMI bit. */
export const SLOTS_ON = 0x3n << 12n;
export const SLOTS_ON_PMI = 0xbn << 12n;
export const FC3_BIT = bit(32 + 3);
export const FC0_BIT = bit(32);
/** fixed_pmc_events[0], FIXED_CTR0's event: instructions retired. */
export const FC0_EVENT = 0x00c0n;
export const METRICS_BIT = bit(GLOBAL_STATUS_PERF_METRICS_OVF_BIT);
export const GUEST_VECTOR = 0xe1;

/** Two slot mixes with different level-1 and level-2 shares, so that their windows' images differ. */
export const A: TopdownSlots = {
  retiring: 380,
  badSpeculation: 7,
  frontendBound: 213,
  backendBound: 400,
  heavyOperations: 95,
  branchMispredicts: 7,
  fetchLatency: 150,
  memoryBound: 333,
};
export const B: TopdownSlots = {
  retiring: 100,
  badSpeculation: 500,
  frontendBound: 300,
  backendBound: 100,
  heavyOperations: 50,
  branchMispredicts: 400,
  fetchLatency: 20,
  memoryBound: 60,
};
export const unit = (slots: TopdownSlots): WorkUnit => ({ cpl: 3, instructions: 1, slots });

/** `msr` on bare metal `p` after `units`, FIXED_CTR3 and PERF_METRICS counted from 0 with EN_PERF_METRICS enabled. */
export function bareRead(units: readonly WorkUnit[], msr: number, p: Profile = SAPPHIRE_RAPIDS): bigint {
  const cpu = new Cpu(p);
  for (const [m, v] of [
    [FC3, 0n],
    [MSR_PERF_METRICS, 0n],
    [MSR_CORE_PERF_FIXED_CTR_CTRL, SLOTS_ON],
    [MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT],
  ] as const)
    val(cpu.wrmsr(m, v));
  cpu.run(units);
  return val(cpu.rdmsr(msr));
}
export const bareMetrics = (units: readonly WorkUnit[], p: Profile = SAPPHIRE_RAPIDS): bigint =>
  bareRead(units, MSR_PERF_METRICS, p);

export interface Td<P extends KvmPmc> {
  readonly host: HostKernel;
  readonly vcpu: EmulatedVcpu;
  readonly fc3: P;
  /** The vCPU's events host perf created, in order, and those it released. */
  readonly created: PerfEvent[];
  readonly released: PerfEvent[];
  /** The group leader KVM passed to perf_event_create_kernel_counter for each event it created. */
  readonly leaderOf: Map<PerfEvent, PerfEvent | null>;
  /** Configs host perf refuses to create an event for, as it does when it cannot allocate one. */
  readonly refuse: Set<bigint>;
}

export interface TdOptions {
  readonly profile?: Profile;
  readonly version?: number;
  readonly nrFixed?: number;
  readonly perfCaps?: bigint;
}

/**
 * A vCPU of the series (`ops`, with host perf's `hostOps` where the series patches perf) on Sapphire Rapids with
 * PERF_CAPABILITIES.PERF_METRICS (written before its CPUID, as the selftests do) and the topdown guest's CPUID: v2, 8 GP
 * counters, FIXED_CTR0-3; `version`, `nrFixed` change leaf 0xA.
 */
export function tdVcpu<P extends KvmPmc>(ops: EmulatedOps, hostOps: HostPerfOps | undefined, o: TdOptions = {}): Td<P> {
  const p = o.profile ?? SAPPHIRE_RAPIDS;
  const host = new HostKernel({ profile: p, cpus: 2, ...(hostOps ? { ops: hostOps } : {}) });
  const g = topdownGuest(p);
  const created: PerfEvent[] = [];
  const released: PerfEvent[] = [];
  const refuse = new Set<bigint>();
  const leaderOf = new Map<PerfEvent, PerfEvent | null>();
  const create = host.perf_event_create_kernel_counter.bind(host);
  const release = host.perf_event_release_kernel.bind(host);
  host.perf_event_create_kernel_counter = (a, target, overflow, groupLeader) => {
    if (refuse.has(a.config)) return { error: 'ENOMEM' };
    const r = create(a, target, overflow, groupLeader);
    if (!('error' in r)) {
      created.push(r);
      leaderOf.set(r, groupLeader ?? null);
    }
    return r;
  };
  host.perf_event_release_kernel = (ev) => {
    released.push(ev);
    release(ev);
  };
  const vcpu = new EmulatedVcpu(host, { cpu: 0, cpuid: g.cpuid }, ops);
  expect(hostOk(vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, o.perfCaps ?? g.perfCapabilities))).toBe(true);
  const eax = g.cpuid.leaf0a.eax;
  const edx = g.cpuid.leaf0a.edx;
  const leaf0a = {
    ...g.cpuid.leaf0a,
    eax: (eax & ~0xff) | (o.version ?? eax & 0xff),
    edx: (edx & ~0x1f) | (o.nrFixed ?? edx & 0x1f),
  };
  expect(hostOk(vcpu.setCpuid({ ...g.cpuid, leaf0a }))).toBe(true);
  return { host, vcpu, fc3: vcpu.s.pmu.fixed_counters[3] as P, created, released, leaderOf, refuse };
}

type AnyTd = Td<KvmPmc>;

export function wr(t: AnyTd, msr: number, v: bigint): void {
  val(t.vcpu.guestWrmsr(msr, v), `WRMSR 0x${msr.toString(16)}`);
}
export const rd = (t: AnyTd, msr: number) => val(t.vcpu.guestRdmsr(msr), `RDMSR 0x${msr.toString(16)}`);

/** Linux's topdown start: FIXED_CTR3 and PERF_METRICS from 0, FIXED_CTR3 enabled, then GLOBAL_CTRL. */
export function start(t: AnyTd, ctrl = SLOTS_ON): void {
  wr(t, FC3, 0n);
  wr(t, MSR_PERF_METRICS, 0n);
  wr(t, MSR_CORE_PERF_FIXED_CTR_CTRL, ctrl);
  wr(t, MSR_CORE_PERF_GLOBAL_CTRL, FC3_BIT | METRICS_BIT);
}

/** The vCPU's perf events host perf still has. */
export const live = (t: AnyTd) => t.created.filter((e) => !t.released.includes(e));

/** The creates, releases and other perf calls `f` cost. */
export function spent(t: AnyTd, f: () => void) {
  const before = { ...t.vcpu.cost };
  f();
  const c = t.vcpu.cost;
  return {
    creates: c.perfCreates - before.perfCreates,
    releases: c.perfReleases - before.perfReleases,
    calls: c.perfCalls - before.perfCalls,
  };
}

/** Both series' gate open: PERF_METRICS reads 0, GLOBAL_CTRL, OVF_CTRL and KVM_SET_MSRS GLOBAL_STATUS take bit 48. */
export function expectMetricsGateOpen(t: AnyTd): void {
  expect(rd(t, MSR_PERF_METRICS)).toBe(0n);
  wr(t, MSR_CORE_PERF_GLOBAL_CTRL, METRICS_BIT);
  wr(t, MSR_CORE_PERF_GLOBAL_OVF_CTRL, METRICS_BIT);
  expect(hostOk(t.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_STATUS, METRICS_BIT))).toBe(true);
  expect(rd(t, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(METRICS_BIT);
}

/** Both series' gate closed: PERF_METRICS and bit 48 of GLOBAL_CTRL and OVF_CTRL #GP, KVM_SET_MSRS GLOBAL_STATUS fails. */
export function expectMetricsGateClosed(t: AnyTd): void {
  expect(isGp(t.vcpu.guestRdmsr(MSR_PERF_METRICS))).toBe(true);
  expect(isGp(t.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, METRICS_BIT))).toBe(true);
  expect(isGp(t.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, METRICS_BIT))).toBe(true);
  expect(hostOk(t.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_STATUS, METRICS_BIT))).toBe(false);
}
