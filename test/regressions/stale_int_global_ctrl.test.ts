/**
 * emulated-overflow-stale-int when GLOBAL_CTRL is off: reprogram_counter makes a counter's perf event (and sets
 * pmc->intr) only while both its control and GLOBAL_CTRL enable it, so a selector written while GLOBAL_CTRL is off
 * leaves the INT of the event made before. The enabling GLOBAL_CTRL write that overflows the counter by retiring is
 * then signalled with that older INT. Found by kvm-unit-tests' overflow check in the driver profile, which the
 * declaration excused only when the selector write itself made the event.
 */
import { describe, expect, it } from 'vitest';
import { FAULTS } from '../../catalogue/faults.js';
import { designById, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { runProgram } from '../../properties/conformance.js';
import { GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
import { reportedGuest } from '../support/guests.js';

const host = BUILTIN_PROFILES.skylake!;
const guest = reportedGuest(designById('emulated'), host, false);

/** EVNTSEL0 enabled with `first` (an event made of it), GLOBAL_CTRL off, EVNTSEL0 `second`, PMC0 at -1, GLOBAL_CTRL on. */
const program = (first: bigint, second: bigint): WorldCommand[] => [
  new GuestWrmsr(0, 0x834, 0x400n), // LVTPC: NMI, unmasked
  new GuestWrmsr(0, 0x186, first),
  new GuestWrmsr(0, 0x38f, 0x0n),
  new GuestWrmsr(0, 0x186, second),
  new GuestWrmsr(0, 0x4c1, 0xffff_ffff_ffffn),
  new GuestWrmsr(0, 0x38f, 0x1n), // its own retirement overflows PMC0
];
const WITH_INT = 0x5300c0n; // instructions, USR|OS|INT|EN
const NO_INT = 0x4300c0n;

describe('emulated-overflow-stale-int: a selector written while GLOBAL_CTRL is off makes no event', () => {
  it('INT cleared while off: KVM signals the overflow with the INT of the event made before, bare metal does not', () => {
    expect(firstDivergence('skylake', guest, program(WITH_INT, NO_INT), 'emulated')).toMatchObject({
      kind: 'pmi',
      around: 'wrmsr',
    });
    expect(knownDivergencesMet('skylake', guest, program(WITH_INT, NO_INT), 'emulated')).toEqual([
      'emulated-overflow-stale-int',
    ]);
  });

  it('INT set while off: the PMI bare metal raises is missing, the same mechanism', () => {
    expect(knownDivergencesMet('skylake', guest, program(NO_INT, WITH_INT), 'emulated')).toEqual([
      'emulated-overflow-stale-int',
    ]);
  });

  it('the event was made without INT and INT stays clear: no divergence, and a PMI a design raises anyway is reported', () => {
    expect(firstDivergence('skylake', guest, program(NO_INT, NO_INT), 'emulated')).toBeNull();
    const fault = FAULTS.find((f) => f.id === 'overflow-ignores-int')!;
    const d = designById('emulated');
    expect(() =>
      runProgram(
        { host, design: fault.design.factory, hostKernel: d.hostKernel, expectations: d.expectations },
        guest,
        program(NO_INT, NO_INT),
      ),
    ).toThrow(/WRMSR 0x38f <- 0x1: PMIs: guest saw PMI\(vector 2\)[^,]*, bare metal shows no PMI/);
  });
});
