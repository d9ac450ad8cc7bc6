/**
 * Regression of a MODEL bug the conformance search found on an Ice Lake host (not a KVM bug):
 * a guest LBR MSR access that KVM passes through retired in guest mode without the hardware
 * counting it, so a guest counter of instructions read one short. Fixed in
 * EmulatedVcpu.guestInstruction: a passed-through instruction now retires on the pCPU.
 * Original report title: [conformance] KVM: x86/pmu: guest RDPMC 0x7 at CPL 0 returns 0x2 where bare metal returns 0x3
 * Report emulated-rdpmc-0x7-value, found 2026-11-22 (fast-check 4.10.2, seed 66519686, path
 * "1055:32:2:4:9:14:15:12:12:12",
 * replayPath "qa//O:d"); post-shrunk to 4 commands.
 * A plain program: it replays without the generators. To commit it, copy this file to
 * test/regressions/emulated-rdpmc-0x7-value.test.ts (its imports are relative to that folder).
 */
import { describe, expect, it } from 'vitest';
import { firstDivergence } from '../../designs/registry.js';
import { GuestRdmsr, GuestRdpmc, GuestWrmsr } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';

const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x6a, leaf0a: { eax: 0x8300802, ebx: 0x78, ecx: 0x0, edx: 0x600 }, pdcm: true },
  perfCapabilities: 0x2005n,
};
const program = [
  new GuestWrmsr(2, 0x18d, 0x4200c0n),
  new GuestWrmsr(0, 0x1c9, 0x0n),
  new GuestRdmsr(0, 0x1c9),
  new GuestRdpmc(0, 0x7, 0),
];

describe('emulated-rdpmc-0x7-value: [conformance] KVM: x86/pmu: guest RDPMC 0x7 at CPL 0 returns 0x2 where bare metal returns 0x3', () => {
  it('emulated counts the passed-through LBR_TOS read like bare metal does (RDPMC 0x7 reads 3)', () => {
    expect(firstDivergence('icelake', guest, program, 'emulated')).toBeNull();
  });
});
