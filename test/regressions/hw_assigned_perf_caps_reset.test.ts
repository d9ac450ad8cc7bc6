/**
 * Seed 003's proposal (hw-assigned) under vmm-conformance (FC_SEED=226312238, designs.test.ts): the VMM enables GP
 * counter 0, then changes PERF_CAPABILITIES, which refreshes and so resets the PMU (kvm_set_msr_common →
 * kvm_pmu_refresh, reset first since 1647b52757d5): the counter's event is released. The guest's instructions event
 * then lands on host fixed counter 0, and the VMM's new select reaches it only through perf's stale config
 * (cross-mapped-stale-config). The declaration's replay of perf's placement kept the released event, so it named no
 * counter; it now resets at a changed PERF_CAPABILITIES as at a new CPUID.
 */
import { describe, expect, it } from 'vitest';
import { firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { GuestRun, GuestWrmsr } from '../../scenarios/commands.js';
import { VmmGetMsr, VmmSetMsr } from '../../scenarios/vmm.js';
import type { GuestConfig } from '../../scenarios/world.js';

const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300101, ebx: 0, ecx: 0, edx: 0 }, pdcm: true },
  perfCapabilities: 0x5n,
};
const program = (caps: bigint) => [
  new VmmSetMsr(0, 0x186, 0x404f3cn),
  new VmmSetMsr(0, 0x345, caps),
  new GuestWrmsr(0, 0x186, 0x4300c0n),
  new VmmSetMsr(0, 0x186, 0x40003cn),
  new GuestRun(0, [{ cpl: 3, instructions: 1 }]),
  new VmmGetMsr(0, 0xc1),
];

describe('hw-assigned: a changed PERF_CAPABILITIES resets the events cross-mapped-stale-config replays', () => {
  it('the stale instructions count after the reset is declared', () => {
    expect(firstDivergence('skylake', guest, program(0n), 'hw-assigned')).toMatchObject({
      kind: 'vmm',
      sut: { kind: 'value', value: 2n },
      oracle: { kind: 'value', value: 1n },
    });
    expect(firstDivergence('skylake', guest, program(0n), 'pre-reuse')).toBeNull();
    expect(knownDivergencesMet('skylake', guest, program(0n), 'hw-assigned')).toEqual(['cross-mapped-stale-config']);
  });
});
