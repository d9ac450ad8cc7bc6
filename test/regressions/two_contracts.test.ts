/**
 * Two weaker contracts at once (driver profile, seed 6, icelake): the LBR cycle counts a VM-exit adds
 * (lbr-cycles-include-exits) are met first; later Linux perf's boot probe writes a running counter, whose overflow then
 * comes late (write-period-from-base, reports/filed/0001). Each mechanism excuses what it leaves, so from the second
 * on both contracts hold: the missing PMI is the second one's, not a finding. Found when the first contract alone
 * judged the rest of the program. Bare metal now reads KVM's LBR_INFO where only the cycles differ (adopted, W6), so
 * the first contract is met only with that adoption left out.
 */
import { describe, expect, it } from 'vitest';
import { designById, knownDivergencesMet } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { runProgram } from '../../properties/conformance.js';
import { DriverBoot, DriverLbr, DriverOpen, DriverRun } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';
import { condBranch } from '../support/work.js';

const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x6a, leaf0a: { eax: 0x8300402, ebx: 0x4, ecx: 0x0, edx: 0x602 }, pdcm: true },
  perfCapabilities: 0x2005n,
};
const program = [
  new DriverOpen(0, [
    { event: 0xc4n, usr: true, os: true, period: 0x3n },
    { event: 0xc0n, usr: true, os: true, period: 0x0n },
  ]),
  new DriverLbr(0, { select: 0x0n, callStack: false }),
  new DriverRun(0, [
    { cpl: 0, instructions: 3, branches: [condBranch(0), condBranch(0), condBranch(0)] },
    { cpl: 3, instructions: 0 },
  ]),
  new DriverBoot(0, { kernel: 'linux', ack: 'late', lvtpc: 0x400n }),
  new DriverRun(0, [{ cpl: 1, instructions: 1, branches: [condBranch(1)] }]),
  new DriverBoot(0, { kernel: 'linux', ack: 'late', lvtpc: 0x20n }),
  new DriverRun(0, [
    { cpl: 3, instructions: 1, untakenBranches: 1 },
    { cpl: 3, instructions: 3, untakenBranches: 2, branches: [condBranch(3)] },
  ]),
];

describe('two weaker contracts in one program', () => {
  it('the second declaration with a contract joins the first: the program runs on under both', () => {
    const d = designById('emulated');
    const known = new Map<string, number>();
    const expectations = d.expectations.map(({ adoptRead: _, ...k }) => k);
    runProgram({ host: BUILTIN_PROFILES['icelake']!, design: d.factory, expectations, known }, guest, program);
    expect([...known.keys()]).toEqual(['lbr-cycles-include-exits', 'write-period-from-base']);
  });

  it('with the cycle counts adopted, the one contract met takes the missing PMI', () => {
    expect(knownDivergencesMet('icelake', guest, program, 'emulated')).toEqual([
      'write-period-from-base',
      'lbr-cycles-include-exits',
    ]);
  });
});
