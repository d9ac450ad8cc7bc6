/**
 * Runs a plan on the model: the design and bare metal side by side (the World), with every
 * instruction the reproducer's guest retires as work, the #GP handler after each faulting
 * instruction and a PMI handler wherever bare metal delivers a PMI. What the hardware cannot pin
 * down is a variant: inexact events (cycles, LLC, topdown slots, mispredictions) zero, as
 * reported, or high; ring-crossing instructions counted on the kernel or the user side; event
 * delivery recorded as a far branch or not. An observation that differs between variants is a
 * bound, not an exact value.
 */

import type { Profile } from '../../model/hw/profile.js';
import type { Branch, WorkUnit } from '../../model/hw/work.js';
import type { PerfEvent } from '../../model/host/types.js';
import type { Design } from '../../properties/design.js';
import { adoptionOf, type KnownDivergence } from '../../properties/expectations/types.js';
import { HostEvent, HostOpen, HostOpenThread, type WorldCommand } from '../../scenarios/commands.js';
import { VmmSetCpuid, VmmSetCpuidAgain } from '../../scenarios/vmm.js';
import { changedConfig } from '../../scenarios/vmm_ioctls.js';
import { diverges, type Observation, type Outcome } from '../../scenarios/observation.js';
import { type GuestConfig, World } from '../../scenarios/world.js';
import {
  buildStubs,
  cplAfter,
  crossing,
  GP_VECTOR,
  type HandlerPath,
  type Piece,
  type Stubs,
  type TakenBranch,
} from './guest.js';
import type { Plan } from './lower.js';
import { accessOf, pmisOf, xsaveOf } from './observed.js';
import type { MainStep } from './plan.js';

export interface Variant {
  readonly inexact: 'zero' | 'nominal' | 'high';
  /** Which side a ring-crossing instruction (and its far branch) counts on. */
  readonly crossing: 'kernel' | 'user';
  /** Whether an exception or interrupt delivery is recorded as a far branch (counted as one, too). */
  readonly delivery: boolean;
}

export const NOMINAL: Variant = { inexact: 'nominal', crossing: 'kernel', delivery: false };
export const VARIANTS: readonly Variant[] = (['zero', 'nominal', 'high'] as const).flatMap((inexact) =>
  (['kernel', 'user'] as const).flatMap((c) => [false, true].map((delivery) => ({ inexact, crossing: c, delivery }))),
);

export interface Target {
  readonly design: Design;
  /** The filed report the reproducer shows: bare metal does not take on the declaration filed as it. */
  readonly shows?: string;
  readonly host: Profile;
  readonly cpus: number;
  readonly guest: GuestConfig;
}

/** A PMI as a reproducer checks it: its vector, and the window its interrupted RIP must fall in. */
export interface PmiSeen {
  readonly vector: number;
  readonly lo: number;
  readonly hi: number;
  /** The sync point by which it has come (the end is syncs + 1). */
  readonly due: number;
  /** What it comes after (the op's label), and that op's program index (null: a sync point). */
  readonly after: string;
  readonly source: number | null;
}

export interface MainSeen {
  readonly op: number;
  readonly main: MainStep;
  readonly obs: Observation;
  readonly pmi: Observation | undefined;
  /** The design's declared divergence this observation meets, judged as it is made (with the World's facts then). */
  readonly declared: KnownDivergence | undefined;
}

export interface HostSeen {
  /** The op (a sync point) it runs at, or -1 in the prefix. */
  readonly op: number;
  readonly index: number;
  readonly command: WorldCommand;
  readonly observations: readonly Observation[];
  readonly hostEvent: number | null;
  readonly opened: boolean;
  readonly guest: GuestConfig;
}

export interface Trace {
  readonly variant: Variant;
  readonly world: World;
  readonly mains: readonly MainSeen[];
  readonly oraclePmis: readonly PmiSeen[];
  readonly sutPmis: readonly PmiSeen[];
  readonly hosts: readonly HostSeen[];
  /** Whether the PMI handlers ended up where bare metal delivers the PMIs (fixpoint reached). */
  readonly converged: boolean;
}

const STUBS: Stubs = buildStubs();
export const stubs = (): Stubs => STUBS;

/** The unit a piece is under a variant. */
export function unitOf(p: Piece, v: Variant): WorkUnit {
  const side = (c: { from: number; to: number }) =>
    v.crossing === 'kernel' ? Math.min(c.from, c.to) : Math.max(c.from, c.to);
  const cpl = p.crossing !== undefined ? side(p.crossing) : (p.cpl ?? 0);
  const u = p.unit;
  const n = p.instructions;
  const scale = (x: number | undefined, perInsn: number, base: number) =>
    v.inexact === 'zero'
      ? 0
      : v.inexact === 'nominal'
        ? (x ?? (u === undefined ? perInsn * n : 0))
        : (x ?? 0) * 10 + perInsn * 20 * n + base;
  // No core retires more than eight instructions a cycle: the floor of core cycles. Reference and
  // TSC cycles tick at a fixed rate and may not tick at all over a few instructions.
  const floor = Math.ceil(n / 8);
  const slot = (x: number | undefined) =>
    v.inexact === 'zero' ? 0 : v.inexact === 'nominal' ? (x ?? 0) : (x ?? 0) * 10 + 20 * n;
  const s = u?.slots;
  const branches: Branch[] = p.branches.map((b, i) => branchOf(b, u?.branches?.[i]?.mispredict, v, side));
  return {
    cpl,
    instructions: n,
    cycles: Math.max(floor, scale(u?.cycles, 1, 100)),
    refCycles: scale(u?.refCycles, 1, 100),
    tscCycles: scale(u?.tscCycles, 1, 100),
    llcReferences:
      v.inexact === 'high' ? (u?.llcReferences ?? 0) * 10 + 10 : v.inexact === 'zero' ? 0 : (u?.llcReferences ?? 0),
    llcMisses: v.inexact === 'high' ? (u?.llcMisses ?? 0) * 10 + 5 : v.inexact === 'zero' ? 0 : (u?.llcMisses ?? 0),
    untakenBranches: p.untaken,
    branches,
    slots: {
      retiring: slot(s?.retiring),
      badSpeculation: slot(s?.badSpeculation),
      frontendBound: slot(s?.frontendBound),
      backendBound: slot(s?.backendBound),
      heavyOperations: v.inexact === 'zero' ? 0 : (s?.heavyOperations ?? 0) * (v.inexact === 'high' ? 10 : 1),
      branchMispredicts: v.inexact === 'zero' ? 0 : (s?.branchMispredicts ?? 0) * (v.inexact === 'high' ? 10 : 1),
      fetchLatency: v.inexact === 'zero' ? 0 : (s?.fetchLatency ?? 0) * (v.inexact === 'high' ? 10 : 1),
      memoryBound: v.inexact === 'zero' ? 0 : (s?.memoryBound ?? 0) * (v.inexact === 'high' ? 10 : 1),
    },
  };
}

function branchOf(
  b: TakenBranch,
  mispredict: boolean | undefined,
  v: Variant,
  side: (c: { from: number; to: number }) => number,
): Branch {
  const m = v.inexact === 'zero' ? false : v.inexact === 'high' ? true : mispredict === true;
  const base = { from: BigInt(b.from), to: BigInt(b.to), kind: b.kind, mispredict: m };
  return b.crossing !== undefined ? { ...base, cpl: side(b.crossing) } : base;
}

/** A handler's run: its body at CPL 0 (after the delivery, recorded as a far branch in one variant), then IRETQ. */
export function handlerPieces(path: HandlerPath, entry: number, rip: number, cpl: number, v: Variant): Piece[] {
  const delivery: TakenBranch[] = v.delivery
    ? [{ from: rip, to: entry, kind: 'FAR', crossing: { from: cpl, to: 0 } }]
    : [];
  return [
    {
      cpl: 0,
      instructions: path.instructions,
      untaken: path.untaken,
      branches: [...delivery, ...path.branches],
      start: entry,
      resume: path.iretq,
    },
    crossing(path.iretq, rip, { from: 0, to: cpl }),
  ];
}

/** Where PMI windows end, and by which sync point: the end of the next instruction that observes. */
interface Point {
  readonly end: number;
  readonly due: number;
}

function pointsOf(plan: Plan): Map<string, Point> {
  const at = new Map<string, Point>();
  let pending: string[] = [];
  let sync = 0;
  plan.ops.forEach((op, o) => {
    op.steps.forEach((s, k) => {
      pending.push(`${o}:${k}`);
      const isPoint = s.kind === 'main' || (s.kind === 'pieces' && op.kind !== 'guest');
      if (!isPoint) return;
      const end = s.kind === 'main' ? s.insn.addr + s.len : s.pieces.at(-1)!.resume;
      const due = op.kind === 'sync' ? op.sync! : op.kind === 'done' ? sync + 1 : nextSync(plan, o, sync);
      for (const key of pending) at.set(key, { end, due });
      pending = [];
    });
    if (op.kind === 'sync') sync = op.sync!;
  });
  return at;
}

/** The first sync point at or after op `o` (the end counts as syncs + 1). */
function nextSync(plan: Plan, o: number, last: number): number {
  for (let i = o; i < plan.ops.length; i++) {
    const op = plan.ops[i]!;
    if (op.kind === 'sync') return op.sync!;
    if (op.kind === 'done') return plan.builder.syncCount + 1;
  }
  return last + 1;
}

/**
 * Another run of the same guest program with other host steps (a differential reproducer's
 * baseline): per program index, the command to run instead, or null to leave it out.
 */
export type HostOverride = (index: number) => WorldCommand | null | undefined;

/** Runs the plan under one variant until the PMI handlers sit where bare metal delivers the PMIs. */
export function simulate(plan: Plan, t: Target, v: Variant, override?: HostOverride): Trace {
  let insertions = new Map<string, number[]>();
  for (let round = 0; ; round++) {
    const r = once(plan, t, v, insertions, override);
    const same =
      r.needed.size === insertions.size && [...r.needed].every(([k, vs]) => insertions.get(k)?.join() === vs.join());
    if (same || round === 6) return { ...r.trace, converged: same };
    insertions = r.needed;
  }
}

function once(
  plan: Plan,
  t: Target,
  v: Variant,
  insertions: ReadonlyMap<string, readonly number[]>,
  override?: HostOverride,
): { trace: Omit<Trace, 'converged'>; needed: Map<string, number[]> } {
  const w = new World({
    host: t.host,
    cpus: t.cpus,
    guests: [t.guest],
    design: t.design.factory,
    compare: false,
    hostKernel: t.design.hostKernel,
    adopt: adoptionOf(
      t.design.expectations.filter((k) => k.filed === undefined || k.filed !== t.shows),
      t.host,
    ),
  });
  const points = pointsOf(plan);
  const mains: MainSeen[] = [];
  const oraclePmis: PmiSeen[] = [];
  const sutPmis: PmiSeen[] = [];
  const hosts: HostSeen[] = [];
  const needed = new Map<string, number[]>();
  const ids = new Map<PerfEvent, number>();
  let opened = 0;

  const runHost = (op: number, index: number, asked: WorldCommand) => {
    const replaced = override?.(index);
    if (replaced === null) return;
    const command = replaced ?? asked;
    let hostEvent: number | null = null;
    if (command instanceof HostEvent) {
      const live = w.hostEvents;
      if (live.length > 0) hostEvent = ids.get(live[((command.k % live.length) + live.length) % live.length]!) ?? null;
    }
    const guest =
      command instanceof VmmSetCpuid
        ? w.withSupportedCaps(w.vcpus[0]!, command.config)
        : command instanceof VmmSetCpuidAgain
          ? changedConfig(w.guestConfig(0), command.change)
          : w.guestConfig(0);
    const before = w.observations.length;
    const count = w.hostEvents.length;
    command.run({}, w);
    let isOpened = false;
    if ((command instanceof HostOpen || command instanceof HostOpenThread) && w.hostEvents.length > count) {
      ids.set(w.hostEvents.at(-1)!, opened++);
      isOpened = true;
    }
    hosts.push({ op, index, command, observations: w.observations.slice(before), hostEvent, opened: isOpened, guest });
  };

  /** Runs pieces as one GuestRun, PMI handlers inserted where the last round saw bare metal's PMIs. */
  const runPieces = (
    key: string,
    base: readonly Piece[],
    point: Point | undefined,
    after: string,
    source: number | null,
  ) => {
    const units: WorkUnit[] = [];
    const owner: number[] = [];
    base.forEach((p, j) => {
      units.push(unitOf(p, v));
      owner.push(j);
      for (const vec of insertions.get(`${key}:${j}`) ?? [])
        for (const h of handlerPieces(STUBS.pmiPath(vec), STUBS.entry(vec), p.resume, cplAfter(p), v)) {
          units.push(unitOf(h, v));
          owner.push(j);
        }
    });
    const before = w.observations.length;
    w.guestRun(0, units);
    const run = w.observations.slice(before).find((o) => o.kind === 'run')!;
    const place = (list: PmiSeen[], x: Outcome, need: boolean) => {
      for (const p of pmisOf(x)) {
        const j = owner[p.afterUnit] ?? base.length - 1;
        if (need) needed.set(`${key}:${j}`, [...(needed.get(`${key}:${j}`) ?? []), p.vector]);
        list.push({
          vector: p.vector,
          lo: base[j]?.start ?? 0,
          hi: point?.end ?? 0,
          due: point?.due ?? 0,
          after,
          source,
        });
      }
    };
    place(oraclePmis, run.oracle, true);
    place(sutPmis, run.sut, false);
  };

  for (const h of plan.prefix) runHost(-1, h.index, h.command);
  plan.ops.forEach((op, o) => {
    op.steps.forEach((s, k) => {
      const key = `${o}:${k}`;
      if (s.kind === 'host') return runHost(o, s.index, s.command);
      if (s.kind === 'pieces') return runPieces(key, s.pieces, points.get(key), op.label, op.source);
      const before = w.observations.length;
      s.command.run({}, w);
      const obs = w.observations.slice(before);
      const main = obs.find((x) => x.kind !== 'pmi')!;
      const pmi = obs.find((x) => x.kind === 'pmi');
      const declared = diverges(main)
        ? t.design.expectations.find((k) =>
            k.matches(main, {
              host: t.host,
              guest: t.guest,
              history: w.observations.slice(0, before + obs.indexOf(main) + 1),
              facts: w,
            }),
          )
        : undefined;
      mains.push({ op: o, main: s, obs: main, pmi, declared });
      // The handlers that run after it on bare metal: #GP, then one per PMI around it.
      const resume = s.insn.addr + s.len;
      const faulted = main.kind === 'xsaves' ? xsaveOf(main.oracle) === null : accessOf(main.oracle).gp;
      const after: Piece[] = [];
      if (faulted) after.push(...handlerPieces(STUBS.gpPath(s.len), STUBS.entry(GP_VECTOR), s.insn.addr, s.cpl, v));
      const next = nextPoint(points, plan, o, k);
      const pmiOf = (x: Outcome, list: PmiSeen[]) =>
        pmisOf(x).map((p) =>
          list.push({
            vector: p.vector,
            lo: s.insn.addr,
            hi: next?.end ?? 0,
            due: next?.due ?? 0,
            after: op.label,
            source: op.source,
          }),
        );
      if (pmi !== undefined) {
        for (const p of pmisOf(pmi.oracle))
          after.push(...handlerPieces(STUBS.pmiPath(p.vector), STUBS.entry(p.vector), resume, s.cpl, v));
        pmiOf(pmi.oracle, oraclePmis);
        pmiOf(pmi.sut, sutPmis);
      }
      if (after.length > 0) runPieces(`${key}:after`, after, next, op.label, op.source);
    });
  });
  return { trace: { variant: v, world: w, mains, oraclePmis, sutPmis, hosts }, needed };
}

/** The first point after step k of op o. */
function nextPoint(points: Map<string, Point>, plan: Plan, o: number, k: number): Point | undefined {
  for (let i = o; i < plan.ops.length; i++)
    for (let j = i === o ? k + 1 : 0; j < plan.ops[i]!.steps.length; j++) {
      const p = points.get(`${i}:${j}`);
      if (p !== undefined) return p;
    }
  return undefined;
}

/**
 * The plan under every variant that can matter: the sides of ring crossings only if the program
 * crosses rings, event delivery as an LBR record only if an exception or interrupt is delivered.
 */
export function simulateVariants(plan: Plan, t: Target): Trace[] {
  const crosses = plan.ops.some((o) =>
    o.steps.some((s) => s.kind === 'pieces' && s.pieces.some((p) => p.crossing !== undefined)),
  );
  const without = VARIANTS.filter((v) => !v.delivery && (crosses || v.crossing === 'kernel'));
  const traces = without.map((v) => simulate(plan, t, v));
  const delivered = traces.some(
    (tr) => tr.oraclePmis.length > 0 || tr.sutPmis.length > 0 || tr.mains.some((m) => faulted(m)),
  );
  if (!delivered) return traces;
  return [...traces, ...without.map((v) => simulate(plan, t, { ...v, delivery: true }))];
}

function faulted(m: MainSeen): boolean {
  const o = m.obs;
  return o.kind === 'xsaves'
    ? xsaveOf(o.oracle) === null || xsaveOf(o.sut) === null
    : accessOf(o.oracle).gp || accessOf(o.sut).gp;
}
