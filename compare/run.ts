/**
 * Runs one workload on one design on one host, beside bare metal: what the guest saw (the same as
 * bare metal, a declared divergence, or a finding) and what the design spent doing it.
 */

import type { Profile } from '../model/hw/profile.js';
import { newVpmuCost, type VpmuCost } from '../model/kvm/cost.js';
import type { Design } from '../properties/design.js';
import { HostOpen, type WorldCommand } from '../scenarios/commands.js';
import { World } from '../scenarios/world.js';
import { adoptionOf, type KnownDivergence } from '../properties/expectations/types.js';
import { describeObservation, diverges, showOutcome } from '../scenarios/observation.js';
import { type CostStep, diffCost, priced } from './costs.js';
import type { Workload } from './workloads.js';

export interface WorkloadResult {
  readonly workload: string;
  readonly design: string;
  readonly host: string;
  /** 'conforms', 'declared: <id>', 'diverges: <observation>', or why it could not run. */
  readonly verdict: string;
  readonly guestOps: number;
  readonly steps: VpmuCost;
  readonly ns: number;
}

/** Whether the design could run the workload (an unavailable design has no cost to show). */
export const ranWorkload = (r: WorkloadResult): boolean => !r.verdict.startsWith('unavailable');

/** The priced cost per guest operation, in ns: the tables' and the charts' "per op" figure. */
export const nsPerGuestOp = (r: WorkloadResult): number => r.ns / Math.max(r.guestOps, 1);

export function runWorkload(
  w: Workload,
  design: Design,
  hostName: string,
  host: Profile,
  costs: Readonly<Record<CostStep, number>>,
): WorkloadResult {
  const base = { workload: w.id, design: design.id, host: hostName };
  const down = design.unavailableOn?.(host) ?? null;
  const supported = down === null ? design.supported(host) : null;
  const why = down ?? (supported !== null ? (w.unavailable?.(supported) ?? null) : null);
  if (why !== null || supported === null)
    return { ...base, verdict: `unavailable: ${why}`, guestOps: 0, steps: newVpmuCost(), ns: 0 };
  const guest = w.guest(host, supported);
  const world = new World({
    host,
    cpus: 2,
    guests: [guest],
    design: design.factory,
    hostKernel: design.hostKernel,
    compare: false,
    adopt: adoptionOf(design.expectations, host),
  });
  const program: WorldCommand[] = w.program(host);
  const before = { ...world.vcpus[0]!.cost };
  const obs = world.observations;
  // The first divergence is judged as its command ends, with the World's facts (bare metal's counters) as they are then.
  let judged: { i: number; k: KnownDivergence | undefined } | null = null;
  let seen = 0;
  for (const c of program) {
    c.run({}, world);
    for (; judged === null && seen < obs.length; seen++) {
      if (!diverges(obs[seen]!)) continue;
      const ctx = { host, guest, history: obs.slice(0, seen + 1), facts: world };
      judged = { i: seen, k: design.expectations.find((x) => x.matches(obs[seen]!, ctx)) };
    }
  }
  const steps = diffCost(world.vcpus[0]!.cost, before);
  let verdict = 'conforms';
  if (judged !== null) {
    const o = obs[judged.i]!;
    const k = judged.k;
    verdict =
      k !== undefined
        ? `declared: ${k.id}`
        : `diverges: ${describeObservation(o)}: guest saw ${showOutcome(o.sut)}, bare metal ${showOutcome(o.oracle)}`;
  }
  const guestOps = program.filter((c) => !(c instanceof HostOpen)).length;
  return { ...base, verdict, guestOps, steps, ns: priced(steps, costs) };
}
