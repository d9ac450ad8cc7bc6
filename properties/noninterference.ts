/**
 * Property 2 (first half): no host state leaks to the guest. Two runs that differ only in
 * host-private values — what host tasks execute, the addresses they branch to, which event of the
 * same counter class a host user counts, its sample period — give the guest identical
 * observations (design.md "Properties"). Both runs use the same design; no oracle is involved.
 */

import fc from 'fast-check';
import { LBR_FMT_ARCH, type Profile } from '../model/hw/profile.js';
import type { WorkUnit } from '../model/hw/work.js';
import { attr } from '../model/host/types.js';
import { focusArb, quietHostCommands, shapeOf } from '../scenarios/arbitraries.js';
import { Divergence, HostOpen, HostWork, type WorldCommand } from '../scenarios/commands.js';
import { unitArb } from '../scenarios/work.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';
import { type Observation, sameOutcome } from '../scenarios/observation.js';
import type { KnownDivergence } from './expectations/types.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { MSR_LBR_TOS, MSR_LBR_NHM_FROM } from '../model/hw/msr/lbr_legacy.js';
import {
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../model/hw/msr/lbr_arch.js';
import { PERF_CAP_LBR_FMT } from '../model/hw/msr/capabilities.js';
import { hostLbrCommands } from '../scenarios/generation.js';
import { supportedGuestArb, supportedOf } from '../scenarios/supported.js';
import type { SupportedPmu } from '../model/kvm/types.js';

export interface NoninterferenceRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly hostKernel?: HostKernelFactory | undefined;
  /** What the design reports on the host (probed from the design when not given). */
  readonly supported?: SupportedPmu | undefined;
  /** The design's declared leaks: a program whose first differing observation matches one ends as known. */
  readonly leaks?: readonly KnownDivergence[];
  /** Counts the declared leaks met, by id. */
  readonly known?: Map<string, number>;
}

/** Host events whose twins need the same counters: GP-only events, and the fixed-capable ones as they are. */
const GP_ONLY = [0xc4n, 0xc5n, 0x4f2en, 0x412en];

/** A host user's event, as a pair: the one run A opens and its same-footprint twin for run B. */
const hostOpenPair: fc.Arbitrary<[WorldCommand, WorldCommand]> = fc
  .record({
    cpu: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.constant(1), weight: 1 }),
    gpOnly: fc.boolean(),
    config: fc.constantFrom(0xc0n, 0x3cn),
    pair: fc.tuple(fc.constantFrom(...GP_ONLY), fc.constantFrom(...GP_ONLY)),
    pinned: fc.boolean(),
    excludeGuest: fc.boolean(),
    periods: fc.option(fc.tuple(fc.integer({ min: 20, max: 400 }), fc.integer({ min: 20, max: 400 })), {
      nil: undefined,
    }),
    lbr: fc.boolean(),
  })
  .map((r) => {
    const make = (config: bigint, period: number | undefined) =>
      new HostOpen(
        r.cpu,
        attr({
          config,
          pinned: r.pinned,
          exclude_guest: r.excludeGuest,
          sample_period: period === undefined ? 0n : BigInt(period),
          ...(r.lbr && period !== undefined ? { branchSample: { user: true, kernel: true, callStack: false } } : {}),
        }),
      );
    const [ca, cb] = r.gpOnly ? r.pair : [r.config, r.config];
    return [make(ca, r.periods?.[0]), make(cb, r.periods?.[1])];
  });

/**
 * A host LBR user (perf record -b -a) and its twin, recording other privilege levels: the same LBR ownership and
 * counter, another IA32_LBR_CTL (USR, OS or both), so the host's LBR_CTL and which of its branches it keeps differ.
 */
const hostLbrOpenPair: fc.Arbitrary<[WorldCommand, WorldCommand]> = fc
  .record({
    cpu: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.constant(1), weight: 1 }),
    config: fc.constantFrom(0xc4n, 0x3cn, 0xc0n),
    period: fc.integer({ min: 20, max: 400 }),
    levels: fc.tuple(fc.nat(2), fc.nat(2)),
  })
  .map((r) => {
    const make = (level: number) =>
      new HostOpen(
        r.cpu,
        attr({
          config: r.config,
          pinned: true,
          sample_period: BigInt(r.period),
          branchSample: { user: level !== 1, kernel: level !== 0, callStack: false },
        }),
      );
    return [make(r.levels[0]), make(r.levels[1])];
  });

/** Host work and its twin: the same shape of units, other counts and other kernel addresses. */
const hostWorkPair: fc.Arbitrary<[WorldCommand, WorldCommand]> = fc
  .tuple(fc.nat(1), fc.array(unitArb, { minLength: 1, maxLength: 4 }), fc.nat(0xfff))
  .map(([cpu, units, shift]) => {
    const twin = units.map((u): WorkUnit => ({
      ...u,
      instructions: (u.instructions ?? 0) + 3,
      cycles: (u.cycles ?? 0) + 5,
      branches: (u.branches ?? []).map((b) => ({
        ...b,
        from: b.from + BigInt(shift) * 16n,
        to: b.to + BigInt(shift) * 32n,
      })),
    }));
    return [new HostWork(cpu, units), new HostWork(cpu, twin)];
  });

function run(r: NoninterferenceRun, guest: GuestConfig, cmds: readonly WorldCommand[]): World {
  const w = new World({
    host: r.host,
    cpus: 2,
    guests: [guest],
    design: r.design,
    compare: false,
    hostKernel: r.hostKernel,
  });
  fc.modelRun(() => ({ model: {}, real: w }), cmds);
  return w;
}

const seen = (w: World) => w.observations.filter((o) => o.kind !== 'vmm');

/** Runs both variants; the guest must not tell them apart. */
export function checkNoninterference(
  r: NoninterferenceRun,
  guest: GuestConfig,
  a: readonly WorldCommand[],
  b: readonly WorldCommand[],
): void {
  const oa = seen(run(r, guest, a));
  const wb = run(r, guest, b);
  const ob = seen(wb);
  for (let i = 0; i < oa.length; i++) {
    if (sameOutcome(oa[i]!.sut, ob[i]!.sut)) continue;
    const o: Observation = { ...ob[i]!, note: { kind: 'host-values' }, oracle: oa[i]!.sut };
    // Judged on the history up to the divergent observation: what the program does after it cannot excuse it.
    const history = wb.observations.slice(0, wb.observations.indexOf(ob[i]!) + 1);
    const known = r.leaks?.find((x) => x.matches(o, { host: r.host, guest, history }));
    if (known !== undefined) {
      r.known?.set(known.id, (r.known.get(known.id) ?? 0) + 1);
      return;
    }
    throw new Divergence(o, 'with the original host values it saw');
  }
}

/** A guest's program: its configuration, the MSRs it keeps coming back to, and LBR traffic of its own (or none). */
type ProgramGuest = [GuestConfig, readonly number[], readonly fc.Arbitrary<WorldCommand>[]];

/**
 * Half the programs are LBR-heavy. On a legacy LBR host the guest has the host's LBR format, and its program keeps
 * coming back to DEBUGCTL, LBR_TOS and the newest LBR records, where host branches would show. On an Arch LBR host
 * the guest has Arch LBR where the design offers it, and its program keeps coming back to IA32_LBR_CTL, IA32_LBR_DEPTH
 * and the newest FROM/TO/INFO records, with the Arch LBR traffic of the lbr-heavy profile (LBR_CTL values that enable
 * recording, DEPTH writes, XSAVES and XRSTORS of state component 15), where host records and the host's LBR_CTL would
 * show; without Arch LBR from the design, the same traffic probes what a guest without it reaches.
 */
function programGuest(host: Profile, supported: SupportedPmu): fc.Arbitrary<ProgramGuest> {
  const fmt = host.legacyLbr !== undefined ? host.perfCapabilities & PERF_CAP_LBR_FMT : 0n;
  const arch = supported.archLbr;
  const archTraffic = host.archLbr !== undefined ? hostLbrCommands(host) : [];
  return fc.tuple(supportedGuestArb(host, supported), fc.boolean(), focusArb).map(([g, lbr, focus]): ProgramGuest => {
    if (lbr && fmt !== 0n)
      return [
        { ...g, cpuid: { ...g.cpuid, pdcm: true }, perfCapabilities: g.perfCapabilities | fmt },
        [MSR_IA32_DEBUGCTLMSR, MSR_LBR_TOS, MSR_LBR_NHM_FROM, MSR_LBR_NHM_FROM + 1, MSR_LBR_NHM_FROM + 2, ...focus],
        [],
      ];
    if (!lbr || archTraffic.length === 0) return [g, focus, []];
    const guest =
      arch === undefined
        ? g
        : {
            ...g,
            cpuid: { ...g.cpuid, pdcm: true, archLbr: true, leaf1c: arch },
            perfCapabilities: (g.perfCapabilities & ~PERF_CAP_LBR_FMT) | BigInt(LBR_FMT_ARCH),
          };
    const archFocus = [
      MSR_ARCH_LBR_CTL,
      MSR_ARCH_LBR_DEPTH,
      MSR_ARCH_LBR_FROM_0,
      MSR_ARCH_LBR_TO_0,
      MSR_ARCH_LBR_INFO_0,
    ];
    return [guest, [...archFocus, ...focus], archTraffic];
  });
}

export function noninterferenceProperty(r: NoninterferenceRun) {
  return fc.property(
    programGuest(r.host, supportedOf(r)).chain(([guest, focus, lbrTraffic]) =>
      fc.tuple(
        fc.constant(guest),
        fc.constant(focus).chain((focus) =>
          fc.array(
            fc.oneof(
              {
                arbitrary: fc
                  .oneof(...quietHostCommands(focus, shapeOf(guest)))
                  .map((c): [WorldCommand, WorldCommand] => [c, c]),
                weight: 4,
              },
              { arbitrary: hostOpenPair, weight: 1 },
              { arbitrary: hostWorkPair, weight: 2 },
              ...(lbrTraffic.length === 0
                ? []
                : [
                    { arbitrary: fc.oneof(...lbrTraffic).map((c): [WorldCommand, WorldCommand] => [c, c]), weight: 3 },
                    { arbitrary: hostLbrOpenPair, weight: 1 },
                  ]),
            ),
            { maxLength: 30, size: '+1' },
          ),
        ),
      ),
    ),
    ([guest, pairs]) =>
      checkNoninterference(
        r,
        guest,
        pairs.map((p) => p[0]),
        pairs.map((p) => p[1]),
      ),
  );
}
