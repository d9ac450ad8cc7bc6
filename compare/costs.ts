/**
 * The cost model of `npm run compare`: what each expensive step a design takes costs, in
 * nanoseconds. Defaults come from seed 003 (Like Xu, "Intel Virtual PMU Optimization", 2019,
 * Xeon E5-2699 v4, Linux 5.0: its tables of measured latencies); the two steps it did not measure
 * are marked as assumptions. Every default can be overridden with `--cost step=ns`.
 */

import type { VpmuCost } from '../model/kvm/cost.js';

export type CostStep = keyof VpmuCost;

export interface StepCost {
  readonly ns: number;
  /** Where the default comes from. */
  readonly source: string;
}

export const DEFAULT_COSTS: Readonly<Record<CostStep, StepCost>> = {
  msrExits: { ns: 1_400, source: 'seed 003 (4): rd/wr fixed_ctrl with the optimisation, an exit doing no perf work' },
  rdpmcExits: { ns: 1_600, source: 'seed 003 (1)+(4): the exit plus kvm_pmu_rdpmc 200 ns' },
  emulationExits: {
    ns: 3_000,
    source: 'assumption: a #UD exit plus a pass of the instruction emulator, about two MSR exits',
  },
  pmiExits: { ns: 8_800, source: 'seed 003 (2): x86_pmu.handle_irq with the optimisation, NMI exit included' },
  injectedPmis: { ns: 0, source: 'assumption: injection rides on the next VM-entry, which the exit already paid for' },
  reprograms: { ns: 30_000, source: 'seed 003 (1): pmc_stop_counter on a GP counter' },
  perfCreates: { ns: 30_000_000, source: 'seed 003 (1): perf_event_create_kernel_counter on a GP counter (3.1)' },
  perfReleases: { ns: 30_000, source: 'seed 003 (1): pmc_stop_counter, which releases the event' },
  perfCalls: { ns: 3_000, source: 'seed 003 (4): enable global_ctrl with the optimisation (perf_event_enable/period)' },
  entryExitMsrAccesses: { ns: 100, source: 'assumption: one WRMSR/RDMSR of a PMU MSR, ~250 cycles' },
  kvmMsrAccesses: { ns: 100, source: 'assumption: as entryExitMsrAccesses, one PMU MSR access by KVM' },
  entries: { ns: 0, source: 'assumption: counted in the exit that precedes each entry' },
};

export const COST_STEPS = Object.keys(DEFAULT_COSTS) as CostStep[];

export class CostSpecError extends Error {
  override readonly name = 'CostSpecError';
}

/** Parses `step=ns` overrides; an unknown step or a bad number is a one-line error. */
export function parseCostOverride(spec: string, into: Record<CostStep, number>): Record<CostStep, number> {
  const m = /^([a-zA-Z]+)=(\d+(?:\.\d+)?)$/.exec(spec);
  if (m === null) throw new CostSpecError(`--cost '${spec}': expected step=nanoseconds, e.g. perfCreates=25000`);
  const step = m[1]!;
  if (!(COST_STEPS as string[]).includes(step))
    throw new CostSpecError(`--cost '${spec}': unknown step '${step}' (known: ${COST_STEPS.join(', ')})`);
  return { ...into, [step]: Number(m[2]) };
}

export function defaultCosts(): Record<CostStep, number> {
  return Object.fromEntries(COST_STEPS.map((k) => [k, DEFAULT_COSTS[k].ns])) as Record<CostStep, number>;
}

/** Nanoseconds a tally of steps costs under `costs`. */
export function priced(tally: VpmuCost, costs: Readonly<Record<CostStep, number>>): number {
  return COST_STEPS.reduce((ns, k) => ns + tally[k] * costs[k], 0);
}

export function diffCost(after: VpmuCost, before: VpmuCost): VpmuCost {
  return Object.fromEntries(COST_STEPS.map((k) => [k, after[k] - before[k]])) as unknown as VpmuCost;
}
