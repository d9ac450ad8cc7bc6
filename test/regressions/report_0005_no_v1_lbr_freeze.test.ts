/**
 * Regression for reports/filed/0005-kvm-no-lbr-freeze-for-pmu-v1.md: a guest with PMU version 1 and
 * FREEZE_LBRS_ON_PMI gets no freeze, so DEBUGCTL.LBR stays set after the PMI. Found by a seed
 * sweep of the conformance property (FC_SEED=213); pinned as upstream behaviour (declared
 * no-v1-lbr-freeze). It rests on decision D37 (a v1 PMU freezes as v2/v3 do).
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { lbrGuest } from '../../properties/lbr_freeze.js';
import { GuestRdmsr, GuestRun, GuestWrmsr } from '../../scenarios/commands.js';

const guest = lbrGuest(SKYLAKE, 1);
const branch = { from: 0xffff_ffff_8100_0000n, to: 0xffff_ffff_8100_0040n, kind: 'COND' as const, cpl: 0 };
const program = [
  new GuestWrmsr(0, 0x1d9, 0x801n), // LBR | FREEZE_LBRS_ON_PMI
  new GuestWrmsr(0, 0x186, 0x5300c4n | (1n << 20n)), // BR_INST_RETIRED, USR|OS|INT|EN (v1: no GLOBAL_CTRL)
  new GuestWrmsr(0, 0x4c1, (1n << 48n) - 2n), // overflow after 2 branches
  new GuestRun(0, [{ cpl: 0, instructions: 3, cycles: 2, branches: [branch, branch] }]),
  new GuestRdmsr(0, 0x1d9),
];

describe('reports/filed/0005: no LBR freeze for a PMU v1 guest', () => {
  it('the emulated vPMU leaves DEBUGCTL.LBR set after the PMI', () => {
    expect(firstDivergence('skylake', guest, program, 'emulated')).toMatchObject({
      kind: 'rdmsr',
      target: 0x1d9,
      sut: { kind: 'value', value: 0x801n },
      oracle: { kind: 'value', value: 0x800n },
    });
  });

  it('is declared as the known divergence no-v1-lbr-freeze', () => {
    expect(knownDivergencesMet('skylake', guest, program, 'emulated')).toEqual(['no-v1-lbr-freeze']);
  });

  it('the same program on a v2 guest freezes on both sides', () => {
    expect(
      firstDivergence('skylake', lbrGuest(SKYLAKE, 2), [new GuestWrmsr(0, 0x38f, 0x1n), ...program], 'emulated'),
    ).toBeNull();
  });
});
