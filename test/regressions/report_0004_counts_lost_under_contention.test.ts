/**
 * Regression for reports/filed/0004-kvm-guest-counts-lost-under-host-contention.md: with host pinned
 * events on every GP counter of its pCPU, the perf-based vPMU's guest counter counts nothing
 * (declared host-contention); the mediated vPMU refuses the host events and conforms.
 */
import { describe, expect, it } from 'vitest';
import { leaf0aEax, leaf0aEdx } from '../../model/hw/profile.js';
import { attr } from '../../model/host/types.js';
import { firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, HostOpen } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';

const guest: GuestConfig = {
  cpuid: {
    family: 6,
    model: 0x55,
    leaf0a: { eax: leaf0aEax(2, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
    pdcm: true,
  },
  perfCapabilities: 0x2000n,
};
const hostEvents = (n: number) =>
  Array.from({ length: n }, () => new HostOpen(0, attr({ config: 0xc4n, pinned: true })));
const guestCounts = [
  new GuestWrmsr(0, 0x186, 0x4300c4n), // BR_INST_RETIRED, OS|USR|EN
  new GuestWrmsr(0, 0x38f, 0x1n),
  new GuestRun(0, [
    { cpl: 3, instructions: 10, branches: [{ from: 0x40_0000n, to: 0x40_0040n, kind: 'COND' as const }] },
  ]),
  new GuestRdmsr(0, 0x4c1),
];

describe('reports/filed/0004: guest counts lost while host pinned events hold every GP counter', () => {
  it('the perf-based vPMU shows the guest 0 where bare metal counted 1', () => {
    expect(firstDivergence('skylake', guest, [...hostEvents(4), ...guestCounts], 'emulated')).toMatchObject({
      kind: 'rdmsr',
      target: 0x4c1,
      sut: { kind: 'value', value: 0n },
      oracle: { kind: 'value', value: 1n },
    });
  });

  it('is declared as host-contention, and its contract holds', () => {
    expect(knownDivergencesMet('skylake', guest, [...hostEvents(4), ...guestCounts], 'emulated')).toEqual([
      'host-contention',
    ]);
  });

  it('with a counter left free for it, the guest counts as on bare metal', () => {
    expect(firstDivergence('skylake', guest, [...hostEvents(3), ...guestCounts], 'emulated')).toBeNull();
  });

  it('the mediated vPMU refuses the host events and conforms', () => {
    expect(firstDivergence('skylake', guest, [...hostEvents(4), ...guestCounts], 'mediated')).toBeNull();
  });
});
