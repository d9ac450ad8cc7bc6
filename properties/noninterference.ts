/**
 * Property 2 (first half): no host state leaks to the guest. Two runs that differ only in
 * host-private values — what host tasks execute, the addresses they branch to, which event of the
 * same counter class a host user counts, its sample period — give the guest identical
 * observations (design.md "Properties"). Both runs use the same design; no oracle is involved.
 */

import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
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
import { supportedGuestArb, supportedOf } from '../scenarios/supported.js';
import type { SupportedPmu } from '../model/kvm/types.js';

export interface NoninterferenceRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly hostKernel?: HostKernelFactory | undefined;
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

/**
 * Half the programs are LBR-heavy: the guest has the host's LBR format, and its program keeps
 * coming back to DEBUGCTL, LBR_TOS and the newest LBR records, where host branches would show.
 */
function programGuest(host: Profile, supported: SupportedPmu): fc.Arbitrary<[GuestConfig, readonly number[]]> {
  const fmt = host.legacyLbr !== undefined ? host.perfCapabilities & 0x3fn : 0n;
  return fc
    .tuple(supportedGuestArb(host, supported), fc.boolean(), focusArb)
    .map(([g, lbr, focus]) =>
      lbr && fmt !== 0n
        ? [
            { ...g, cpuid: { ...g.cpuid, pdcm: true }, perfCapabilities: g.perfCapabilities | fmt },
            [MSR_IA32_DEBUGCTLMSR, MSR_LBR_TOS, MSR_LBR_NHM_FROM, 0x681, 0x682, ...focus],
          ]
        : [g, focus],
    );
}

export function noninterferenceProperty(r: NoninterferenceRun) {
  return fc.property(
    programGuest(r.host, supportedOf(r)).chain(([guest, focus]) =>
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
