/**
 * Seed 003's proposal (hw-assigned) under the VMM property: its declared mechanisms reach the VMM's ioctls too.
 * KVM_GET_MSRS of a counter or of GLOBAL_STATUS goes through the same intel_pmu_get_msr (patch 5/5: hw.event_base of an
 * assigned counter) and pmu->global_status as a guest RDMSR, and KVM_SET_MSRS through the same intel_pmu_set_msr as a
 * guest WRMSR. Found by the designs test's vmm-conformance check (FC_SEED=1195651669 on 100 programs), and on seeds
 * 10, 11, 20 and 39 of 2000 programs each: a count rolled back by a migration read by KVM_GET_MSRS, controls written by
 * KVM_SET_MSRS, a denied event counting on under KVM_SET_PMU_EVENT_FILTER, a lost overflow bit read by KVM_GET_MSRS.
 */
import { describe, expect, it } from 'vitest';
import { ok } from '../../model/hw/access.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import { MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { HW_ASSIGNED_OPS } from '../../model/kvm/series/hw_assigned.js';
import { designById } from '../../designs/registry.js';
import type { KnownDivergence } from '../../properties/expectations/types.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, Migrate, type WorldCommand } from '../../scenarios/commands.js';
import { withGuestRead } from '../support/planted.js';
import { VmmGetMsr, VmmSetCpuid, VmmSetMsr, VmmSetPmuEventFilter } from '../../scenarios/vmm.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import type { HostAccess } from '../../model/kvm/types.js';
import { vmmVerdict } from '../support/vmm.js';

const d = designById('hw-assigned');

/** The VMM property's verdict on a program: the declaration met, or the divergence it reports. */
function verdict(
  guest: GuestConfig,
  program: readonly WorldCommand[],
  expectations = d.expectations,
  design = d.factory,
) {
  return vmmVerdict({ host: SKYLAKE, design, hostKernel: d.hostKernel, expectations }, guest, program);
}

/** The design's declarations with one of them no longer opting in to VMM ioctls. */
const withoutVmm = (...ids: string[]): readonly KnownDivergence[] =>
  d.expectations.map((k) => (ids.includes(k.id) ? { ...k, vmm: false } : k));

/** One unit of `cycles` core cycles at `cpl`. */
const cycles = (cpl: number, n = 1) => [{ cpl, instructions: 0, cycles: n }];

// Skylake-like v2 guest, 3 GP counters and no fixed ones: the guest's cycles event lands on host fixed counter 1.
const v2NoFixed: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300302, ebx: 0x5, ecx: 0x0, edx: 0x600 }, pdcm: true },
  perfCapabilities: 0x2000n,
};

describe('hw-assigned: a migration rolls a counter back, and KVM_GET_MSRS reads it so (deschedule-rollback)', () => {
  // The shrunk counterexample: EVTSEL0 counts cycles at CPL 0; one cycle; the vCPU thread migrates (to the pCPU it is
  // on); KVM_GET_MSRS of PERFCTR0 reads the 0 sched-in wrote back, where bare metal holds 1.
  const program = [
    new VmmGetMsr(0, MSR_P6_EVNTSEL0),
    new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x42003cn),
    new GuestRun(0, cycles(0)),
    new Migrate(0, 0),
    new VmmGetMsr(0, MSR_IA32_PERFCTR0),
  ];

  it('is reported without the declaration opting in to KVM_GET_MSRS, and declared with it', () => {
    expect(verdict(v2NoFixed, program, withoutVmm('deschedule-rollback')).reported).toMatch(
      /KVM_GET_MSRS 0xc1: guest saw 0x0, expected 0x1/,
    );
    expect(verdict(v2NoFixed, program).met).toEqual(['deschedule-rollback']);
  });

  /** The series with KVM_GET_MSRS of PERFCTR0 reading `delta` more than it does. */
  const readsOff =
    (delta: bigint): VcpuFactory =>
    (h, o) =>
      new (class extends EmulatedVcpu {
        override hostGetMsr(msr: number): HostAccess {
          const r = super.hostGetMsr(msr);
          return r.ok && msr === MSR_IA32_PERFCTR0 ? { ok: true, value: r.value + delta } : r;
        }
      })(h, o, HW_ASSIGNED_OPS);

  it('a KVM_GET_MSRS that reads more than bare metal after the migration is still reported', () => {
    // Two cycles: the rollback leaves 0; a read of 3 has gained counts, which no rollback does.
    const gained = [...program.slice(0, 2), new GuestRun(0, cycles(0, 2)), ...program.slice(3)];
    expect(verdict(v2NoFixed, gained, d.expectations, readsOff(3n)).reported).toMatch(
      /KVM_GET_MSRS 0xc1: guest saw 0x3, expected 0x2/,
    );
  });

  it('a count lost at a KVM_GET_MSRS with no migration since the counter was written is still reported', () => {
    // The migration comes before the guest writes the counter, which loads it: nothing rolls back past that write.
    const lost = [
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x42003cn),
      new Migrate(0, 0),
      new GuestWrmsr(0, MSR_IA32_PERFCTR0, 0x10n),
      new GuestRun(0, cycles(0)),
      new VmmGetMsr(0, MSR_IA32_PERFCTR0),
    ];
    expect(verdict(v2NoFixed, lost).met).toEqual([]);
    expect(verdict(v2NoFixed, lost, d.expectations, readsOff(-1n)).reported).toMatch(
      /KVM_GET_MSRS 0xc1: guest saw 0x10, expected 0x11/,
    );
  });
});

describe('hw-assigned: what the VMM writes takes the guest path (intel_pmu_set_msr treats both alike)', () => {
  const run = new GuestRun(0, cycles(0));
  const read = new GuestRdmsr(0, MSR_IA32_PERFCTR0);

  it('an event select KVM_SET_MSRS rewrote keeps its first mode bits on a cross-mapped counter', () => {
    const guest: GuestConfig = {
      ...v2NoFixed,
      cpuid: { ...v2NoFixed.cpuid, leaf0a: { eax: 0x7300402, ebx: 0, ecx: 0, edx: 0x601 } },
    };
    const p = [
      new VmmSetMsr(0, MSR_P6_EVNTSEL0, 0x0n),
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x42003cn),
      new VmmSetMsr(0, MSR_P6_EVNTSEL0, 0x40003cn), // OS cleared: counts nothing on bare metal
      run,
      read,
    ];
    expect(verdict(guest, p).met).toEqual(['cross-mapped-stale-config']);
  });

  it('neighbour: on a GP counter perf gave a GP event, a rewrite lost is reported', () => {
    // LLC references (0x4f2e) run on a host GP counter; a planted KVM_SET_MSRS that drops the rewrite keeps OS counting.
    const dropsRewrite: VcpuFactory = (h, o) => {
      const v = d.factory(h, o);
      const set = v.hostSetMsr.bind(v);
      v.hostSetMsr = (m, value) => (m === MSR_P6_EVNTSEL0 && value === 0x404f2en ? { ok: true, value } : set(m, value));
      return v;
    };
    const p = [
      new VmmSetMsr(0, MSR_P6_EVNTSEL0, 0x0n),
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x424f2en),
      new VmmSetMsr(0, MSR_P6_EVNTSEL0, 0x404f2en), // OS cleared: counts nothing on bare metal
      new GuestRun(0, [{ cpl: 0, instructions: 0, llcReferences: 1 }]),
      read,
    ];
    expect(verdict(v2NoFixed, p)).toEqual({ met: [] });
    expect(verdict(v2NoFixed, p, d.expectations, dropsRewrite).reported).toMatch(/RDMSR 0xc1: guest saw 0x1/);
  });

  it('an event select KVM_SET_MSRS enabled keeps counting after the guest clears its GLOBAL_CTRL bit', () => {
    const p = [
      new VmmSetCpuid(0, v2NoFixed),
      new VmmSetMsr(0, MSR_P6_EVNTSEL0, 0x42003cn),
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x0n),
      run,
      read,
    ];
    expect(verdict(v2NoFixed, p).met).toEqual(['global-ctrl-not-loaded']);
  });

  it('a counter KVM_SET_MSRS preset overflows with no GLOBAL_STATUS bit, also in KVM_GET_MSRS', () => {
    const p = [
      new VmmSetMsr(0, MSR_IA32_PERFCTR0 + 1, 0xffff_ffff_ffffn), // -1: one branch wraps it
      new GuestWrmsr(0, MSR_P6_EVNTSEL0 + 1, 0x4200c4n), // branches, OS
      new GuestRun(0, [
        {
          cpl: 0,
          instructions: 1,
          branches: [{ from: 0xffffffff81000000n, to: 0xffffffff81000000n, kind: 'COND' as const }],
        },
      ]),
      new VmmGetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
    ];
    // The base's perf-min-period reads the VMM's GLOBAL_STATUS too (the counter was armed at -1): both opt out here.
    expect(verdict(v2NoFixed, p, withoutVmm('overflow-from-perf-period', 'perf-min-period')).reported).toMatch(
      /KVM_GET_MSRS 0x38e: guest saw 0x0, expected 0x2/,
    );
    expect(verdict(v2NoFixed, p).met).toEqual(['overflow-from-perf-period']);
    // Neighbour: a vPMU whose GLOBAL_STATUS also shows GP0's bit, a counter nobody wrote, is reported.
    const gp0Too: VcpuFactory = (h, o) => {
      const v = d.factory(h, o);
      const get = v.hostGetMsr.bind(v);
      v.hostGetMsr = (m) => {
        const r = get(m);
        return r.ok && m === MSR_CORE_PERF_GLOBAL_STATUS ? { ok: true, value: r.value | 1n } : r;
      };
      return v;
    };
    expect(verdict(v2NoFixed, p, d.expectations, gp0Too).reported).toMatch(/KVM_GET_MSRS 0x38e: guest saw 0x1/);
  });
});

describe('hw-assigned: KVM_SET_PMU_EVENT_FILTER does not stop an assigned counter (event-filter-not-applied)', () => {
  const guest: GuestConfig = {
    ...v2NoFixed,
    cpuid: { ...v2NoFixed.cpuid, leaf0a: { eax: 0x7300402, ebx: 0, ecx: 0, edx: 0x603 } },
  };
  const deny = (events: bigint[]) => new VmmSetPmuEventFilter({ action: 1, flags: 0, fixed_counter_bitmap: 0, events });
  const program = (filterFirst: boolean) => [
    ...(filterFirst ? [deny([0x3cn])] : []),
    new VmmSetMsr(0, MSR_P6_EVNTSEL0, 0x41003cn), // cycles at CPL > 0
    ...(filterFirst ? [] : [deny([0x3cn])]),
    new GuestRun(0, cycles(3)),
    new GuestRdmsr(0, MSR_IA32_PERFCTR0),
  ];

  it('a counter enabled before the filter counts the event it denies', () => {
    expect(verdict(guest, program(false)).met).toEqual(['event-filter-not-applied']);
  });

  it('one enabled after the filter never gets an event, and a planted count on it is reported', () => {
    expect(verdict(guest, program(true)).met).toEqual([]);
    const counts: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestRdmsr(msr: number) {
          const r = super.guestRdmsr(msr);
          return r.ok && msr === MSR_IA32_PERFCTR0 ? ok(r.value + 1n) : r;
        }
      })(h, o, HW_ASSIGNED_OPS);
    expect(verdict(guest, program(true), d.expectations, counts).reported).toMatch(
      /RDMSR 0xc1: guest saw 0x1, bare metal shows 0x0/,
    );
  });

  // Found by a soak (seed -2023838382): under an allow-list filter the guest enables an allowed event, then rewrites
  // the select, still enabled, to a unit mask the filter denies; the counter perf assigned keeps counting.
  const allow = new VmmSetPmuEventFilter({ action: 0, flags: 0, fixed_counter_bitmap: 0, events: [0x412en] });
  const llcRefs = [{ cpl: 0, instructions: 0, llcReferences: 1 }];
  const rewritten = (viaDisable: boolean) => [
    allow,
    new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x42412en), // event 0x2e umask 0x41, allowed: perf assigns a counter
    ...(viaDisable ? [new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x2412en)] : []),
    new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x424f2en), // umask 0x4f: LLC references, denied
    new GuestRun(0, llcRefs),
    new GuestRdmsr(0, MSR_IA32_PERFCTR0),
  ];

  it('an allowed event rewritten to a denied one keeps its assigned counter and counts: the same mechanism', () => {
    expect(verdict(guest, rewritten(false)).met).toEqual(['event-filter-not-applied']);
  });

  it('so is one disabled in between: pausing keeps the event', () => {
    expect(verdict(guest, rewritten(true)).met).toEqual(['event-filter-not-applied']);
  });

  it('a rewrite to another allowed event excuses nothing: a planted count on the counter is reported', () => {
    const allowedAgain = rewritten(false).map((c) =>
      c instanceof GuestWrmsr && c.value === 0x424f2en ? new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x52412en) : c,
    ); // the allowed event again, at CPL 0 and 3
    expect(verdict(guest, allowedAgain).met).toEqual([]);
    const counts = withGuestRead(d.factory, MSR_IA32_PERFCTR0, (v) => v + 5n);
    expect(verdict(guest, allowedAgain, d.expectations, counts).reported).toMatch(
      /RDMSR 0xc1: guest saw 0x5, bare metal shows 0x0/,
    );
  });

  it('a filter that denies another event excuses nothing of the counter: a planted count on it is reported', () => {
    const other = [
      new VmmSetMsr(0, MSR_P6_EVNTSEL0, 0x41003cn),
      deny([0xc0n]),
      new GuestRun(0, cycles(3)),
      new GuestRdmsr(0, MSR_IA32_PERFCTR0),
    ];
    const gains: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestRdmsr(msr: number) {
          const r = super.guestRdmsr(msr);
          return r.ok && msr === MSR_IA32_PERFCTR0 ? ok(r.value + 1n) : r;
        }
      })(h, o, HW_ASSIGNED_OPS);
    expect(verdict(guest, other, d.expectations, gains).reported).toMatch(
      /RDMSR 0xc1: guest saw 0x2, bare metal shows 0x1/,
    );
  });
});
