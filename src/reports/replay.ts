/**
 * Replays a plain program in a fresh world, command by command, keeping each command's
 * observations: the per-step trace of a report, and the question post-shrinking and
 * `npm run replay` ask ("does it still fail, and the same way?").
 */

import { CONFORMANCE_CPUS } from '../properties/conformance.js';
import type { Profile } from '../model/hw/profile.js';
import type { Design } from '../properties/designs.js';
import type { KnownDivergence } from '../properties/expectations/types.js';
import { Divergence, type WorldCommand } from '../scenarios/commands.js';
import { type GuestConfig, type Observation, World } from '../scenarios/world.js';

export interface ReplayTarget {
  readonly design: Design;
  readonly host: Profile;
  readonly cpus: number;
  readonly guest: GuestConfig;
}

export interface Step {
  /** 1-based position in the program. */
  readonly index: number;
  readonly command: WorldCommand;
  readonly observations: readonly Observation[];
}

export interface Replay {
  /** The commands that ran, the divergent one last if there is one. */
  readonly steps: readonly Step[];
  /** The first observation where the design and bare metal differ. */
  readonly divergence: Observation | null;
  /** The declared known divergence it matches (then the program is not a failure). */
  readonly known: KnownDivergence | null;
}

/**
 * Runs the program as fc.modelRun would (check, then run; the world is the real system) but
 * one command at a time, so each observation is attributed to the command that made it.
 */
export function replay(t: ReplayTarget, program: readonly WorldCommand[]): Replay {
  const world = new World({ host: t.host, cpus: t.cpus, guests: [t.guest], design: t.design.factory, hostKernel: t.design.hostKernel });
  const steps: Step[] = [];
  for (const [i, command] of program.entries()) {
    if (!command.check({})) continue;
    const before = world.observations.length;
    try {
      command.run({}, world);
    } catch (e) {
      if (!(e instanceof Divergence)) throw e;
      steps.push({ index: i + 1, command, observations: world.observations.slice(before) });
      // The same judgement as runProgram: the whole history, the divergent observation in it.
      const ctx = { host: t.host, guest: t.guest, history: world.observations };
      const known = t.design.expectations.find((k) => k.matches(e.observation, ctx)) ?? null;
      return { steps, divergence: e.observation, known };
    }
    steps.push({ index: i + 1, command, observations: world.observations.slice(before) });
  }
  return { steps, divergence: null, known: null };
}

/** A failure of the conformance property: a divergence nobody declared. */
export const fails = (r: Replay): r is Replay & { divergence: Observation } => r.divergence !== null && r.known === null;

export { CONFORMANCE_CPUS };
