/**
 * Seed 003's proposal (model/kvm/series/hw_assigned.ts) at the host counter perf assigned to each vPMC: what KVM
 * writes there when the guest enables or disables a counter, for either kind of host counter (series.md §5.2 items
 * 3–4: a 4-bit field of the host FIXED_CTR_CTRL for a fixed host index, config_base for a GP one, also when the guest
 * counter is of the other kind); what a sched-in restores and when it releases an unused vPMC (§5.2 item 6:
 * hw_life_count, two slices); what a reprogram costs once the vPMC is assigned (§5.2 items 4–5); and which selects
 * the WRMSR handler drops (§5.2 item 7). Expectations are the posted patches', not the port's output: each is read
 * at the host's MSRs or in what the guest counts and reads.
 */
import { describe, expect, it } from 'vitest';
import { bit } from '../../../model/hw/bits.js';
import { leaf0aEax, type Profile } from '../../../model/hw/profile.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import type { WorkUnit } from '../../../model/hw/work.js';
import {
  ARCH_PERFMON_EVENTSEL_ANY,
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  HSW_IN_TX_CHECKPOINTED,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';
import { DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { HostKernel } from '../../../model/host/perf.js';
import { attr, type PerfEvent } from '../../../model/host/types.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import type { KvmPmc } from '../../../model/kvm/emulated/state.js';
import { HW_ASSIGNED_HOST_OPS, HW_ASSIGNED_OPS } from '../../../model/kvm/series/hw_assigned.js';
import {
  BRANCHES,
  CYCLES,
  defaultCpuid,
  fixedGlobalEnable,
  fixedPmcCtrl,
  INSTRUCTIONS,
  kvmSupportedPerfCaps,
  val,
} from './util.js';

const EN = ARCH_PERFMON_EVENTSEL_ENABLE;
const OS = ARCH_PERFMON_EVENTSEL_OS;
const USR = ARCH_PERFMON_EVENTSEL_USR;
/** Host FIXED_CTR_CTRL field bits as intel_pmu_enable_host_fixed_counter sets them: PMI, AnyThread, USR, OS. */
const PMI = 0x8n;
const FX_USR = 0x2n;
const FX_OS = 0x1n;
/** The host's first fixed counter in perf's numbering (INTEL_PMC_IDX_FIXED). */
const HOST_FIXED = 32;

interface Guest {
  readonly host: HostKernel;
  readonly vcpu: EmulatedVcpu;
}

/**
 * A guest of 4 GP and 3 fixed counters (PMU `version`, 2 unless given) on a host running the series' perf (patch 1),
 * every counter enabled in GLOBAL_CTRL; `before` runs on the host first (cpu-pinned events that take counters), `first`
 * in the guest before that GLOBAL_CTRL write.
 */
function guest(
  o: {
    profile?: Profile;
    version?: number;
    tsx?: boolean;
    perfCaps?: bigint;
    before?: (h: HostKernel) => void;
    first?: (g: Guest) => void;
  } = {},
): Guest {
  const profile = o.profile ?? SKYLAKE;
  const host = new HostKernel({ profile, cpus: 2, ops: HW_ASSIGNED_HOST_OPS });
  o.before?.(host);
  const base = defaultCpuid(profile);
  const leaf0a = { ...base.leaf0a, eax: leaf0aEax(o.version ?? 2, 4, 48, 7) };
  const cpuid = { ...base, leaf0a, tsx: o.tsx === true };
  const vcpu = new EmulatedVcpu(host, { cpu: 0, cpuid }, HW_ASSIGNED_OPS);
  if (o.perfCaps !== undefined) {
    // As the selftests do: PERF_CAPABILITIES, then the CPUID again (its refresh takes the LBR format).
    expect(vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, o.perfCaps).ok).toBe(true);
    expect(vcpu.setCpuid(cpuid).ok).toBe(true);
  }
  const g = { host, vcpu };
  o.first?.(g);
  wr(g, MSR_CORE_PERF_GLOBAL_CTRL, 0xfn | fixedGlobalEnable(0) | fixedGlobalEnable(1) | fixedGlobalEnable(2));
  return g;
}

/** A cpu-pinned host event on pCPU 0: it takes the fixed counter that counts `config` before any task event. */
const pinnedOnHost = (config: bigint) => (h: HostKernel) => {
  const ev = h.perf_event_open(attr({ config, pinned: true }), { cpu: 0 });
  if ('error' in ev) throw new Error(ev.error);
};

function wr(g: Guest, msr: number, v: bigint): void {
  val(g.vcpu.guestWrmsr(msr, v), `WRMSR 0x${msr.toString(16)}`);
}
const rd = (g: Guest, msr: number) => val(g.vcpu.guestRdmsr(msr), `RDMSR 0x${msr.toString(16)}`);
/** An MSR of the pCPU the vCPU runs on, as the host sees it. */
const hostMsr = (g: Guest, msr: number) =>
  val(g.host.pcpu(g.vcpu.cpu).hw.rdmsr(msr), `host RDMSR 0x${msr.toString(16)}`);

const gp = (g: Guest, i: number): KvmPmc => g.vcpu.s.pmu.gp_counters[i]!;
const fixed = (g: Guest, i: number): KvmPmc => g.vcpu.s.pmu.fixed_counters[i]!;
const eventOf = (pmc: KvmPmc): PerfEvent => {
  expect(pmc.perf_event, `vPMC ${pmc.idx} has a perf event`).not.toBeNull();
  return pmc.perf_event!;
};

/** `n` units of one core cycle each at `cpl`, no instruction: only cycle counters move. */
const cycles = (n: number, cpl = 3): WorkUnit[] => Array.from({ length: n }, () => ({ cpl, cycles: 1 }));
/** `n` taken branches at CPL 3. */
const branches = (n: number): WorkUnit[] =>
  Array.from({ length: n }, () => ({
    cpl: 3,
    instructions: 1,
    branches: [{ from: 0x40_0000n, to: 0x40_0040n, kind: 'COND' as const }],
  }));

/** Whether the vPMC still holds its perf event after each of `n` preemptions of the vCPU thread. */
function heldPerSlice(g: Guest, pmc: KvmPmc, n: number): boolean[] {
  return Array.from({ length: n }, () => {
    g.vcpu.preempt(() => undefined);
    return pmc.perf_event !== null;
  });
}

/** What `f` cost in KVM's own host MSR accesses, reprograms that create an event, and perf events created. */
function spent(g: Guest, f: () => void) {
  const c = g.vcpu.cost;
  const before = { ...c };
  f();
  return {
    kvmMsrAccesses: c.kvmMsrAccesses - before.kvmMsrAccesses,
    reprograms: c.reprograms - before.reprograms,
    creates: c.perfCreates - before.perfCreates,
  };
}

describe('patches 2/5, 3/5: a select goes to the host counter perf assigned, whichever kind it is', () => {
  it('on a host GP counter: the guest select as written, 0 when the guest disables it, and the count stops', () => {
    const g = guest();
    wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR | EN); // a GP-only event
    const ev = eventOf(gp(g, 0));
    expect(ev.hw_idx).toBeLessThan(HOST_FIXED);
    const ctl = g.host.x86_pmu_config_addr(ev.hw_idx);
    expect(hostMsr(g, ctl)).toBe(BRANCHES | OS | USR | EN);
    g.vcpu.guestRun(branches(10));
    expect(rd(g, MSR_IA32_PMC0)).toBe(10n);
    wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR);
    expect(hostMsr(g, ctl), 'intel_pmu_disable_host_gp_counter').toBe(0n);
    g.vcpu.guestRun(branches(10));
    expect(rd(g, MSR_IA32_PMC0)).toBe(10n);
    expect(gp(g, 0).perf_event, 'disabled, the event stays').toBe(ev);
  });

  // Guest GP cycles sit on host fixed counter 1 beside guest fixed counter 0; guest GP instructions on host fixed 0
  // beside guest fixed counter 1. The host field is PMI, USR and OS as the event asks; the neighbour's is kept.
  const CROSS = [
    { what: 'cycles on host fixed counter 1', event: CYCLES, hostIdx: 1, neighbour: 0 },
    { what: 'instructions on host fixed counter 0', event: INSTRUCTIONS, hostIdx: 0, neighbour: 1 },
  ] as const;
  for (const { what, event, hostIdx, neighbour } of CROSS)
    it(`a GP select of ${what}: its 4-bit field, the other fields kept; disabled, the field alone cleared`, () => {
      const g = guest();
      wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(neighbour, 3n));
      const theirs = fixedPmcCtrl(neighbour, 3n); // intel_pmu_update_host_fixed_ctrl: the guest's field as written
      expect(hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(theirs);
      wr(g, MSR_P6_EVNTSEL0, event | USR | EN);
      expect(eventOf(gp(g, 0)).hw_idx).toBe(HOST_FIXED + hostIdx);
      expect(hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(theirs | fixedPmcCtrl(hostIdx, PMI | FX_USR));
      wr(g, MSR_P6_EVNTSEL0, event | USR);
      expect(hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(theirs);
      wr(g, MSR_P6_EVNTSEL0, event | OS | USR | EN);
      expect(
        hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL),
        'from the event perf holds, USR only (cross-mapped-stale-config)',
      ).toBe(theirs | fixedPmcCtrl(hostIdx, PMI | FX_USR));
    });

  it('a GP select counting user cycles on a host fixed counter counts no kernel cycles, and stops when disabled', () => {
    const g = guest();
    wr(g, MSR_P6_EVNTSEL0, CYCLES | USR | EN);
    g.vcpu.guestRun([...cycles(5, 0), ...cycles(7, 3)]);
    expect(rd(g, MSR_IA32_PMC0)).toBe(7n);
    wr(g, MSR_P6_EVNTSEL0, CYCLES | USR);
    g.vcpu.guestRun(cycles(4));
    expect(rd(g, MSR_IA32_PMC0)).toBe(7n);
  });

  it('a kernel-only GP select on a host fixed counter: PMI and OS', () => {
    const g = guest();
    wr(g, MSR_P6_EVNTSEL0, CYCLES | OS | EN);
    expect(eventOf(gp(g, 0)).hw_idx).toBe(HOST_FIXED + 1);
    expect(hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(fixedPmcCtrl(1, PMI | FX_OS));
  });

  it('a guest of PMU version 3 gets no AnyThread into the host field: KVM refuses it in the select (reserved_bits)', () => {
    const g = guest({ version: 3 });
    expect(g.vcpu.s.pmu.version).toBe(3);
    wr(g, MSR_P6_EVNTSEL0, CYCLES | OS | USR | EN);
    expect(hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(fixedPmcCtrl(1, PMI | FX_USR | FX_OS));
    wr(g, MSR_P6_EVNTSEL0 + 1, INSTRUCTIONS | OS | USR | EN | ARCH_PERFMON_EVENTSEL_ANY); // dropped, no #GP
    expect(rd(g, MSR_P6_EVNTSEL0 + 1)).toBe(0n);
    expect(hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(fixedPmcCtrl(1, PMI | FX_USR | FX_OS));
  });
});

describe('patch 3/5: a guest fixed counter on a host GP counter (cross-mapped)', () => {
  /** A host cpu-pinned cycles event holds fixed counter 1, so guest fixed counter 1 gets a GP counter. */
  function crossMapped() {
    const g = guest({ before: pinnedOnHost(CYCLES) });
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(1, 3n));
    const ev = eventOf(fixed(g, 1));
    expect(ev.hw_idx).toBeLessThan(HOST_FIXED);
    return { g, ctl: g.host.x86_pmu_config_addr(ev.hw_idx) };
  }
  const FC1 = MSR_CORE_PERF_FIXED_CTR0 + 1;
  /** The perf event's config with ENABLE: INT always, USR and OS as the fixed field asked at its creation. */
  const EVENT_ON = CYCLES | ARCH_PERFMON_EVENTSEL_INT | OS | USR | EN;

  it('FIXED_CTR_CTRL enables and disables it through the host event select', () => {
    const { g, ctl } = crossMapped();
    expect(hostMsr(g, ctl)).toBe(EVENT_ON);
    g.vcpu.guestRun(cycles(10));
    expect(rd(g, FC1)).toBe(10n);
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n);
    expect(hostMsr(g, ctl)).toBe(0n);
    g.vcpu.guestRun(cycles(10));
    expect(rd(g, FC1)).toBe(10n);
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(1, 3n));
    expect(hostMsr(g, ctl)).toBe(EVENT_ON);
    g.vcpu.guestRun(cycles(5));
    expect(rd(g, FC1)).toBe(15n);
  });

  it('a sched-in restores the event select from the event, and the counter counts on', () => {
    const { g, ctl } = crossMapped();
    g.vcpu.guestRun(cycles(10));
    expect(rd(g, FC1)).toBe(10n); // the RDMSR syncs pmc->counter: nothing rolls back at the preemption
    g.vcpu.preempt(() => undefined);
    expect(hostMsr(g, ctl)).toBe(EVENT_ON);
    g.vcpu.guestRun(cycles(6));
    expect(rd(g, FC1)).toBe(16n);
  });

  it('enabled, it keeps its event; disabled, it loses it at the third sched-in (the host select has no ENABLE)', () => {
    const { g } = crossMapped();
    expect(heldPerSlice(g, fixed(g, 1), 4)).toEqual([true, true, true, true]);
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n);
    expect(heldPerSlice(g, fixed(g, 1), 3)).toEqual([true, true, false]);
  });
});

describe('patch 3/5: a guest fixed counter on its host fixed counter, at sched-in', () => {
  const FC1 = MSR_CORE_PERF_FIXED_CTR0 + 1;

  it('enabled, its field is restored from the event and it counts on after the preemption', () => {
    const g = guest();
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(1, 3n));
    expect(eventOf(fixed(g, 1)).hw_idx).toBe(HOST_FIXED + 1);
    g.vcpu.guestRun(cycles(10));
    expect(rd(g, FC1)).toBe(10n);
    g.vcpu.preempt(() => undefined);
    expect(hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(fixedPmcCtrl(1, PMI | FX_USR | FX_OS));
    g.vcpu.guestRun(cycles(6));
    expect(rd(g, FC1)).toBe(16n);
  });

  it('disabled, its field stays clear at sched-in and it counts nothing', () => {
    const g = guest();
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(1, 3n));
    g.vcpu.guestRun(cycles(10));
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n);
    expect(rd(g, FC1)).toBe(10n);
    g.vcpu.preempt(() => undefined);
    expect(hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(0n);
    g.vcpu.guestRun(cycles(6));
    expect(rd(g, FC1)).toBe(10n);
  });

  for (const i of [0, 1])
    it(`fixed counter ${i}: enabled, it keeps its event; disabled, it loses it at the third sched-in`, () => {
      const g = guest();
      wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(i, 3n));
      expect(eventOf(fixed(g, i)).hw_idx).toBe(HOST_FIXED + i);
      expect(heldPerSlice(g, fixed(g, i), 4)).toEqual([true, true, true, true]);
      wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n);
      expect(heldPerSlice(g, fixed(g, i), 3)).toEqual([true, true, false]);
      expect(g.vcpu.cost.perfReleases).toBe(1);
    });
});

describe('patch 4/5: the lazy release of a GP vPMC', () => {
  it('enabled on a host GP counter, it keeps its event and its count across slices', () => {
    const g = guest();
    wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR | EN);
    g.vcpu.guestRun(branches(3));
    expect(rd(g, MSR_IA32_PMC0)).toBe(3n);
    expect(heldPerSlice(g, gp(g, 0), 4)).toEqual([true, true, true, true]);
    g.vcpu.guestRun(branches(2));
    expect(rd(g, MSR_IA32_PMC0)).toBe(5n);
    expect(g.vcpu.cost.perfCreates).toBe(1);
  });

  it('disabled on a host fixed counter, it loses a life only while the whole host FIXED_CTR_CTRL is 0', () => {
    // The patch tests the host register, not the counter's field: a guest fixed counter counting beside it keeps it.
    const alone = guest();
    wr(alone, MSR_P6_EVNTSEL0, INSTRUCTIONS | OS | USR | EN);
    expect(eventOf(gp(alone, 0)).hw_idx).toBe(HOST_FIXED);
    wr(alone, MSR_P6_EVNTSEL0, INSTRUCTIONS | OS | USR);
    expect(heldPerSlice(alone, gp(alone, 0), 3)).toEqual([true, true, false]);
    const beside = guest();
    wr(beside, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(1, 3n));
    wr(beside, MSR_P6_EVNTSEL0, INSTRUCTIONS | OS | USR | EN);
    expect(eventOf(gp(beside, 0)).hw_idx).toBe(HOST_FIXED);
    wr(beside, MSR_P6_EVNTSEL0, INSTRUCTIONS | OS | USR);
    expect(heldPerSlice(beside, gp(beside, 0), 5)).toEqual([true, true, true, true, true]);
  });
});

describe('patch 5/5: a reprogram of an assigned vPMC skips perf', () => {
  it('the first enable creates the event and writes the counter and the select; later ones cost a sync and a write', () => {
    const g = guest();
    wr(g, MSR_IA32_PERFCTR0, 100n); // no event yet: stored in pmc->counter
    expect(spent(g, () => wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR | EN))).toEqual({
      kvmMsrAccesses: 2,
      reprograms: 1,
      creates: 1,
    });
    const ctr = g.host.x86_pmu_event_addr(eventOf(gp(g, 0)).hw_idx);
    expect(hostMsr(g, ctr), 'pmc_reprogram_counter loads pmc->counter').toBe(100n);
    // Disabled: the counter read back into pmc->counter, the select cleared.
    expect(spent(g, () => wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR))).toEqual({
      kvmMsrAccesses: 2,
      reprograms: 0,
      creates: 0,
    });
    // Enabled again: assigned, so only its life is renewed, then the select written.
    expect(spent(g, () => wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR | EN))).toEqual({
      kvmMsrAccesses: 2,
      reprograms: 0,
      creates: 0,
    });
    expect(g.vcpu.s.pmu.reprogram_pmi, 'nothing left for KVM_REQ_PMU').toBe(0n);
    g.vcpu.guestRun(branches(4));
    expect(rd(g, MSR_IA32_PMC0)).toBe(104n);
  });

  it('a RDPMC of an assigned counter is one host RDPMC', () => {
    const g = guest();
    wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR | EN);
    g.vcpu.guestRun(branches(3));
    const before = g.vcpu.cost.kvmMsrAccesses;
    expect(val(g.vcpu.guestRdpmc(0, 0))).toBe(3n);
    expect(g.vcpu.cost.kvmMsrAccesses - before).toBe(1);
  });

  it('a FIXED_CTR_CTRL write reprograms only the fields it changes', () => {
    const g = guest();
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(1, 3n));
    // Fixed counter 2 is created and its counter loaded; its host field read and written. Fixed counter 1 untouched.
    expect(spent(g, () => wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(1, 3n) | fixedPmcCtrl(2, 3n)))).toEqual({
      kvmMsrAccesses: 3,
      reprograms: 1,
      creates: 1,
    });
    expect(hostMsr(g, MSR_CORE_PERF_FIXED_CTR_CTRL)).toBe(fixedPmcCtrl(1, 3n) | fixedPmcCtrl(2, 3n));
  });

  it('a reprogram of a disabled vPMC is done with: no retry at the next KVM_REQ_PMU', () => {
    const g = guest();
    wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR | EN);
    wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR);
    expect(g.vcpu.s.pmu.reprogram_pmi).toBe(0n);
    expect(spent(g, () => g.vcpu.guestRun([]))).toEqual({ kvmMsrAccesses: 0, reprograms: 0, creates: 0 });
  });
});

describe('patch 5/5: the selects the WRMSR handler drops ("return 0", no #GP)', () => {
  const CYCLES_ON = CYCLES | OS | USR | EN;

  it('IN_TX_CHECKPOINTED is taken by counter 2 of a TSX guest alone', () => {
    const tsx = guest({ profile: SAPPHIRE_RAPIDS, tsx: true });
    for (const i of [0, 1, 3]) {
      wr(tsx, MSR_P6_EVNTSEL0 + i, CYCLES_ON | HSW_IN_TX_CHECKPOINTED);
      expect(rd(tsx, MSR_P6_EVNTSEL0 + i), `EVNTSEL${i}`).toBe(0n);
    }
    wr(tsx, MSR_P6_EVNTSEL0 + 2, CYCLES_ON | HSW_IN_TX_CHECKPOINTED);
    expect(rd(tsx, MSR_P6_EVNTSEL0 + 2)).toBe(CYCLES_ON | HSW_IN_TX_CHECKPOINTED);
    // Without TSX in the guest's CPUID the bit is reserved on counter 2 as well.
    const plain = guest({ profile: SAPPHIRE_RAPIDS });
    wr(plain, MSR_P6_EVNTSEL0 + 2, CYCLES_ON | HSW_IN_TX_CHECKPOINTED);
    expect(rd(plain, MSR_P6_EVNTSEL0 + 2)).toBe(0n);
  });

  it('a select with a reserved bit leaves the counter as it was, at the guest and at the host', () => {
    const g = guest();
    wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR | EN);
    const ctl = g.host.x86_pmu_config_addr(eventOf(gp(g, 0)).hw_idx);
    wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | EN | ARCH_PERFMON_EVENTSEL_ANY);
    expect(rd(g, MSR_P6_EVNTSEL0)).toBe(BRANCHES | OS | USR | EN);
    expect(hostMsr(g, ctl)).toBe(BRANCHES | OS | USR | EN);
    g.vcpu.guestRun(branches(3));
    expect(rd(g, MSR_IA32_PMC0)).toBe(3n);
  });

  it('the select written again is dropped unsynced: a preemption rolls back to the last sync, as a new select does not', () => {
    const counted = (again: bigint) => {
      const g = guest();
      wr(g, MSR_P6_EVNTSEL0, BRANCHES | OS | USR | EN); // loads pmc->counter (0) into the host counter
      g.vcpu.guestRun(branches(50));
      wr(g, MSR_P6_EVNTSEL0, again);
      g.vcpu.preempt(() => undefined); // sched-in writes pmc->counter back (deschedule-rollback)
      return rd(g, MSR_IA32_PMC0);
    };
    expect(counted(BRANCHES | OS | USR | EN)).toBe(0n);
    expect(counted(BRANCHES | OS | USR | EN | ARCH_PERFMON_EVENTSEL_INT)).toBe(50n);
  });
});

describe('patch 5/5: a new event perf refuses', () => {
  /** INTEL_TD_METRIC_RETIRING (event 0x00, umask 0x80): perf refuses it outside a slots group (intel_pmu_hw_config). */
  const METRIC = 0x8000n;

  it('is retried at the WRMSR’s own VM-entry and then at the next KVM_REQ_PMU, not at every entry', () => {
    const g = guest({ profile: ICELAKE });
    const creates = () => g.vcpu.cost.perfCreates;
    wr(g, MSR_P6_EVNTSEL0, METRIC | OS | USR | EN);
    expect(creates(), 'the WRMSR’s reprogram and the retry its KVM_REQ_PMU makes').toBe(2);
    expect(g.vcpu.s.pmu.reprogram_pmi).toBe(bit(0));
    g.vcpu.guestRun(cycles(3));
    expect(creates(), 'no request, no retry').toBe(2);
    wr(g, MSR_P6_EVNTSEL0 + 1, BRANCHES | OS | USR | EN);
    expect(creates(), 'PMC1 created at once, without a request').toBe(3);
    g.vcpu.preempt(() => undefined); // kvm_arch_vcpu_load: event_count != 0, KVM_REQ_PMU
    g.vcpu.guestRun([]);
    expect(creates(), 'PMC0 retried with the lazy cleanup’s request').toBe(4);
    expect(gp(g, 0).perf_event).toBeNull();
  });
});

describe('RDPMC of a counter the guest lacks', () => {
  it('dereferences the NULL vPMC in host context (intel_pmc_read_counter)', () => {
    const g = guest();
    expect(() => g.vcpu.guestRdpmc(7, 0)).toThrow(/NULL pointer dereference/);
  });
});

describe("the base's lazy cleanup under the series' reset (kvm_pmu_reset clears need_cleanup)", () => {
  it('a guest LBR event left with DEBUGCTL.LBR clear goes at the first reschedule’s cleanup, not at a KVM_REQ_PMU before', () => {
    // The LBR event made and DEBUGCTL.LBR cleared before any KVM_REQ_PMU; the GLOBAL_CTRL write then makes one.
    let lbr: PerfEvent | null = null;
    const g = guest({
      perfCaps: kvmSupportedPerfCaps(SKYLAKE),
      first: (f) => {
        wr(f, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
        lbr = f.vcpu.s.lbr.event;
        wr(f, MSR_IA32_DEBUGCTLMSR, 0n);
      },
    });
    expect(lbr).not.toBeNull();
    expect(g.vcpu.s.lbr.event).toBe(lbr);
    // Fixed counter 0 counts each instruction KVM skips, folded in by a KVM_REQ_PMU at the exit's VM-entry.
    wr(g, MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(0, 3n));
    const first = rd(g, MSR_CORE_PERF_FIXED_CTR0);
    expect(rd(g, MSR_CORE_PERF_FIXED_CTR0), 'the first RDMSR, counted').toBe(first + 1n);
    expect(g.vcpu.s.lbr.event).toBe(lbr);
    g.vcpu.preempt(() => undefined);
    g.vcpu.guestRun([]);
    expect(g.vcpu.s.lbr.event).toBeNull();
  });
});
