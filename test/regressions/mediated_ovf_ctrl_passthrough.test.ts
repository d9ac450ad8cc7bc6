/**
 * Regression: npm test (seed 67631954) found the mediated vPMU accepting WRMSR GLOBAL_OVF_CTRL of
 * bit 58 (LBR_FRZ) from a v2 guest that has every host counter, where bare metal of v2 raises #GP:
 * KVM passes the global MSRs through to the v4 hardware. Declared as ovf-ctrl-passthrough.
 */
import { describe, expect, it } from 'vitest';
import { firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { GuestWrmsr } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';

const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0x7f, ecx: 0x0, edx: 0x603 }, pdcm: false },
  perfCapabilities: 0x0n,
};
const program = [new GuestWrmsr(0, 0x390, 1n << 58n)];

describe('mediated vPMU: a v2 guest with every host counter writes the host v4 OVF_CTRL bits', () => {
  it('the write passes through where bare metal of v2 raises #GP', () => {
    expect(firstDivergence('skylake', guest, program, 'mediated')).toMatchObject({
      kind: 'wrmsr',
      target: 0x390,
      sut: { kind: 'accepted' },
      oracle: { kind: 'gp' },
    });
  });

  it('is declared as ovf-ctrl-passthrough', () => {
    expect(knownDivergencesMet('skylake', guest, program, 'mediated')).toEqual(['ovf-ctrl-passthrough']);
  });

  it('the emulated vPMU intercepts OVF_CTRL and raises #GP as bare metal does', () => {
    expect(firstDivergence('skylake', guest, program, 'emulated')).toBeNull();
  });
});
