/**
 * Regression for reports/filed/0001-kvm-pmc-write-period-from-base.md: a guest write to a running
 * counter re-arms the perf period from the stale base, so the overflow and its PMI come late.
 * Pinned as upstream behaviour (the known divergence write-period-from-base); if a fix lands, the
 * first expectation flips and the declaration goes.
 */
import { describe, expect, it } from 'vitest';
import { leaf0aEax, leaf0aEdx } from '../../model/hw/profile.js';
import { firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { GuestRdmsr, GuestRun, GuestWrmsr } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';

const guest: GuestConfig = {
  cpuid: {
    family: 6,
    model: 0x55,
    leaf0a: { eax: leaf0aEax(2, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
    pdcm: true,
  },
  perfCapabilities: 0x2000n, // FW_WRITES
};
const insns = (n: number) => Array.from({ length: n }, () => ({ cpl: 3, instructions: 1 }));
// A USR-only counter does not count the WRMSR (CPL 0), so no reprogram follows the write.
const program = [
  new GuestWrmsr(0, 0x38f, 0x0n),
  new GuestWrmsr(0, 0x834, 0x400n),
  new GuestWrmsr(0, 0x186, 0x5100c0n), // instructions, USR|INT|EN
  new GuestWrmsr(0, 0x38f, 0x1n),
  new GuestRun(0, insns(3)),
  new GuestWrmsr(0, 0x4c1, (1n << 48n) - 5n),
  new GuestRun(0, insns(6)),
];

describe('reports/filed/0001: a write to a running counter re-arms the perf period from the stale base', () => {
  it('the emulated vPMU delivers the PMI late', () => {
    expect(firstDivergence('skylake', guest, program, 'emulated')).toMatchObject({
      kind: 'run',
      sut: { kind: 'pmis', pmis: [] },
      oracle: { kind: 'pmis', pmis: [{ afterUnit: 4, vector: 2 }] },
    });
  });

  it('is declared as the known divergence write-period-from-base', () => {
    expect(knownDivergencesMet('skylake', guest, program, 'emulated')).toEqual(['write-period-from-base']);
  });

  // Found by a seed sweep (FC_SEED=208): with FREEZE_LBRS_ON_PMI armed and LVTPC masked, the late
  // overflow shows first as DEBUGCTL.LBR not yet cleared by the legacy freeze.
  it('delays the legacy LBR freeze too, and that is the same declared divergence', () => {
    const lbrGuest: GuestConfig = { ...guest, perfCapabilities: 0x2005n }; // FW_WRITES, LBR format 5
    const cycles = (cpl: number, n: number) => ({ cpl, instructions: 0, cycles: n });
    const late = [
      new GuestWrmsr(0, 0x1d9, 0x801n), // LBR | FREEZE_LBRS_ON_PMI
      new GuestWrmsr(0, 0x187, 0x51003cn), // cycles, USR|INT|EN on GP 1
      new GuestRun(0, [cycles(3, 1)]),
      new GuestWrmsr(0, 0xc2, 0xfffffffdn), // -3 through the legacy alias
      new GuestRun(0, [cycles(2, 3)]),
      new GuestRdmsr(0, 0x1d9),
    ];
    expect(firstDivergence('skylake', lbrGuest, late, 'emulated')).toMatchObject({
      kind: 'rdmsr',
      target: 0x1d9,
      sut: { kind: 'value', value: 0x801n },
      oracle: { kind: 'value', value: 0x800n },
    });
    expect(knownDivergencesMet('skylake', lbrGuest, late, 'emulated')).toEqual(['write-period-from-base']);
  });

  it('the mediated vPMU writes the hardware counter: the PMI comes on time', () => {
    expect(firstDivergence('skylake', guest, program, 'mediated')).toBeNull();
  });
});
