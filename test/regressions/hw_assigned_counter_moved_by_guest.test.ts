/**
 * Seed 003's proposal (hw-assigned) on the driver profile (seeds 1 and 2 of `npm start -- --design hw-assigned --gen
 * driver --runs 400`): a version-1 guest's Linux perf opens two instruction events and a branch event; its PMI handler
 * reads the second instruction counter one count high. Not the oracle, not the model of the series: host perf's
 * x86_schedule_events has no fast path for a set with a new event in it (the new one has no previous counter), so
 * perf_assign_events places every event again, by weight, fixed counters first. The branch event (GP only) takes GP0,
 * where the guest's second instruction event was; that event moves to GP1. Patch 1/5 leaves the new counter unpreset
 * for an exclude_host event, so the guest counter continues from what GP1 held (0) and not from -1: the WRMSR that
 * wraps it on bare metal leaves it at 1. series.md §5.2: "the counter value can be lost if perf moves the event to
 * another counter"; counter-moved declared it for host events only.
 */
import { describe, expect, it } from 'vitest';
import { type Access, ok } from '../../model/hw/access.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { HW_ASSIGNED_OPS } from '../../model/kvm/series/hw_assigned.js';
import { designById, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { runProgram } from '../../properties/conformance.js';
import { DriverOpen } from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';

// Skylake-like version-1 guest, 3 GP counters: instructions can go to host fixed counter 0, branches cannot.
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300301, ebx: 0x1, ecx: 0x0, edx: 0x0 }, pdcm: true },
  perfCapabilities: 0x5n,
};
const open = (events: bigint[]) =>
  new DriverOpen(
    0,
    events.map((event, i) => ({ event, usr: true, os: true, period: [0x3n, 0x1n, 0x2n][i]! })),
  );
// Instructions on GP0 (host FC0), instructions on GP1 (host GP0), then branches on GP2: the third enabling WRMSR wraps
// the first two on bare metal, and the PMI handler reads them.
const program = [open([0xc0n, 0xc0n, 0xc4n])];

/** The series with the guest's RDPMC of counter `idx` one count high. */
const rdpmcHigh =
  (idx: number): VcpuFactory =>
  (h, o) =>
    new (class extends EmulatedVcpu {
      override guestRdpmc(ecx: number, cpl: number): Access {
        const r = super.guestRdpmc(ecx, cpl);
        return r.ok && ecx === idx ? ok(r.value + 1n) : r;
      }
    })(h, o, HW_ASSIGNED_OPS);

const d = designById('hw-assigned');
const run =
  (design: VcpuFactory, p = program) =>
  () =>
    runProgram({ host: SKYLAKE, design, hostKernel: d.hostKernel, expectations: d.expectations }, guest, p);

describe("hw-assigned: the guest's own new event makes perf move another guest event (counter-moved)", () => {
  it('the PMI handler reads the moved counter one high; today’s vPMU runs it like bare metal', () => {
    expect(firstDivergence('skylake', guest, program, 'hw-assigned')).toMatchObject({
      kind: 'rdpmc',
      target: 1,
      sut: { kind: 'value', value: 4n },
      oracle: { kind: 'value', value: 3n },
    });
    expect(firstDivergence('skylake', guest, program, 'pre-reuse')).toBeNull();
    expect(knownDivergencesMet('skylake', guest, program, 'hw-assigned')).toEqual(['counter-moved']);
  });

  it('a count wrong on the counter perf did not move is still reported', () => {
    // Counter 0 stays on host fixed counter 0 (fixed counters first): a read of it one high is no move's doing.
    expect(run(rdpmcHigh(0))).toThrow(/RDPMC 0x0 at CPL 0: guest saw 0x2, bare metal shows 0x1/);
  });

  it('with no event taking its counter, the same counter read one high is reported', () => {
    // A third instruction event instead of branches: perf places the three by weight again, and the first two keep
    // host FC0 and GP0 (the third takes GP1), so nothing moves; the handler reads both counters as before.
    const same = [open([0xc0n, 0xc0n, 0xc0n])];
    expect(firstDivergence('skylake', guest, same, 'hw-assigned')).toBeNull();
    expect(run(rdpmcHigh(1), same)).toThrow(/RDPMC 0x1 at CPL 0: guest saw 0x/);
  });
});
