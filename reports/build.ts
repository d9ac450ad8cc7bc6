/**
 * From a failed fc.check of a property to a report: take fast-check's shrunk counterexample
 * (guest configuration and commands; for no-leak the command pairs, for invisible the insertion),
 * keep the commands that ran, replay the property's comparison, delete what is not needed for the
 * same divergence, and describe the result in domain words (design.md "Finding bugs is the
 * product"; style.md §6).
 */

import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import type { Design } from '../properties/design.js';
import { HostDisturbed, HostLbrDisturbed } from '../properties/host_undisturbed.js';
import { Divergence, type WorldCommand } from '../scenarios/commands.js';
import { commandToJson, guestToJson, programToJson, reduceIndices } from '../scenarios/serialize.js';
import type { GuestConfig } from '../scenarios/world.js';
import { REPORT_FORMAT, type ReportFile, type SerializedObservation } from './file.js';
import { postShrinkCase } from './minimize.js';
import {
  type Case,
  fails,
  isReportProperty,
  type PropertyId,
  type Replay,
  type ReplayTarget,
  type ReportObservation,
  replay,
} from './replay.js';
import { CONFORMANCE_CPUS } from '../properties/conformance.js';
import type { GenerationProfile } from '../scenarios/generation.js';
import { caseRule, caseTitle, describeReport, KVM_SUBJECT } from './rules.js';
import { unsupportedBy } from '../scenarios/supported.js';
import { showOutcome } from '../scenarios/observation.js';
import { caseSignature, reportId } from './signature.js';
import { versions } from './versions.js';

/** A failure that cannot be turned into a report (not a divergence, not reproducible). */
export class ReportError extends Error {
  override readonly name = 'ReportError';
}

export interface FailedCheck<Ts = unknown> {
  readonly details: fc.RunDetails<Ts>;
  /** The check's id (checks.ts) and rule. */
  readonly property: { readonly id: string; readonly rule: string };
  /** A conformance check's generation profile (Check.gen): it decides which divergences are declared. */
  readonly gen?: GenerationProfile | undefined;
  readonly design: Design;
  readonly hostName: string;
  readonly host: Profile;
  /** The date of the run (the CLI's clock; nothing under model reads it). */
  readonly found: string;
  /** Where reports are written, relative to the repository: the replay command names it. */
  readonly outDir: string;
}

export interface Report {
  readonly file: ReportFile;
  readonly design: Design;
  readonly guest: GuestConfig;
  /** The minimal case: what the property compares. */
  readonly kase: Case;
  /** The failing program of the minimal case (kase.program). */
  readonly program: readonly WorldCommand[];
  /** The replay of the minimal case: the per-step trace. */
  readonly replay: Replay & { readonly divergence: ReportObservation };
  /** fast-check's own report, verbatim. */
  readonly fastCheckMessage: string;
}

interface Wrapped {
  readonly cmd: WorldCommand;
  readonly hasRan: boolean;
}

/** fast-check wraps each command to record whether it ran (CommandWrapper). */
function isWrapped(x: unknown): x is Wrapped {
  return typeof x === 'object' && x !== null && 'cmd' in x && 'hasRan' in x;
}

const REPLAY_PATH = /\/\*replayPath=['"](.*)['"]\*\//;

const isGuest = (x: unknown): x is GuestConfig =>
  typeof x === 'object' && x !== null && 'cpuid' in x && 'perfCapabilities' in x;
/** fast-check's command list (CommandsIterable) is iterable but not an array. */
const isCommandList = (x: unknown): x is Iterable<unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x) && Symbol.iterator in x;

/** The commands that ran (in order) and the replayPath of an fc.commands list; a plain array as it is. */
function commandsOf(cmds: unknown): { program: WorldCommand[]; replayPath: string | null } {
  if (Array.isArray(cmds)) return { program: [...(cmds as WorldCommand[])], replayPath: null };
  if (!isCommandList(cmds)) throw new ReportError('the counterexample holds no command list');
  const all = [...cmds].map((x) => (isWrapped(x) ? x : { cmd: x as WorldCommand, hasRan: true }));
  const ran = all.filter((w) => w.hasRan).map((w) => w.cmd);
  return {
    program: ran.length > 0 ? ran : all.map((w) => w.cmd),
    replayPath: REPLAY_PATH.exec((cmds as { toString(): string }).toString())?.[1] ?? null,
  };
}

const isCommand = (x: unknown): x is WorldCommand => typeof x === 'object' && x !== null && 'run' in x && 'check' in x;

/**
 * The guest and the case of a property's counterexample, in the shapes checks.ts builds:
 * [[guest, commands]] (conformance: an fc.commands list; lbr-freeze, host-undisturbed: arrays),
 * [[guest, [commandA, commandB][]]] (no-leak), [[guest, commands], at, inserted] (invisible).
 */
export function caseOf(
  property: PropertyId,
  counterexample: unknown,
): { guest: GuestConfig; kase: Case; replayPath: string | null } {
  const args = counterexample as readonly unknown[];
  const pair: unknown = Array.isArray(args) ? args[0] : undefined;
  const [guest, cmds] = Array.isArray(pair) ? (pair as readonly unknown[]) : [];
  if (!isGuest(guest)) throw new ReportError(`the ${property} counterexample holds no guest configuration`);
  switch (property) {
    case 'no-leak': {
      const pairs = cmds as readonly unknown[];
      if (
        !Array.isArray(pairs) ||
        !pairs.every((p) => Array.isArray(p) && p.length === 2 && isCommand(p[0]) && isCommand(p[1]))
      )
        throw new ReportError('the no-leak counterexample holds no list of command pairs');
      const ps = pairs as readonly (readonly [WorldCommand, WorldCommand])[];
      // Program B (the host's values changed) is the one that fails; A is its baseline.
      return {
        guest,
        kase: { property, program: ps.map((p) => p[1]), baseline: ps.map((p) => p[0]) },
        replayPath: null,
      };
    }
    case 'invisible': {
      const [, at, inserted] = args;
      if (typeof at !== 'number' || !isCommand(inserted))
        throw new ReportError('the invisible counterexample holds no insertion point and command');
      const { program, replayPath } = commandsOf(cmds);
      return {
        guest,
        kase: { property, program, insertion: { at: Math.min(at, program.length), command: inserted } },
        replayPath,
      };
    }
    default: {
      const { program, replayPath } = commandsOf(cmds);
      return { guest, kase: { property, program }, replayPath };
    }
  }
}
const hex = (v: number | bigint | null) => (v === null ? null : `0x${v.toString(16)}`);

export function observationToJson(o: ReportObservation): SerializedObservation {
  const base = {
    step: o.step,
    vcpu: o.vcpu,
    kind: o.kind,
    target: hex(o.target),
    value: hex(o.value),
    what: describeReport(o),
    sut: showOutcome(o.sut),
    oracle: showOutcome(o.oracle),
  };
  return o.event === undefined ? base : { ...base, event: { ...o.event } };
}

/** Commands of the case as fast-check counted them: pairs for no-leak, the plain program for invisible. */
const size = (c: Case) => c.program.length;

export function replayCommand(outDir: string, id: string): string {
  return `npm run replay -- ${outDir.replace(/\/+$/, '')}/${id}/report.json`;
}

/**
 * The case with every vCPU and pCPU index reduced to one the world has (a report's world has one
 * guest and CONFORMANCE_CPUS pCPUs; generators draw past them and the world reduces them), so the
 * report names only vCPUs and pCPUs that exist. It runs the same; the replay below checks it.
 */
function inWorld(c: Case): Case {
  const l = { vcpus: 1, cpus: CONFORMANCE_CPUS };
  const program = reduceIndices(c.program, l);
  if (c.property === 'no-leak') return { ...c, program, baseline: reduceIndices(c.baseline, l) };
  if (c.property === 'invisible')
    return { ...c, program, insertion: { ...c.insertion, command: reduceIndices([c.insertion.command], l)[0]! } };
  return { ...c, program };
}

/** A host perf finding's subject prefix; a KVM finding's is KVM_SUBJECT. */
export const PERF_SUBJECT = 'perf/x86/intel:';
/** The prefix of a finding in a configuration KVM does not report as supported: never filed as a bug. */
export const UNSUPPORTED_SUBJECT = 'unsupported configuration:';

/** The subject prefix: the layer at fault, unless the guest is one KVM_GET_SUPPORTED_CPUID never offered. */
export function subjectPrefix(design: Design, unsupported: readonly string[]): string {
  if (unsupported.length > 0) return UNSUPPORTED_SUBJECT;
  return design.layer === 'perf' ? PERF_SUBJECT : KVM_SUBJECT;
}

/** A title that rests on unverified decisions says so: `… [rests on D37, K4]`. */
export function withRests(title: string, rests: readonly string[]): string {
  return rests.length === 0 ? title : `${title} [rests on ${rests.join(', ')}]`;
}

export function buildReport<Ts>(f: FailedCheck<Ts>): Report {
  const d = f.details;
  if (!d.failed) throw new ReportError('the check did not fail');
  if (f.design.base === undefined)
    throw new ReportError(
      `design '${f.design.id}' names no upstream base, so a report could not say what it is against; not filed`,
    );
  const property = f.property.id;
  if (!isReportProperty(property))
    throw new ReportError(
      `no reports for the check '${property}' (only for ${['conformance', 'lbr-freeze', 'no-leak', 'host-undisturbed', 'invisible'].join(', ')})`,
    );
  if (d.errorInstance instanceof HostLbrDisturbed)
    throw new ReportError(
      `host-undisturbed's LBR comparison has no report format yet: the counterexample above and the replay command are the finding (${d.errorInstance.message})`,
    );
  if (!(d.errorInstance instanceof Divergence) && !(d.errorInstance instanceof HostDisturbed))
    throw new ReportError(
      `the failure is not a divergence: ${d.errorInstance instanceof Error ? d.errorInstance.message : String(d.errorInstance)}`,
    );
  const { guest, kase, replayPath } = caseOf(property, d.counterexample);
  const target: ReplayTarget = { design: f.design, host: f.host, cpus: CONFORMANCE_CPUS, guest, gen: f.gen };
  const first = replay(target, kase, { trace: false });
  if (!fails(first))
    throw new ReportError('the shrunk program does not fail when replayed (is the world deterministic?)');
  const sig = caseSignature(f.design.id, kase, first.divergence);
  const minimal = inWorld(postShrinkCase(target, kase, sig));
  const r = replay(target, minimal);
  if (!fails(r)) throw new ReportError('the post-shrunk program does not fail when replayed');
  const id = reportId(sig);
  const o = r.divergence;
  const unsupported = unsupportedBy(f.design.supported(f.host), guest);
  const file: ReportFile = {
    format: REPORT_FORMAT,
    id,
    title: withRests(caseTitle(minimal, o, subjectPrefix(f.design, unsupported)), r.rests ?? []),
    signature: sig,
    property: { id: property, rule: f.property.rule },
    ...(f.gen !== undefined ? { gen: f.gen } : {}),
    design: f.design.id,
    base: f.design.base,
    ...(r.rests !== undefined ? { rests: [...r.rests] } : {}),
    ...(unsupported.length > 0 ? { unsupported } : {}),
    host: f.hostName,
    cpus: CONFORMANCE_CPUS,
    guest: guestToJson(guest),
    program: programToJson(minimal.program),
    ...(minimal.property === 'no-leak' ? { baseline: programToJson(minimal.baseline) } : {}),
    ...(minimal.property === 'invisible'
      ? { insertion: { at: minimal.insertion.at, command: commandToJson(minimal.insertion.command) } }
      : {}),
    divergence: { ...observationToJson(o), rule: caseRule(minimal, o) },
    search: {
      seed: d.seed,
      path: d.counterexamplePath,
      replayPath,
      numRuns: d.numRuns,
      numShrinks: d.numShrinks,
      shrunkCommands: size(kase),
      postShrunkCommands: size(minimal),
    },
    versions: versions(property),
    found: f.found,
    replay: replayCommand(f.outDir, id),
  };
  return {
    file,
    design: f.design,
    guest,
    kase: minimal,
    program: minimal.program,
    replay: r,
    fastCheckMessage: fc.defaultReportMessage(d) ?? '',
  };
}
