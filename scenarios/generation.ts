/**
 * Generation profiles: named program mixes, so every property meets the programs that can break
 * it (issue #4). Each profile says what guest it makes, which MSRs its programs keep coming back
 * to, and how often the host, the scheduler and the VMM get a turn:
 *
 * - quiet: guest MSR traffic and work, the vCPU thread moving; nothing else on the host.
 * - contended: the same guest traffic while host users open (on a pCPU or on the vCPU thread),
 *   enable, disable, read and close perf events (counting and sampling, with and without branch
 *   stacks), run work, preempt the vCPU thread and take NMIs; now and then a save/restore.
 * - lbr-heavy: a guest with the host's LBR format; DEBUGCTL, LBR_SELECT/TOS and the newest LBR
 *   records; branchy work; XSAVES/XRSTORS of Arch LBR state.
 * - topdown: the fixed counters and their controls, the GP topdown-slots event, PERF_METRICS and
 *   the global MSRs; work with slot breakdowns.
 * - save-restore-heavy: quiet traffic with migrations, preemptions and save/restore in between.
 * - beyond-supported: a guest beyond what the design reports (a PMU version above KVM_GET_SUPPORTED_CPUID's, more
 *   fixed counters than KVM offers) with quiet, LBR and topdown traffic: what a VMM that ignores KVM's answer gets.
 *   Its findings are unsupported configurations, never KVM bugs.
 *
 * Every other profile makes guests a VMM can configure from what the design reports (scenarios/supported.ts).
 */

import fc from 'fast-check';
import {
  EVTSEL,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
} from '../model/hw/msr/counters.js';
import type { Profile } from '../model/hw/profile.js';
import { attr } from '../model/host/types.js';
import { focusArb, type GuestShape, quietHostCommands, shapeOf } from './arbitraries.js';
import { beyondSupportedGuestArb, supportedGuestArb } from './supported.js';
import type { SupportedPmu } from '../model/kvm/types.js';
import {
  GuestRdmsr,
  GuestRun,
  GuestWrmsr,
  GuestXrstors,
  GuestXsaves,
  HostEvent,
  HostNmi,
  HostOpen,
  HostOpenThread,
  HostWork,
  Migrate,
  Preempt,
  SaveRestore,
  type WorldCommand,
} from './commands.js';
import { encode } from './values.js';
import { branchArb, unitArb } from './work.js';
import type { GuestConfig } from './world.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import {
  MSR_LBR_TOS,
  MSR_LBR_SELECT,
  MSR_LBR_NHM_FROM,
  MSR_LBR_NHM_TO,
  MSR_LBR_INFO_0,
} from '../model/hw/msr/lbr_legacy.js';
import { MSR_PERF_METRICS } from '../model/hw/msr/topdown.js';
import { MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL } from '../model/hw/msr/global.js';
import { PERF_CAP_LBR_FMT } from '../model/hw/msr/capabilities.js';

export const GENERATION_PROFILES = [
  'quiet',
  'contended',
  'lbr-heavy',
  'topdown',
  'save-restore-heavy',
  'beyond-supported',
] as const;
export type GenerationProfile = (typeof GENERATION_PROFILES)[number];

/** The profiles a campaign runs unless told otherwise: every one that keeps to what the design reports. */
export const DEFAULT_GENERATION_PROFILES: readonly GenerationProfile[] = GENERATION_PROFILES.filter(
  (g) => g !== 'beyond-supported',
);

/** A host user's event: counting or sampling, pinned or not, user/kernel/guest exclusions, maybe a branch stack. */
export const hostAttrArb = fc
  .record({
    config: fc.constantFrom(0xc0n, 0x3cn, 0xc4n, 0xc5n, 0x4f2en, 0x412en, 0x0300n),
    sampling: fc.boolean(),
    period: fc.integer({ min: 16, max: 400 }),
    pinned: fc.boolean(),
    excludeGuest: fc.boolean(),
    excludeKernel: fc.boolean(),
    branches: fc.boolean(),
  })
  .map((r) =>
    attr({
      config: r.config,
      sample_period: r.sampling ? BigInt(r.period) : 0n,
      pinned: r.pinned,
      exclude_guest: r.excludeGuest,
      exclude_kernel: r.excludeKernel,
      ...(r.sampling && r.branches ? { branchSample: { user: true, kernel: !r.excludeKernel, callStack: false } } : {}),
    }),
  );

/** Built on first use and kept: the command lists below depend on a small key, never on the program. */
function memo<K, T>(build: (k: K) => T): (k: K) => T {
  const built = new Map<K, T>();
  return (k) => {
    let t = built.get(k);
    if (t === undefined) built.set(k, (t = build(k)));
    return t;
  };
}

/** Host activity: users' perf events and work, preemption of the vCPU thread, NMIs. */
const CONTENDED: fc.Arbitrary<WorldCommand>[] = [
  fc.tuple(fc.nat(1), hostAttrArb).map(([cpu, a]) => new HostOpen(cpu, a)),
  fc.tuple(fc.nat(3), hostAttrArb).map(([v, a]) => new HostOpenThread(v, a)),
  fc
    .tuple(fc.nat(3), fc.constantFrom('enable' as const, 'disable' as const, 'read' as const, 'close' as const))
    .map(([k, op]) => new HostEvent(k, op)),
  fc.tuple(fc.nat(1), fc.array(unitArb, { minLength: 1, maxLength: 4 })).map(([cpu, u]) => new HostWork(cpu, u)),
  fc.tuple(fc.nat(3), fc.array(unitArb, { minLength: 1, maxLength: 3 })).map(([v, u]) => new Preempt(v, u)),
  fc.nat(1).map((cpu) => new HostNmi(cpu)),
];
export const contendedHostCommands = (): fc.Arbitrary<WorldCommand>[] => CONTENDED;

/** Branch-rich guest work: every unit takes branches. */
const branchyUnits = memo((cpl: number) =>
  fc.array(
    fc
      .array(branchArb(cpl), { minLength: 1, maxLength: 4 })
      .map((branches) => ({ cpl, instructions: branches.length + 1, cycles: 3, branches })),
    { minLength: 1, maxLength: 5 },
  ),
);
const branchyRun = fc
  .tuple(fc.nat(3), fc.constantFrom(0, 3))
  .chain(([v, cpl]) => branchyUnits(cpl).map((units) => new GuestRun(v, units)));

/** LBR traffic: DEBUGCTL with LBR and freeze bits, LBR_SELECT, TOS and the newest records. */
const lbrCommands = memo((depth: number): fc.Arbitrary<WorldCommand>[] => {
  const recordOf = memo((i: number) => fc.constantFrom(MSR_LBR_NHM_FROM + i, MSR_LBR_NHM_TO + i, MSR_LBR_INFO_0 + i));
  const record = fc.integer({ min: 0, max: Math.max(depth - 1, 0) }).chain(recordOf);
  return [
    fc
      .tuple(fc.nat(3), fc.constantFrom(0x1n, 0x801n, 0x1801n, 0x0n))
      .map(([v, x]) => new GuestWrmsr(v, MSR_IA32_DEBUGCTLMSR, x)),
    fc
      .tuple(fc.nat(3), fc.constantFrom(MSR_IA32_DEBUGCTLMSR, MSR_LBR_TOS, MSR_LBR_SELECT))
      .map(([v, m]) => new GuestRdmsr(v, m)),
    fc.tuple(fc.nat(3), record).map(([v, m]) => new GuestRdmsr(v, m)),
    fc.tuple(fc.nat(3), fc.nat(0x3ff)).map(([v, x]) => new GuestWrmsr(v, MSR_LBR_SELECT, BigInt(x))),
    branchyRun,
    fc.nat(3).map((v) => new GuestXsaves(v)),
    fc.nat(3).map((v) => new GuestXrstors(v)),
  ];
});

/** The GP topdown-slots event (CPUID.0AH.EBX bit 7), programmed the way pmu_counters_test does. */
const topdownEvtsel = fc
  .record({ usr: fc.constantFrom(0n, 1n), os: fc.constantFrom(0n, 1n), int: fc.constantFrom(0n, 1n) })
  .map((f) => encode(EVTSEL, { event: 0xa4n, umask: 0x1n, en: 1n, ...f }));

const topdownCommands = memo((nGP: number): fc.Arbitrary<WorldCommand>[] => {
  const gp = fc.integer({ min: 0, max: Math.max(nGP - 1, 0) });
  return [
    fc.tuple(fc.nat(3), gp, topdownEvtsel).map(([v, i, x]) => new GuestWrmsr(v, MSR_P6_EVNTSEL0 + i, x)),
    fc
      .tuple(
        fc.nat(3),
        fc.constantFrom(
          MSR_CORE_PERF_FIXED_CTR0,
          MSR_CORE_PERF_FIXED_CTR0 + 1,
          MSR_CORE_PERF_FIXED_CTR0 + 2,
          MSR_CORE_PERF_FIXED_CTR0 + 3,
          MSR_PERF_METRICS,
          MSR_CORE_PERF_FIXED_CTR_CTRL,
          MSR_CORE_PERF_GLOBAL_STATUS,
          MSR_IA32_PERFCTR0,
        ),
      )
      .map(([v, m]) => new GuestRdmsr(v, m)),
    fc
      .tuple(fc.nat(3), fc.constantFrom(0x0n, 0x3n, 0x33n, 0x333n, 0x3333n, 0xbbbn))
      .map(([v, x]) => new GuestWrmsr(v, MSR_CORE_PERF_FIXED_CTR_CTRL, x)),
    fc
      .tuple(fc.nat(3), fc.constantFrom(0x1n, 0x7_0000_0001n, 0xf_0000_000fn, 0x1_0007_0000_0001n, 0x8_0000_0000n))
      .map(([v, x]) => new GuestWrmsr(v, MSR_CORE_PERF_GLOBAL_CTRL, x)),
    fc
      .tuple(fc.nat(3), fc.constantFrom(0x0n, 0x1234_5678n, (1n << 64n) - 1n))
      .map(([v, x]) => new GuestWrmsr(v, MSR_PERF_METRICS, x)),
  ];
});

/** The scheduler and the VMM: migrations, preemptions, save/restore. */
const VMM: fc.Arbitrary<WorldCommand>[] = [
  fc.tuple(fc.nat(3), fc.nat(3)).map(([v, c]) => new Migrate(v, c)),
  fc.tuple(fc.nat(3), fc.nat(3)).map(([v, c]) => new SaveRestore(v, c)),
  fc.tuple(fc.nat(3), fc.array(unitArb, { minLength: 1, maxLength: 2 })).map(([v, u]) => new Preempt(v, u)),
];

const saveRestoreArb: fc.Arbitrary<WorldCommand> = fc
  .tuple(fc.nat(3), fc.nat(3))
  .map(([v, c]) => new SaveRestore(v, c));

/** A guest with the legacy LBR format the design offers, where it offers one the host's model has. */
const withLbr = (host: Profile, s: SupportedPmu) => (x: GuestConfig) => {
  const offered = s.perfCapabilities & PERF_CAP_LBR_FMT;
  const fmt = offered <= 7n && host.legacyLbr !== undefined ? offered : 0n;
  return fmt === 0n ? x : { ...x, cpuid: { ...x.cpuid, pdcm: true }, perfCapabilities: x.perfCapabilities | fmt };
};

/**
 * The guest a profile makes, within what the design reports on the host (`supported`) except for beyond-supported:
 * LBR-heavy guests take the LBR format the design offers; topdown guests are v2+.
 */
export function profileGuestArb(
  host: Profile,
  gen: GenerationProfile,
  supported: SupportedPmu,
): fc.Arbitrary<GuestConfig> {
  if (gen === 'beyond-supported')
    return fc.oneof(
      beyondSupportedGuestArb(host, supported),
      beyondSupportedGuestArb(host, supported).map(withLbr(host, supported)),
    );
  const g = supportedGuestArb(host, supported);
  if (gen === 'lbr-heavy') return g.map(withLbr(host, supported));
  if (gen === 'topdown') return g.filter((x) => (x.cpuid.leaf0a.eax & 0xff) >= 2);
  return g;
}

/** The command mix of a profile, as weighted arbitraries. */
export function profileCommands(
  host: Profile,
  gen: GenerationProfile,
  focus: readonly number[],
  shape: GuestShape,
): fc.Arbitrary<WorldCommand>[] {
  const quiet = quietHostCommands(focus, shape);
  const w = (arbs: fc.Arbitrary<WorldCommand>[], weight: number) => arbs.map((arbitrary) => ({ arbitrary, weight }));
  const mix = (...groups: { arbitrary: fc.Arbitrary<WorldCommand>; weight: number }[][]) => [
    fc.oneof(...groups.flat()),
  ];
  switch (gen) {
    case 'quiet':
      return quiet;
    case 'contended':
      // Save/restore now and then: the fresh vCPU lands on a host whose users hold events.
      return mix(w(quiet, 2), w(CONTENDED, 2), w([saveRestoreArb], 1));
    case 'lbr-heavy':
      return mix(w(quiet, 1), w(lbrCommands(host.legacyLbr?.depth ?? 0), 3));
    case 'topdown':
      return mix(w(quiet, 1), w(topdownCommands(shape.nGP), 3));
    case 'save-restore-heavy':
      return mix(w(quiet, 2), w(VMM, 2));
    case 'beyond-supported':
      return mix(w(quiet, 2), w(lbrCommands(host.legacyLbr?.depth ?? 0), 1), w(topdownCommands(shape.nGP), 1));
  }
}

/** [guest, commands] for one profile, in the conformance property's shape. */
export function profileProgramArb(
  host: Profile,
  gen: GenerationProfile,
  supported: SupportedPmu,
): fc.Arbitrary<[GuestConfig, Iterable<WorldCommand>]> {
  return profileGuestArb(host, gen, supported).chain((guest) =>
    fc.tuple(
      fc.constant(guest),
      focusArb.chain((focus) => fc.commands(profileCommands(host, gen, focus, shapeOf(guest)), { size: '+1' })),
    ),
  );
}
