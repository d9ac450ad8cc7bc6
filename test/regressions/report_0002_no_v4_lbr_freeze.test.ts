/**
 * Regression for reports/filed/0002-kvm-no-lbr-freeze-for-pmu-v4.md (bugs.md #17): a guest with PMU
 * version 4 gets no Freeze_LBRs_On_PMI, so GLOBAL_STATUS.LBR_FRZ is never set. The shrunk program
 * of `npm run bugs -- --only 17`; pinned as upstream behaviour (declared no-v4-lbr-freeze).
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import fc from 'fast-check';
import { designById, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { World } from '../../scenarios/world.js';
import { lbrGuest } from '../../properties/lbr_freeze.js';
import { Divergence, GuestRdmsr, GuestRun, GuestWrmsr } from '../../scenarios/commands.js';

const guest = lbrGuest(SKYLAKE, 4);
const branch = { from: 0xffff_ffff_8100_0000n, to: 0xffff_ffff_8100_0040n, kind: 'COND' as const, cpl: 0 };
const program = [
  new GuestWrmsr(0, 0x1d9, 0x801n), // LBR | FREEZE_LBRS_ON_PMI
  new GuestWrmsr(0, 0x186, 0x5300c4n | (1n << 20n)), // BR_INST_RETIRED, USR|OS|INT|EN
  new GuestWrmsr(0, 0x4c1, (1n << 48n) - 2n),
  new GuestWrmsr(0, 0x38f, 0x1n),
  new GuestRun(0, [{ cpl: 0, instructions: 3, cycles: 2, branches: [branch, branch] }]),
  new GuestRdmsr(0, 0x38e),
];

describe('reports/filed/0002: no LBR freeze for a PMU v4 guest', () => {
  it('the emulated vPMU leaves LBR_FRZ (GLOBAL_STATUS bit 58) clear where bare metal sets it', () => {
    const w = new World({ host: SKYLAKE, cpus: 2, guests: [guest], design: designById('emulated').factory });
    let first: unknown = null;
    try {
      fc.modelRun(() => ({ model: {}, real: w }), program);
    } catch (e) {
      if (!(e instanceof Divergence)) throw e;
      first = e.observation;
    }
    expect(first).toMatchObject({
      kind: 'rdmsr',
      target: 0x38e,
      sut: { kind: 'value', value: 1n },
      oracle: { kind: 'value', value: (1n << 58n) | 1n },
    });
  });

  it('is declared as the known divergence no-v4-lbr-freeze, which bare metal takes on: nothing else differs', () => {
    expect(firstDivergence('skylake', guest, program, 'emulated')).toBeNull();
    expect(knownDivergencesMet('skylake', guest, program, 'emulated')).toEqual(['no-v4-lbr-freeze']);
  });
});
