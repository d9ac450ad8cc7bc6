/**
 * Regression: [conformance] KVM: x86/pmu: guest RDPMC 0x80000000 at CPL 0 returns 0x0 where bare
 * metal raises #GP. Bug #41 of bugs.md (fixed upstream by 5728a4a0ea79), as `npm start -- --design
 * bug/5728a4a0ea79` found and shrank it (fast-check 4.10.2, seed 5, path "8:1:1:1:1:3:1:0",
 * replayPath "SaB:F"); from the generated reports/out/<id>/regression.test.ts, with the faithful
 * design's side added: the fix must keep the #GP, the ported bug must keep failing.
 */
import { describe, expect, it } from 'vitest';
import { firstDivergence } from '../../designs/registry.js';
import { GuestRdpmc } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';

const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300102, ebx: 0x0, ecx: 0x0, edx: 0x600 }, pdcm: false },
  perfCapabilities: 0x0n,
};
const program = [new GuestRdpmc(0, 0x80000000, 0)];

describe('bug-5728a4a0ea79-rdpmc-0x80000000-bare-metal-gp: "fast" RDPMC on an architectural PMU', () => {
  it('the emulated vPMU raises #GP, as bare metal does (no divergence)', () => {
    expect(firstDivergence('skylake', guest, program, 'emulated')).toBeNull();
  });

  it('bug/5728a4a0ea79 diverges: RDPMC 0x80000000 at CPL 0: guest saw 0x0, bare metal shows #GP', () => {
    expect(firstDivergence('skylake', guest, program, 'bug/5728a4a0ea79')).toMatchObject({
      kind: 'rdpmc',
      target: 0x80000000,
      sut: { kind: 'value', value: 0n },
      oracle: { kind: 'gp' },
    });
  });
});
