/**
 * emulated-overflow-stale-int with LVTPC masked: the WRMSR that sets a counter's INT bit and overflows it by retiring
 * is signalled with the old INT (clear), so KVM requests no PMI and its emulated LBR freeze (Arch LBR under a
 * version-2 PMU: LBREn cleared, decision D41) does not happen, where bare metal's PMI request freezes. No PMI shows on
 * either side (LVTPC is masked), so the freeze is the mechanism's only trace. Found by a soak (seed 1874902424,
 * arch-lbr on Sapphire Rapids).
 */
import { describe, expect, it } from 'vitest';
import { firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { runProgram } from '../../properties/conformance.js';
import { GuestRdmsr, GuestWrmsr } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';
import { runWithGuestRead } from '../support/planted.js';

const guest: GuestConfig = {
  cpuid: {
    family: 6,
    model: 0x8f,
    leaf0a: { eax: 0x8300502, ebx: 0x20, ecx: 0x0, edx: 0x601 },
    pdcm: true,
    tsx: true,
    archLbr: true,
    leaf1c: { eax: 0x80000008, ebx: 0x7, ecx: 0x7, edx: 0x0 },
  },
  perfCapabilities: 0x203fn,
};
// `int`: none before; written with INT but never enabled (no perf event made with it); or enabled with INT once, then
// disabled (KVM's event keeps pmc->intr from its creation).
const program = (int: 'none' | 'written' | 'created') => [
  new GuestWrmsr(0, 0x14ce, 0x7f000fn), // LBR_CTL: LBREn and every branch type
  ...(int === 'written' ? [new GuestWrmsr(0, 0x18a, 0x1200c0n)] : []), // EVNTSEL4: INT, not enabled
  ...(int === 'created' ? [new GuestWrmsr(0, 0x18a, 0x5200c0n), new GuestWrmsr(0, 0x18a, 0x1200c0n)] : []),
  new GuestWrmsr(0, 0x4c5, 0xffff_ffff_ffffn), // PMC4 at -1 (full-width alias)
  new GuestWrmsr(0, 0x1d9, 0x800n), // DEBUGCTL.FREEZE_LBRS_ON_PMI
  new GuestWrmsr(0, 0x18a, 0x5200c0n), // instructions, OS|INT|EN: its own retirement overflows PMC4
  new GuestRdmsr(0, 0x14ce),
];

describe('emulated-overflow-stale-int: the LBR freeze a stale INT skips', () => {
  it('the guest keeps LBREn where bare metal froze, and that is the declared mechanism', () => {
    expect(firstDivergence('sapphirerapids', guest, program('none'), 'arch-lbr')).toMatchObject({
      kind: 'rdmsr',
      target: 0x14ce,
      sut: { kind: 'value', value: 0x7f000fn },
      oracle: { kind: 'value', value: 0x7f000en },
    });
    expect(knownDivergencesMet('sapphirerapids', guest, program('none'), 'arch-lbr')).toEqual([
      'emulated-overflow-stale-int',
    ]);
  });

  it('INT written while the counter was disabled made no event with it: the same mechanism', () => {
    expect(knownDivergencesMet('sapphirerapids', guest, program('written'), 'arch-lbr')).toEqual([
      'emulated-overflow-stale-int',
    ]);
  });

  it('once an event was made with INT, KVM signals the overflow and freezes too: no divergence', () => {
    expect(firstDivergence('sapphirerapids', guest, program('created'), 'arch-lbr')).toBeNull();
  });

  it('a freeze a design skips with INT unchanged is reported', () => {
    const run = runWithGuestRead('arch-lbr', 'sapphirerapids', 0x14ce, (v) => v | 1n);
    expect(() => runProgram(run, guest, program('created'))).toThrow(
      /RDMSR 0x14ce: guest saw 0x7f000f, bare metal shows 0x7f000e/,
    );
  });

  it('once the guest writes LBR_CTL again both sides hold what it wrote: an LBREn lost after that is reported', () => {
    const rewritten = [
      ...program('none').slice(0, -1),
      new GuestWrmsr(0, 0x14ce, 0x7f000fn),
      new GuestRdmsr(0, 0x14ce),
    ];
    expect(firstDivergence('sapphirerapids', guest, rewritten, 'arch-lbr')).toBeNull();
    const run = runWithGuestRead('arch-lbr', 'sapphirerapids', 0x14ce, (v) => v & ~1n);
    expect(() => runProgram(run, guest, rewritten)).toThrow(
      /RDMSR 0x14ce: guest saw 0x7f000e, bare metal shows 0x7f000f/,
    );
  });
});
