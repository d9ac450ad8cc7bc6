import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { quietHostCommands, savedAtExitCommands } from '../../scenarios/arbitraries.js';
import { beyondSupportedGuestArb, probeSupportedPmu, supportedGuestArb } from '../../scenarios/supported.js';
import { emulatedWith } from '../../designs/registry.js';
import { EMULATED_OPS } from '../../model/kvm/emulated/ops.js';

const SUPPORTED = probeSupportedPmu(SKYLAKE, emulatedWith(EMULATED_OPS));
import { GuestEmulate, GuestRdpmc, GuestRun, GuestWrmsr, Migrate, SaveRestore } from '../../scenarios/commands.js';
import {
  guestFromJson,
  guestToJson,
  ProgramFormatError,
  programFromJson,
  programToJson,
} from '../../scenarios/serialize.js';

/** Through text, as report.json does. */
const viaText = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

describe('programs to and from JSON', () => {
  it('round-trips every generated program and guest configuration (same code printed, same config)', () => {
    fc.assert(
      fc.property(
        fc.oneof(supportedGuestArb(SKYLAKE, SUPPORTED), beyondSupportedGuestArb(SKYLAKE, SUPPORTED)),
        fc.array(
          fc.oneof(
            ...quietHostCommands(),
            fc.tuple(fc.nat(3), fc.nat(3)).map(([v, c]) => new SaveRestore(v, c)),
            savedAtExitCommands([]),
          ),
          {
            maxLength: 20,
          },
        ),
        (guest, cmds) => {
          const back = programFromJson(viaText(programToJson(cmds)));
          expect(back.map(String)).toEqual(cmds.map(String));
          expect(guestFromJson(viaText(guestToJson(guest)))).toEqual(guest);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('writes each command as { cmd, args } with addresses and 64-bit values as hex strings', () => {
    const units = [
      { cpl: 3, instructions: 2, branches: [{ from: 0x401000n, to: 0xffff_ffff_8100_0000n, kind: 'COND' as const }] },
    ];
    expect(
      programToJson([new GuestWrmsr(0, 0x38f, 0xffff_ffff_ffff_ffffn), new GuestRun(1, units), new Migrate(0, 1)]),
    ).toEqual([
      { cmd: 'GuestWrmsr', args: [0, '0x38f', '0xffffffffffffffff'] },
      {
        cmd: 'GuestRun',
        args: [
          1,
          [{ cpl: 3, instructions: 2, branches: [{ from: '0x401000', to: '0xffffffff81000000', kind: 'COND' }] }],
        ],
      },
      { cmd: 'Migrate', args: [0, 1] },
    ]);
  });

  it("writes the pCPU of a save/restore at an instruction's exit as its last argument, and prints it as code that runs", () => {
    const cmds = [new GuestWrmsr(0, 0xc1, 0xfffen, 1), new GuestEmulate(0, 'jne', 3, false, 0)];
    expect(programToJson(cmds)).toEqual([
      { cmd: 'GuestWrmsr', args: [0, '0xc1', '0xfffe', 1] },
      { cmd: 'GuestEmulate', args: [0, 'jne', 3, false, 0] },
    ]);
    expect(cmds.map(String)).toEqual([
      'new GuestWrmsr(0, 0xc1, 0xfffen, /* saved and restored at its exit onto pCPU */ 1)',
      "new GuestEmulate(0, 'jne', 3, false, /* saved and restored at its exit onto pCPU */ 0)",
    ]);
    // Without one the wire form is as before: programs written earlier still read.
    expect(programToJson([new GuestWrmsr(0, 0xc1, 0n)])).toEqual([{ cmd: 'GuestWrmsr', args: [0, '0xc1', '0x0'] }]);
  });

  it('reads hex in any case and keeps work units as they were written', () => {
    const [c] = programFromJson([{ cmd: 'GuestRdpmc', args: [0, '0X4000000A'.replace('X', 'x'), 3] }]);
    expect(String(c)).toBe(String(new GuestRdpmc(0, 0x4000000a, 3)));
  });

  const unit = { cpl: 3, instructions: 1 };
  it.each([
    [{ cmd: 'GuestWrmsr' }, 'program: expected an array, got {"cmd":"GuestWrmsr"}'],
    [
      [{ cmd: 'GuestFoo', args: [] }],
      "program[0].cmd: unknown command 'GuestFoo' (known: GuestWrmsr, GuestRdmsr, GuestRdpmc, GuestRun, Migrate",
    ],
    [[{ cmd: 'toString', args: [] }], "program[0].cmd: unknown command 'toString'"],
    [
      [{ cmd: 'GuestRdmsr', args: [0] }],
      'program[0].args: GuestRdmsr takes 2 to 3 arguments (vcpu, msr[, cpu]), got 1',
    ],
    [[{ cmd: 'GuestRdmsr', args: [0, '0x38f'], extra: 1 }], "program[0]: unknown field 'extra'"],
    [[{ cmd: 'GuestRdmsr', args: [-1, '0x38f'] }], 'program[0].args[0] (vcpu): expected an integer 0..max, got -1'],
    [[{ cmd: 'GuestRdmsr', args: [0, 911] }], 'program[0].args[1] (msr): expected a "0x…" hex string, got 911'],
    [
      [{ cmd: 'GuestRdmsr', args: [0, '0x100000000'] }],
      'program[0].args[1] (msr): 0x100000000 does not fit in 32 bits',
    ],
    [
      [{ cmd: 'GuestWrmsr', args: [0, '0x38f', '0x10000000000000000'] }],
      'program[0].args[2] (value): 0x10000000000000000 does not fit in 64 bits',
    ],
    [[{ cmd: 'GuestRdpmc', args: [0, '0x0', 4] }], 'program[0].args[2] (cpl): expected an integer 0..3, got 4'],
    [[{ cmd: 'GuestRun', args: [0, [{ ...unit, bogus: 1 }]] }], "program[0].args[1][0]: unknown field 'bogus'"],
    [[{ cmd: 'GuestRun', args: [0, [{ instructions: 1 }]] }], "program[0].args[1][0]: missing field 'cpl'"],
    [
      [{ cmd: 'GuestRun', args: [0, [{ ...unit, branches: [{ from: '0x1', to: '0x2', kind: 'JMP' }] }]] }],
      'program[0].args[1][0].branches[0].kind: expected one of COND',
    ],
    [
      [{ cmd: 'GuestRun', args: [0, [{ ...unit, branches: [{ from: 4096, to: '0x2', kind: 'COND' }] }]] }],
      'program[0].args[1][0].branches[0].from: expected a "0x…" hex string, got 4096',
    ],
    [
      [
        {
          cmd: 'GuestRun',
          args: [0, [{ cpl: 3, instructions: 0, branches: [{ from: '0x1', to: '0x2', kind: 'COND' }] }]],
        },
      ],
      'program[0].args[1][0]: unit retires 1 branches but only 0 instructions',
    ],
  ])('rejects %j with one line naming the place', (json, msg) => {
    let err: unknown;
    try {
      programFromJson(json);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProgramFormatError);
    expect((err as Error).message).toContain(msg);
    expect((err as Error).message).not.toContain('\n');
  });

  it('rejects a malformed guest configuration', () => {
    expect(() =>
      guestFromJson({
        cpuid: { family: 6, model: 85, leaf0a: { eax: '0x1', ebx: '0x0', ecx: '0x0' }, pdcm: true },
        perfCapabilities: '0x0',
      }),
    ).toThrow("guest.cpuid.leaf0a: missing field 'edx'");
    expect(() => guestFromJson({ cpuid: {}, perfCapabilities: 0 })).toThrow(ProgramFormatError);
  });
});
