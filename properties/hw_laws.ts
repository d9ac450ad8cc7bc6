/**
 * The reference model's own laws, as fast-check properties. They run in `npm test` and in the
 * main job's self-check, and each is shown to fail on a planted model mutant
 * (test/model/hw/laws_bite.test.ts). `make` builds the CPU under test, so mutants can stand in.
 */

import fc from 'fast-check';
import type { Access } from '../model/hw/access.js';
import { isSet, lowMask, signExtend } from '../model/hw/bits.js';
import { Cpu } from '../model/hw/cpu.js';
import {
  EVTSEL,
  MSR_IA32_PERFCTR0,
  MSR_P6_EVNTSEL0,
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
} from '../model/hw/msr/counters.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import {
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
  STATUS,
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../model/hw/msr/global.js';
import {
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  lbrCtlWritable,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_TO_0,
} from '../model/hw/msr/lbr_arch.js';
import { buildMsrFile, msrName } from '../model/hw/msr/map.js';
import { METRICS, metricBytes, MSR_PERF_METRICS } from '../model/hw/msr/topdown.js';
import { fixedExists, type Profile } from '../model/hw/profile.js';
import type { Branch, WorkUnit } from '../model/hw/work.js';
import { profileArb } from '../scenarios/profiles.js';
import { encode, u64 } from '../scenarios/values.js';
import { unitArb, workArb } from '../scenarios/work.js';
import { isLbrInfoMsr, MSR_LBR_NHM_FROM, MSR_LBR_SELECT, MSR_LBR_TOS } from '../model/hw/msr/lbr_legacy.js';
import { X2APIC_LVTPC } from '../model/hw/msr/apic.js';

export type CpuFactory = (p: Profile) => Cpu;
export const faithful: CpuFactory = (p) => new Cpu(p);

export interface Law {
  readonly id: string;
  readonly title: string;
  /** The section of pmu-semantics.md (or decision) the law comes from. */
  readonly rule: string;
  readonly property: (make: CpuFactory) => fc.IRawProperty<unknown, false>;
}

/** Erases the property's argument type, which only fast-check needs to know. */
function law<T>(l: Omit<Law, 'property'> & { property: (make: CpuFactory) => fc.IRawProperty<T, false> }): Law {
  return l;
}

class LawViolation extends Error {
  override readonly name = 'LawViolation';
}

function check(cond: boolean, msg: () => string): void {
  if (!cond) throw new LawViolation(msg());
}

const show = (a: Access) => (a.ok ? `0x${a.value.toString(16)}` : `#GP (${a.gp})`);
const same = (a: Access, b: Access) => a.ok === b.ok && (!a.ok || (b.ok && a.value === b.value));

const isLbrRecord = (a: number) =>
  (a >= MSR_LBR_NHM_FROM && a < 0x700) || isLbrInfoMsr(a) || (a >= MSR_ARCH_LBR_INFO_0 && a < 0x1700);

/** MSRs that exist on `p` (controls weighted over the many LBR records), and some just beside them. */
function addressArb(p: Profile): fc.Arbitrary<number> {
  const present = [...buildMsrFile(p).keys()];
  const controls = present.filter((a) => !isLbrRecord(a));
  const records = present.filter(isLbrRecord);
  const near = [
    MSR_IA32_PERFCTR0 + p.nGP,
    MSR_P6_EVNTSEL0 + p.nGP,
    MSR_IA32_PMC0 + p.nGP,
    MSR_CORE_PERF_FIXED_CTR0 + 7,
    0x393,
    0x3f1,
    0x600,
    0x1dd,
  ];
  return fc.oneof(
    { arbitrary: fc.constantFrom(...controls), weight: 6 },
    ...(records.length > 0 ? [{ arbitrary: fc.constantFrom(...records), weight: 3 }] : []),
    { arbitrary: fc.constantFrom(...near), weight: 1 },
  );
}

const WRITE_ONLY = new Set([MSR_CORE_PERF_GLOBAL_OVF_CTRL, MSR_CORE_PERF_GLOBAL_STATUS_SET]);

/** Random prior state: a few writes and some work, so laws do not only meet the reset state. */
function warmup(p: Profile) {
  return fc.array(
    fc.oneof(
      fc.tuple(addressArb(p), u64).map(([a, v]) => ({ a, v })),
      unitArb.map((u) => ({ u })),
    ),
    { maxLength: 6 },
  );
}

type Warm = ({ a: number; v: bigint } | { u: WorkUnit })[];
function apply(cpu: Cpu, w: Warm): void {
  for (const x of w) {
    if ('u' in x) cpu.step(x.u);
    else cpu.wrmsr(x.a, x.v);
  }
}

const readback = law({
  id: 'readback',
  title: 'a legal WRMSR reads back legalized; a #GP write changes nothing',
  rule: 'pmu-semantics.md §2, §5',
  property: (make) =>
    fc.property(
      profileArb.chain((p) => fc.tuple(fc.constant(p), warmup(p), addressArb(p), u64)),
      ([p, warm, a, v]) => {
        const cpu = make(p);
        apply(cpu, warm);
        const before = cpu.rdmsr(a);
        const w = cpu.wrmsr(a, v);
        const after = cpu.rdmsr(a);
        const name = msrName(a, p);
        if (!w.ok) check(same(before, after), () => `${name}: #GP write changed ${show(before)} to ${show(after)}`);
        else if (!WRITE_ONLY.has(a))
          check(same(after, w), () => `${name}: WRMSR 0x${v.toString(16)} stored ${show(w)} but reads ${show(after)}`);
        if (!cpu.hasMsr(a)) check(!w.ok && !before.ok, () => `${name} does not exist on ${p.name} but did not #GP`);
      },
    ),
});

/** A profile with at least one counter that counts instructions: GP 0 or fixed 0. */
const counterTarget = profileArb
  .filter((p) => p.nGP > 0 || (p.version >= 2 && fixedExists(p, 0)))
  .chain((p) =>
    fc.tuple(
      fc.constant(p),
      fc.constantFrom(...(p.nGP > 0 ? ['gp'] : []), ...(p.version >= 2 && fixedExists(p, 0) ? ['fixed'] : [])),
      fc.integer({ min: 1, max: 40 }),
      workArb,
    ),
  );

/** Programs the chosen counter to count instructions at every CPL with PMI, preset 2^W - k. */
function armInstructionCounter(cpu: Cpu, kind: string, k: number): void {
  const p = cpu.profile;
  cpu.wrmsr(X2APIC_LVTPC, 0x400n); // LVTPC: NMI, unmasked
  if (kind === 'gp') {
    const preset = p.gpMask + 1n - BigInt(k);
    // Both aliases reach the counter: A_PMC takes it whole, the legacy alias sign-extends.
    if (p.fwWrite) cpu.wrmsr(MSR_IA32_PMC0, preset);
    else cpu.wrmsr(MSR_IA32_PERFCTR0, preset & 0xffff_ffffn);
    cpu.wrmsr(MSR_P6_EVNTSEL0, encode(EVTSEL, { event: 0xc0n, usr: 1n, os: 1n, int: 1n, en: 1n }));
    if (p.version >= 2) cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n);
  } else {
    cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0, p.fixedMask + 1n - BigInt(k));
    cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0xbn);
    cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n << 32n);
  }
}

const overflowAtK = law({
  id: 'overflow-at-k',
  title: 'a counter preset to overflow after k events overflows at the unit that reaches k, once',
  rule: 'pmu-semantics.md §4.3, §4.4',
  property: (make) =>
    fc.property(counterTarget, ([p, kind, k, work]) => {
      const cpu = make(p);
      armInstructionCounter(cpu, kind, k);
      const bit = kind === 'gp' ? 0 : 32;
      const width = kind === 'gp' ? p.gpWidth : p.fixedWidth;
      if (kind === 'gp' && !p.fwWrite && k > 2 ** 31) return;
      let seen = 0;
      let overflows = 0;
      for (const [i, u] of work.entries()) {
        const pmi = cpu.step(u);
        const before = seen;
        seen += u.instructions ?? 0;
        const crosses = before < k && seen >= k;
        if (crosses) overflows++;
        check((pmi !== null) === crosses, () => `unit ${i}: ${seen} instructions of ${k}, PMI ${pmi !== null}`);
        if (p.version >= 2) {
          const st = cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS);
          check(st.ok && isSet(st.value, bit) === overflows > 0, () => `unit ${i}: GLOBAL_STATUS ${show(st)}`);
        }
        if (crosses) cpu.wrmsr(X2APIC_LVTPC, 0x400n); // the handler unmasks LVTPC
      }
      const ctr = kind === 'gp' ? cpu.rdpmc(0) : cpu.rdpmc(0x4000_0000);
      const expect = (lowMask(width) + 1n - BigInt(k) + BigInt(seen)) & lowMask(width);
      check(ctr.ok && ctr.value === expect, () => `counter reads ${show(ctr)}, expected 0x${expect.toString(16)}`);
    }),
});

const frozenCountsNothing = law({
  id: 'frozen',
  title: 'nothing counts and no status bit is set while CTR_FRZ is set',
  rule: 'pmu-semantics.md §4.2, §4.5, §7 item 15',
  property: (make) =>
    fc.property(
      profileArb.filter((p) => p.version >= 4).chain((p) => fc.tuple(fc.constant(p), warmup(p), workArb)),
      ([p, warm, work]) => {
        const cpu = make(p);
        apply(cpu, warm);
        // Enable everything that exists, then freeze.
        for (let i = 0; i < p.nGP; i++)
          cpu.wrmsr(MSR_P6_EVNTSEL0 + i, encode(EVTSEL, { event: 0xc0n, usr: 1n, os: 1n, en: 1n }));
        cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3333_3333n & (p.version >= 2 ? fixedNibbleMask(p) : 0n));
        cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, ((1n << BigInt(p.nGP)) - 1n) | (BigInt(p.fixedSet) << 32n));
        cpu.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 1n << BigInt(STATUS.CTR_FRZ));
        const snap = () =>
          [...Array(p.nGP).keys()]
            .map((i) => cpu.rdpmc(i))
            .concat(fixedRead(cpu, p), cpu.rdmsr(MSR_CORE_PERF_GLOBAL_STATUS));
        const before = snap();
        for (const u of work) cpu.step(u);
        const after = snap();
        check(
          before.every((b, i) => same(b, after[i]!)),
          () => `counters moved while frozen: ${before.map(show).join(' ')} -> ${after.map(show).join(' ')}`,
        );
      },
    ),
});

function fixedNibbleMask(p: Profile): bigint {
  let m = 0n;
  for (let i = 0; i < 8; i++) if (fixedExists(p, i)) m |= 0xfn << BigInt(4 * i);
  return m;
}

function fixedRead(cpu: Cpu, p: Profile): Access[] {
  const out: Access[] = [];
  for (let i = 0; i < 7; i++) if (fixedExists(p, i)) out.push(cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + i));
  return out;
}

/** Linux's decoding of a legacy FROM/TO value back to the address (pmu-semantics.md §2.13). */
function decodeFrom(fmt: number, v: bigint): bigint {
  if (fmt === 3 || fmt === 6) return signExtend(v & lowMask(63), 62);
  if (fmt === 4) return signExtend(v & lowMask(61), 60);
  return v;
}
function decodeTo(fmt: number, v: bigint): bigint {
  return fmt === 6 ? signExtend(v & lowMask(48), 47) : v;
}

const lbrProfiles = profileArb.filter((p) => p.legacyLbr !== undefined || p.archLbr !== undefined);

/** Turns LBRs on with no filtering, so every taken branch is recorded. */
function enableAllLbr(cpu: Cpu): void {
  const p = cpu.profile;
  if (p.archLbr) cpu.wrmsr(MSR_ARCH_LBR_CTL, lbrCtlWritable(p) & ~(1n << 3n));
  else {
    cpu.wrmsr(MSR_LBR_SELECT, 0n);
    cpu.wrmsr(MSR_IA32_DEBUGCTLMSR, 1n);
  }
}

/** The LBR stack newest first, decoded to addresses. */
function lbrStack(cpu: Cpu): { from: bigint; to: bigint }[] {
  const p = cpu.profile;
  const out: { from: bigint; to: bigint }[] = [];
  if (p.archLbr) {
    const d = cpu.rdmsr(MSR_ARCH_LBR_DEPTH);
    const depth = d.ok ? Number(d.value) : 0;
    for (let k = 0; k < depth; k++) {
      const f = cpu.rdmsr(MSR_ARCH_LBR_FROM_0 + k);
      const t = cpu.rdmsr(MSR_ARCH_LBR_TO_0 + k);
      out.push({ from: f.ok ? f.value : -1n, to: t.ok ? t.value : -1n });
    }
  } else if (p.legacyLbr) {
    const g = p.legacyLbr;
    const tos = cpu.rdmsr(MSR_LBR_TOS);
    const t0 = tos.ok ? Number(tos.value) : 0;
    for (let k = 0; k < g.depth; k++) {
      const i = (t0 - k + g.depth) % g.depth;
      const f = cpu.rdmsr(g.fromBase + i);
      const t = cpu.rdmsr(g.toBase + i);
      out.push({
        from: f.ok ? decodeFrom(p.lbrFmt, f.value) : -1n,
        to: t.ok ? decodeTo(p.lbrFmt, t.value) : -1n,
      });
    }
  }
  return out;
}

const lbrLastDepth = law({
  id: 'lbr-last-depth',
  title: 'the LBRs hold the last depth taken branches, newest first',
  rule: 'pmu-semantics.md §2.13, §3.4, §4.7',
  property: (make) =>
    fc.property(
      lbrProfiles.chain((p) => fc.tuple(fc.constant(p), workArb)),
      ([p, work]) => {
        const cpu = make(p);
        enableAllLbr(cpu);
        const taken: Branch[] = [];
        for (const u of work) {
          cpu.step(u);
          taken.push(...(u.branches ?? []));
        }
        const stack = lbrStack(cpu);
        for (let k = 0; k < stack.length; k++) {
          const b = taken[taken.length - 1 - k];
          const e = stack[k]!;
          const ok = b === undefined ? e.from === 0n && e.to === 0n : e.from === b.from && e.to === b.to;
          check(
            ok,
            () =>
              `LBR entry ${k} (newest = 0) holds 0x${e.from.toString(16)}->0x${e.to.toString(16)}, expected ${b === undefined ? 'empty' : `0x${b.from.toString(16)}->0x${b.to.toString(16)}`}`,
          );
        }
      },
    ),
});

const archDepthClears = law({
  id: 'arch-depth-clears',
  title: 'an IA32_LBR_DEPTH write clears every record',
  rule: 'pmu-semantics.md §3.3',
  property: (make) =>
    fc.property(
      profileArb
        .filter((p) => p.archLbr !== undefined)
        .chain((p) => fc.tuple(fc.constant(p), workArb, fc.constantFrom(...p.archLbr!.depths))),
      ([p, work, depth]) => {
        const cpu = make(p);
        enableAllLbr(cpu);
        for (const u of work) cpu.step(u);
        const w = cpu.wrmsr(MSR_ARCH_LBR_DEPTH, BigInt(depth));
        check(w.ok, () => `IA32_LBR_DEPTH ${depth} refused: ${show(w)}`);
        for (let k = 0; k < p.archLbr!.maxDepth; k++) {
          for (const base of [MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0]) {
            const r = cpu.rdmsr(base + k);
            check(
              k < depth ? r.ok && r.value === 0n : !r.ok,
              () => `${msrName(base + k, p)} reads ${show(r)} after a depth write`,
            );
          }
        }
      },
    ),
});

const xsaveIdentity = law({
  id: 'xsaves-xrstors',
  title: 'XRSTORS of an XSAVES image restores it exactly; a depth mismatch zeroes the records',
  rule: 'pmu-semantics.md §3.5',
  property: (make) =>
    fc.property(
      profileArb
        .filter((p) => p.archLbr !== undefined)
        .chain((p) => fc.tuple(fc.constant(p), workArb, workArb, fc.constantFrom(...p.archLbr!.depths), fc.boolean())),
      ([p, before, between, depth, changeDepth]) => {
        const cpu = make(p);
        enableAllLbr(cpu);
        for (const u of before) cpu.step(u);
        const saved = cpu.xsaves();
        check(saved.ok, () => 'XSAVES refused on an Arch LBR part');
        if (!saved.ok) return;
        cpu.wrmsr(MSR_ARCH_LBR_CTL, 1n);
        if (changeDepth) cpu.wrmsr(MSR_ARCH_LBR_DEPTH, BigInt(depth));
        for (const u of between) cpu.step(u);
        const r = cpu.xrstors(saved.area);
        check(r.ok, () => `XRSTORS of an XSAVES image: ${show(r)}`);
        const again = cpu.xsaves();
        if (!again.ok) return;
        const mismatch = saved.area.lbrDepth !== again.area.lbrDepth;
        check(again.area.lbrCtl === saved.area.lbrCtl, () => 'LBR_CTL not restored');
        for (const [k, e] of again.area.entries.entries()) {
          const want = mismatch ? { from: 0n, to: 0n, info: 0n } : saved.area.entries[k]!;
          check(
            e.from === want.from && e.to === want.to && e.info === want.info,
            () => `record ${k} after XRSTORS (${mismatch ? 'depth mismatch' : 'same depth'}) differs`,
          );
        }
      },
    ),
});

const perfMetricsTrack = law({
  id: 'perf-metrics',
  title: 'PERF_METRICS bytes are the slot fractions of the period; L1 sums to 0xFF within rounding',
  rule: 'pmu-semantics.md §2.11; D12',
  property: (make) =>
    fc.property(
      profileArb.filter((p) => p.perfMetrics).chain((p) => fc.tuple(fc.constant(p), workArb)),
      ([p, work]) => {
        const cpu = make(p);
        cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + 3, 0n);
        cpu.wrmsr(MSR_PERF_METRICS, 0n);
        cpu.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3000n);
        cpu.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, (1n << 35n) | (1n << 48n));
        const sums = new Array<bigint>(8).fill(0n);
        for (const u of work) {
          cpu.step(u);
          const t = u.slots;
          if (t === undefined) continue;
          METRICS.forEach((m, k) => {
            sums[k]! += BigInt(t[m] ?? 0);
          });
        }
        const total = sums[0]! + sums[1]! + sums[2]! + sums[3]!;
        const slots = cpu.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + 3);
        check(slots.ok && slots.value === total, () => `SLOTS ${show(slots)}, expected ${total}`);
        const pm = cpu.rdmsr(MSR_PERF_METRICS);
        if (!pm.ok) return check(false, () => `PERF_METRICS ${show(pm)}`);
        const byte = (k: number) => (pm.value >> BigInt(8 * k)) & 0xffn;
        for (let k = 0; k < 8; k++) {
          const want = total === 0n || k >= metricBytes(p) ? 0n : (sums[k]! * 255n) / total;
          check(
            byte(k) === want,
            () => `${METRICS[k]} byte 0x${byte(k).toString(16)}, expected 0x${want.toString(16)}`,
          );
        }
        if (total > 0n) {
          const l1 = byte(0) + byte(1) + byte(2) + byte(3);
          check(l1 >= 0xfcn && l1 <= 0xffn, () => `L1 bytes sum to 0x${l1.toString(16)}`);
        }
      },
    ),
});

export const HW_LAWS: readonly Law[] = [
  readback,
  overflowAtK,
  frozenCountsNothing,
  lbrLastDepth,
  archDepthClears,
  xsaveIdentity,
  perfMetricsTrack,
];
