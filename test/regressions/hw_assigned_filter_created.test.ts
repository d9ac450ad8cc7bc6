/**
 * Seed 003's proposal (hw-assigned) under vmm-conformance (FC_SEED=198347419, designs.test.ts): the VMM allows only
 * instructions, enables GP counter 0 for cycles (no event: the filter denies it), then replaces the filter with one that
 * denies instructions only. kvm_vm_ioctl_set_pmu_event_filter reprograms every PMC and the base makes the cycles event,
 * but the series loads a counter's control only from the control write (patch 5/5) and leaves a new event's unwritten
 * (patch 1/5): the guest's cycle at CPL 0 is not counted. Declared as filter-created-event-not-loaded.
 */
import { describe, expect, it } from 'vitest';
import { type Access, ok } from '../../model/hw/access.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { HW_ASSIGNED_OPS } from '../../model/kvm/series/hw_assigned.js';
import { designById, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { runProgram } from '../../properties/conformance.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
import { VmmSetCpuid, VmmSetMsr, VmmSetPmuEventFilter } from '../../scenarios/vmm.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import type { WorkUnit } from '../../model/hw/work.js';

const v1: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300101, ebx: 0x1, ecx: 0x0, edx: 0x0 }, pdcm: true },
  perfCapabilities: 0x0n,
};
const guest: GuestConfig = { ...v1, cpuid: { ...v1.cpuid, leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 } } };
const cycle: WorkUnit = { cpl: 0, instructions: 0, cycles: 1 };
const setup = (between: readonly WorldCommand[] = [], evtsel = 0x42003cn, unit = cycle): WorldCommand[] => [
  new VmmSetPmuEventFilter({ action: 0, flags: 0, fixed_counter_bitmap: 0x0, events: [0xc0n] }),
  new VmmSetCpuid(0, v1),
  new VmmSetMsr(0, 0x186, evtsel), // EVNTSEL0: enabled at CPL 0
  new VmmSetPmuEventFilter({ action: 1, flags: 0, fixed_counter_bitmap: 0x0, events: [0xc0n] }),
  ...between,
  new GuestRun(0, [unit]),
  new GuestRdmsr(0, 0xc1),
];
/** LLC references (0x2e/0x4f): a GP-only event, which perf cannot put on a fixed counter (cross-mapped-stale-config). */
const llc: WorkUnit = { cpl: 0, instructions: 0, llcReferences: 1 };

/** The series with the guest's PMC0 read one low. */
const readsLow: VcpuFactory = (h, o) =>
  new (class extends EmulatedVcpu {
    override guestRdmsr(msr: number): Access {
      const r = super.guestRdmsr(msr);
      return r.ok && msr === 0xc1 && r.value > 0n ? ok(r.value - 1n) : r;
    }
  })(h, o, HW_ASSIGNED_OPS);

const d = designById('hw-assigned');

describe("hw-assigned: an event a new filter allows is made by the filter's reprogram, its control never loaded", () => {
  it('the cycle goes uncounted on the series, not on its base; declared filter-created-event-not-loaded', () => {
    expect(firstDivergence('skylake', guest, setup(), 'hw-assigned')).toMatchObject({
      kind: 'rdmsr',
      target: 0xc1,
      sut: { kind: 'value', value: 0n },
      oracle: { kind: 'value', value: 1n },
    });
    expect(firstDivergence('skylake', guest, setup(), 'pre-reuse')).toBeNull();
    expect(knownDivergencesMet('skylake', guest, setup(), 'hw-assigned')).toEqual(['filter-created-event-not-loaded']);
  });

  it('once the guest writes the control again the series loads it, and a count wrong after that is reported', () => {
    expect(knownDivergencesMet('skylake', guest, setup([], 0x424f2en, llc), 'hw-assigned')).toEqual([
      'filter-created-event-not-loaded',
    ]);
    const again = setup([new GuestWrmsr(0, 0x186, 0x434f2en)], 0x424f2en, llc); // now at CPL 0 and 3
    expect(firstDivergence('skylake', guest, again, 'hw-assigned')).toBeNull();
    const run = { host: SKYLAKE, design: readsLow, hostKernel: d.hostKernel, expectations: d.expectations };
    expect(() => runProgram(run, guest, again)).toThrow(/RDMSR 0xc1: guest saw 0x0, bare metal shows 0x1/);
  });
});
