/**
 * The per-command table of the reproducer emitters covers the vocabulary: every command class of
 * scenarios/commands.ts and scenarios/vmm.ts has exactly one entry, which puts it in the guest
 * program, at a host sync point, or leaves it out with a reason. A new command kind fails here
 * until it has an entry in reports/emit/table.ts.
 */
import { describe, expect, it } from 'vitest';
import * as commands from '../../../scenarios/commands.js';
import * as vmm from '../../../scenarios/vmm.js';
import { COMMAND_EMITTERS, emitterOf, NoEmitterError } from '../../../reports/emit/table.js';

/** Every exported class whose instances are commands (AlwaysRuns subclasses). */
const classes = Object.entries({ ...commands, ...vmm }).filter(
  (e): e is [string, new (...a: never[]) => commands.AlwaysRuns] =>
    typeof e[1] === 'function' && e[1].prototype instanceof commands.AlwaysRuns,
);

describe('the reproducer emitters cover every command kind', () => {
  it('finds the command classes of both vocabulary files', () => {
    const names = classes.map(([n]) => n);
    for (const n of ['GuestWrmsr', 'GuestRun', 'SaveRestore', 'HostOpen', 'VmmSetCpuid', 'VmmSetPmuEventFilter'])
      expect(names).toContain(n);
  });

  for (const [name, k] of classes)
    it(`${name} has exactly one entry, guest- or host-side or left out with a reason`, () => {
      const c = Object.create(k.prototype as object) as commands.AlwaysRuns;
      const matching = COMMAND_EMITTERS.filter((e) => e.is(c));
      expect(
        matching.map((e) => e.name),
        `add an entry for ${name} to reports/emit/table.ts`,
      ).toEqual([name]);
      const e = matching[0]!;
      const sides = [e.guest !== undefined, e.host !== undefined, e.dropped !== undefined].filter(Boolean);
      expect(sides).toHaveLength(1);
      if (e.guestAfter !== undefined) expect(e.host).toBeDefined();
    });

  it('names a command kind without an entry, and where to add it', () => {
    class NewKind extends commands.AlwaysRuns {
      run(): void {}
      toString(): string {
        return 'new NewKind()';
      }
    }
    expect(() => emitterOf(new NewKind())).toThrow(NoEmitterError);
    expect(() => emitterOf(new NewKind())).toThrow(/no reproducer entry for NewKind .*reports\/emit\/table\.ts/);
  });

  it('leaves out a guest instruction the VMM saves and restores at its exit, and says why; the plain one stays', () => {
    const kicked = new commands.GuestWrmsr(0, 0x38f, 0x1n, 1);
    const e = emitterOf(kicked);
    expect(e.leftOutIf?.(kicked)).toMatch(/KVM_RUN return at this instruction's exit/);
    expect(e.leftOutIf?.(new commands.GuestWrmsr(0, 0x38f, 0x1n))).toBeNull();
  });
});
