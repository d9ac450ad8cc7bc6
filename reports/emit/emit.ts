/**
 * A finding to reproducers: lower its program to a guest program and host steps, run that on the
 * model under every variant (simulate.ts), derive the checks (checks.ts), and evaluate them on
 * the design and on bare metal, so each reproducer states what the model predicts it does: exit 1
 * at a named check on a kernel like the design, exit 0 where the kernel conforms. The property
 * decides the shape: against bare metal (conformance, LBR freeze, the VMM's prefix), two runs
 * compared (no-leak, invisible), host counts with and without the guest (host-undisturbed),
 * host samples' attribution (host-samples), or the VMM's ABI.
 */

import type { Profile } from '../../model/hw/profile.js';
import type { Design } from '../../properties/design.js';
import { type WorldCommand, HostOpen, HostWork } from '../../scenarios/commands.js';
import { type Outcome, sameOutcome, showOutcome } from '../../scenarios/observation.js';
import { type GuestConfig, World } from '../../scenarios/world.js';
import { checkMsrIndexList, VmmAbiViolation } from '../../properties/vmm_abi.js';
import { checksOf, type Checks, type Failure, firstFailure, type GuestCheck } from './checks.js';
import { lowerProgram, type Plan } from './lower.js';
import type { HostStep } from './plan.js';
import { NOMINAL, simulate, simulateVariants, type Target, type Trace } from './simulate.js';
import type { Need } from './table.js';

export type Mode = 'bare-metal' | 'differential' | 'host-counts' | 'host-samples' | 'vmm-abi';

export type PropertyKind =
  | 'conformance'
  | 'lbr-freeze'
  | 'no-leak'
  | 'host-undisturbed'
  | 'invisible'
  | 'vmm-conformance'
  | 'vmm-abi'
  | 'host-samples';

export const modeOf = (p: PropertyKind): Mode =>
  p === 'no-leak' || p === 'invisible'
    ? 'differential'
    : p === 'host-undisturbed'
      ? 'host-counts'
      : p === 'host-samples'
        ? 'host-samples'
        : p === 'vmm-abi'
          ? 'vmm-abi'
          : 'bare-metal';

export interface Finding {
  /** The report id (file names derive from it). */
  readonly id: string;
  readonly title: string;
  readonly property: PropertyKind;
  readonly design: Design;
  readonly hostName: string;
  readonly host: Profile;
  readonly cpus: number;
  readonly guest: GuestConfig;
  /** The program that fails (no-leak: with the host's values changed; invisible: with the insertion in place). */
  readonly program: readonly WorldCommand[];
  /** no-leak: the program with the host's original values; invisible: the program without the insertion (as a null at its index). */
  readonly baseline?: readonly (WorldCommand | null)[];
  /** The report's own divergence: the program index of its command and its observation kind. */
  readonly target?: { readonly source: number; readonly kind: string } | undefined;
  /** How to regenerate the files (the command line), for their headers. */
  readonly regenerate: string;
  /** Where the finding is written up, for the headers. */
  readonly reportPath?: string;
}

export interface Emission {
  readonly finding: Finding;
  readonly mode: Mode;
  readonly plan: Plan;
  readonly traces: readonly Trace[];
  /** The other run of a differential reproducer (the baseline), nominal variant. */
  readonly baselineTrace?: Trace;
  readonly checks: Checks;
  /** What the host must offer (exit 77 otherwise). */
  readonly needs: readonly Need[];
  /** The first check a kernel like the design fails (null: it passes: the reproducer cannot show the finding). */
  readonly onDesign: Failure | null;
  /** The first check bare metal fails (must be null). */
  readonly onBareMetal: Failure | null;
  /** A catalogue row's fixed design, and the first check a kernel like it fails (null: it passes). */
  readonly afterFix?: { readonly design: string; readonly failure: Failure | null };
}

export function emitFinding(f: Finding, fixed?: Design): Emission {
  if (f.guest.pmuCap !== undefined)
    throw new Error('the harness does not create its VM with KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY) yet');
  const mode = modeOf(f.property);
  const plan = lowerProgram(f.program, { amplify: mode === 'host-counts' });
  const t: Target = { design: f.design, host: f.host, cpus: f.cpus, guest: f.guest, shows: f.id };
  const traces = simulateVariants(plan, t);
  const checks = checksOf(plan, t, traces, { target: f.target });
  const needs = dedupe([
    ...plan.emitters.flatMap((e, i) => (e.needs !== undefined ? e.needs(f.program[i]!) : [])),
    ...(f.design.vpmu === 'mediated' ? [{ kind: 'mediatedPmu' } as const] : []),
  ]);
  const baselineOf = (x: Target) => {
    const base = f.baseline;
    return mode === 'differential' && base !== undefined
      ? simulate(plan, x, NOMINAL, (i) => (base[i] === null ? null : base[i] !== f.program[i] ? base[i] : undefined))
      : undefined;
  };
  const baselineTrace = baselineOf(t);
  const run = { mode, plan, checks, t };
  let afterFix: Emission['afterFix'];
  if (fixed !== undefined) {
    const x = { ...t, design: fixed };
    afterFix = {
      design: fixed.id,
      failure: verdictOf({ ...run, t: x }, [simulate(plan, x, NOMINAL)], baselineOf(x), 'sut'),
    };
  }
  return {
    finding: f,
    mode,
    plan,
    traces,
    ...(baselineTrace !== undefined ? { baselineTrace } : {}),
    checks,
    needs,
    onDesign: verdictOf(run, traces, baselineTrace, 'sut'),
    onBareMetal: verdictOf(run, traces, baselineTrace, 'oracle'),
    ...(afterFix !== undefined ? { afterFix } : {}),
  };
}

/** The first check a run fails, as the reproducer of its mode checks. */
function verdictOf(
  r: { mode: Mode; plan: Plan; checks: Checks; t: Target },
  traces: readonly Trace[],
  baseline: Trace | undefined,
  side: 'sut' | 'oracle',
): Failure | null {
  const { mode, plan, checks, t } = r;
  switch (mode) {
    case 'bare-metal':
      return firstFailure(plan, checks, traces, side);
    case 'vmm-abi':
      return (side === 'sut' ? msrIndexListFailure(t) : null) ?? firstFailure(plan, checks, traces, side);
    case 'differential':
      return baseline === undefined ? null : differentialFailure(plan, checks, baseline, nominalOf(traces), side);
    case 'host-counts':
      return side === 'sut' ? hostCountsFailure(nominalOf(traces), t, plan) : null;
    case 'host-samples':
      return side === 'sut' ? hostSamplesFailure(nominalOf(traces)) : null;
  }
}

const nominalOf = (traces: readonly Trace[]) => traces.find((x) => x.variant === NOMINAL) ?? traces[0]!;

/** Whether a differential reproducer compares a check's value between its runs (exact on bare metal). */
export const compared = (c: GuestCheck) =>
  c.vector !== null && (c.valAddr === null || c.value.mode === 'exact' || c.value.mode === 'mask');

/** The first guest observation where the two runs differ (in the checks' order), then the PMIs. */
function differentialFailure(plan: Plan, checks: Checks, a: Trace, b: Trace, side: 'sut' | 'oracle'): Failure | null {
  const at = (tr: Trace) =>
    new Map(tr.mains.map((m) => [plan.ops[m.op]!.source!, side === 'sut' ? m.obs.sut : m.obs.oracle]));
  const ma = at(a);
  const mb = at(b);
  for (const c of checks.guest) {
    if (!compared(c)) continue;
    const x = ma.get(c.source);
    const y = mb.get(c.source);
    if (x === undefined || y === undefined) continue;
    const masked = (o: Outcome) =>
      c.value.mode === 'mask' && o.kind === 'value' ? { kind: 'value' as const, value: o.value & c.value.mask } : o;
    if (!sameOutcome(masked(x), masked(y)))
      return { kind: 'guest', check: c, got: `${showOutcome(y)} with it, ${showOutcome(x)} without` };
  }
  const pa = (side === 'sut' ? a.sutPmis : a.oraclePmis).map((p) => p.vector).join();
  const pb = (side === 'sut' ? b.sutPmis : b.oraclePmis).map((p) => p.vector).join();
  if (pa !== pb) return { kind: 'run', what: 'PMIs', got: `vectors [${pb}] with it, [${pa}] without` };
  return null;
}

/** How far apart a host count may be between the runs with and without the guest (the host's own noise). */
export const hostCountTolerance = (without: bigint) => 1_000_000n + without / 20n;

/** Host events' final counts with the guest against a host running only the host users' commands. */
function hostCountsFailure(tr: Trace, t: Target, plan: Plan): Failure | null {
  const w = tr.world;
  const withGuest = [...w.hostEvents, ...w.closed]
    .sort((x, y) => x.id - y.id)
    .map((e) => w.host.perf_event_read_value(e));
  const hostOnly = new World({
    host: t.host,
    cpus: t.cpus,
    guests: [],
    design: t.design.factory,
    compare: false,
    hostKernel: t.design.hostKernel,
  });
  const cmds = [...plan.prefix, ...plan.ops.flatMap((o) => o.steps)].filter(
    (s): s is HostStep => s.kind === 'host' && (s.command instanceof HostOpen || s.command instanceof HostWork),
  );
  for (const s of cmds) s.command.run({}, hostOnly);
  const without = [...hostOnly.hostEvents, ...hostOnly.closed]
    .sort((x, y) => x.id - y.id)
    .map((e) => hostOnly.host.perf_event_read_value(e));
  for (let i = 0; i < withGuest.length; i++) {
    const a = withGuest[i]!;
    const b = without[i] ?? 0n;
    const d = a > b ? a - b : b - a;
    if (d > hostCountTolerance(b))
      return { kind: 'run', what: `host event ${i}`, got: `${a} with the guest, ${b} without` };
  }
  return null;
}

/** Samples of exclude_guest host events that perf marked as the guest's. */
function hostSamplesFailure(tr: Trace): Failure | null {
  const w = tr.world;
  const events = [...w.hostEvents, ...w.closed].sort((x, y) => x.id - y.id);
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (!e.attr.exclude_guest) continue;
    const n = e.samples.filter((s) => s.inGuest).length;
    if (n > 0)
      return {
        kind: 'run',
        what: `host event ${i} (exclude_guest)`,
        got: `${n} of ${e.samples.length} samples marked as the guest's`,
      };
  }
  return null;
}

/** The MSR index list of a vCPU with all of the host's PMU: every listed MSR holds a restored value. */
function msrIndexListFailure(t: Target): Failure | null {
  try {
    checkMsrIndexList({ host: t.host, design: t.design.factory, hostKernel: t.design.hostKernel });
    return null;
  } catch (e) {
    if (e instanceof VmmAbiViolation) return { kind: 'run', what: 'KVM_GET_MSR_INDEX_LIST', got: e.message };
    throw e;
  }
}

function dedupe(ns: readonly Need[]): Need[] {
  const out: Need[] = [];
  for (const n of ns) if (!out.some((x) => JSON.stringify(x) === JSON.stringify(n))) out.push(n);
  return out;
}
