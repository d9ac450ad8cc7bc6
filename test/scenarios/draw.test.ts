import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as D from '../../scenarios/draw.js';
import { quietHostCommands } from '../../scenarios/arbitraries.js';
import { mixedCommandsOf } from '../../scenarios/generation.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import type { WorldCommand } from '../../scenarios/commands.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../model/hw/msr/global.js';
import { MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0, MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../model/hw/msr/counters.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import { X2APIC_LVTPC } from '../../model/hw/msr/apic.js';
import { MSR_LBR_NHM_FROM, MSR_LBR_SELECT } from '../../model/hw/msr/lbr_legacy.js';

/** Focus lists and guest shapes as programs draw them: every family's value arbitrary is reached. */
const MIXES: [readonly number[], { nGP: number; nFixed: number } | undefined][] = [
  [[], undefined],
  [[MSR_P6_EVNTSEL0, MSR_IA32_PERFCTR0, MSR_CORE_PERF_GLOBAL_CTRL], { nGP: 4, nFixed: 3 }],
  [[MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_OVF_CTRL, MSR_CORE_PERF_FIXED_CTR_CTRL], { nGP: 8, nFixed: 4 }],
  [[X2APIC_LVTPC, MSR_IA32_DEBUGCTLMSR, MSR_LBR_NHM_FROM, MSR_LBR_SELECT], { nGP: 2, nFixed: 0 }],
];

/** Every command of each program (fast-check's own printing shows only the commands that ran). */
const programs = (arbs: fc.Arbitrary<WorldCommand>[], seed: number) =>
  fc.sample(fc.commands(arbs, { size: '+1' }), { seed, numRuns: 40 }).map((p) => [...p].map(String).join('; '));

/** Generates each command through both paths from one source: the value, where the source is left, the first shrinks. */
function sameDraws(fast: fc.Arbitrary<WorldCommand>[], numRuns: number): void {
  expect(fast.every((a) => D.slowOf(a) !== a)).toBe(true);
  // An arbitrary that generates through both paths from one source and says where they part.
  const both = fc.nat(fast.length - 1).chain(
    (i) =>
      new (class extends fc.Arbitrary<string> {
        generate(mrng: fc.Random): fc.Value<string> {
          const a = mrng.clone();
          const b = mrng.clone();
          const fv = fast[i]!.generate(a, undefined);
          const sv = D.slowOf(fast[i]!).generate(b, undefined);
          // The value, where the source is left, and what shrinking offers: the first shrinks and the first's own.
          const shrinks = (arb: fc.Arbitrary<WorldCommand>, v: fc.Value<WorldCommand>) => {
            const first = [...arb.shrink(v.value_, v.context).take(12)];
            const deeper = first.length === 0 ? [] : [...arb.shrink(first[0]!.value_, first[0]!.context).take(6)];
            return [...first, ...deeper].map((x) => String(x.value_)).join('; ');
          };
          const x = `${String(fv.value_)} ${a.nextInt(0, 0x7fff_ffff)} ${shrinks(fast[i]!, fv)}`;
          const y = `${String(sv.value_)} ${b.nextInt(0, 0x7fff_ffff)} ${shrinks(D.slowOf(fast[i]!), sv)}`;
          return new fc.Value(x === y ? 'same' : `${x} / ${y}`, undefined);
        }
        canShrinkWithoutContext(_v: unknown): _v is string {
          return false;
        }
        shrink(): fc.Stream<fc.Value<string>> {
          return fc.Stream.nil();
        }
      })(),
  );
  fc.assert(
    fc.property(both, (r) => r === 'same'),
    { seed: 7, numRuns },
  );
}

describe('fast draws (draw.ts) make what fast-check makes', () => {
  it.each(MIXES.map((m, i) => [i, m] as const))('mix %i: the same programs on every seed', (_, [focus, shape]) => {
    const fast = quietHostCommands(focus, shape);
    const slow = fast.map(D.slowOf);
    expect(slow.every((a, i) => a !== fast[i])).toBe(true);
    for (const seed of [1, 2, 3, 42, 1234, 99991]) {
      const got = programs(fast, seed);
      expect(got.join('').length).toBeGreaterThan(1000);
      expect(got).toEqual(programs(slow, seed));
    }
  });

  it('each command draws from the random source what fast-check draws, no more and no less, and shrinks the same', () => {
    sameDraws(
      MIXES.flatMap(([focus, shape]) => quietHostCommands(focus, shape)),
      3000,
    );
  });

  it.each(Object.keys(BUILTIN_PROFILES))(
    'so does every command the other profiles mix in, on %s (contended, VMM, LBR, topdown, driver)',
    (name) => {
      const host = BUILTIN_PROFILES[name]!;
      const fast = MIXES.flatMap(([focus, shape]) =>
        mixedCommandsOf(host, focus, shape ?? { nGP: host.nGP, nFixed: 3 }),
      );
      sameDraws(fast, 3000);
      // And whole programs of them, mixed as the profiles mix them.
      const mixed = (arbs: fc.Arbitrary<WorldCommand>[]) => [fc.oneof(...arbs)];
      for (const seed of [1, 42, 99991])
        expect(programs(mixed(fast), seed)).toEqual(programs(mixed(fast.map(D.slowOf)), seed));
    },
  );

  it('a failing program shrinks to the same counterexample in as many steps', () => {
    const [focus, shape] = MIXES[1]!;
    const fast = quietHostCommands(focus, shape);
    // Fails on a program that writes and then runs work: most programs, shrunk to two commands.
    const pred = (cmds: Iterable<WorldCommand>) => {
      const s = [...cmds].map(String);
      const w = s.findIndex((c) => c.startsWith('new GuestWrmsr'));
      return !(w >= 0 && s.slice(w).some((c) => c.startsWith('new GuestRun')));
    };
    for (const seed of [3, 17, 2024]) {
      const run = (arbs: fc.Arbitrary<WorldCommand>[]) => {
        const d = fc.check(fc.property(fc.commands(arbs, { size: '+1' }), pred), { seed });
        return [d.failed, [...(d.counterexample?.[0] ?? [])].map(String).join('; '), d.numShrinks];
      };
      const got = run(fast);
      expect(got[0]).toBe(true);
      expect(got).toEqual(run(fast.map(D.slowOf)));
    }
  });

  it('in an array of commands, as mixed programs draw them, biased or not', () => {
    const fast = quietHostCommands(...MIXES[2]!);
    const arr = (arbs: fc.Arbitrary<WorldCommand>[]) =>
      fc.sample(fc.array(fc.oneof(...arbs), { maxLength: 20 }), { seed: 5, numRuns: 100 }).map(String);
    expect(arr(fast)).toEqual(arr(fast.map(D.slowOf)));
  });
});
