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
import { GuestRun, GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
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

/** The program's first divergence is a PMI around a WRMSR, and the declaration excuses it. */
function expectStaleIntDeclared(p: readonly WorldCommand[]): void {
  expect(firstDivergence('skylake', guest, p, 'emulated')).toMatchObject({ kind: 'pmi', around: 'wrmsr' });
  expect(knownDivergencesMet('skylake', guest, p, 'emulated')).toEqual(['emulated-overflow-stale-int']);
}

/** The program conforms, and a design that raises a PMI whatever INT says (overflow-ignores-int) is reported at `write`. */
function expectIgnoredIntReported(p: readonly WorldCommand[], write: string): void {
  expect(firstDivergence('skylake', guest, p, 'emulated')).toBeNull();
  const fault = FAULTS.find((f) => f.id === 'overflow-ignores-int')!;
  const d = designById('emulated');
  expect(() =>
    runProgram(
      { host, design: fault.design.factory, hostKernel: d.hostKernel, expectations: d.expectations },
      guest,
      p,
    ),
  ).toThrow(new RegExp(`${write}: PMIs: guest saw PMI\\(vector 2\\)[^,]*, bare metal shows no PMI`));
}

describe('emulated-overflow-stale-int: a selector written while GLOBAL_CTRL is off makes no event', () => {
  it('INT cleared while off: KVM signals the overflow with the INT of the event made before, bare metal does not', () => {
    expectStaleIntDeclared(program(WITH_INT, NO_INT));
  });

  it('INT set while off: the PMI bare metal raises is missing, the same mechanism', () => {
    expect(knownDivergencesMet('skylake', guest, program(NO_INT, WITH_INT), 'emulated')).toEqual([
      'emulated-overflow-stale-int',
    ]);
  });

  it('the event was made without INT and INT stays clear: no divergence, and a PMI a design raises anyway is reported', () => {
    expectIgnoredIntReported(program(NO_INT, NO_INT), 'WRMSR 0x38f <- 0x1');
  });
});

describe('emulated-overflow-stale-int: a counter a run left at -1', () => {
  // A soak's driver program (seed 1175607176, icelake and sapphirerapids): Linux perf's mispredict counter left one
  // event short by the guest's work, then kvm-unit-tests reprograms it to instructions without INT; the selector write
  // wraps it by retiring. The declaration looked for the counter at -1 after an instruction only, not after a run.
  const mispredict = {
    cpl: 3,
    instructions: 1,
    branches: [{ from: 0x400000n, to: 0x400000n, kind: 'COND', mispredict: true, cpl: 3 }],
  } as const;
  const afterRun = (first: bigint, second: bigint): WorldCommand[] => [
    new GuestWrmsr(0, 0x834, 0x400n), // LVTPC: NMI, unmasked
    new GuestWrmsr(0, 0x4c1, 0xffff_ffff_fffen), // PMC0 = -2
    new GuestWrmsr(0, 0x186, first), // branch mispredicts
    new GuestRun(0, [mispredict]), // PMC0 = -1
    new GuestWrmsr(0, 0x186, second), // instructions: its own retirement overflows PMC0
  ];
  const MISPREDICTS_INT = 0x5300c5n;
  const MISPREDICTS_NO_INT = 0x4300c5n;

  it('INT cleared by the write: KVM signals the overflow with the INT of the event made before', () => {
    expectStaleIntDeclared(afterRun(MISPREDICTS_INT, NO_INT));
  });

  it('INT clear before and after: no divergence, and a PMI a design raises anyway is reported', () => {
    expectIgnoredIntReported(afterRun(MISPREDICTS_NO_INT, NO_INT), 'WRMSR 0x186 <- 0x4300c0');
  });
});
