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
 *   records (on an Arch LBR host LBR_CTL, DEPTH and its records); branchy work; XSAVES/XRSTORS of Arch LBR state.
 * - topdown: the fixed counters and their controls, the GP topdown-slots event, PERF_METRICS and
 *   the global MSRs; work with slot breakdowns.
 * - save-restore-heavy: quiet traffic with migrations, preemptions and save/restore in between.
 * - beyond-supported: a guest beyond what the design reports (a PMU version above KVM_GET_SUPPORTED_CPUID's, more
 *   fixed counters than KVM offers) with quiet, LBR and topdown traffic: what a VMM that ignores KVM's answer gets.
 *   Its findings are unsupported configurations, never KVM bugs.
 *
 * - driver: the guest runs Linux perf (scenarios/driver.ts): it boots, opens events with small
 *   periods, runs work whose overflows take its PMI handler, switches tasks, takes other NMIs,
 *   records LBRs; guests of every version the design reports, many with every counter it offers.
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
import { LBR_FMT_ARCH, leaf0aEax, leaf0aEdx, type Profile } from '../model/hw/profile.js';
import { attr, type PerfEventAttr } from '../model/host/types.js';
import { focusArb, type GuestShape, quietHostCommands, savedAtExitCommands, shapeOf } from './arbitraries.js';
import { beyondSupportedGuestArb, fields, supportedGuestArb } from './supported.js';
import type { SupportedPmu } from '../model/kvm/types.js';
import type { DriverEventSpec, DriverLbrSpec, DriverParams } from './driver.js';
import {
  DriverBoot,
  DriverCheckOverflow,
  DriverClose,
  DriverLbr,
  DriverNmi,
  DriverOpen,
  DriverRun,
  DriverSwitch,
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
import { branchArb, unitDrawn } from './work.js';
import type { WorkUnit } from '../model/hw/work.js';
import * as D from './draw.js';
import type { GuestConfig } from './world.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import {
  LBR_CALL_STACK,
  MSR_LBR_TOS,
  MSR_LBR_SELECT,
  MSR_LBR_NHM_FROM,
  MSR_LBR_NHM_TO,
  MSR_LBR_INFO_0,
} from '../model/hw/msr/lbr_legacy.js';
import { MSR_PERF_METRICS } from '../model/hw/msr/topdown.js';
import {
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../model/hw/msr/lbr_arch.js';
import { MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL } from '../model/hw/msr/global.js';
import { PERF_CAP_LBR_FMT } from '../model/hw/msr/capabilities.js';

export const GENERATION_PROFILES = [
  'quiet',
  'contended',
  'lbr-heavy',
  'topdown',
  'save-restore-heavy',
  'beyond-supported',
  'driver',
] as const;
export type GenerationProfile = (typeof GENERATION_PROFILES)[number];

/** The profiles whose programs save/restore or reschedule a vCPU: they meet what a design loses there on purpose. */
export const VMM_STEPPING_PROFILES: readonly GenerationProfile[] = ['contended', 'save-restore-heavy', 'driver'];

/** Profiles a campaign runs only when named (`--gen`): beyond-supported (guests no VMM gets from KVM_GET_SUPPORTED_CPUID). */
export const OPT_IN_GENERATION_PROFILES: readonly GenerationProfile[] = ['beyond-supported'];

/** The profiles a campaign runs unless told otherwise. */
export const DEFAULT_GENERATION_PROFILES: readonly GenerationProfile[] = GENERATION_PROFILES.filter(
  (g) => !OPT_IN_GENERATION_PROFILES.includes(g),
);

/** A host user's event: counting or sampling, pinned or not, user/kernel/guest exclusions, maybe a branch stack. */
const hostAttrDrawn: D.Drawn<PerfEventAttr> = D.record(
  {
    config: D.constantFrom(0xc0n, 0x3cn, 0xc4n, 0xc5n, 0x4f2en, 0x412en, 0x0300n),
    sampling: D.boolean(),
    period: D.integer(16, 400),
    pinned: D.boolean(),
    excludeGuest: D.boolean(),
    excludeKernel: D.boolean(),
    branches: D.boolean(),
  },
  (r) =>
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

/** The commands of a list, each drawn directly (draw.ts). */
const fastAll = (ds: readonly D.Drawn<WorldCommand>[]): fc.Arbitrary<WorldCommand>[] => ds.map((d) => D.fast(d));

/** Host activity: users' perf events and work, preemption of the vCPU thread, NMIs. */
const CONTENDED: fc.Arbitrary<WorldCommand>[] = fastAll([
  D.map2(D.nat(1), hostAttrDrawn, (cpu, a) => new HostOpen(cpu, a)),
  D.map2(D.nat(3), hostAttrDrawn, (v, a) => new HostOpenThread(v, a)),
  D.map2(
    D.nat(3),
    D.constantFrom('enable' as const, 'disable' as const, 'read' as const, 'close' as const),
    (k, op) => new HostEvent(k, op),
  ),
  D.map2(D.nat(1), D.array(unitDrawn, 1, 4), (cpu, u) => new HostWork(cpu, u)),
  D.map2(D.nat(3), D.array(unitDrawn, 1, 3), (v, u) => new Preempt(v, u)),
  D.map(D.nat(1), (cpu) => new HostNmi(cpu)),
]);
export const contendedHostCommands = (): fc.Arbitrary<WorldCommand>[] => CONTENDED;

/** Branch-rich guest work: every unit takes branches. */
const branchyUnits = memo((cpl: number) =>
  D.array(
    D.map(D.array(D.of(branchArb(cpl)), 1, 4), (branches) => ({
      cpl,
      instructions: branches.length + 1,
      cycles: 3,
      branches,
    })),
    1,
    5,
  ),
);
const branchyRun: D.Drawn<WorldCommand> = D.chain2(D.nat(3), D.constantFrom(0, 3), (v, cpl) =>
  D.map(branchyUnits(cpl), (units) => new GuestRun(v, units)),
);

/** LBR traffic: DEBUGCTL with LBR and freeze bits, LBR_SELECT, TOS and the newest records. */
const lbrCommands = memo((depth: number): fc.Arbitrary<WorldCommand>[] => {
  const recordOf = memo((i: number) => D.constantFrom(MSR_LBR_NHM_FROM + i, MSR_LBR_NHM_TO + i, MSR_LBR_INFO_0 + i));
  const record = D.chain(D.integer(0, Math.max(depth - 1, 0)), recordOf);
  return fastAll([
    D.map2(D.nat(3), D.constantFrom(0x1n, 0x801n, 0x1801n, 0x0n), (v, x) => new GuestWrmsr(v, MSR_IA32_DEBUGCTLMSR, x)),
    D.map2(D.nat(3), D.constantFrom(MSR_IA32_DEBUGCTLMSR, MSR_LBR_TOS, MSR_LBR_SELECT), (v, m) => new GuestRdmsr(v, m)),
    D.map2(D.nat(3), record, (v, m) => new GuestRdmsr(v, m)),
    D.map2(D.nat(3), D.nat(0x3ff), (v, x) => new GuestWrmsr(v, MSR_LBR_SELECT, BigInt(x))),
    branchyRun,
    D.map(D.nat(3), (v) => new GuestXsaves(v)),
    D.map(D.nat(3), (v) => new GuestXrstors(v)),
  ]);
});

/**
 * Arch LBR traffic: LBR_CTL (everything, user only, call stack, a reserved bit), DEPTH (the deepest, the shallowest,
 * 0), DEBUGCTL's freeze bit, the newest records, branchy work, XSAVES/XRSTORS of the component.
 */
const archLbrCommands = memo((depth: number): fc.Arbitrary<WorldCommand>[] => {
  const recordOf = memo((i: number) =>
    D.constantFrom(MSR_ARCH_LBR_FROM_0 + i, MSR_ARCH_LBR_TO_0 + i, MSR_ARCH_LBR_INFO_0 + i),
  );
  const record = D.chain(D.oneof(D.integer(0, 2), D.integer(0, Math.max(depth - 1, 0))), recordOf);
  return fastAll([
    D.map2(
      D.nat(3),
      D.constantFrom(0x7f000fn, 0x7f0005n, 0x38000fn, 0x0n, 0x10n),
      (v, x) => new GuestWrmsr(v, MSR_ARCH_LBR_CTL, x),
    ),
    D.map2(D.nat(3), D.constantFrom(MSR_ARCH_LBR_CTL, MSR_ARCH_LBR_DEPTH), (v, m) => new GuestRdmsr(v, m)),
    D.map2(D.nat(3), D.constantFrom(BigInt(depth), 8n, 0n), (v, x) => new GuestWrmsr(v, MSR_ARCH_LBR_DEPTH, x)),
    D.map2(D.nat(3), D.constantFrom(0x0n, 0x800n), (v, x) => new GuestWrmsr(v, MSR_IA32_DEBUGCTLMSR, x)),
    D.map2(D.nat(3), record, (v, m) => new GuestRdmsr(v, m)),
    branchyRun,
    D.map(D.nat(3), (v) => new GuestXsaves(v)),
    D.map(D.nat(3), (v) => new GuestXrstors(v)),
  ]);
});

/** The LBR traffic of a host's flavour: Arch LBR MSRs on an Arch LBR host, else the legacy ones. */
export const hostLbrCommands = (host: Profile): fc.Arbitrary<WorldCommand>[] =>
  host.archLbr !== undefined ? archLbrCommands(host.archLbr.maxDepth) : lbrCommands(host.legacyLbr?.depth ?? 0);

/** The GP topdown-slots event (CPUID.0AH.EBX bit 7), programmed the way pmu_counters_test does. */
const topdownEvtsel = D.record(
  { usr: D.constantFrom(0n, 1n), os: D.constantFrom(0n, 1n), int: D.constantFrom(0n, 1n) },
  (f) => encode(EVTSEL, { event: 0xa4n, umask: 0x1n, en: 1n, ...f }),
);

const topdownCommands = memo((nGP: number): fc.Arbitrary<WorldCommand>[] => {
  const gp = D.integer(0, Math.max(nGP - 1, 0));
  return fastAll([
    D.map3(D.nat(3), gp, topdownEvtsel, (v, i, x) => new GuestWrmsr(v, MSR_P6_EVNTSEL0 + i, x)),
    D.map2(
      D.nat(3),
      D.constantFrom(
        MSR_CORE_PERF_FIXED_CTR0,
        MSR_CORE_PERF_FIXED_CTR0 + 1,
        MSR_CORE_PERF_FIXED_CTR0 + 2,
        MSR_CORE_PERF_FIXED_CTR0 + 3,
        MSR_PERF_METRICS,
        MSR_CORE_PERF_FIXED_CTR_CTRL,
        MSR_CORE_PERF_GLOBAL_STATUS,
        MSR_IA32_PERFCTR0,
      ),
      (v, m) => new GuestRdmsr(v, m),
    ),
    // FIXED_CTR3 (SLOTS) at both CPLs, at one (OS 0x1, USR 0x2), or with its PMI (0xb).
    D.map2(
      D.nat(3),
      D.constantFrom(0x0n, 0x3n, 0x33n, 0x333n, 0x3333n, 0xbbbn, 0x1333n, 0x2333n, 0xb333n),
      (v, x) => new GuestWrmsr(v, MSR_CORE_PERF_FIXED_CTR_CTRL, x),
    ),
    D.map2(
      D.nat(3),
      D.constantFrom(0x1n, 0x7_0000_0001n, 0xf_0000_000fn, 0x1_000f_0000_0001n, 0x8_0000_0000n), // bit 48 with SLOTS: topdown
      (v, x) => new GuestWrmsr(v, MSR_CORE_PERF_GLOBAL_CTRL, x),
    ),
    D.map2(
      D.nat(3),
      D.constantFrom(0x0n, 0x1234_5678n, (1n << 64n) - 1n),
      (v, x) => new GuestWrmsr(v, MSR_PERF_METRICS, x),
    ),
  ]);
});

/** The scheduler and the VMM: migrations, preemptions, save/restore. */
const saveRestoreArb = D.fast<WorldCommand>(D.map2(D.nat(3), D.nat(3), (v, c) => new SaveRestore(v, c)));
const VMM: fc.Arbitrary<WorldCommand>[] = [
  D.fast<WorldCommand>(D.map2(D.nat(3), D.nat(3), (v, c) => new Migrate(v, c))),
  saveRestoreArb,
  D.fast<WorldCommand>(D.map2(D.nat(3), D.array(unitDrawn, 1, 2), (v, u) => new Preempt(v, u))),
];

// ---- guest driver routines ----

/** A perf event as a driver opens it: the architectural events, mostly small periods so that it overflows soon. */
const driverEventDrawn: D.Drawn<DriverEventSpec> = D.record(
  {
    event: D.constantFrom(0xc0n, 0xc0n, 0x3cn, 0xc4n, 0xc5n, 0x0300n),
    // perf counts in user mode, kernel mode or both (an event that excludes both counts nothing).
    rings: D.constantFrom(
      { usr: true, os: true },
      { usr: true, os: true },
      { usr: true, os: false },
      { usr: false, os: true },
    ),
    // Linux presets -period: 2 (its minimum) and a few events overflow within a unit or two.
    period: D.oneof<bigint>(
      { drawn: D.constantFrom(2n), weight: 3 },
      { drawn: D.bigInt(3n, 8n), weight: 4 },
      { drawn: D.bigInt(9n, 40n), weight: 2 },
      { drawn: D.constantFrom(1n), weight: 1 }, // perf clamps the preset to -2
      { drawn: D.constantFrom(0n), weight: 1 }, // counting: max_period, folded at each wrap
    ),
  },
  (r) => ({ event: r.event, usr: r.rings.usr, os: r.rings.os, period: r.period }),
);

const driverParamsDrawn: D.Drawn<DriverParams> = D.record(
  {
    kernel: D.constantFrom('linux' as const, 'linux-old' as const),
    ack: D.constantFrom('late' as const, 'early' as const, 'mid' as const),
    // NMI delivery as Linux programs it; a fixed vector as kvm-unit-tests does.
    lvtpc: D.oneof<bigint>({ drawn: D.constantFrom(0x400n), weight: 4 }, { drawn: D.constantFrom(0x20n), weight: 1 }),
  },
  (r) => ({ kernel: r.kernel, ack: r.ack, lvtpc: r.lvtpc }),
);

const driverLbrDrawn: D.Drawn<DriverLbrSpec> = D.record(
  { select: D.constantFrom(0x0n, 0x1n, 0x2n, 0xc4n, 0x1c4n), callStack: D.boolean() },
  (l) => ({ select: l.callStack ? l.select | LBR_CALL_STACK : l.select, callStack: l.callStack }),
);

/** perf_event_open of one to four events on some vCPU. */
const driverOpenArb: fc.Arbitrary<WorldCommand> = D.fast<WorldCommand>(
  D.map2(D.nat(3), D.array(driverEventDrawn, 1, 4), (x, e) => new DriverOpen(x, e)),
);

/** A pinned event a system-wide host monitor counts (or samples) on a GP counter: events no fixed counter takes. */
const pinnedGpAttrArb = fc
  .tuple(fc.constantFrom(0xc4n, 0xc5n, 0x4f2en, 0x412en), fc.boolean(), fc.boolean())
  .map(([config, sampling, excludeGuest]) =>
    attr({ config, sample_period: sampling ? 200n : 0n, pinned: true, exclude_guest: excludeGuest }),
  );

/**
 * A guest that counts (perf stat) on one vCPU: one to four counting events, mostly ones only a GP counter takes (a
 * second instructions event takes one too, once fixed counter 0 has the first).
 */
const guestStatArb: fc.Arbitrary<WorldCommand> = fc
  .tuple(
    fc.nat(3),
    fc.array(
      fc.tuple(fc.constantFrom(0xc4n, 0xc5n, 0xc0n), fc.constantFrom([true, true], [true, false], [false, true])),
      { minLength: 1, maxLength: 4 },
    ),
  )
  .map(
    ([v, evs]) =>
      new DriverOpen(
        v,
        evs.map(([event, [usr, os]]) => ({ event, usr, os, period: 0n })),
      ),
  );

/**
 * In a quarter of the contended programs, before the guest starts, a host monitor pins an event on every GP counter of
 * a pCPU, or on all but one (perf stat -a with pinned events, a pinned cgroup monitor), and a guest starts counting
 * with perf stat: KVM's pinned events for the guest's counters then find no counter there (reports/filed/0004). Opened
 * one by one among the other commands, that many pinned events on one pCPU came together in about one program in
 * 3000, and the guest traffic seldom left a counter counting where they were.
 */
const hostMonitorArb = memo((nGP: number) => hostMonitorOneIn(nGP, 4));

/** A host monitor (and a guest counting) in one program of `n`, none in the others. */
const hostMonitorOneIn = (nGP: number, n: number) =>
  fc.oneof(
    { arbitrary: fc.constant<WorldCommand[]>([]), weight: n - 1 },
    {
      arbitrary: fc
        .tuple(fc.nat(1), fc.array(pinnedGpAttrArb, { minLength: Math.max(nGP - 1, 0), maxLength: nGP }), guestStatArb)
        .map(([cpu, attrs, stat]): WorldCommand[] => [...attrs.map((a) => new HostOpen(cpu, a)), stat]),
      weight: 1,
    },
  );

/**
 * Driver programs under a host monitor, one in twenty: about a third of them end where the guest's PMI handler, having
 * lost a PMI, parts from bare metal's (host-contention's contract can judge no routine run on other observations); one
 * in eight took the share of driver programs that end at a declaration to 5.7-6.7 %, one in twenty 2.9-4.1 %.
 */
const driverMonitorArb = memo((nGP: number) => hostMonitorOneIn(nGP, 20));

const driverUnits = (max: number) => D.array(unitDrawn, 1, max);

/**
 * kvm-unit-tests' check_counter_overflow: a GP counter (or fixed counter 0) a few instructions before the wrap, INT set
 * or not, wrapped by work units, or by exactly as many emulated instructions as are left (one fewer, one more).
 */
const driverOverflowArb: fc.Arbitrary<WorldCommand> = D.fast<WorldCommand>(
  D.record(
    {
      vcpu: D.nat(3),
      counter: D.oneof<number>({ drawn: D.nat(7), weight: 3 }, { drawn: D.constantFrom(32), weight: 1 }),
      int: D.boolean(),
      // At least two: the test presets 1 - (the loop's count), so the wrap comes in the loop, never at the enabling write.
      left: D.oneof<bigint>({ drawn: D.bigInt(2n, 5n), weight: 4 }, { drawn: D.bigInt(6n, 64n), weight: 1 }),
      fep: D.constantFrom(-1, 0, 1, 0),
      units: D.oneof<WorkUnit[]>(D.constantFrom<WorkUnit[]>([]), D.array(unitDrawn, 1, 3)),
    },
    (r) => {
      // Either the units wrap it (each retires up to 11 instructions) or the emulated instructions alone do.
      const fep = r.units.length > 0 ? 0 : Math.max(0, Number(r.left) + r.fep);
      return new DriverCheckOverflow(r.vcpu, { counter: r.counter, int: r.int, left: r.left, fep }, r.units);
    },
  ),
);

/** The guest's perf at work, as weighted arbitraries: events opened, workloads, switches, NMIs, LBR users. */
export function driverCommands(): { arbitrary: fc.Arbitrary<WorldCommand>; weight: number }[] {
  return DRIVER_COMMANDS;
}

const DRIVER_COMMANDS: { arbitrary: fc.Arbitrary<WorldCommand>; weight: number }[] = (() => {
  const v = D.nat(3);
  return [
    { arbitrary: D.fast<WorldCommand>(D.map2(v, driverParamsDrawn, (x, p) => new DriverBoot(x, p))), weight: 1 },
    { arbitrary: driverOpenArb, weight: 3 },
    { arbitrary: D.fast<WorldCommand>(D.map2(v, driverUnits(8), (x, u) => new DriverRun(x, u))), weight: 5 },
    { arbitrary: D.fast<WorldCommand>(D.map2(v, driverUnits(3), (x, u) => new DriverSwitch(x, u))), weight: 1 },
    { arbitrary: D.fast<WorldCommand>(D.map(v, (x) => new DriverNmi(x))), weight: 1 },
    { arbitrary: D.fast<WorldCommand>(D.map2(v, D.nat(3), (x, k) => new DriverClose(x, k))), weight: 1 },
    { arbitrary: D.fast<WorldCommand>(D.map2(v, driverLbrDrawn, (x, l) => new DriverLbr(x, l))), weight: 1 },
    { arbitrary: driverOverflowArb, weight: 2 },
  ];
})();

/**
 * The guest of the driver profile: a guest the design reports (every version it offers), and more often one with every
 * counter it offers at its highest version, which the mediated vPMU passes through.
 */
function driverGuestArb(host: Profile, s: SupportedPmu): fc.Arbitrary<GuestConfig> {
  const version = s.leaf0a.eax & 0xff;
  const full = (g: GuestConfig): GuestConfig => {
    // Version and GP counters as reported (widths and event mask as generated), and the fixed counters as reported.
    const eax = ((g.cpuid.leaf0a.eax & ~0xffff) | (s.leaf0a.eax & 0xffff)) >>> 0;
    const edx = version > 1 ? s.leaf0a.edx & 0x1fff : 0;
    return { ...g, cpuid: { ...g.cpuid, leaf0a: { ...g.cpuid.leaf0a, eax, edx } } };
  };
  // Every counter, narrower than KVM's: KVM_SET_CPUID2 takes the smaller widths (intel_pmu_refresh's min_t), as a VMM
  // that levels a pool of hosts may ask.
  const narrow = ([g, gpWidth, fixedWidth]: [GuestConfig, number, number]): GuestConfig => {
    const f = full(g);
    const x = fields(f.cpuid.leaf0a.eax, f.cpuid.leaf0a.edx);
    const leaf0a = {
      ...f.cpuid.leaf0a,
      eax: leaf0aEax(x.version, x.nGP, Math.min(gpWidth, x.gpWidth), x.evLen),
      edx: x.version > 1 ? leaf0aEdx(x.nFixed, Math.min(fixedWidth, x.fixedWidth)) : 0,
    };
    return { ...f, cpuid: { ...f.cpuid, leaf0a } };
  };
  const widths = fc.constantFrom(32, 40, 47, 48);
  const g = supportedGuestArb(host, s);
  // Narrow guests rarely: on the mediated vPMU most of their programs end at counter-width-passthrough.
  return fc.oneof(
    { arbitrary: g, weight: 12 },
    { arbitrary: g.map(full), weight: 15 },
    { arbitrary: fc.tuple(g, widths, widths).map(narrow), weight: 1 },
  );
}

/** A guest with the LBRs the design offers: Arch LBR where it offers it, else its legacy format the host's model has. */
export const guestWithLbr =
  (host: Profile, s: SupportedPmu) =>
  (x: GuestConfig): GuestConfig => {
    if (s.archLbr !== undefined)
      return {
        ...x,
        cpuid: { ...x.cpuid, pdcm: true, archLbr: true, leaf1c: s.archLbr },
        perfCapabilities: (x.perfCapabilities & ~PERF_CAP_LBR_FMT) | BigInt(LBR_FMT_ARCH),
      };
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
      beyondSupportedGuestArb(host, supported).map(guestWithLbr(host, supported)),
    );
  if (gen === 'driver') return driverGuestArb(host, supported);
  const g = supportedGuestArb(host, supported);
  if (gen === 'lbr-heavy') return g.map(guestWithLbr(host, supported));
  if (gen === 'topdown') return g.filter((x) => (x.cpuid.leaf0a.eax & 0xff) >= 2);
  return g;
}

/** The driver's routines at twice their weights, beside which the driver profile's rarer steps take weight 1. */
const DRIVER_COMMANDS_TWICE = DRIVER_COMMANDS.map((c) => ({ ...c, weight: 2 * c.weight }));

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
      return mix(w(quiet, 2), w(CONTENDED, 2), w([saveRestoreArb], 1), w([savedAtExitCommands(focus, shape)], 1));
    case 'lbr-heavy':
      return mix(w(quiet, 1), w(hostLbrCommands(host), 3));
    case 'topdown':
      return mix(w(quiet, 1), w(topdownCommands(shape.nGP), 3));
    case 'save-restore-heavy':
      return mix(w(quiet, 2), w(VMM, 2), w([savedAtExitCommands(focus, shape)], 2));
    case 'beyond-supported':
      return mix(w(quiet, 2), w(hostLbrCommands(host), 1), w(topdownCommands(shape.nGP), 1));
    case 'driver':
      // Mostly the driver; now and then raw guest traffic, a migration or a save/restore.
      // A save at an instruction's exit half as often as the rest of the VMM's steps: most programs it meets end there.
      return mix(
        DRIVER_COMMANDS_TWICE,
        w([fc.oneof(...quiet)], 2),
        w([fc.oneof(...VMM.slice(0, 2))], 2),
        w([savedAtExitCommands(focus, shape)], 1),
      );
  }
}

/**
 * Every command arbitrary the profiles mix beside the quiet ones, on a host and for a guest shape: draw.test.ts holds
 * each one's direct draw to its fast-check arbitrary.
 */
export function mixedCommandsOf(
  host: Profile,
  focus: readonly number[],
  shape: GuestShape,
): fc.Arbitrary<WorldCommand>[] {
  return [
    ...CONTENDED,
    ...VMM,
    savedAtExitCommands(focus, shape),
    ...hostLbrCommands(host),
    ...topdownCommands(shape.nGP),
    ...DRIVER_COMMANDS.map((c) => c.arbitrary),
  ];
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
      focusArb.chain((focus) => {
        const cmds = fc.commands(profileCommands(host, gen, focus, shapeOf(guest)), {
          size: '+1',
          // A driver command runs tens of instructions: shorter programs reach as far.
          ...(gen === 'driver' ? { maxCommands: 24 } : {}),
        });
        if (gen === 'contended')
          return fc
            .tuple(hostMonitorArb(host.nGP), cmds)
            .map(([pre, rest]): Iterable<WorldCommand> => (pre.length === 0 ? rest : new Opened(pre, rest)));
        if (gen !== 'driver') return cmds;
        // A guest that runs perf has events open before its work: the driver profile's programs start with an open. In
        // one in twenty of them a host monitor holds the GP counters of a pCPU first, as in the contended programs: the
        // guest's PMI handler then runs on counts KVM's events lose.
        return fc
          .tuple(driverMonitorArb(host.nGP), driverOpenArb, cmds)
          .map(([pre, open, rest]): Iterable<WorldCommand> => new Opened([...pre, open], rest));
      }),
    ),
  );
}

/**
 * First commands, then fast-check's command iterable: iterates as both, prints as fast-check does (with the
 * replay path), and shows its wrappers under `commands` as fast-check's own iterable does (properties/checks.ts).
 */
class Opened implements Iterable<WorldCommand> {
  constructor(
    readonly first: readonly WorldCommand[],
    readonly rest: Iterable<WorldCommand> & { toString(): string },
  ) {}
  *[Symbol.iterator](): Iterator<WorldCommand> {
    yield* this.first;
    yield* this.rest;
  }
  /**
   * A copy whose commands have not run, as fast-check's own iterable clones. Without it fc.map defines a clone accessor
   * on each Opened, and contended and driver programs then outlived minor GCs (generating them took 1.7× as long).
   */
  [fc.cloneMethod](): Opened {
    return new Opened(this.first, fc.cloneIfNeeded(this.rest));
  }
  get commands(): readonly unknown[] {
    const inner: unknown = (this.rest as { commands?: unknown }).commands;
    return [
      ...this.first.map((cmd) => ({ cmd, hasRan: true })),
      ...(Array.isArray(inner) ? (inner as unknown[]) : [...this.rest]),
    ];
  }
  toString(): string {
    const first = this.first.map(String).join(',');
    const rest = this.rest.toString();
    return rest.startsWith(' ') || rest === '' ? `${first}${rest}` : `${first},${rest}`;
  }
}
