/**
 * Seed 003's proposal (model/kvm/series/hw_assigned.ts), patch by patch: what each posted patch makes
 * KVM and perf do, and the divergences the design declares, each shown on a program that meets it
 * (and that today's vPMU runs like bare metal).
 */

import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { leaf0aEax, leaf0aEdx } from '../../../model/hw/profile.js';
import { HostKernel } from '../../../model/host/perf.js';
import { attr } from '../../../model/host/types.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { HW_ASSIGNED_HOST_OPS, HW_ASSIGNED_OPS, intel_pmc_is_assigned } from '../../../model/kvm/series/hw_assigned.js';
import {
  ARCH_PERFMON_EVENTSEL_ANY,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { designById, firstDivergence, knownDivergencesMet } from '../../../designs/registry.js';
import { checkNoninterference } from '../../../properties/noninterference.js';
import {
  Divergence,
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
  HostOpen,
  Migrate,
  Preempt,
} from '../../../scenarios/commands.js';
import { VmmSetPmuEventFilter } from '../../../scenarios/vmm.js';
import type { GuestConfig, VcpuFactory } from '../../../scenarios/world.js';
import { runProgram } from '../../../properties/conformance.js';
import { type Access, ok } from '../../../model/hw/access.js';
import { val } from './util.js';

const cpuid = {
  family: SKYLAKE.family,
  model: SKYLAKE.model,
  leaf0a: { eax: leaf0aEax(2, 4, SKYLAKE.gpWidth, SKYLAKE.evLen), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
  pdcm: true,
};
const guest: GuestConfig = { cpuid, perfCapabilities: 0x2000n };

/** EN | OS | USR, event `e`. */
const sel = (e: bigint) => 0x43_0000n | e;
const INSTRUCTIONS = 0xc0n;
const CYCLES = 0x3cn;
const BRANCHES = 0xc4n;
const work = (n: number) => [{ cpl: 3, instructions: n, cycles: n }];
/** `n` units of one taken branch each, at CPL 3. */
const branchy = (n: number) =>
  Array.from({ length: n }, () => ({
    cpl: 3,
    instructions: 1,
    branches: [{ from: 0x40_0000n, to: 0x40_0040n, kind: 'COND' as const }],
  }));

function vcpu() {
  const host = new HostKernel({ profile: SKYLAKE, cpus: 2, ops: HW_ASSIGNED_HOST_OPS });
  const v = new EmulatedVcpu(host, { cpu: 0, cpuid }, HW_ASSIGNED_OPS);
  return { host, v, hw: host.pcpu(0).hw };
}

describe('seed 003 (hw-assigned vPMCs): what the posted patches do', () => {
  it('patch 1/5: perf writes neither the counter nor the control of an exclude_host event', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 1, ops: HW_ASSIGNED_HOST_OPS });
    const hw = host.pcpu(0).hw;
    const ev = host.perf_event_open(attr({ config: CYCLES, exclude_host: true, pinned: true }), { cpu: 0 });
    if ('error' in ev) throw new Error(ev.error);
    expect(ev.hw_idx).toBeGreaterThanOrEqual(0);
    const ctl = host.x86_pmu_config_addr(ev.hw_idx);
    expect(val(hw.rdmsr(ctl)) & 0xffffn, 'control left unwritten').toBe(0n);
    // A host event is programmed as before.
    const mine = host.perf_event_open(attr({ config: INSTRUCTIONS, pinned: true }), { cpu: 0 });
    if ('error' in mine) throw new Error(mine.error);
    expect(val(hw.rdmsr(host.x86_pmu_config_addr(mine.hw_idx))) & 0xffn).not.toBe(0n);
  });

  it('patches 2/5 and 5/5: the guest select goes to the counter perf assigned; the guest counts in hardware', () => {
    const { host, v, hw } = vcpu();
    v.guestWrmsr(MSR_P6_EVNTSEL0, sel(BRANCHES)); // a GP-only event: perf puts it on a GP counter
    const pmc = v.s.pmu.gp_counters[0]!;
    expect(intel_pmc_is_assigned(pmc)).toBe(true);
    const ev = pmc.perf_event!;
    expect(ev.hw_idx).toBeLessThan(32);
    expect(val(hw.rdmsr(host.x86_pmu_config_addr(ev.hw_idx)))).toBe(sel(BRANCHES));
    v.guestRun(branchy(100));
    expect(val(v.guestRdmsr(MSR_IA32_PMC0))).toBe(100n);
    expect(v.s.cost.perfCreates).toBe(1);
    // A new select of an assigned vPMC goes straight to the host counter: no new perf event.
    const before = v.s.cost.kvmMsrAccesses;
    v.guestWrmsr(MSR_P6_EVNTSEL0, sel(CYCLES));
    expect(v.s.cost.perfCreates).toBe(1);
    expect(v.s.cost.kvmMsrAccesses).toBeGreaterThan(before);
    expect(val(hw.rdmsr(host.x86_pmu_config_addr(ev.hw_idx)))).toBe(sel(CYCLES));
  });

  it('patch 4/5: an unused vPMC is released lazily, two scheduling slices after the guest disabled it', () => {
    const { v } = vcpu();
    v.guestWrmsr(MSR_P6_EVNTSEL0, sel(INSTRUCTIONS));
    v.guestWrmsr(MSR_P6_EVNTSEL0, 0n); // disabled: the event stays
    const pmc = v.s.pmu.gp_counters[0]!;
    const slices: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      v.preempt(() => undefined);
      slices.push(pmc.perf_event !== null);
    }
    expect(slices).toEqual([true, true, false]);
    expect(v.s.cost.perfReleases).toBe(1);
  });

  it('patch 4/5: an enabled vPMC keeps its event across any number of slices', () => {
    const { v } = vcpu();
    v.guestWrmsr(MSR_P6_EVNTSEL0, sel(INSTRUCTIONS));
    for (let i = 0; i < 4; i++) v.preempt(() => undefined);
    expect(v.s.pmu.gp_counters[0]!.perf_event).not.toBeNull();
    expect(v.s.cost.perfCreates).toBe(1);
  });
});

describe('seed 003: the divergences it declares, each met', () => {
  const met = (program: Parameters<typeof knownDivergencesMet>[2]) =>
    knownDivergencesMet('skylake', guest, program, 'hw-assigned');
  const faithful = (program: Parameters<typeof firstDivergence>[2]) =>
    firstDivergence('skylake', guest, program, 'emulated');

  it('evtsel-reserved-dropped: a select with AnyThread is dropped without #GP (bare metal adopts the write)', () => {
    const p = [new GuestWrmsr(0, MSR_P6_EVNTSEL0, sel(INSTRUCTIONS) | ARCH_PERFMON_EVENTSEL_ANY)];
    expect(met(p)).toEqual(['evtsel-reserved-dropped']);
  });

  it('rdpmc-null-oops: RDPMC of a counter the guest lacks oopses the host, recorded as the design outcome', () => {
    const p = [new GuestRdpmc(0, 7, 0)];
    expect(faithful(p)).toBeNull();
    const o = firstDivergence('skylake', guest, p, 'hw-assigned');
    expect(o?.sut).toMatchObject({ kind: 'oops' });
    expect(met(p)).toEqual(['rdpmc-null-oops']);
  });

  it('rdpmc-flags: a "fast" RDPMC returns the whole counter', () => {
    const p = [new GuestRdpmc(0, 0x8000_0000, 0)];
    expect(faithful(p)).toBeNull();
    expect(met(p)).toEqual(['rdpmc-flags']);
  });

  it('counter-write-raw: a value above the host counter width is refused there, the write lost (D2)', () => {
    // The guest's GP cycles event sits on host fixed counter 1, whose 48 bits refuse bit 48: the RDMSR reads 0, not 1.
    const g: GuestConfig = {
      ...guest,
      cpuid: { ...guest.cpuid, leaf0a: { eax: 0x7300202, ebx: 0x5f, ecx: 0, edx: 0x603 } },
    };
    const p = [
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x40003cn),
      new GuestWrmsr(0, MSR_IA32_PERFCTR0, 0x1_0000_0000_0001n),
      new GuestRdmsr(0, MSR_IA32_PERFCTR0),
    ];
    expect(firstDivergence('skylake', g, p, 'hw-assigned')).toMatchObject({ sut: { kind: 'value', value: 0n } });
    expect(knownDivergencesMet('skylake', g, p, 'hw-assigned')).toEqual(['counter-write-raw']);
    // Written again in range, the counter reads what bare metal holds: nothing left to excuse.
    const again = [...p.slice(0, 2), new GuestWrmsr(0, MSR_IA32_PERFCTR0, 5n), new GuestRdmsr(0, MSR_IA32_PERFCTR0)];
    expect(firstDivergence('skylake', g, again, 'hw-assigned')).toBeNull();
  });

  it('global-ctrl-not-loaded: a control enabled while its GLOBAL_CTRL bit is clear loads the event it still holds', () => {
    // FC0 enabled under GLOBAL_CTRL, disabled (its event kept), GLOBAL_CTRL clears bit 32, FC0 enabled again: it counts.
    const p = [
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x7_0000_0001n),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x33n),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x0n),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1n),
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x333n),
      new GuestRun(0, [{ cpl: 3, instructions: 1 }]),
      new GuestRdmsr(0, MSR_CORE_PERF_FIXED_CTR0),
    ];
    expect(faithful(p)).toBeNull();
    expect(firstDivergence('skylake', guest, p, 'hw-assigned')).toMatchObject({ sut: { kind: 'value', value: 2n } });
    expect(met(p)).toEqual(['global-ctrl-not-loaded']);
  });

  it('counter-write-raw: a legacy-alias write is not sign-extended', () => {
    const p = [new GuestWrmsr(0, MSR_IA32_PERFCTR0, 0xffff_fffen), new GuestRdmsr(0, MSR_IA32_PERFCTR0)];
    expect(faithful(p)).toBeNull();
    expect(met(p)).toEqual(['counter-write-raw']);
    // A planted vPMU whose reads of the counter lose one count in the low bits: the raw write used to excuse it.
    const losesOne: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestRdmsr(msr: number): Access {
          const r = super.guestRdmsr(msr);
          return r.ok && msr === MSR_IA32_PERFCTR0 ? ok(r.value - 1n) : r;
        }
      })(h, o, HW_ASSIGNED_OPS);
    const d = designById('hw-assigned');
    const run = { host: SKYLAKE, design: losesOne, hostKernel: d.hostKernel, expectations: d.expectations };
    expect(() => runProgram(run, guest, p)).toThrow(/RDMSR 0xc1: guest saw 0xfffffffd/);
  });

  it('deschedule-rollback: a preemption loses the counts since the last sync', () => {
    const p = [
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, sel(INSTRUCTIONS)),
      new GuestRun(0, work(50)),
      new Preempt(0, []),
      new GuestRdmsr(0, MSR_IA32_PMC0),
    ];
    expect(faithful(p)).toBeNull();
    expect(met(p)).toEqual(['deschedule-rollback']);
  });

  it('deschedule-rollback: counts lost after a raw legacy-alias write are judged from the value as written', () => {
    // PERFCTR0 written 0xffffffff: bare metal holds -1, the series 0xffffffff. The enabling WRMSR and one instruction
    // count on bare metal (it wraps to 1); a migration rolls the series back to its sync after the first (0x1_0000_0000).
    const p = [
      new GuestWrmsr(0, MSR_IA32_PERFCTR0, 0xffff_ffffn),
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, sel(INSTRUCTIONS)),
      new GuestRun(0, work(1)),
      new Migrate(0, 0),
      new GuestRdmsr(0, MSR_IA32_PERFCTR0),
    ];
    expect(firstDivergence('skylake', guest, p, 'hw-assigned')).toMatchObject({
      sut: { kind: 'value', value: 0x1_0000_0000n },
      oracle: { kind: 'value', value: 1n },
    });
    expect(met(p)).toEqual(['deschedule-rollback']);
  });

  it('released-on-other-pcpu: a counter left disabled two slices loses its value at a sched-in on another pCPU', () => {
    // A v1 guest (2 GP counters): GP0 enabled, disabled, written; the third sched-in releases it, saving the new
    // pCPU's counter (0) where the value written was. On the same pCPU the counter still holds it: nothing differs.
    const v1: GuestConfig = {
      ...guest,
      cpuid: { ...guest.cpuid, leaf0a: { eax: 0x8300201, ebx: 0x2, ecx: 0, edx: 0 } },
    };
    const p = (to: number) => [
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x4000c4n),
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x3cn),
      new Migrate(0, 0),
      new GuestWrmsr(0, MSR_IA32_PMC0, 0xffff_ffffn),
      new Migrate(0, 0),
      new Migrate(0, to),
      new GuestRdmsr(0, MSR_IA32_PMC0),
    ];
    expect(firstDivergence('icelake', v1, p(1), 'hw-assigned')).toMatchObject({ sut: { kind: 'value', value: 0n } });
    expect(knownDivergencesMet('icelake', v1, p(1), 'hw-assigned')).toEqual(['released-on-other-pcpu']);
    expect(firstDivergence('icelake', v1, p(0), 'hw-assigned')).toBeNull();
  });

  it('global-ctrl-not-loaded: a counter the guest disabled in GLOBAL_CTRL keeps counting', () => {
    const p = [
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, sel(INSTRUCTIONS)),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n),
      new GuestRun(0, work(50)),
      new GuestRdmsr(0, MSR_IA32_PMC0),
    ];
    expect(faithful(p)).toBeNull();
    expect(met(p)).toEqual(['global-ctrl-not-loaded']);
  });

  it('global-ctrl-not-loaded: a counter whose event a GLOBAL_CTRL write creates counts nothing', () => {
    const p = [
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n),
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, sel(INSTRUCTIONS)),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 1n),
      new GuestRun(0, work(50)),
      new GuestRdmsr(0, MSR_IA32_PMC0),
    ];
    expect(faithful(p)).toBeNull();
    // Only the GLOBAL_CTRL WRMSR KVM skipped counts (emulated); none of the 50 the hardware ran.
    const o = firstDivergence('skylake', guest, p, 'hw-assigned');
    expect(o?.sut).toEqual({ kind: 'value', value: 1n });
    expect(o?.oracle).toEqual({ kind: 'value', value: 51n });
    expect(met(p)).toEqual(['global-ctrl-not-loaded']);
  });

  it('counter-moved: a host event taking the counter leaves the guest reading the host counter', () => {
    const p = [
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x40_00c4n), // EN, no OS/USR: counts nothing
      new GuestWrmsr(0, MSR_IA32_PMC0, 5n),
      new HostOpen(0, attr({ config: 0xc5n, pinned: true })), // a cpu-pinned event goes first: counter 0
      new GuestRdmsr(0, MSR_IA32_PMC0),
    ];
    expect(faithful(p)).toBeNull();
    expect(met(p)).toEqual(['counter-moved']);
  });

  it('counter-moved: a host event on the other pCPU moves nothing, and a count lost beside it is reported', () => {
    // The vCPU's thread stays on pCPU 0; a cpu-pinned host event on pCPU 1 never competes with its events.
    const p = [
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, sel(INSTRUCTIONS)),
      new HostOpen(1, attr({ config: 0xc5n, pinned: true })),
      new GuestRun(0, work(50)),
      new GuestRdmsr(0, MSR_IA32_PMC0),
    ];
    expect(firstDivergence('skylake', guest, p, 'hw-assigned')).toBeNull();
    // A planted vPMU whose counter reads lose one count: any host event anywhere used to excuse it.
    const losesOne: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestRdmsr(msr: number): Access {
          const r = super.guestRdmsr(msr);
          return r.ok && msr === MSR_IA32_PMC0 ? ok(r.value - 1n) : r;
        }
      })(h, o, HW_ASSIGNED_OPS);
    const d = designById('hw-assigned');
    const run = { host: SKYLAKE, design: losesOne, hostKernel: d.hostKernel, expectations: d.expectations };
    expect(() => runProgram(run, guest, p)).toThrow(/RDMSR 0x4c1: guest saw 0x32, bare metal shows 0x33/);
  });

  it("event-filter-not-applied: an event the VMM's filter denies counts on once perf assigned it a counter", () => {
    const p = [
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, sel(CYCLES)),
      new VmmSetPmuEventFilter({ action: 1, flags: 0, fixed_counter_bitmap: 0, events: [CYCLES] }),
      new GuestRun(0, work(50)),
      new GuestRdmsr(0, MSR_IA32_PMC0),
    ];
    expect(faithful(p)).toBeNull();
    expect(met(p)).toEqual(['event-filter-not-applied']);
  });

  it('a migration is declared by the same rollback in property 4, and a fixed counter write with it', () => {
    const p = [
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_000fn),
      new GuestWrmsr(0, 0x38d, 0x3n), // FIXED_CTR_CTRL: FC0 OS|USR, its event created and loaded here
      new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR0, 5n),
      new GuestRun(0, work(10)),
      new Migrate(0, 1),
      new GuestRdmsr(0, MSR_CORE_PERF_FIXED_CTR0),
    ];
    expect(faithful(p)).toBeNull();
    expect(met(p)).toEqual(['deschedule-rollback']);
  });
});

describe('seed 003: the host values it leaks (property 2), declared', () => {
  // The guest's event moves onto the counter a host event with a private period used; perf presets it to -period.
  const program = (period: bigint) => [
    new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x40_002en),
    new HostOpen(0, attr({ config: 0xc4n, sample_period: period })),
    new HostOpen(0, attr({ config: 0xc4n, pinned: true })),
    new GuestRdpmc(0, 0x8000_0000, 0),
  ];
  const d = designById('hw-assigned');
  const run = { host: SKYLAKE, design: d.factory, hostKernel: d.hostKernel };

  it('no-leak fails on the program without the declaration, the host period showing through', () => {
    expect(() => checkNoninterference(run, guest, program(20n), program(21n))).toThrow(Divergence);
  });

  it('counter-moved-leak declares it', () => {
    const known = new Map<string, number>();
    checkNoninterference({ ...run, leaks: d.leaks ?? [], known }, guest, program(20n), program(21n));
    expect([...known.keys()]).toEqual(['counter-moved-leak']);
  });
});
