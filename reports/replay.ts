/**
 * Replays a failing case in fresh worlds, command by command, keeping each command's
 * observations: the per-step trace of a report, and the question post-shrinking and
 * `npm run replay` ask ("does it still fail, and the same way?"). Each property compares two
 * things (the design and bare metal, two programs, a program with and without an insertion, the
 * host with and without the guest); replay makes the same comparison as the property's own check,
 * so a report fails exactly when the property does.
 */

import { conformanceExpectations } from '../properties/checks.js';
import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import type { PerfEvent } from '../model/host/types.js';
import { runProgram } from '../properties/conformance.js';
import type { Design } from '../properties/design.js';
import { adoptionOf, type KnownDivergence } from '../properties/expectations/types.js';
import { Divergence, HostOpen, HostWork, type WorldCommand } from '../scenarios/commands.js';
import { type GuestConfig, World } from '../scenarios/world.js';
import { type DecisionId, DecisionLog, recording } from '../model/hw/relied.js';
import {
  ABSENT,
  diverges,
  historyTo,
  type Observation,
  type ObservationKind,
  sameOutcome,
} from '../scenarios/observation.js';

/** The properties whose failures become reports (checks.ts ids). */
export const REPORT_PROPERTIES = ['conformance', 'lbr-freeze', 'no-leak', 'host-undisturbed', 'invisible'] as const;
export type PropertyId = (typeof REPORT_PROPERTIES)[number];
export const isReportProperty = (id: string): id is PropertyId => (REPORT_PROPERTIES as readonly string[]).includes(id);

/** A VMM action inserted into a program (property 4): before command `at` (0-based) of the plain program. */
export interface Insertion {
  readonly at: number;
  readonly command: WorldCommand;
}

/**
 * What a property compares. `program` is the program that fails: the guest's (conformance,
 * lbr-freeze), the one with the host's private values changed (no-leak), guest and host commands
 * (host-undisturbed), the plain program an insertion breaks (invisible).
 */
export type Case =
  | { readonly property: 'conformance' | 'lbr-freeze' | 'host-undisturbed'; readonly program: readonly WorldCommand[] }
  /** `baseline[i]` is `program[i]` with the host's original values; the guest commands are the same. */
  | {
      readonly property: 'no-leak';
      readonly program: readonly WorldCommand[];
      readonly baseline: readonly WorldCommand[];
    }
  | { readonly property: 'invisible'; readonly program: readonly WorldCommand[]; readonly insertion: Insertion };

export interface ReplayTarget {
  readonly design: Design;
  readonly host: Profile;
  readonly cpus: number;
  readonly guest: GuestConfig;
  /** A conformance check's generation profile (checks.ts): it decides which divergences are declared. */
  readonly gen?: string | undefined;
  /** The filed report replayed to show its own divergence: bare metal does not take on the declaration filed as it. */
  readonly shows?: string | undefined;
}

/** A host perf event, as a report names it. */
export interface HostEventRef {
  /** Its position among the program's HostOpen commands that opened an event. */
  readonly index: number;
  readonly cpu: number;
  /** The attr as HostOpen prints it: `attr({ config: 0xc0n, pinned: true, … })`. */
  readonly attr: string;
  /** The attr in perf's words: `config 0xc0, pinned, exclude_kernel, exclude_guest`. */
  readonly perf: string;
}

/**
 * An observation as a report shows it: the guest's (sut against oracle, where the "oracle" is
 * whatever the property compares with), or a host event's count (kind 'host-event': sut is the
 * count with the guest, oracle the count on the same host without it).
 */
export type ReportObservation = Omit<Observation, 'kind'> & {
  readonly kind: ObservationKind | 'host-event';
  readonly event?: HostEventRef;
  /** host-event: the count at the end of the program (the property's verdict), not after a prefix. */
  readonly atEnd?: boolean;
};

export interface Step {
  /** 1-based position in the program as it ran (for invisible: with the insertion). */
  readonly index: number;
  readonly command: WorldCommand;
  /** no-leak: the baseline's command here, when it differs. */
  readonly baseline?: WorldCommand;
  /** invisible: this is the inserted command. */
  readonly inserted?: boolean;
  readonly observations: readonly ReportObservation[];
}

export interface Replay {
  readonly property: PropertyId;
  /** The commands that ran, in order (conformance stops at the divergent one). */
  readonly steps: readonly Step[];
  /** The first observation where the two sides differ; the same object appears in `steps`. */
  readonly divergence: ReportObservation | null;
  /** The declared known divergence it matches (then the case is not a failure). */
  readonly known: KnownDivergence | null;
  /**
   * host-undisturbed: the trace row where the divergent event's counts first part (the divergence is the final count).
   */
  readonly parted?: ReportObservation;
  /**
   * Properties 1 and 3: the unverified decisions (model/hw/relied.ts) the program's commands applied up to and
   * including the divergent one, on either side, in the order first met; the world's construction (host perf's own
   * set-up) is left out.
   */
  readonly rests?: readonly DecisionId[];
}

export interface ReplayOptions {
  /** Build the per-step trace (host-undisturbed: one pair of runs per prefix); off for post-shrinking. */
  readonly trace?: boolean;
}

/** A failure of the property: a divergence nobody declared. */
export const fails = (r: Replay): r is Replay & { divergence: ReportObservation } =>
  r.divergence !== null && r.known === null;

/** A case's program with the insertion in place (invisible), else the program. */
export function programRun(c: Case): WorldCommand[] {
  if (c.property !== 'invisible') return [...c.program];
  const k = Math.min(c.insertion.at, c.program.length);
  return [...c.program.slice(0, k), c.insertion.command, ...c.program.slice(k)];
}

export const isHostCommand = (c: WorldCommand) => c instanceof HostOpen || c instanceof HostWork;

const asCase = (c: Case | readonly WorldCommand[]): Case =>
  Array.isArray(c) ? { property: 'conformance', program: c as readonly WorldCommand[] } : (c as Case);

/** Replays a case (a bare program is a conformance case). */
export function replay(t: ReplayTarget, c: Case | readonly WorldCommand[], opts: ReplayOptions = {}): Replay {
  const k = asCase(c);
  switch (k.property) {
    case 'conformance':
    case 'lbr-freeze':
      return againstBareMetal(t, k.property, k.program);
    case 'no-leak':
      return twoPrograms(t, k);
    case 'invisible':
      return withInsertion(t, k);
    case 'host-undisturbed':
      return hostCounts(t, k.program, opts.trace ?? true);
  }
}

const world = (t: ReplayTarget, guests: GuestConfig[], compare: boolean) =>
  new World({
    host: t.host,
    cpus: t.cpus,
    guests,
    design: t.design.factory,
    compare,
    hostKernel: t.design.hostKernel,
    adopt: adoptionOf(
      t.design.expectations.filter((k) => k.filed === undefined || k.filed !== t.shows),
      t.host,
    ),
  });

/**
 * Properties 1 and 3. The verdict is runProgram's own (known divergences, and the weaker contract
 * a known one may leave); the trace records every observation of the whole program, beside bare
 * metal, one command at a time, with the verdict's observation in its place.
 */
function againstBareMetal(t: ReplayTarget, property: PropertyId, program: readonly WorldCommand[]): Replay {
  const expectations = conformanceExpectations(t.design, t.gen);
  let failure: Observation | null = null;
  // What the program met, by id, the declaration judged at its first divergence first (adoptions are counted last).
  const met = new Map<string, number>();
  try {
    runProgram(
      { host: t.host, design: t.design.factory, hostKernel: t.design.hostKernel, expectations, known: met },
      t.guest,
      program,
    );
  } catch (e) {
    if (!(e instanceof Divergence)) throw e;
    failure = e.observation;
  }
  const w = world(t, [t.guest], false);
  const same = (a: Observation, b: Observation) =>
    a.step === b.step && a.vcpu === b.vcpu && a.kind === b.kind && a.target === b.target && sameOutcome(a.sut, b.sut);
  // One log per command: the decisions up to the divergent command are what its verdict can rest on.
  const logs: DecisionLog[] = [];
  const steps = program.map((command, i): Step => {
    const before = w.observations.length;
    const log = new DecisionLog();
    logs.push(log);
    recording(log, () => {
      if (command.check({})) command.run({}, w);
    });
    const observations = w.observations.slice(before).map((o) => (failure !== null && same(o, failure) ? failure : o));
    return { index: i + 1, command, observations };
  });
  const rests = (o: Observation) => [...new Set(logs.slice(0, o.step).flatMap((l) => l.ids))];
  if (failure !== null) return { property, steps, divergence: failure, known: null, rests: rests(failure) };
  // No failure: the first difference, if any, is a declared one.
  const first = w.observations.find(diverges);
  if (first === undefined) return { property, steps, divergence: null, known: null };
  // runProgram's own verdict names it: its matchers saw the World's facts as they were at the divergence.
  const judged = met.keys().next();
  const history = historyTo(w.observations, first);
  const known =
    expectations.find((x) => !judged.done && x.id === judged.value) ??
    expectations.find((x) => x.matches(first, { host: t.host, guest: t.guest, history, facts: w })) ??
    null;
  return { property, steps, divergence: first, known, rests: rests(first) };
}

interface Recorded {
  readonly world: World;
  /** Per command: the observations it made, VMM actions left out (the properties compare only what the guest sees). */
  readonly perCommand: Observation[][];
}

/** Runs a program with recording only (no comparison with bare metal), as properties 2 and 4 do. */
function record(t: ReplayTarget, program: readonly WorldCommand[]): Recorded {
  const w = world(t, [t.guest], false);
  const perCommand = program.map((command) => {
    const before = w.observations.length;
    if (command.check({})) command.run({}, w);
    return w.observations.slice(before).filter((o) => o.kind !== 'vmm');
  });
  return { world: w, perCommand };
}

/**
 * Pairs the guest's observations of two runs by position, as the properties do, and finds the
 * first pair that differs; `mark` turns it into the divergence (the property's words for it).
 */
function pairUp(
  shown: Recorded,
  other: Recorded,
  mark: (o: ReportObservation) => ReportObservation,
): { paired: ReportObservation[][]; divergence: ReportObservation | null } {
  const theirs = other.perCommand.flat();
  let n = 0;
  let divergence: ReportObservation | null = null;
  const paired = shown.perCommand.map((obs) =>
    obs.map((o) => {
      const a = theirs[n++];
      const p: ReportObservation = { ...o, oracle: a?.sut ?? ABSENT };
      if (divergence !== null || a === undefined || sameOutcome(a.sut, o.sut)) return p;
      divergence = mark(p);
      return divergence;
    }),
  );
  return { paired, divergence };
}

/** Property 2, host to guest (checkNoninterference): program B with the host's values changed against A. */
function twoPrograms(t: ReplayTarget, c: Extract<Case, { property: 'no-leak' }>): Replay {
  const changed = record(t, c.program);
  const original = record(t, c.baseline);
  const { paired, divergence } = pairUp(changed, original, (o) => ({ ...o, note: { kind: 'host-values' } }));
  const steps = c.program.map((command, i): Step => {
    const b = c.baseline[i];
    return {
      index: i + 1,
      command,
      ...(b !== undefined && String(b) !== String(command) ? { baseline: b } : {}),
      observations: paired[i]!,
    };
  });
  return { property: 'no-leak', steps, divergence, known: null };
}

/** Property 4 (checkInvisible): the program with the VMM action inserted against the plain one. */
function withInsertion(t: ReplayTarget, c: Extract<Case, { property: 'invisible' }>): Replay {
  const k = Math.min(c.insertion.at, c.program.length);
  const run = programRun(c);
  const seen = record(t, run);
  const plain = record(t, c.program);
  const { paired, divergence } = pairUp(seen, plain, (o) => ({
    ...o,
    note: { kind: 'insertion', command: String(c.insertion.command), at: k },
  }));
  const steps = run.map((command, i): Step => ({
    index: i + 1,
    command,
    ...(i === k ? { inserted: true } : {}),
    observations: paired[i]!,
  }));
  // The same judgement as checkInvisible: the design's declared losses, against the history up to the divergence.
  const known = divergence === null ? null : insertionDeclared(t, divergence, seen.world.observations);
  return { property: 'invisible', steps, divergence, known };
}

/** The invisibility declaration that excuses `d`, judged on the observations up to the one it was made from. */
function insertionDeclared(t: ReplayTarget, d: ReportObservation, all: readonly Observation[]): KnownDivergence | null {
  const at = all.findIndex((x) => x.step === d.step && x.vcpu === d.vcpu && x.kind === d.kind && x.target === d.target);
  const history = all.slice(0, at + 1);
  return (
    t.design.invisibility.find((x) => x.matches(d as Observation, { host: t.host, guest: t.guest, history })) ?? null
  );
}

/** A host event's attr as HostOpen prints it. */
function attrCode(e: PerfEvent): string {
  return /attr\(.*\)\)$/.exec(String(new HostOpen(0, e.attr)))![0].slice(0, -1);
}

/** A perf_event_attr in perf's own words (the fields perf_event_open(2) names). */
function attrWords(e: PerfEvent): string {
  const a = e.attr;
  const flags: [boolean, string][] = [
    [a.pinned, 'pinned'],
    [a.exclusive, 'exclusive'],
    [a.exclude_user, 'exclude_user'],
    [a.exclude_kernel, 'exclude_kernel'],
    [a.exclude_host, 'exclude_host'],
    [a.exclude_guest, 'exclude_guest'],
    [a.branchSample !== undefined, 'branch stack'],
  ];
  const period = a.sample_period !== 0n ? [`sample_period ${a.sample_period}`] : [];
  return [`config 0x${a.config.toString(16)}`, ...period, ...flags.filter(([on]) => on).map(([, w]) => w)].join(', ');
}

/** Counts of the host events at the end of a run, with the guest or (guests = []) without. */
function countsAfter(
  t: ReplayTarget,
  guests: GuestConfig[],
  cmds: readonly WorldCommand[],
): { events: PerfEvent[]; counts: bigint[] } {
  const w = world({ ...t, guest: t.guest }, guests, false);
  fc.modelRun(() => ({ model: {}, real: w }), cmds);
  return { events: w.hostEvents, counts: w.hostEvents.map((e) => w.host.perf_event_read_value(e)) };
}

function eventObservation(
  step: number,
  index: number,
  e: PerfEvent,
  withGuest: bigint | undefined,
  hostOnly: bigint | undefined,
  atEnd = false,
): ReportObservation {
  const cpu = 'cpu' in e.target ? e.target.cpu : -1;
  const a = attrCode(e);
  const count = (n: bigint | undefined) => (n === undefined ? ABSENT : { kind: 'count' as const, count: n });
  return {
    step,
    vcpu: -1,
    kind: 'host-event',
    target: Number(e.attr.config),
    value: null,
    sut: count(withGuest),
    oracle: count(hostOnly),
    event: { index, cpu, attr: a, perf: attrWords(e) },
    ...(atEnd ? { atEnd } : {}),
  };
}

/**
 * Property 2, guest to host (checkHostUndisturbed): host event counts after the whole program
 * with the guest, against the host commands alone on the same host. The trace reads the counts
 * after each prefix of the program, each in fresh worlds, so reading never perturbs a run.
 */
function hostCounts(t: ReplayTarget, program: readonly WorldCommand[], trace: boolean): Replay {
  const judge = (cmds: readonly WorldCommand[]) => {
    const g = countsAfter(t, [t.guest], cmds);
    const h = countsAfter(t, [], cmds.filter(isHostCommand));
    return { ...g, hostOnly: h.counts, first: g.counts.findIndex((c, i) => c !== h.counts[i]) };
  };
  const whole = judge(program);
  const i = whole.first;
  const steps: Step[] = [];
  let parted: ReportObservation | undefined;
  if (trace)
    for (let k = 1; k <= program.length; k++) {
      const j = judge(program.slice(0, k));
      const observations = j.events.map((e, n) => eventObservation(k, n, e, j.counts[n], j.hostOnly[n]));
      if (i >= 0 && parted === undefined && observations[i] !== undefined && j.counts[i] !== j.hostOnly[i])
        parted = observations[i];
      steps.push({ index: k, command: program[k - 1]!, observations });
    }
  if (i < 0) return { property: 'host-undisturbed', steps, divergence: null, known: null };
  // The property judges the counts at the end; the divergence is dated where they first part.
  const divergence = eventObservation(
    parted?.step ?? program.length,
    i,
    whole.events[i]!,
    whole.counts[i],
    whole.hostOnly[i],
    true,
  );
  if (trace) {
    // The last row is the property's verdict: make it the divergence itself.
    const last = steps.at(-1)!;
    steps[steps.length - 1] = { ...last, observations: last.observations.map((o, n) => (n === i ? divergence : o)) };
    if (parted !== undefined && parted.step === program.length) parted = divergence;
  }
  return { property: 'host-undisturbed', steps, divergence, known: null, ...(parted !== undefined ? { parted } : {}) };
}
