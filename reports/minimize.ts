/**
 * Post-shrinking. fast-check shrinks a command list by dropping from the back and shrinking each
 * command, so unneeded commands can survive in the middle (toolchain.md §1.3). Here: delete
 * each command, and each unit of a run, one at a time, and keep a deletion when the case still
 * fails with the same signature; repeat until nothing more goes. A no-leak case loses pairs
 * (both programs at once), an invisible case keeps its inserted command and where it goes.
 */

import { GuestRun, HostWork, type WorldCommand } from '../scenarios/commands.js';
import { type Case, fails, type ReplayTarget, replay } from './replay.js';
import { caseSignature } from './signature.js';

/** Does the case still fail with the signature `sig`? */
export function failsWithSignature(t: ReplayTarget, c: Case | readonly WorldCommand[], sig: string): boolean {
  const k: Case = Array.isArray(c) ? { property: 'conformance', program: c as readonly WorldCommand[] } : (c as Case);
  const r = replay(t, k, { trace: false });
  return fails(r) && caseSignature(t.design.id, k, r.divergence) === sig;
}

/** The same kind of run with one unit fewer, or null when it has only one. */
function withoutUnit(c: WorldCommand, u: number): WorldCommand | null {
  if (c instanceof GuestRun && c.units.length > 1)
    return new GuestRun(
      c.vcpu,
      c.units.filter((_, k) => k !== u),
    );
  if (c instanceof HostWork && c.units.length > 1)
    return new HostWork(
      c.cpu,
      c.units.filter((_, k) => k !== u),
    );
  return null;
}

const unitsOf = (c: WorldCommand) => (c instanceof GuestRun || c instanceof HostWork ? c.units.length : 0);

/** Every case one deletion smaller than `c`: without one command (pair), or one unit of one run. */
function* oneSmaller(c: Case): Generator<Case> {
  const p = c.program;
  const drop = <T>(xs: readonly T[], i: number) => xs.filter((_, j) => j !== i);
  for (let i = 0; i < p.length; i++) {
    if (c.property === 'no-leak') yield { ...c, program: drop(p, i), baseline: drop(c.baseline, i) };
    else if (c.property === 'invisible')
      yield {
        ...c,
        program: drop(p, i),
        insertion: { ...c.insertion, at: i < c.insertion.at ? c.insertion.at - 1 : c.insertion.at },
      };
    else yield { ...c, program: drop(p, i) };
  }
  for (const [i, cmd] of p.entries())
    for (let u = 0; u < unitsOf(cmd); u++) {
      const smaller = withoutUnit(cmd, u);
      if (smaller === null) continue;
      const program = p.map((x, j) => (j === i ? smaller : x));
      if (c.property !== 'no-leak') yield { ...c, program };
      else {
        // A twin run (host work with other counts) loses the same unit; an identical one is the same command.
        const twin = withoutUnit(c.baseline[i]!, u);
        if (twin !== null && unitsOf(c.baseline[i]!) === unitsOf(cmd))
          yield { ...c, program, baseline: c.baseline.map((x, j) => (j === i ? twin : x)) };
      }
    }
}

/** Greedy deletion to a fixpoint; the result fails with `sig` whenever the input did. */
export function postShrinkCase<C extends Case>(t: ReplayTarget, c: C, sig: string): C {
  let cur: Case = c;
  for (let progress = true; progress;) {
    progress = false;
    for (const cand of oneSmaller(cur))
      if (failsWithSignature(t, cand, sig)) {
        cur = cand;
        progress = true;
        break;
      }
  }
  return cur as C;
}

/** Post-shrinks a conformance program (the shape the first reports had). */
export function postShrink(t: ReplayTarget, program: readonly WorldCommand[], sig: string): WorldCommand[] {
  return [...postShrinkCase(t, { property: 'conformance', program }, sig).program];
}
