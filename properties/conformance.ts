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

/** The world a conformance program runs in: the guest alone on the host, bare metal taking on what is adopted (W6). */
export function conformanceWorld(r: ConformanceRun, guest: GuestConfig): World {
  return new World({
    host: r.host,
    cpus: CONFORMANCE_CPUS,
    guests: [guest],
    design: r.design,
    hostKernel: r.hostKernel,
    adopt: adoptionOf(r.expectations, r.host),
  });
}

/**
 * Runs `cmds` in a fresh world. A declared divergence ends the program as known, unless it has a
 * weaker contract: then the rest of the program runs and every later observation must keep it.
 */
export function runProgram(
  r: ConformanceRun,
  guest: GuestConfig,
  cmds: Iterable<fc.Command<Record<string, never>, World>>,
): void {
  const w = conformanceWorld(r, guest);
  // The first divergence is judged where it is made, with the World's facts as they are there; a declaration with a
  // weaker contract lets the same world go on recording only (it behaves alike either way), so nothing runs twice.
  // `met`: the declaration a divergence that ends the program meets (undefined: none, a finding).
  const st: { met: KnownDivergence | undefined; judge: ContractJudge | null; adopted: number } = {
    met: undefined,
    judge: null,
    adopted: -1,
  };
  w.onDivergence = (o, w) => {
    const k = declaredFor(r.expectations, o, { host: r.host, guest, history: historyTo(w.observations, o), facts: w });
    if (k?.contract === undefined) {
      st.met = k;
      return false;
    }
    tally(r.known, k.id);
    st.judge = new ContractJudge(r, guest, k, o, w);
    st.adopted = w.adopted.length;
    return true;
  };
  try {
    // fast-check's modelRun, one command at a time: under a contract, each command's observations are judged after it.
    for (const cmd of cmds) {
      if (cmd.check({})) cmd.run({}, w);
      if (st.judge?.judgeNew() === false) return;
    }
  } catch (e) {
    // Every conformance command compares through the world's hook, so a Divergence here is the one it judged.
    if (!(e instanceof Divergence) || st.judge !== null || st.met === undefined) throw e;
    tally(r.known, st.met.id);
    tally(r.ended, st.met.id);
  } finally {
    // Adoptions count up to the divergence the program is known by (W6).
    countAdopted(r, st.adopted < 0 ? w.adopted : w.adopted.slice(0, st.adopted));
  }
}

/** A program that met an adopted divergence counts it once, as a known divergence met (W6). */
export function countAdopted(r: { known?: Map<string, number> | undefined }, adopted: readonly string[]): void {
  for (const id of new Set(adopted)) r.known?.set(id, (r.known.get(id) ?? 0) + 1);
}

/**
 * Every observation after the known one must keep the divergence's weaker contract, or the contract of another
 * declaration met later (each mechanism excuses what it leaves, so both hold from then on). Observations are judged
 * after the command that made them, with the world as it is then.
 */
class ContractJudge {
  private readonly active: KnownDivergence[];
  private i = 0;
  constructor(
    private readonly r: ConformanceRun,
    private readonly guest: GuestConfig,
    private readonly k: KnownDivergence,
    private readonly at: { step: number },
    private readonly w: World,
  ) {
    this.active = [k];
  }

  /** Judges the observations made since the last call; false when the program ends at a declaration. */
  judgeNew(): boolean {
    const { r, guest, w, k, active } = this;
    const obs = w.observations;
    for (; this.i < obs.length; this.i++) {
      const i = this.i;
      const o = obs[i]!;
      if (o.step < this.at.step || !diverges(o)) continue;
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
        return false;
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
        return false;
      }
      const d = new Divergence({ ...o, note: { kind: 'contract', id: k.id, why: whys[0]! } }, 'bare metal shows');
      d.world = w;
      throw d;
    }
    return true;
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
