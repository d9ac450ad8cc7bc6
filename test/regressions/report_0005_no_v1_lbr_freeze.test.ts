/**
 * Regression for reports/filed/0005-kvm-no-lbr-freeze-for-pmu-v1.md: KVM accepts FREEZE_LBRS_ON_PMI in the
 * DEBUGCTL of a PMU version 1 guest with LBRs, a bit a version-1 PMU does not have (decision D37, re-decided from the
 * SDM). It first read "no LBR freeze for a PMU v1 guest", which rested on the opposite reading of D37; that claim is
 * withdrawn (a v1 PMU has no freeze to emulate). Declared as v1-freeze-lbrs-accepted.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { DecisionLog, recording } from '../../model/hw/relied.js';
import fc from 'fast-check';
import { designById, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { World } from '../../scenarios/world.js';
import { lbrGuest } from '../../properties/lbr_freeze.js';
import { Divergence, GuestRdmsr, GuestRun, GuestWrmsr } from '../../scenarios/commands.js';

const guest = lbrGuest(SKYLAKE, 1);
const branch = { from: 0xffff_ffff_8100_0000n, to: 0xffff_ffff_8100_0040n, kind: 'COND' as const, cpl: 0 };
const program = [
  new GuestWrmsr(0, 0x1d9, 0x801n), // LBR | FREEZE_LBRS_ON_PMI
  new GuestWrmsr(0, 0x186, 0x5300c4n | (1n << 20n)), // BR_INST_RETIRED, USR|OS|INT|EN (v1: no GLOBAL_CTRL)
  new GuestWrmsr(0, 0x4c1, (1n << 48n) - 2n), // overflow after 2 branches
  new GuestRun(0, [{ cpl: 0, instructions: 3, cycles: 2, branches: [branch, branch] }]),
  new GuestRdmsr(0, 0x1d9),
];

describe('reports/filed/0005: FREEZE_LBRS_ON_PMI accepted for a PMU v1 guest', () => {
  it('the emulated vPMU accepts the DEBUGCTL write that a version-1 PMU refuses, and that verdict rests on D37', () => {
    const log = new DecisionLog();
    const w = new World({ host: SKYLAKE, cpus: 2, guests: [guest], design: designById('emulated').factory });
    let d: unknown = null;
    recording(log, () => {
      try {
        fc.modelRun(() => ({ model: {}, real: w }), program);
      } catch (e) {
        if (!(e instanceof Divergence)) throw e;
        d = e.observation;
      }
    });
    expect(d).toMatchObject({ kind: 'wrmsr', target: 0x1d9, sut: { kind: 'accepted' }, oracle: { kind: 'gp' } });
    expect(log.has('D37')).toBe(true);
  });

  it('is declared as the known divergence v1-freeze-lbrs-accepted, which bare metal takes on: the bit held, no freeze', () => {
    const log = new DecisionLog();
    expect(recording(log, () => firstDivergence('skylake', guest, program, 'emulated'))).toBeNull();
    expect(log.has('D37')).toBe(true);
    expect(knownDivergencesMet('skylake', guest, program, 'emulated')).toEqual(['v1-freeze-lbrs-accepted']);
  });

  it('LBR alone conforms on a v1 guest, and the whole program freezes on both sides of a v2 guest', () => {
    expect(firstDivergence('skylake', guest, [new GuestWrmsr(0, 0x1d9, 0x1n), ...program.slice(1)], 'emulated')).toBe(
      null,
    );
    expect(
      firstDivergence('skylake', lbrGuest(SKYLAKE, 2), [new GuestWrmsr(0, 0x38f, 0x1n), ...program], 'emulated'),
    ).toBeNull();
  });
});
