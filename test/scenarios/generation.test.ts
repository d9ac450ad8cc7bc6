import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ICELAKE, SKYLAKE } from '../../model/hw/profiles.js';
import { allCommands } from '../../properties/checks.js';
import {
  DriverOpen,
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
} from '../../scenarios/commands.js';
import { GENERATION_PROFILES, type GenerationProfile, profileProgramArb } from '../../scenarios/generation.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import { MSR_LBR_SELECT, MSR_LBR_TOS, MSR_LBR_NHM_FROM, MSR_LBR_INFO_0 } from '../../model/hw/msr/lbr_legacy.js';
import {
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_P6_EVNTSEL0,
} from '../../model/hw/msr/counters.js';
import { MSR_PERF_METRICS } from '../../model/hw/msr/topdown.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../model/hw/msr/global.js';
import { probeSupportedPmu, supportedGuestArb, unsupportedBy } from '../../scenarios/supported.js';
import { emulatedWith, mediatedWith } from '../../designs/registry.js';
import { MEDIATED_OPS } from '../../model/kvm/mediated/ops.js';
import { leaf0aEax } from '../../model/hw/profile.js';
import { EMULATED_OPS } from '../../model/kvm/emulated/ops.js';

const SUPPORTED = probeSupportedPmu(SKYLAKE, emulatedWith(EMULATED_OPS));

const LBR_MSRS = (m: number) =>
  m === MSR_IA32_DEBUGCTLMSR ||
  m === MSR_LBR_SELECT ||
  m === MSR_LBR_TOS ||
  (m >= MSR_LBR_NHM_FROM && m < 0x700) ||
  (m >= MSR_LBR_INFO_0 && m < MSR_LBR_INFO_0 + 32);
const TOPDOWN_MSRS = (m: number) =>
  (m >= MSR_CORE_PERF_FIXED_CTR0 && m <= MSR_CORE_PERF_FIXED_CTR0 + 3) ||
  m === MSR_PERF_METRICS ||
  m === MSR_CORE_PERF_FIXED_CTR_CTRL ||
  m === MSR_CORE_PERF_GLOBAL_CTRL;

/** What a command is about, for the distribution. */
function classOf(c: WorldCommand): string {
  if (
    c instanceof HostOpen ||
    c instanceof HostOpenThread ||
    c instanceof HostWork ||
    c instanceof HostEvent ||
    c instanceof HostNmi
  )
    return 'host';
  if (c instanceof Preempt || c instanceof Migrate || c instanceof SaveRestore) return 'scheduler/vmm';
  if (c instanceof GuestXsaves || c instanceof GuestXrstors) return 'lbr';
  if ((c instanceof GuestRdmsr || c instanceof GuestWrmsr) && LBR_MSRS(c.msr)) return 'lbr';
  if (c instanceof GuestWrmsr && c.msr >= MSR_P6_EVNTSEL0 && c.msr < 0x18e && (c.value & 0xffffn) === 0x1a4n)
    return 'topdown';
  if ((c instanceof GuestRdmsr || c instanceof GuestWrmsr) && TOPDOWN_MSRS(c.msr)) return 'topdown';
  if (c instanceof GuestRun && c.units.every((u) => (u.branches?.length ?? 0) > 0)) return 'branchy run';
  return 'guest';
}

const distributions = new Map<GenerationProfile, ReturnType<typeof sampleDistribution>>();
/** Shares of each class over 300 programs of a profile, with a fixed seed (sampled once per profile). */
function distribution(gen: GenerationProfile) {
  let d = distributions.get(gen);
  if (d === undefined) distributions.set(gen, (d = sampleDistribution(gen)));
  return d;
}

function sampleDistribution(gen: GenerationProfile) {
  const programs = fc.sample(profileProgramArb(SKYLAKE, gen, SUPPORTED), { numRuns: 300, seed: 42 });
  const counts = new Map<string, number>();
  let total = 0;
  for (const [, cmds] of programs)
    for (const c of allCommands(cmds)) {
      counts.set(classOf(c), (counts.get(classOf(c)) ?? 0) + 1);
      total++;
    }
  const share = (k: string) => (counts.get(k) ?? 0) / total;
  return { programs, share, total };
}

describe('generation profiles reach the programs their properties need', () => {
  it('every profile makes programs of some length', () => {
    for (const gen of GENERATION_PROFILES) expect(distribution(gen).total / 300, gen).toBeGreaterThan(3);
  });

  it('quiet: no host users, no preemption, no save/restore', () => {
    const d = distribution('quiet');
    expect(d.share('host')).toBe(0);
    // Migration is the only scheduler event on a quiet host.
    expect(d.share('scheduler/vmm')).toBeLessThan(0.25);
  });

  it('contended: a quarter or more of the commands are host activity', () => {
    expect(distribution('contended').share('host')).toBeGreaterThan(0.25);
  });

  it.each([
    ['contended', 0.15, 0.35],
    ['driver', 0.02, 0.1],
  ] as const)(
    "%s: a share of the programs (%s to %s) start with pinned host events on all or all but one of a pCPU's GP counters, then a guest counting",
    (gen, low, high) => {
      const monitored = distribution(gen).programs.filter(([, cmds]) => {
        const all = allCommands(cmds);
        const k = all.findIndex((c) => !(c instanceof HostOpen));
        const opens = all.slice(0, k) as HostOpen[];
        return (
          k >= SKYLAKE.nGP - 1 &&
          opens.every((o) => o.attr.pinned && o.cpu === opens[0]!.cpu) &&
          all[k] instanceof DriverOpen &&
          all[k].events.every((e) => e.period === 0n)
        );
      }).length;
      expect(monitored / 300).toBeGreaterThan(low);
      expect(monitored / 300).toBeLessThan(high);
    },
  );

  it('lbr-heavy: LBR guests, and most commands touch the LBRs or take branches', () => {
    const d = distribution('lbr-heavy');
    expect(d.programs.every(([g]) => (g.perfCapabilities & 0x3fn) === (SKYLAKE.perfCapabilities & 0x3fn))).toBe(true);
    expect(d.share('lbr') + d.share('branchy run')).toBeGreaterThan(0.4);
  });

  it('topdown: v2+ guests, and the fixed counters, their controls and PERF_METRICS dominate', () => {
    const d = distribution('topdown');
    expect(d.programs.every(([g]) => (g.cpuid.leaf0a.eax & 0xff) >= 2)).toBe(true);
    expect(d.share('topdown')).toBeGreaterThan(0.4);
  });

  it('save-restore-heavy: a fifth or more of the commands migrate, preempt or save/restore', () => {
    expect(distribution('save-restore-heavy').share('scheduler/vmm')).toBeGreaterThan(0.2);
  });

  it('every profile but beyond-supported makes only guests a VMM can configure from what KVM reports', () => {
    for (const gen of GENERATION_PROFILES.filter((g) => g !== 'beyond-supported'))
      for (const [g] of distribution(gen).programs) expect(unsupportedBy(SUPPORTED, g), gen).toEqual([]);
  });

  it('beyond-supported: every guest goes beyond it (a PMU version above 2), with LBR and topdown traffic', () => {
    const d = distribution('beyond-supported');
    for (const [g] of d.programs) expect(unsupportedBy(SUPPORTED, g)).not.toEqual([]);
    expect(d.programs.every(([g]) => (g.cpuid.leaf0a.eax & 0xff) > 2)).toBe(true);
    expect(d.share('lbr')).toBeGreaterThan(0.05);
    expect(d.share('topdown')).toBeGreaterThan(0.05);
  });
});

describe('what a design reports on a host (KVM_GET_SUPPORTED_CPUID leaf 0xA and the feature MSR)', () => {
  it('emulated on Skylake: version 2, 4 GP and 3 fixed counters at 48 bits, FW_WRITES and LBR format 5', () => {
    expect(SUPPORTED.leaf0a.eax & 0xff).toBe(2);
    expect((SUPPORTED.leaf0a.eax >>> 8) & 0xff).toBe(4);
    expect(SUPPORTED.leaf0a.edx & 0x1f).toBe(3);
    expect(SUPPORTED.leaf0a.ecx).toBe(0);
    expect(SUPPORTED.perfCapabilities).toBe(0x2005n);
    expect(SUPPORTED.lbrModel).toEqual({ family: SKYLAKE.family, model: SKYLAKE.model });
  });

  it('mediated on Ice Lake: the same version cap, no LBR format; a guest with one is beyond it', () => {
    const s = probeSupportedPmu(ICELAKE, mediatedWith(MEDIATED_OPS));
    expect(s.leaf0a.eax & 0xff).toBe(2);
    expect(s.perfCapabilities & 0x3fn).toBe(0n);
    const lbr = fc.sample(supportedGuestArb(ICELAKE, s), { numRuns: 100, seed: 1 });
    expect(lbr.every((g) => (g.perfCapabilities & 0x3fn) === 0n)).toBe(true);
    const g = lbr[0]!;
    expect(unsupportedBy(s, { ...g, cpuid: { ...g.cpuid, pdcm: true }, perfCapabilities: 0x2005n })).toHaveLength(1);
  });

  it('an LBR format on another family/model, more counters, or events KVM marks unavailable are beyond it', () => {
    const [g] = fc.sample(supportedGuestArb(SKYLAKE, SUPPORTED), { numRuns: 1, seed: 3 });
    const lbr = { ...g!, cpuid: { ...g!.cpuid, pdcm: true, model: 0x8e }, perfCapabilities: 0x2005n };
    expect(unsupportedBy(SUPPORTED, lbr).join()).toMatch(/LBR_FMT 5 on family 6 model 0x8e/);
    const wide = { ...g!, cpuid: { ...g!.cpuid, leaf0a: { ...g!.cpuid.leaf0a, eax: leaf0aEax(2, 8, 48, 7) } } };
    expect(unsupportedBy(SUPPORTED, wide).join()).toMatch(/GP counters 8 \(KVM_GET_SUPPORTED_CPUID: 4\)/);
  });
});

describe("programs that open with commands of their own (a host monitor, the driver's first open)", () => {
  type Wrapper = { hasRan: boolean };
  /** fast-check's wrappers of the commands after the opening ones (each knows whether it ran). */
  const inner = (p: Iterable<WorldCommand>): Wrapper[] =>
    (p as unknown as { rest: { commands: Wrapper[] } }).rest.commands;
  /** As fast-check prints a counterexample: the commands that ran, then the replay path. */
  const printed = (p: Iterable<WorldCommand>): string => (p as { toString(): string }).toString();

  it.each(['contended', 'driver'] as const)(
    '%s: a clone iterates and prints as the original, with none of its commands run',
    (gen) => {
      const opened = fc
        .sample(profileProgramArb(SKYLAKE, gen, SUPPORTED), { numRuns: 200, seed: 7 })
        .map(([, cmds]) => cmds)
        .filter((cmds) => 'first' in cmds);
      expect(opened.length).toBeGreaterThan(10);
      for (const p of opened) {
        expect(printed(fc.cloneIfNeeded(p))).toBe(printed(p));
        for (const w of inner(p)) w.hasRan = true;
        const c = fc.cloneIfNeeded(p);
        expect(c).not.toBe(p);
        expect(allCommands(c)).toEqual(allCommands(p));
        expect(inner(c).some((w) => w.hasRan)).toBe(false);
        expect(inner(c)).not.toBe(inner(p));
      }
    },
  );
});
