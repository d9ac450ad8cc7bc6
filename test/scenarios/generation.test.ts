import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { allCommands } from '../../properties/checks.js';
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

/** Shares of each class over 300 programs of a profile, with a fixed seed. */
function distribution(gen: GenerationProfile) {
  const programs = fc.sample(profileProgramArb(SKYLAKE, gen), { numRuns: 300, seed: 42 });
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
});
