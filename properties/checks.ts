/**
 * Every check the main job, `npm run bugs` and the tests run: a property on a host for one design.
 * One place builds them so a ported bug is searched for exactly as the main job would search.
 */

import type fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import type { WorldCommand } from '../scenarios/commands.js';
import { GENERATION_PROFILES, type GenerationProfile, VMM_STEPPING_PROFILES } from '../scenarios/generation.js';
import { conformanceProperty } from './conformance.js';
import { checkDesign, type Design } from './design.js';
import type { KnownDivergence } from './expectations/types.js';
import { hostUndisturbedProperty } from './host_undisturbed.js';
import { faithful, HW_LAWS } from './hw_laws.js';
import { invisibilityProperty } from './invisible.js';
import { hostSamplesProperty } from './host_samples.js';
import { lbrFreezeProperty } from './lbr_freeze.js';
import { vmmAbiProperty } from './vmm_abi.js';
import { vmmConformanceProperty } from './vmm_conformance.js';
import { noninterferenceProperty } from './noninterference.js';

export type CheckId =
  | 'conformance'
  | 'no-leak'
  | 'host-undisturbed'
  | 'invisible'
  | 'lbr-freeze'
  | 'vmm-conformance'
  | 'vmm-abi'
  | 'host-samples';

export interface Check {
  readonly id: string;
  /** A built-in host profile name, or 'random' for the reference model's laws. */
  readonly profile: string;
  readonly rule: string;
  /** The generation profile of its programs (scenarios/generation.ts), where it has one. */
  readonly gen?: GenerationProfile;
  /**
   * Builds the property; `known` collects declared divergences met, `ended` the programs that ended at one (a
   * declaration without a weaker contract to go on under).
   */
  readonly property: (known: Map<string, number>, ended?: Map<string, number>) => fc.IRawProperty<unknown, false>;
  /** For a design check: the design and host (what a report needs to replay it). */
  readonly design?: Design;
  readonly host?: Profile;
  /** Its programs can end at a declared divergence, and `ended` counts them (a share npm start reports). */
  readonly countsEndings?: boolean;
  /** The program of a counterexample, as the commands that ran (design checks only). */
  readonly programOf?: (counterexample: unknown) => readonly WorldCommand[];
}

interface Wrapped {
  readonly cmd: WorldCommand;
  readonly hasRan: boolean;
}

/** Every command of an fc.commands iterable (unwrapped), or the array itself. */
export function allCommands(cmds: unknown): readonly WorldCommand[] {
  return [...(cmds as Iterable<unknown>)].map((x) =>
    typeof x === 'object' && x !== null && 'cmd' in x && 'hasRan' in x ? (x as Wrapped).cmd : (x as WorldCommand),
  );
}

/** The commands of an fc.commands iterable that ran, or the array itself. */
export function ranCommands(cmds: unknown): readonly WorldCommand[] {
  // fast-check's CommandsIterable holds wrappers that remember whether the command ran.
  const commands: unknown = (cmds as { commands?: unknown }).commands;
  if (Array.isArray(commands)) return (commands as readonly Wrapped[]).filter((w) => w.hasRan).map((w) => w.cmd);
  return [...(cmds as Iterable<WorldCommand>)];
}

const first = (ce: unknown) => (ce as readonly unknown[])[0];
const designName = (d: Design) => (d.id === 'emulated' ? 'emulated vPMU' : d.id);

/**
 * What conformance excuses on a profile: programs that save/restore or reschedule a vCPU also meet what the design
 * loses there on purpose.
 */
export function conformanceExpectations(design: Design, gen: string | undefined): readonly KnownDivergence[] {
  if (!VMM_STEPPING_PROFILES.some((g) => g === gen)) return design.expectations;
  // Each names the VMM step it needs (a save/restore, a reschedule), so none excuses anything before one.
  return [...design.expectations, ...design.invisibility];
}

/** The checks of one design on one host. */
export function designChecks(design: Design, profile: string, host: Profile): Check[] {
  checkDesign(design);
  const base = { profile, design, host };
  if ((design.unavailableOn?.(host) ?? null) !== null) return [];
  // Every check generates within what the design reports on this host (beyond-supported aside).
  const runBase = { host, design: design.factory, hostKernel: design.hostKernel, supported: design.supported(host) };
  const checks: Check[] = [
    ...GENERATION_PROFILES.map((gen): Check => ({
      ...base,
      id: 'conformance',
      gen,
      countsEndings: true,
      rule: `design.md property 1 (${designName(design)}, ${gen} programs)`,
      property: (known, ended) =>
        conformanceProperty(
          { ...runBase, expectations: conformanceExpectations(design, gen), known, ...(ended ? { ended } : {}) },
          gen,
        ),
      programOf: (ce) => ranCommands((first(ce) as readonly unknown[])[1]),
    })),
    {
      ...base,
      id: 'no-leak',
      rule: 'design.md property 2 (host-private values never reach the guest)',
      property: (known) => noninterferenceProperty({ ...runBase, leaks: design.leaks ?? [], known }),
      programOf: (ce) =>
        ((first(ce) as readonly unknown[])[1] as readonly (readonly WorldCommand[])[]).map((p) => p[1]!),
    },
    {
      ...base,
      id: 'host-undisturbed',
      rule: "design.md property 2 (host events count, and host perf's Arch LBRs hold, as on a host without the guest)",
      property: (known) => hostUndisturbedProperty({ ...runBase, disturbances: design.disturbances ?? [], known }),
      programOf: (ce) => (first(ce) as readonly unknown[])[1] as readonly WorldCommand[],
    },
    {
      ...base,
      id: 'invisible',
      rule: 'design.md property 4 (migration and save/restore are invisible)',
      property: (known) => invisibilityProperty({ ...runBase, expectations: design.invisibility, known }),
      programOf: (ce) => {
        const [[, cmds], at, inserted] = ce as [[unknown, readonly WorldCommand[]], number, WorldCommand];
        const k = Math.min(at, cmds.length);
        return [...cmds.slice(0, k), inserted, ...cmds.slice(k)];
      },
    },
  ];
  if (lbrFreezeApplies(design, host))
    for (const beyond of [false, true])
      checks.push({
        ...base,
        id: 'lbr-freeze',
        ...(beyond ? { gen: 'beyond-supported' as const } : {}),
        countsEndings: true,
        rule: `design.md property 3 (guest LBRs freeze on PMI as its PMU version says${beyond ? '; PMU versions beyond what KVM reports' : ''})`,
        property: (known, ended) =>
          lbrFreezeProperty(
            { ...runBase, expectations: design.expectations, known, ...(ended ? { ended } : {}) },
            beyond ? 'beyond-supported' : 'supported',
          ),
        programOf: (ce) => (first(ce) as readonly unknown[])[1] as readonly WorldCommand[],
      });
  // The VMM in the program: setup ioctls and event filter, the save ABI, interrupt exits.
  const flat = (ce: unknown) => {
    const [, cmds] = first(ce) as [unknown, readonly unknown[]];
    // [setup, body], each of commands and of a VMM's saves (arrays of commands).
    return cmds.flat(2) as readonly WorldCommand[];
  };
  checks.push(
    {
      ...base,
      id: 'vmm-conformance',
      countsEndings: true,
      rule: `design.md property 1 with a VMM (${designName(design)}: KVM_SET_MSRS, KVM_SET_CPUID2, KVM_SET_PMU_EVENT_FILTER before the guest runs)`,
      property: (known, ended) =>
        vmmConformanceProperty({ ...runBase, expectations: design.expectations, known, ...(ended ? { ended } : {}) }),
      programOf: flat,
    },
    {
      ...base,
      id: 'vmm-abi',
      rule: 'kvm-vpmu.md §2.15/§2.18 (KVM_GET_MSR_INDEX_LIST, KVM_GET/SET_MSRS and KVM_SET_CPUID2 as a VMM relies on them)',
      property: (known) => vmmAbiProperty({ ...runBase, expectations: design.expectations, known }),
      programOf: flat,
    },
    {
      ...base,
      id: 'host-samples',
      rule: 'design.md property 2 (host samples are attributed as on a host without the guest)',
      property: () => hostSamplesProperty(runBase),
      programOf: flat,
    },
  );
  return checks;
}

/** A check with nothing to check for a design on a host, and why (the main job shows it as an n/a row). */
export interface NotApplicable {
  /** The check's id, or '*' when the design cannot run on the host at all. */
  readonly id: string;
  readonly profile: string;
  readonly design: Design;
  readonly reason: string;
}

/** The checks `designChecks` leaves out for a design on a host, each with its reason. */
export function notApplicable(design: Design, profile: string, host: Profile): NotApplicable[] {
  const base = { profile, design };
  const why = design.unavailableOn?.(host) ?? null;
  if (why !== null) return [{ ...base, id: '*', reason: `design unavailable on this host: ${why}` }];
  if (design.guestLbr === false) return [{ ...base, id: 'lbr-freeze', reason: 'no guest LBRs in this design' }];
  if (!lbrFreezeApplies(design, host))
    return [{ ...base, id: 'lbr-freeze', reason: 'Arch LBR host: no legacy LBR freeze to check' }];
  return [];
}

/** Guest LBRs to freeze: legacy ones on a legacy host, Arch LBR where the design offers it on an Arch LBR host. */
function lbrFreezeApplies(design: Design, host: Profile): boolean {
  if (design.guestLbr === false) return false;
  return host.legacyLbr !== undefined || (host.archLbr !== undefined && design.supported(host).archLbr !== undefined);
}

/** What `checksFor` leaves out for `design`, host by host. */
export function notApplicableFor(design: Design): NotApplicable[] {
  return Object.entries(BUILTIN_PROFILES).flatMap(([name, host]) => notApplicable(design, name, host));
}

/** Every check: the reference model's laws, then each property of `design` on each built-in host. */
export function checksFor(design: Design): Check[] {
  return [
    ...HW_LAWS.map((l): Check => ({ id: l.id, profile: 'random', rule: l.rule, property: () => l.property(faithful) })),
    ...Object.entries(BUILTIN_PROFILES).flatMap(([name, host]) => designChecks(design, name, host)),
  ];
}
