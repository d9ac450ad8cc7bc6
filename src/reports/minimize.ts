/**
 * Post-shrinking. fast-check shrinks a command list by dropping from the back and shrinking each
 * command, so unneeded commands can survive in the middle (toolchain.md §1.3). Here: delete
 * each command, and each unit of a GuestRun, one at a time, and keep a deletion when the program
 * still fails with the same signature; repeat until nothing more goes.
 */

import { GuestRun, type WorldCommand } from '../scenarios/commands.js';
import { fails, type ReplayTarget, replay } from './replay.js';
import { signatureOf } from './signature.js';

/** Does `program` still fail with the divergence signature `sig`? */
export function failsWithSignature(t: ReplayTarget, program: readonly WorldCommand[], sig: string): boolean {
  const r = replay(t, program);
  return fails(r) && signatureOf(t.design.id, r.divergence) === sig;
}

/** Every program one deletion smaller than `p`: without one command, or one unit of one run. */
function* oneSmaller(p: readonly WorldCommand[]): Generator<WorldCommand[]> {
  for (let i = 0; i < p.length; i++) yield p.filter((_, j) => j !== i);
  for (const [i, c] of p.entries()) {
    if (!(c instanceof GuestRun) || c.units.length < 2) continue;
    for (let u = 0; u < c.units.length; u++)
      yield p.map((x, j) => (j === i ? new GuestRun(c.vcpu, c.units.filter((_, k) => k !== u)) : x));
  }
}

/** Greedy deletion to a fixpoint; the result fails with `sig` whenever the input did. */
export function postShrink(t: ReplayTarget, program: readonly WorldCommand[], sig: string): WorldCommand[] {
  let cur = [...program];
  for (let progress = true; progress; ) {
    progress = false;
    for (const cand of oneSmaller(cur))
      if (failsWithSignature(t, cand, sig)) {
        cur = cand;
        progress = true;
        break;
      }
  }
  return cur;
}
