/**
 * topdown-raw before any PERF_METRICS write: FIXED_CTR3 counts alone (no metrics event), so its wrap sets GLOBAL_STATUS
 * bit 35 and not bit 48 (PERF_METRICS overflow), which bare metal sets with EN_PERF_METRICS on. Found by a soak
 * (seed -1480658742, Ice Lake); the same mechanism as metrics-need-write, and nothing else of the status is excused.
 */
import { describe, expect, it } from 'vitest';
import { firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { runProgram } from '../../properties/conformance.js';
import { GuestRdmsr, GuestRun, GuestWrmsr } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';
import { runWithGuestRead } from '../support/planted.js';

const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x6a, leaf0a: { eax: 0x8300102, ebx: 0x0, ecx: 0x0, edx: 0x604 }, pdcm: true },
  perfCapabilities: 0x8000n, // PERF_METRICS
};
const slots = (backendBound: number) => ({
  cpl: 0,
  instructions: 0,
  slots: { retiring: 0, badSpeculation: 0, frontendBound: 0, backendBound },
});
const program = [
  new GuestWrmsr(0, 0x38d, 0x3333n), // FIXED_CTR_CTRL: FC0..FC3 OS|USR
  new GuestWrmsr(0, 0x38f, 0x1_000f_0000_0001n), // GLOBAL_CTRL: GP0, FC0..FC3, EN_PERF_METRICS
  new GuestWrmsr(0, 0x30c, 0xffff_ffff_fffen), // FIXED_CTR3 (SLOTS) at -2
  new GuestRun(0, [slots(2)]), // SLOTS wraps
  new GuestRdmsr(0, 0x38e),
];

describe('topdown-raw: a SLOTS wrap before PERF_METRICS is written sets no PERF_METRICS overflow bit', () => {
  it('the guest reads bit 35 alone where bare metal has bits 35 and 48: declared as metrics-need-write', () => {
    expect(firstDivergence('icelake', guest, program, 'topdown-raw')).toMatchObject({
      kind: 'rdmsr',
      sut: { kind: 'value', value: 1n << 35n },
      oracle: { kind: 'value', value: (1n << 35n) | (1n << 48n) },
    });
    expect(knownDivergencesMet('icelake', guest, program, 'topdown-raw')).toEqual(['metrics-need-write']);
  });

  it('after a PERF_METRICS write (topdown mode) the same status is slots-leader-counting: no metrics overflow either', () => {
    const topdown = [...program.slice(0, 3), new GuestWrmsr(0, 0x329, 0x0n), ...program.slice(3)];
    expect(knownDivergencesMet('icelake', guest, topdown, 'topdown-raw')).toEqual(['slots-leader-counting']);
    // Neighbour: a GP0 overflow bit the design invents there is reported.
    const run = runWithGuestRead('topdown-raw', 'icelake', 0x38e, (v) => v | 1n);
    expect(() => runProgram(run, guest, topdown)).toThrow(/RDMSR 0x38e: guest saw 0x800000001/);
  });

  it('a status that also lacks bit 35 is reported: the declaration excuses the missing bit 48 alone', () => {
    const run = runWithGuestRead('topdown-raw', 'icelake', 0x38e, (v) => v & ~(1n << 35n));
    expect(() => runProgram(run, guest, program)).toThrow(
      /RDMSR 0x38e: guest saw 0x0, bare metal shows 0x1000800000000/,
    );
  });
});
