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
import { unitArb } from './work.js';
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
export const msrArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 8 }).map((i) => MSR_IA32_PERFCTR0 + i), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 8 }).map((i) => MSR_IA32_PMC0 + i), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 8 }).map((i) => MSR_P6_EVNTSEL0 + i), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 4 }).map((i) => MSR_CORE_PERF_FIXED_CTR0 + i), weight: 2 },
  {
    arbitrary: fc.constantFrom(
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
    arbitrary: fc.constantFrom(MSR_IA32_PERF_CAPABILITIES, MSR_IA32_DEBUGCTLMSR, X2APIC_LVTPC, MSR_PERF_METRICS),
    weight: 2,
  },
  // LBR MSRs: the first and last record of a 32-deep stack, and the index one past each end.
  {
    arbitrary: fc.constantFrom(
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

/** A bit LVTPC's writers must not set: the delivery status, reserved bits of 31:0 (11 and 13 are the lowest), bit 32. */
const lvtpcEdgeBitArb: fc.Arbitrary<bigint> = fc.constantFrom(
  APIC_SEND_PENDING,
  ...[11n, 13n, 17n, 31n, 32n].map((b) => LVTPC_RESERVED & (1n << b)),
);

/** GLOBAL_CTRL / GLOBAL_STATUS-shaped values: some GP bits (7:0) and some fixed bits (35:32). */
const counterBitsArb = (nGP = 8, nFixed = 4): fc.Arbitrary<bigint> =>
  fc.tuple(fc.nat((1 << nGP) - 1), fc.nat((1 << nFixed) - 1)).map(([gp, fixed]) => BigInt(gp) | (BigInt(fixed) << 32n));

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
export const evtselArb: fc.Arbitrary<bigint> = fc
  .record({
    event: fc.constantFrom(0x3cn, 0xc0n, 0xc4n, 0xc5n, 0x2en),
    umask: fc.constantFrom(0n, 0n, 1n, 0x4fn),
    usr: fc.constantFrom(0n, 1n),
    os: fc.constantFrom(0n, 1n),
    int: fc.constantFrom(0n, 1n),
    en: fc.constantFrom(1n, 1n, 0n),
  })
  .map((f) => encode(EVTSEL, f));

/** A value for `msr`: fields where the register has them, else weighted u64s. */
function valueFor(msr: number, shape?: GuestShape): fc.Arbitrary<bigint> {
  if (msr >= MSR_P6_EVNTSEL0 && msr < 0x18f)
    return fc.oneof({ arbitrary: evtselArb, weight: 4 }, { arbitrary: u64, weight: 1 });
  if (
    (msr >= MSR_IA32_PERFCTR0 && msr < 0xca) ||
    (msr >= MSR_IA32_PMC0 && msr < 0x4ca) ||
    (msr >= MSR_CORE_PERF_FIXED_CTR0 && msr < 0x30e)
  )
    return fc.oneof(
      { arbitrary: fc.integer({ min: 1, max: 40 }).map((k) => (1n << 48n) - BigInt(k)), weight: 2 }, // near overflow
      { arbitrary: fc.integer({ min: 1, max: 40 }).map((k) => 0x1_0000_0000n - BigInt(k)), weight: 1 }, // -k, 32-bit
      { arbitrary: u64, weight: 1 },
    );
  if (msr === X2APIC_LVTPC)
    return fc.oneof(
      { arbitrary: fc.constantFrom(0x400n, 0x1_0400n, 0x20n, 0x1_0000n), weight: 8 },
      // Edge values: an NMI or fixed entry with the read-only delivery status or one reserved bit set.
      { arbitrary: fc.tuple(fc.constantFrom(0x400n, 0x20n), lvtpcEdgeBitArb).map(([v, b]) => v | b), weight: 1 },
    );
  // Global and fixed controls: subsets of the counter bits, the way drivers write them.
  if (
    msr === MSR_CORE_PERF_GLOBAL_CTRL ||
    msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL ||
    msr === MSR_CORE_PERF_GLOBAL_STATUS_SET
  )
    return fc.oneof(
      { arbitrary: counterBitsArb(shape?.nGP, shape?.nFixed), weight: 4 },
      { arbitrary: counterBitsArb(), weight: 1 },
      { arbitrary: u64, weight: 1 },
    );
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL)
    return fc.oneof(
      {
        arbitrary: fc
          .array(fc.constantFrom<bigint>(0n, 0x3n, 0xbn, 0x1n, 0x2n, 0xan), { minLength: 4, maxLength: 4 })
          .map((n) => n.reduce((a: bigint, x: bigint, i: number) => a | (x << BigInt(4 * i)), 0n)),
        weight: 4,
      },
      { arbitrary: u64, weight: 1 },
    );
  // DEBUGCTL: LBR, FREEZE_LBRS_ON_PMI, FREEZE_PERFMON_ON_PMI and BTF as the drivers set them.
  if (msr === MSR_IA32_DEBUGCTLMSR)
    return fc.oneof(
      { arbitrary: fc.constantFrom(0x1n, 0x801n, 0x1801n, 0x800n, 0x0n, 0x2n), weight: 4 },
      { arbitrary: u64, weight: 1 },
    );
  // LBR records: canonical user and kernel addresses; LBR_SELECT and TOS: small values.
  if (msr >= MSR_LBR_NHM_FROM && msr < 0x700)
    return fc.oneof(
      fc.nat(0xffff).map((o) => 0x40_0000n + BigInt(o)),
      fc.constant(0xffff_ffff_8100_0000n),
      u64,
    );
  if (msr === MSR_LBR_SELECT || msr === MSR_LBR_TOS) return fc.oneof(fc.nat(0x3ff).map(BigInt), u64);
  return u64;
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
function msrOf(focus: readonly number[]): fc.Arbitrary<number> {
  return focus.length === 0
    ? msrArb
    : fc.oneof({ arbitrary: fc.constantFrom(...focus), weight: 3 }, { arbitrary: msrArb, weight: 1 });
}

/** One number per MSR and guest shape (nGP < 256, nFixed < 32 as CPUID gives them): the caches' key. */
const shapedKey = (msr: number, shape?: GuestShape): number =>
  msr * 0x1_0000 + (shape === undefined ? 0 : 1 + shape.nGP * 32 + shape.nFixed);

/** valueFor's arbitraries, built once per MSR and guest shape (a bounded set) and reused for every write. */
const valueArbs = new Map<number, fc.Arbitrary<bigint>>();
function valueArbFor(msr: number, shape?: GuestShape): fc.Arbitrary<bigint> {
  const key = shapedKey(msr, shape);
  let a = valueArbs.get(key);
  if (a === undefined) valueArbs.set(key, (a = valueFor(msr, shape)));
  return a;
}

/** A write's arbitrary per vCPU, MSR and guest shape, built once: chain's inner map made one per draw. */
const writeArbs = new Map<number, fc.Arbitrary<GuestWrmsr>>();
function writeArbFor(v: number, msr: number, shape?: GuestShape): fc.Arbitrary<GuestWrmsr> {
  const key = shapedKey(msr, shape) * 4 + v;
  let a = writeArbs.get(key);
  if (a === undefined) writeArbs.set(key, (a = valueArbFor(msr, shape).map((val) => new GuestWrmsr(v, msr, val))));
  return a;
}

function wrmsrArb(focus: readonly number[], shape?: GuestShape): fc.Arbitrary<GuestWrmsr> {
  return fc.tuple(fc.nat(3), msrOf(focus)).chain(([v, msr]) => writeArbFor(v, msr, shape));
}

/** The quiet mix's commands that depend on neither the focus nor the guest: built once. */
const rdpmcArb: fc.Arbitrary<GuestRdpmc> = fc
  .tuple(
    fc.nat(3),
    fc.oneof(
      fc.nat(8),
      fc.constantFrom(
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
    fc.constantFrom(0, 3),
  )
  .map(([v, e, c]) => new GuestRdpmc(v, e, c));
const guestRunArb: fc.Arbitrary<WorldCommand> = fc
  .tuple(fc.nat(3), fc.array(unitArb, { minLength: 1, maxLength: 6 }))
  .map(([v, u]) => new GuestRun(v, u));
/**
 * An instruction behind the forced-emulation prefix, at CPL 0 or 3; branches not taken (a taken one would show in
 * the guest's LBRs on bare metal, which KVM's emulator never writes).
 */
const emulateArb: fc.Arbitrary<GuestEmulate> = fc
  .tuple(fc.nat(3), fc.constantFrom(...EMULATED_INSNS), fc.constantFrom(0, 3))
  .map(([v, insn, cpl]) => new GuestEmulate(v, insn, cpl));
const migrateArb: fc.Arbitrary<WorldCommand> = fc.tuple(fc.nat(3), fc.nat(3)).map(([v, c]) => new Migrate(v, c));

/** The quiet-host command mix: guest MSR traffic, work and emulated instructions, and the vCPU thread moving. */
export function quietHostCommands(focus: readonly number[] = [], shape?: GuestShape): fc.Arbitrary<WorldCommand>[] {
  const wrmsr = wrmsrArb(focus, shape);
  return [
    wrmsr,
    wrmsr,
    fc.tuple(fc.nat(3), msrOf(focus)).map(([v, m]) => new GuestRdmsr(v, m)),
    rdpmcArb,
    guestRunArb,
    emulateArb,
    migrateArb,
  ];
}

/**
 * Guest instructions whose exit the VMM interrupts to save the vCPU and restore it elsewhere (a migration that pauses
 * the vCPU with a signal, or at a userspace exit): what KVM's exit handler requested is still pending when KVM_GET_MSRS
 * reads the state. Mostly emulated instructions and counter or control writes, which KVM counts in software.
 */
export function savedAtExitCommands(focus: readonly number[], shape?: GuestShape): fc.Arbitrary<WorldCommand> {
  const at = (arb: fc.Arbitrary<GuestInstruction>) =>
    fc.tuple(arb, fc.nat(3)).map(([c, cpu]): WorldCommand => savedAtExit(c, cpu));
  return fc.oneof(
    { arbitrary: at(emulateArb), weight: 3 },
    { arbitrary: at(wrmsrArb(focus, shape)), weight: 3 },
    { arbitrary: at(fc.tuple(fc.nat(3), msrOf(focus)).map(([v, m]) => new GuestRdmsr(v, m))), weight: 1 },
    { arbitrary: at(rdpmcArb), weight: 1 },
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
