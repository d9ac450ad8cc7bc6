/**
 * Program arbitraries for the engine: guest configurations sized to the host, MSR addresses
 * weighted to the PMU's, values built from fields with edge values weighted in by hand (no bias
 * inside fc.commands), and the command mix of each generation profile.
 */

import fc from 'fast-check';
import {
  EVTSEL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
} from '../model/hw/msr/counters.js';
import type { Profile } from '../model/hw/profile.js';
import { EMULATED_INSNS, type SupportedPmu } from '../model/kvm/types.js';
import * as D from './draw.js';
import { supportedGuestArb } from './supported.js';
import {
  GuestEmulate,
  type GuestInstruction,
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
  Migrate,
  savedAtExit,
  type WorldCommand,
} from './commands.js';
import { encode, u64 } from './values.js';
import { unitDrawn } from './work.js';
import type { GuestConfig } from './world.js';
import {
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
  MSR_CORE_PERF_GLOBAL_INUSE,
} from '../model/hw/msr/global.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../model/hw/msr/capabilities.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { APIC_SEND_PENDING, LVTPC_RESERVED, X2APIC_LVTPC } from '../model/hw/msr/apic.js';
import { MSR_PERF_METRICS } from '../model/hw/msr/topdown.js';
import {
  MSR_LBR_SELECT,
  MSR_LBR_TOS,
  MSR_LBR_NHM_FROM,
  MSR_LBR_NHM_TO,
  MSR_LBR_INFO_0,
} from '../model/hw/msr/lbr_legacy.js';

/**
 * A non-empty array that still shrinks its last element away: fast-check's array shrinker keeps
 * minLength on every tail it recurses into, so with minLength 1 the last item is never removed.
 */
export function nonEmptyArray<T>(arb: fc.Arbitrary<T>, maxLength: number): fc.Arbitrary<T[]> {
  return fc.array(arb, { maxLength }).filter((a) => a.length > 0);
}

/** PMU MSR addresses: every family, with the index one past the end weighted in. */
const msrDrawn: D.Drawn<number> = D.oneof(
  { drawn: D.map(D.integer(0, 8), (i) => MSR_IA32_PERFCTR0 + i), weight: 3 },
  { drawn: D.map(D.integer(0, 8), (i) => MSR_IA32_PMC0 + i), weight: 2 },
  { drawn: D.map(D.integer(0, 8), (i) => MSR_P6_EVNTSEL0 + i), weight: 3 },
  { drawn: D.map(D.integer(0, 4), (i) => MSR_CORE_PERF_FIXED_CTR0 + i), weight: 2 },
  {
    drawn: D.constantFrom(
      MSR_CORE_PERF_FIXED_CTR_CTRL,
      MSR_CORE_PERF_GLOBAL_STATUS,
      MSR_CORE_PERF_GLOBAL_CTRL,
      MSR_CORE_PERF_GLOBAL_OVF_CTRL,
      MSR_CORE_PERF_GLOBAL_STATUS_SET,
      MSR_CORE_PERF_GLOBAL_INUSE,
    ),
    weight: 4,
  },
  {
    drawn: D.constantFrom(MSR_IA32_PERF_CAPABILITIES, MSR_IA32_DEBUGCTLMSR, X2APIC_LVTPC, MSR_PERF_METRICS),
    weight: 2,
  },
  // LBR MSRs: the first and last record of a 32-deep stack, and the index one past each end.
  {
    drawn: D.constantFrom(
      MSR_LBR_SELECT,
      MSR_LBR_TOS,
      MSR_LBR_NHM_FROM,
      MSR_LBR_NHM_TO,
      MSR_LBR_INFO_0,
      MSR_LBR_NHM_FROM + 31,
      MSR_LBR_NHM_FROM + 32,
      MSR_LBR_NHM_TO + 32,
      MSR_LBR_INFO_0 + 32,
    ),
    weight: 1,
  },
);
export const msrArb: fc.Arbitrary<number> = msrDrawn.arb;

/** A bit LVTPC's writers must not set: the delivery status, reserved bits of 31:0 (11 and 13 are the lowest), bit 32. */
const lvtpcEdgeBit: D.Drawn<bigint> = D.constantFrom(
  APIC_SEND_PENDING,
  ...[11n, 13n, 17n, 31n, 32n].map((b) => LVTPC_RESERVED & (1n << b)),
);

/** GLOBAL_CTRL / GLOBAL_STATUS-shaped values: some GP bits (7:0) and some fixed bits (35:32). */
const counterBits = (nGP = 8, nFixed = 4): D.Drawn<bigint> =>
  D.map2(D.nat((1 << nGP) - 1), D.nat((1 << nFixed) - 1), (gp, fixed) => BigInt(gp) | (BigInt(fixed) << 32n));

/** What a program knows of its guest: the counters it has, so its control writes are mostly legal. */
export interface GuestShape {
  readonly nGP: number;
  readonly nFixed: number;
}

export function shapeOf(g: GuestConfig): GuestShape {
  const { eax, edx } = g.cpuid.leaf0a;
  return { nGP: (eax >>> 8) & 0xff, nFixed: (eax & 0xff) > 1 ? edx & 0x1f : 0 };
}

/** An event select built from its fields: architectural events, the usual control bits. */
const evtsel: D.Drawn<bigint> = D.record(
  {
    event: D.constantFrom(0x3cn, 0xc0n, 0xc4n, 0xc5n, 0x2en),
    umask: D.constantFrom(0n, 0n, 1n, 0x4fn),
    usr: D.constantFrom(0n, 1n),
    os: D.constantFrom(0n, 1n),
    int: D.constantFrom(0n, 1n),
    en: D.constantFrom(1n, 1n, 0n),
  },
  (f) => encode(EVTSEL, f),
);
export const evtselArb: fc.Arbitrary<bigint> = evtsel.arb;

/** Any u64 (values.ts), through fast-check: its unique-bit arrays stay out of the fast path. */
const anyU64 = D.of(u64);

/** A value for `msr`: fields where the register has them, else weighted u64s. */
function valueFor(msr: number, shape?: GuestShape): D.Drawn<bigint> {
  if (msr >= MSR_P6_EVNTSEL0 && msr < 0x18f) return D.oneof({ drawn: evtsel, weight: 4 }, { drawn: anyU64, weight: 1 });
  if (
    (msr >= MSR_IA32_PERFCTR0 && msr < 0xca) ||
    (msr >= MSR_IA32_PMC0 && msr < 0x4ca) ||
    (msr >= MSR_CORE_PERF_FIXED_CTR0 && msr < 0x30e)
  )
    return D.oneof(
      { drawn: D.map(D.integer(1, 40), (k) => (1n << 48n) - BigInt(k)), weight: 2 }, // near overflow
      { drawn: D.map(D.integer(1, 40), (k) => 0x1_0000_0000n - BigInt(k)), weight: 1 }, // -k, 32-bit
      { drawn: anyU64, weight: 1 },
    );
  if (msr === X2APIC_LVTPC)
    return D.oneof(
      { drawn: D.constantFrom(0x400n, 0x1_0400n, 0x20n, 0x1_0000n), weight: 8 },
      // Edge values: an NMI or fixed entry with the read-only delivery status or one reserved bit set.
      { drawn: D.map2(D.constantFrom(0x400n, 0x20n), lvtpcEdgeBit, (v, b) => v | b), weight: 1 },
    );
  // Global and fixed controls: subsets of the counter bits, the way drivers write them.
  if (
    msr === MSR_CORE_PERF_GLOBAL_CTRL ||
    msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL ||
    msr === MSR_CORE_PERF_GLOBAL_STATUS_SET
  )
    return D.oneof(
      { drawn: counterBits(shape?.nGP, shape?.nFixed), weight: 4 },
      { drawn: counterBits(), weight: 1 },
      { drawn: anyU64, weight: 1 },
    );
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL)
    return D.oneof(
      {
        drawn: D.of(
          fc
            .array(fc.constantFrom<bigint>(0n, 0x3n, 0xbn, 0x1n, 0x2n, 0xan), { minLength: 4, maxLength: 4 })
            .map((n) => n.reduce((a: bigint, x: bigint, i: number) => a | (x << BigInt(4 * i)), 0n)),
        ),
        weight: 4,
      },
      { drawn: anyU64, weight: 1 },
    );
  // DEBUGCTL: LBR, FREEZE_LBRS_ON_PMI, FREEZE_PERFMON_ON_PMI and BTF as the drivers set them.
  if (msr === MSR_IA32_DEBUGCTLMSR)
    return D.oneof(
      { drawn: D.constantFrom(0x1n, 0x801n, 0x1801n, 0x800n, 0x0n, 0x2n), weight: 4 },
      { drawn: anyU64, weight: 1 },
    );
  // LBR records: canonical user and kernel addresses; LBR_SELECT and TOS: small values.
  if (msr >= MSR_LBR_NHM_FROM && msr < 0x700)
    return D.oneof<bigint>(
      D.map(D.nat(0xffff), (o) => 0x40_0000n + BigInt(o)),
      D.constantFrom(0xffff_ffff_8100_0000n),
      anyU64,
    );
  if (msr === MSR_LBR_SELECT || msr === MSR_LBR_TOS) return D.oneof<bigint>(D.map(D.nat(0x3ff), BigInt), anyU64);
  return anyU64;
}

/**
 * The MSRs one program keeps coming back to: a program that writes an MSR and later reads it, or
 * arms a counter and then overflows it, needs its accesses concentrated, not spread over ~100 MSRs.
 */
export const focusArb: fc.Arbitrary<readonly number[]> = fc.oneof(
  { arbitrary: fc.uniqueArray(msrArb, { minLength: 2, maxLength: 6 }), weight: 3 },
  // A driver's view of one counter: its control, its value (either alias), the global enable.
  {
    arbitrary: fc
      .tuple(fc.nat(3), fc.boolean(), fc.uniqueArray(msrArb, { maxLength: 2 }))
      .map(([i, fullWidth, extra]) => [
        ...new Set([
          MSR_P6_EVNTSEL0 + i,
          fullWidth ? MSR_IA32_PMC0 + i : MSR_IA32_PERFCTR0 + i,
          MSR_CORE_PERF_GLOBAL_CTRL,
          ...extra,
        ]),
      ]),
    weight: 2,
  },
);

/** An MSR of the program's focus most of the time, any PMU MSR otherwise. */
function msrOf(focus: readonly number[]): D.Drawn<number> {
  return focus.length === 0
    ? msrDrawn
    : D.oneof({ drawn: D.constantFrom(...focus), weight: 3 }, { drawn: msrDrawn, weight: 1 });
}

/** One small number per guest shape (nGP < 256, nFixed < 32 as CPUID gives them), 0 for none: a cache's key. */
const shapeKey = (shape?: GuestShape): number => (shape === undefined ? 0 : 1 + shape.nGP * 32 + shape.nFixed);

/** Per MSR, then per small key: two lookups of small integers (one key of both was a heap number, hashed per draw). */
function cached<T>(cache: Map<number, Map<number, T>>, msr: number, key: number, make: () => T): T {
  let byKey = cache.get(msr);
  if (byKey === undefined) cache.set(msr, (byKey = new Map<number, T>()));
  let a = byKey.get(key);
  if (a === undefined) byKey.set(key, (a = make()));
  return a;
}

/** valueFor's arbitraries, built once per MSR and guest shape (a bounded set) and reused for every write. */
const valueArbs = new Map<number, Map<number, D.Drawn<bigint>>>();
const valueArbFor = (msr: number, shape?: GuestShape): D.Drawn<bigint> =>
  cached(valueArbs, msr, shapeKey(shape), () => valueFor(msr, shape));

/** A write's arbitrary per vCPU, MSR and guest shape, built once: chain's inner map made one per draw. */
const writeArbs = new Map<number, Map<number, D.Drawn<GuestWrmsr>>>();
const writeArbFor = (v: number, msr: number, shape?: GuestShape): D.Drawn<GuestWrmsr> =>
  cached(writeArbs, msr, shapeKey(shape) * 4 + v, () =>
    D.map(valueArbFor(msr, shape), (val) => new GuestWrmsr(v, msr, val)),
  );

function wrmsrArb(focus: readonly number[], shape?: GuestShape): D.Drawn<GuestWrmsr> {
  return D.chain2(D.nat(3), msrOf(focus), (v, msr) => writeArbFor(v, msr, shape));
}

const rdmsrArb = (focus: readonly number[]): D.Drawn<GuestRdmsr> =>
  D.map2(D.nat(3), msrOf(focus), (v, m) => new GuestRdmsr(v, m));

/** The quiet mix's commands that depend on neither the focus nor the guest: built once. */
const rdpmcArb: D.Drawn<GuestRdpmc> = D.map3(
  D.nat(3),
  D.oneof<number>(
    D.nat(8),
    D.constantFrom(
      0x4000_0000,
      0x4000_0001,
      0x4000_0003,
      0x8000_0000,
      0x2000_0000,
      0xc000_0000,
      0x4001_0000,
      0x0001_0000,
    ),
  ),
  D.constantFrom(0, 3),
  (v, e, c) => new GuestRdpmc(v, e, c),
);
const guestRunArb: D.Drawn<WorldCommand> = D.map2(D.nat(3), D.array(unitDrawn, 1, 6), (v, u) => new GuestRun(v, u));
/**
 * An instruction behind the forced-emulation prefix, at CPL 0 or 3; branches not taken (a taken one would show in
 * the guest's LBRs on bare metal, which KVM's emulator never writes).
 */
const emulateArb: D.Drawn<GuestEmulate> = D.map3(
  D.nat(3),
  D.constantFrom(...EMULATED_INSNS),
  D.constantFrom(0, 3),
  (v, insn, cpl) => new GuestEmulate(v, insn, cpl),
);
const migrateArb: D.Drawn<WorldCommand> = D.map2(D.nat(3), D.nat(3), (v, c) => new Migrate(v, c));

/** The quiet-host command mix: guest MSR traffic, work and emulated instructions, and the vCPU thread moving. */
export function quietHostCommands(focus: readonly number[] = [], shape?: GuestShape): fc.Arbitrary<WorldCommand>[] {
  const wrmsr = D.fast<WorldCommand>(wrmsrArb(focus, shape));
  return [
    wrmsr,
    wrmsr,
    D.fast<WorldCommand>(rdmsrArb(focus)),
    D.fast<WorldCommand>(rdpmcArb),
    D.fast(guestRunArb),
    D.fast<WorldCommand>(emulateArb),
    D.fast(migrateArb),
  ];
}

/**
 * Guest instructions whose exit the VMM interrupts to save the vCPU and restore it elsewhere (a migration that pauses
 * the vCPU with a signal, or at a userspace exit): what KVM's exit handler requested is still pending when KVM_GET_MSRS
 * reads the state. Mostly emulated instructions and counter or control writes, which KVM counts in software.
 */
export function savedAtExitCommands(focus: readonly number[], shape?: GuestShape): fc.Arbitrary<WorldCommand> {
  const at = (d: D.Drawn<GuestInstruction>) => D.map2(d, D.nat(3), (c, cpu): WorldCommand => savedAtExit(c, cpu));
  return D.fast(
    D.oneof<WorldCommand>(
      { drawn: at(emulateArb), weight: 3 },
      { drawn: at(wrmsrArb(focus, shape)), weight: 3 },
      { drawn: at(rdmsrArb(focus)), weight: 1 },
      { drawn: at(rdpmcArb), weight: 1 },
    ),
  );
}

/**
 * [guest, program] where quiet guest traffic (weight `quiet`) is mixed with a property's own
 * commands: the shape of the host-side properties' programs.
 */
export function mixedProgramArb(
  host: Profile,
  supported: SupportedPmu,
  quiet: number,
  extra: readonly { readonly arbitrary: fc.Arbitrary<WorldCommand>; readonly weight: number }[],
  maxLength: number,
): fc.Arbitrary<[GuestConfig, WorldCommand[]]> {
  return supportedGuestArb(host, supported).chain((guest) =>
    fc.tuple(
      fc.constant(guest),
      focusArb.chain((focus) =>
        fc.array(
          fc.oneof({ arbitrary: fc.oneof(...quietHostCommands(focus, shapeOf(guest))), weight: quiet }, ...extra),
          {
            maxLength,
            size: '+1',
          },
        ),
      ),
    ),
  );
}
