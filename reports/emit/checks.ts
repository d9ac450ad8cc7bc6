/**
 * The checks a reproducer makes, from the runs of its plan under every variant: per guest
 * observation the exception vector and the value bare metal shows (exact where every variant
 * agrees, else a bound: a range over the sides a ring crossing may count on, a lower bound where
 * inexact events such as cycles decide, the bits every variant agrees on), the PMIs with the
 * window their RIP must fall in, and each VMM result. Then the verdict: which check a run fails
 * first, for the design (the reproducer's exit 1) and for bare metal (never).
 */

import { MSR_CORE_PERF_FIXED_CTR0, MSR_IA32_PERFCTR0, MSR_IA32_PMC0 } from '../../model/hw/msr/counters.js';
import { VmmRoundTrip } from '../../scenarios/vmm.js';
import { type Observation, type Outcome, sameOutcome, showOutcome } from '../../scenarios/observation.js';
import { addr, LAYOUT } from './guest.js';
import type { Plan } from './lower.js';
import type { ArchLbrXsave } from '../../model/hw/msr/lbr_arch.js';
import { accessOf, xsaveOf } from './observed.js';
import { slotValue, slotVector } from './plan.js';
import { type HostSeen, NOMINAL, type Target, type Trace, type Variant } from './simulate.js';

export type Expect =
  | { readonly mode: 'exact'; readonly value: bigint }
  | { readonly mode: 'mask'; readonly value: bigint; readonly mask: bigint }
  | { readonly mode: 'range'; readonly lo: bigint; readonly hi: bigint }
  | { readonly mode: 'atLeast'; readonly lo: bigint }
  | { readonly mode: 'atMost'; readonly hi: bigint }
  | { readonly mode: 'none' };

/** One value the guest stored, checked against bare metal. */
export interface GuestCheck {
  readonly kind: 'guest';
  readonly label: string;
  /** The program index of the command (the op's source). */
  readonly source: number;
  readonly vecAddr: number;
  /** The expected vector (0: no exception, 13: #GP), or null where the variants disagree. */
  readonly vector: number | null;
  /** Where the value is, or null (a write: only the vector). */
  readonly valAddr: number | null;
  readonly value: Expect;
  /** Why it is exact, a bound, or not checked: the C comment. */
  readonly why: string;
  readonly due: number;
  /** Program order, for the first divergence. */
  readonly pos: number;
}

/** The i-th PMI of the run: its vector and the window of its interrupted RIP. */
export interface PmiCheck {
  readonly kind: 'pmi';
  readonly index: number;
  /** The program index of the command it comes after (null: a sync point). */
  readonly source: number | null;
  readonly vector: number;
  readonly lo: number;
  readonly hi: number;
  readonly label: string;
  readonly due: number;
  readonly pos: number;
}

export interface Checks {
  readonly guest: readonly GuestCheck[];
  readonly pmis: readonly PmiCheck[];
  /** How many PMIs in all: exact when every variant agrees. */
  readonly pmiCount: { readonly min: number; readonly max: number };
  /** Per sync point (index = id - 1, the end last), how many PMIs may have come by then. */
  readonly pmiMaxBy: readonly number[];
  /** Whether the per-PMI checks stand (every variant put the same PMIs in the same windows). */
  readonly pmisExact: boolean;
  /** Declared divergences the checks step over, with where. */
  readonly declared: readonly { readonly label: string; readonly id: string; readonly title: string }[];
}

const COUNTERS: readonly [number, number][] = [
  [MSR_IA32_PERFCTR0, 8],
  [MSR_IA32_PMC0, 8],
  [MSR_CORE_PERF_FIXED_CTR0, 4],
];

/** A value read as a count (a range makes sense) rather than as bits. */
function isCount(o: Observation): boolean {
  if (o.kind === 'rdpmc') return (o.target ?? 0) >>> 16 !== 0x2000; // not PERF_METRICS
  if (o.kind !== 'rdmsr') return false;
  const m = o.target ?? -1;
  return COUNTERS.some(([base, n]) => m >= base && m < base + n);
}

const key = (v: Variant) => `${v.crossing}/${String(v.delivery)}`;

/** Merges the variants' values of one observation into what the reproducer checks. */
export function merge(
  values: readonly { readonly v: Variant; readonly x: bigint }[],
  count: boolean,
): { e: Expect; why: string } {
  const xs = values.map((p) => p.x);
  if (xs.every((x) => x === xs[0])) return { e: { mode: 'exact', value: xs[0]! }, why: 'exact' };
  if (!count) {
    const diff = xs.reduce((d, x) => d | (x ^ xs[0]!), 0n);
    const mask = ~diff & 0xffff_ffff_ffff_ffffn;
    return mask === 0n
      ? { e: { mode: 'none' }, why: 'not checked: no bit is the same under every variant' }
      : {
          e: { mode: 'mask', value: xs[0]! & mask, mask },
          why: `bits 0x${diff.toString(16)} not checked (inexact events, ring crossings or event delivery decide them)`,
        };
  }
  const min = xs.reduce((a, b) => (b < a ? b : a));
  const max = xs.reduce((a, b) => (b > a ? b : a));
  // Only the sides of ring crossings and event deliveries differ: the truth is one of them.
  const byInexact = new Map<string, bigint[]>();
  for (const p of values) byInexact.set(key(p.v), [...(byInexact.get(key(p.v)) ?? []), p.x]);
  const inexactMatters = [...byInexact.values()].some((g) => g.some((x) => x !== g[0]));
  if (!inexactMatters)
    return {
      e: { mode: 'range', lo: min, hi: max },
      why: 'bound: ring crossings and event delivery count on either side',
    };
  // Inexact events only add: the zero variant is a floor as long as no variant wrapped past it.
  const zero = values.filter((p) => p.v.inexact === 'zero').map((p) => p.x);
  const zmin = zero.reduce((a, b) => (b < a ? b : a));
  const monotone = values.every((p) => p.x >= zmin);
  return monotone
    ? {
        e: { mode: 'atLeast', lo: zmin },
        why: 'bound: at least what it counts with no cycles, LLC or topdown events (those are not exact on hardware)',
      }
    : { e: { mode: 'none' }, why: 'not checked: inexact events decide whether the counter wraps' };
}

/** Does a value meet an expectation? */
export function meets(e: Expect, x: bigint): boolean {
  switch (e.mode) {
    case 'exact':
      return x === e.value;
    case 'mask':
      return (x & e.mask) === e.value;
    case 'range':
      return x >= e.lo && x <= e.hi;
    case 'atLeast':
      return x >= e.lo;
    case 'atMost':
      return x <= e.hi;
    case 'none':
      return true;
  }
}

/** The byte offset of Arch LBR component 15 in a compacted XSAVES area holding only it. */
export const XSAVE_LBR_OFFSET = 576;

/** The XSAVES image fields, in area order, with the value the model shows. */
function xsaveFields(x: ArchLbrXsave): { name: string; offset: number; value: bigint }[] {
  const base = XSAVE_LBR_OFFSET;
  const f = [
    { name: 'LBR_CTL', offset: base, value: x.lbrCtl },
    { name: 'LBR_DEPTH', offset: base + 8, value: x.lbrDepth },
    { name: 'LER_FROM', offset: base + 16, value: x.lerFrom },
    { name: 'LER_TO', offset: base + 24, value: x.lerTo },
  ];
  x.entries.forEach((e, i) => {
    const o = base + 40 + 24 * i;
    f.push({ name: `LBR_FROM_${i}`, offset: o, value: e.from });
    f.push({ name: `LBR_TO_${i}`, offset: o + 8, value: e.to });
    f.push({ name: `LBR_INFO_${i}`, offset: o + 16, value: e.info });
  });
  return f;
}

export interface CheckOptions {
  /** The observation to keep checked though declared (the report's own divergence): program index and kind. */
  readonly target?: { readonly source: number; readonly kind: string } | undefined;
}

/** The checks of a plan from its traces (one per variant; the nominal one first). */
export function checksOf(plan: Plan, t: Target, traces: readonly Trace[], opts: CheckOptions = {}): Checks {
  const nominal = traces.find((x) => x.variant === NOMINAL) ?? traces[0]!;
  const order = new Map<string, number>();
  let n = 0;
  plan.ops.forEach((op, o) => op.steps.forEach((_s, k) => order.set(`${o}:${k}`, n++)));
  const posOf = (op: number, main: unknown) => {
    const s = plan.ops[op]!.steps.indexOf(main as never);
    return order.get(`${op}:${s}`) ?? 0;
  };
  const dueOf = (op: number) => {
    for (let i = op; i < plan.ops.length; i++) {
      const x = plan.ops[i]!;
      if (x.kind === 'sync') return x.sync!;
      if (x.kind === 'done') return plan.builder.syncCount + 1;
    }
    return plan.builder.syncCount + 1;
  };

  const guest: GuestCheck[] = [];
  const declared: { label: string; id: string; title: string }[] = [];
  let weaker: string | null = null;
  nominal.mains.forEach((m, i) => {
    const source = plan.ops[m.op]!.source!;
    const l = `[${source + 1}] ${plan.emitters[source]!.label(m.main.command)}`;
    const o = m.obs;
    const pos = posOf(m.op, m.main);
    const due = dueOf(m.op);
    const isTarget = opts.target !== undefined && opts.target.source === source && opts.target.kind === o.kind;
    // A declared divergence before the report's own: stepped over, named in the comment.
    if (!isTarget) {
      // Judged as the simulation made it, with the World's facts of that moment.
      const k = m.declared;
      if (k !== undefined) {
        declared.push({ label: l, id: k.id, title: k.title });
        if (k.contract !== undefined) weaker = k.id;
        guest.push({
          kind: 'guest',
          label: l,
          source,
          vecAddr: slotVector(m.main.slot),
          vector: null,
          valAddr: null,
          value: { mode: 'none' },
          why: `not checked: the declared known divergence '${k.id}' (${k.title})`,
          due,
          pos,
        });
        return;
      }
    }
    const all = traces.map((tr) => ({ v: tr.variant, o: tr.mains[i]!.obs }));
    if (o.kind === 'xsaves') {
      const imgs = all.map((p) => ({ v: p.v, x: xsaveOf(p.o.oracle) }));
      const gps = new Set(imgs.map((p) => p.x === null));
      const vector = gps.size === 1 ? (imgs[0]!.x === null ? 13 : 0) : null;
      guest.push({
        kind: 'guest',
        label: `${l}: IA32_XSS.LBR write`,
        source,
        vecAddr: slotVector(m.main.slot),
        vector,
        valAddr: null,
        value: { mode: 'none' },
        why: vector === null ? 'not checked: variants disagree' : 'exact',
        due,
        pos,
      });
      // The XSAVES after it never faults (without XSS.LBR it saves nothing of component 15).
      guest.push({
        kind: 'guest',
        label: `${l}: XSAVES`,
        source,
        vecAddr: slotVector(m.main.slot + 1),
        vector: 0,
        valAddr: null,
        value: { mode: 'none' },
        why: 'exact',
        due,
        pos,
      });
      if (vector === 0) {
        const fields = imgs.map((p) => ({ v: p.v, f: xsaveFields(p.x!) }));
        fields[0]!.f.forEach((f, j) => {
          const vals = fields.map((p) => ({ v: p.v, x: p.f[j]?.value ?? 0n }));
          const { e, why } = merge(vals, false);
          guest.push({
            kind: 'guest',
            label: `${l}: ${f.name}`,
            source,
            vecAddr: slotVector(m.main.slot),
            vector: 0,
            valAddr: addr(LAYOUT.xsave) + f.offset,
            value: e,
            why,
            due,
            pos,
          });
        });
      }
      return;
    }
    const seen = all.map((p) => ({ v: p.v, a: accessOf(p.o.oracle) }));
    const gps = new Set(seen.map((p) => p.a.gp));
    const vector = gps.size === 1 ? (seen[0]!.a.gp ? 13 : 0) : null;
    const reads = o.kind === 'rdmsr' || o.kind === 'rdpmc';
    let value: Expect = { mode: 'none' };
    let why = vector === null ? 'not checked: whether it faults differs between variants' : 'exact';
    if (reads && vector === 0) {
      const m2 = merge(
        seen.map((p) => ({ v: p.v, x: p.a.gp ? 0n : p.a.value })),
        isCount(o),
      );
      value = m2.e;
      why = m2.why;
      if (weaker !== null && isCount(o) && !isTarget && value.mode !== 'none') {
        const hi =
          value.mode === 'exact'
            ? value.value
            : value.mode === 'range'
              ? value.hi
              : value.mode === 'atMost'
                ? value.hi
                : null;
        if (hi !== null) {
          value = { mode: 'atMost', hi };
          why = `bound: after the declared '${weaker}' a counter may only lose counts`;
        }
      }
    }
    guest.push({
      kind: 'guest',
      label: l,
      source,
      vecAddr: slotVector(m.main.slot),
      vector,
      valAddr: reads ? slotValue(m.main.slot) : null,
      value,
      why:
        o.adopted !== undefined
          ? `${why}; bare metal ${'written' in o.adopted ? `is written 0x${o.adopted.written.toString(16)}` : 'read' in o.adopted ? `reads 0x${o.adopted.read.toString(16)}` : o.adopted.bareMetal}, KVM's declared '${o.adopted.id}' is expected (adopted, decision W6)`
          : why,
      due,
      pos,
    });
  });

  // PMIs: where every variant delivers the same PMIs (vectors, in order), one check each, its window
  // the union of the variants' windows; else only how many.
  const lists = traces.map((tr) => tr.oraclePmis);
  const first = lists[0]!;
  const pmisExact = lists.every((l) => l.length === first.length && l.every((p, i) => p.vector === first[i]!.vector));
  const endPos = n;
  const syncs = plan.builder.syncCount + 1;
  const pmis: PmiCheck[] = pmisExact
    ? first.map((p, i) => {
        const lo = Math.min(...lists.map((l) => l[i]!.lo));
        const hi = Math.max(...lists.map((l) => l[i]!.hi));
        const due = Math.max(...lists.map((l) => l[i]!.due));
        return {
          kind: 'pmi',
          index: i,
          source: p.source,
          vector: p.vector,
          lo,
          hi,
          label: `PMI #${i + 1} (vector ${p.vector}, after ${p.after})`,
          due,
          pos: posAt(plan, order, hi) ?? endPos,
        };
      })
    : [];
  const counts = lists.map((l) => l.length);
  const pmiMaxBy = Array.from({ length: syncs }, (_x, d) =>
    Math.max(...lists.map((l) => l.filter((p) => p.due <= d + 1).length)),
  );
  return {
    guest: guest.sort((a, b) => a.pos - b.pos),
    pmis,
    pmiCount: { min: Math.min(...counts), max: Math.max(...counts) },
    pmiMaxBy,
    pmisExact,
    declared,
  };
}

/** The program position of the step whose point ends at `end`. */
function posAt(plan: Plan, order: Map<string, number>, end: number): number | undefined {
  for (let o = 0; o < plan.ops.length; o++) {
    const op = plan.ops[o]!;
    for (let k = 0; k < op.steps.length; k++) {
      const s = op.steps[k]!;
      const e =
        s.kind === 'main'
          ? s.insn.addr + s.len
          : s.kind === 'pieces' && op.kind !== 'guest'
            ? s.pieces.at(-1)?.resume
            : undefined;
      if (e === end) return order.get(`${o}:${k}`);
    }
  }
  return undefined;
}

/** What a run shows at the first check it fails, in the order the reproducer checks. */
export type Failure =
  | { readonly kind: 'guest'; readonly check: GuestCheck; readonly got: string }
  | { readonly kind: 'pmi'; readonly check: PmiCheck; readonly got: string }
  | { readonly kind: 'pmiCount'; readonly due: number; readonly got: number; readonly expected: string }
  | { readonly kind: 'vmm'; readonly host: HostSeen; readonly got: string; readonly expected: string }
  /** A verdict of a whole run: two runs that differ, host counts, host samples, the MSR index list. */
  | { readonly kind: 'run'; readonly what: string; readonly got: string };

/** The model's expectation of a VMM observation, where every variant agrees (else any result passes). */
export function vmmExpected(traces: readonly Trace[], h: number, o: number): Outcome | null {
  const xs = traces.map((t) => t.hosts[h]?.observations[o]?.oracle);
  const first = xs[0];
  return first !== undefined && xs.every((x) => x !== undefined && sameOutcome(x, first)) ? first : null;
}

/**
 * The first check a run fails, checked as the reproducer checks: at each sync point the guest's
 * observations and PMIs due by then (in program order), the PMI count so far, then the host's
 * VMM actions there; at the end everything left and the exact PMI count. `side` 'sut' evaluates
 * the design (what KVM would show), 'oracle' bare metal.
 */
export function firstFailure(
  plan: Plan,
  checks: Checks,
  traces: readonly Trace[],
  side: 'sut' | 'oracle',
): Failure | null {
  const tr = traces.find((x) => x.variant === NOMINAL) ?? traces[0]!;
  const seenOf = (o: Observation) => (side === 'sut' ? o.sut : o.oracle);
  const pmis = side === 'sut' ? tr.sutPmis : tr.oraclePmis;
  const mainBy = new Map<number, Observation>();
  tr.mains.forEach((m) => mainBy.set(plan.ops[m.op]!.source!, m.obs));
  const vmmAt = (op: number): Failure | null => {
    for (let h = 0; h < tr.hosts.length; h++) {
      const host = tr.hosts[h]!;
      if (host.op !== op) continue;
      for (let k = 0; k < host.observations.length; k++) {
        const o = host.observations[k]!;
        if (o.kind !== 'vmm' || o.oracle.kind === 'none') continue;
        const expected = vmmExpected(traces, h, k);
        const got = seenOf(o);
        // The round trip's expectation is the value read before it: compare this run's own pair.
        const want = host.command instanceof VmmRoundTrip ? o.oracle : expected;
        if (want !== null && !sameOutcome(got, want))
          return { kind: 'vmm', host, got: showOutcome(got), expected: showOutcome(want) };
      }
    }
    return null;
  };
  const guestFails = (c: GuestCheck): Failure | null => {
    const o = mainBy.get(c.source);
    if (o === undefined) return null;
    const text = seenOf(o);
    if (o.kind === 'xsaves') {
      const img = xsaveOf(text);
      const vec = img === null ? 13 : 0;
      if (c.label.endsWith(': XSAVES')) return null;
      if (c.vector !== null && c.valAddr === null && vec !== c.vector)
        return { kind: 'guest', check: c, got: `vector ${vec}` };
      if (c.valAddr !== null && img !== null) {
        const f = xsaveFields(img).find((x) => addr(LAYOUT.xsave) + x.offset === c.valAddr);
        const v = f?.value ?? 0n;
        if (!meets(c.value, v)) return { kind: 'guest', check: c, got: `0x${v.toString(16)}` };
      }
      return null;
    }
    const a = accessOf(text);
    const vec = a.gp ? 13 : 0;
    if (c.vector !== null && vec !== c.vector) return { kind: 'guest', check: c, got: a.gp ? '#GP' : 'no exception' };
    if (c.vector === 0 && !a.gp && c.valAddr !== null && !meets(c.value, a.value))
      return { kind: 'guest', check: c, got: `0x${a.value.toString(16)}` };
    return null;
  };
  const pmiFails = (c: PmiCheck): Failure | null => {
    const p = pmis[c.index];
    if (p === undefined) return { kind: 'pmi', check: c, got: 'no such PMI' };
    if (p.vector !== c.vector) return { kind: 'pmi', check: c, got: `vector ${p.vector}` };
    if (p.lo < c.lo || p.lo > c.hi)
      return { kind: 'pmi', check: c, got: `a PMI outside its window (after ${p.after})` };
    return null;
  };

  const prefix = vmmAt(-1);
  if (prefix !== null) return prefix;
  const syncs = plan.builder.syncCount + 1;
  for (let d = 1; d <= syncs; d++) {
    const due = [...checks.guest.filter((c) => c.due === d), ...checks.pmis.filter((c) => c.due === d)].sort(
      (a, b) => a.pos - b.pos,
    );
    for (const c of due) {
      const f = c.kind === 'guest' ? guestFails(c) : pmiFails(c);
      if (f !== null) return f;
    }
    const so = pmis.filter((p) => p.due <= d).length;
    if (d < syncs && so > checks.pmiMaxBy[d - 1]!)
      return { kind: 'pmiCount', due: d, got: so, expected: `at most ${checks.pmiMaxBy[d - 1]}` };
    if (d === syncs && (pmis.length < checks.pmiCount.min || pmis.length > checks.pmiCount.max))
      return {
        kind: 'pmiCount',
        due: d,
        got: pmis.length,
        expected:
          checks.pmiCount.min === checks.pmiCount.max
            ? `${checks.pmiCount.min}`
            : `${checks.pmiCount.min} to ${checks.pmiCount.max}`,
      };
    const op = plan.ops.findIndex((o) => o.kind === 'sync' && o.sync === d);
    if (op >= 0) {
      const f = vmmAt(op);
      if (f !== null) return f;
    }
  }
  return null;
}
