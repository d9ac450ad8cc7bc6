/**
 * Property 1, conformance: with a quiet host, everything the guest observes under the design
 * equals what bare metal shows it, #GP included (design.md "Properties"). A program whose first
 * divergence is declared in the design's expectations ends there as a known divergence.
 */

import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import { Divergence } from '../scenarios/commands.js';
import { diverges, historyTo, type Observation } from '../scenarios/observation.js';
import { type GenerationProfile, profileProgramArb } from '../scenarios/generation.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';
import { adoptionOf, declaredFor, type KnownDivergence } from './expectations/types.js';
import type { SupportedPmu } from '../model/kvm/types.js';
import { supportedOf } from '../scenarios/supported.js';

/** pCPUs of the host in every conformance world; replay rebuilds the same world. */
export const CONFORMANCE_CPUS = 2;

export interface ConformanceRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  /** What the design reports on the host, which generation keeps to (probed from the design when not given). */
  readonly supported?: SupportedPmu | undefined;
  readonly expectations: readonly KnownDivergence[];
  /** The host's perf (default: upstream's); a ported host-side bug patches it. */
  readonly hostKernel?: HostKernelFactory | undefined;
  /** Counts of known divergences met, by id (for the summary). */
  readonly known?: Map<string, number>;
  /** Counts of programs that ended at a declared divergence (no weaker contract to go on under), by id. */
  readonly ended?: Map<string, number>;
}

const tally = (m: Map<string, number> | undefined, id: string) => m?.set(id, (m.get(id) ?? 0) + 1);

/**
 * Runs `cmds` in a fresh world. A declared divergence ends the program as known, unless it has a
 * weaker contract: then the rest of the program runs and every later observation must keep it.
 */
export function runProgram(
  r: ConformanceRun,
  guest: GuestConfig,
  cmds: Iterable<fc.Command<Record<string, never>, World>>,
): void {
  const adopt = adoptionOf(r.expectations, r.host);
  const world = (compare: boolean) =>
    new World({
      host: r.host,
      cpus: CONFORMANCE_CPUS,
      guests: [guest],
      design: r.design,
      hostKernel: r.hostKernel,
      compare,
      adopt,
    });
  const program = [...cmds];
  let w: World | null = null;
  try {
    fc.modelRun(() => ({ model: {}, real: (w = world(true)) }), program);
  } catch (e) {
    if (!(e instanceof Divergence)) throw e;
    // FC_SEED=124187721: a save at the write's exit moved the vCPU off the pCPU whose host user held the LBRs.
    const history = e.world === null ? [e.observation] : historyTo(e.world.observations, e.observation);
    const ctx = { host: r.host, guest, history, ...(e.world !== null ? { facts: e.world } : {}) };
    const k = declaredFor(r.expectations, e.observation, ctx);
    if (k === undefined) throw e;
    tally(r.known, k.id);
    if (k.contract === undefined) tally(r.ended, k.id);
    // The program runs again on a fresh world (the commands are immutable) through fast-check's own wrappers, so the
    // commands past the known divergence count as run: they are the counterexample's, and shrinking keeps them.
    else checkContract(r, guest, k, e.observation, world(false), program);
  } finally {
    if (w !== null) countAdopted(r, w);
  }
}

/** A program that met an adopted divergence counts it once, as a known divergence met (W6). */
export function countAdopted(r: { known?: Map<string, number> | undefined }, w: World): void {
  for (const id of new Set(w.adopted)) r.known?.set(id, (r.known.get(id) ?? 0) + 1);
}

/**
 * Every observation after the known one must keep the divergence's weaker contract, or the contract of another
 * declaration met later (each mechanism excuses what it leaves, so both hold from then on). The program runs again, one
 * command at a time, so each observation is judged with the world as it was when it was made.
 */
function checkContract(
  r: ConformanceRun,
  guest: GuestConfig,
  k: KnownDivergence,
  at: { step: number },
  w: World,
  program: readonly fc.Command<Record<string, never>, World>[],
): void {
  const obs = w.observations;
  const active = [k];
  let i = 0;
  for (const cmd of program) {
    if (cmd.check({})) cmd.run({}, w);
    for (; i < obs.length; i++) {
      const o = obs[i]!;
      if (o.step < at.step || !diverges(o)) continue;
      const ctx = { host: r.host, guest, history: obs.slice(0, i + 1), facts: w };
      // An ioctl's result is held to a contract only where its declaration names the ioctl's path, as it is matched.
      const whys = active.map((c) => (o.kind === 'vmm' && c.vmm !== true ? 'a VMM ioctl' : c.contract!(o, ctx)));
      if (whys.includes(null)) continue;
      // A guest driver routine parted on a value a contract lets differ: what follows depends on it on each side,
      // so nothing after compares, and the program ends there as that known divergence.
      const parted =
        o.kind === 'driver'
          ? active.find((c) => partedWithinContract(c, o, obs, { host: r.host, guest, facts: w }))
          : undefined;
      if (parted !== undefined) {
        tally(r.ended, parted.id);
        return;
      }
      // Outside every contract but declared on its own: with a contract of its own it joins them, else the program
      // ends there as that known divergence.
      const other = declaredFor(
        r.expectations.filter((x) => !active.includes(x)),
        o,
        ctx,
      );
      if (other !== undefined) {
        tally(r.known, other.id);
        if (other.contract !== undefined) {
          active.push(other);
          continue;
        }
        tally(r.ended, other.id);
        return;
      }
      const d = new Divergence({ ...o, note: { kind: 'contract', id: k.id, why: whys[0]! } }, 'bare metal shows');
      d.world = w;
      throw d;
    }
  }
}

/** Did the routine that parted at `fork` part on an observation the contract allows (its cause)? */
function partedWithinContract(
  k: KnownDivergence,
  fork: Observation,
  obs: readonly Observation[],
  c: { host: Profile; guest: GuestConfig; facts: World },
): boolean {
  // The routine's own first differing read, or else what differed before it started (a PMI one side took).
  const cause = fork.driver?.cause ?? null;
  const before = obs.slice(0, obs.indexOf(fork));
  const at =
    cause !== null
      ? obs.findIndex((x) => x.step === cause && diverges(x))
      : before.findLastIndex((x) => x.kind !== 'driver' && diverges(x));
  if (at < 0) return false;
  return k.contract!(obs[at]!, { ...c, history: obs.slice(0, at + 1) }) === null;
}

/** Conformance over programs of one generation profile (default: quiet host). */
export function conformanceProperty(r: ConformanceRun, gen: GenerationProfile = 'quiet') {
  return fc.property(profileProgramArb(r.host, gen, supportedOf(r)), ([guest, cmds]) => runProgram(r, guest, cmds));
}
