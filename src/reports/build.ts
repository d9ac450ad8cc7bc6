/**
 * From a failed fc.check of the conformance property to a report: take fast-check's shrunk
 * [guest configuration, commands], keep the commands that ran, replay them, delete what is not
 * needed for the same divergence, and describe the result in domain words (design.md "Finding
 * bugs is the product"; style.md §6).
 */

import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import type { Design } from '../properties/designs.js';
import { Divergence, type WorldCommand } from '../scenarios/commands.js';
import { guestToJson, programToJson } from '../scenarios/serialize.js';
import type { GuestConfig, Observation } from '../scenarios/world.js';
import { REPORT_FORMAT, type ReportFile, type SerializedObservation } from './file.js';
import { postShrink } from './minimize.js';
import { CONFORMANCE_CPUS, fails, type Replay, type ReplayTarget, replay } from './replay.js';
import { ruleFor, titleFor } from './rules.js';
import { reportId, signatureOf } from './signature.js';
import { versions } from './versions.js';

/** A failure that cannot be turned into a report (not a divergence, not reproducible). */
export class ReportError extends Error {
  override readonly name = 'ReportError';
}

export interface FailedCheck<Ts = unknown> {
  readonly details: fc.RunDetails<Ts>;
  readonly property: { readonly id: string; readonly rule: string };
  readonly design: Design;
  readonly hostName: string;
  readonly host: Profile;
  /** The date of the run (the CLI's clock; nothing under src/model reads it). */
  readonly found: string;
  /** Where reports are written, relative to the repository: the replay command names it. */
  readonly outDir: string;
}

export interface Report {
  readonly file: ReportFile;
  readonly design: Design;
  readonly guest: GuestConfig;
  readonly program: readonly WorldCommand[];
  /** The replay of the minimal program: the per-step trace. */
  readonly replay: Replay & { readonly divergence: Observation };
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

const isGuest = (x: unknown): x is GuestConfig => typeof x === 'object' && x !== null && 'cpuid' in x && 'perfCapabilities' in x;
/** fast-check's command list (CommandsIterable) is iterable but not an array. */
const isCommandList = (x: unknown): x is Iterable<unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x) && Symbol.iterator in x;

/**
 * Finds the guest configuration and the command list in the property's arguments, however the
 * property nests them ([guest, cmds] or [[guest, cmds]]).
 */
function partsOf(v: unknown, depth = 0): { guest?: GuestConfig; cmds?: Iterable<unknown> } {
  if (isGuest(v)) return { guest: v };
  if (isCommandList(v)) return { cmds: v };
  if (!Array.isArray(v) || depth > 3) return {};
  return (v as unknown[]).reduce<{ guest?: GuestConfig; cmds?: Iterable<unknown> }>((acc, x) => ({ ...partsOf(x, depth + 1), ...acc }), {});
}

/** The guest configuration, the commands that ran (in order) and the replayPath. */
export function counterexampleOf<Ts>(d: fc.RunDetails<Ts>): { guest: GuestConfig; program: WorldCommand[]; replayPath: string | null } {
  const { guest, cmds } = partsOf(d.counterexample);
  if (guest === undefined || cmds === undefined) throw new ReportError('the counterexample holds no guest configuration and command list');
  const all = [...cmds].map((x) => (isWrapped(x) ? x : { cmd: x as WorldCommand, hasRan: true }));
  const ran = all.filter((w) => w.hasRan).map((w) => w.cmd);
  return { guest, program: ran.length > 0 ? ran : all.map((w) => w.cmd), replayPath: REPLAY_PATH.exec((cmds as { toString(): string }).toString())?.[1] ?? null };
}

const hex = (v: number | bigint | null) => (v === null ? null : `0x${v.toString(16)}`);

export function observationToJson(o: Observation): SerializedObservation {
  return { step: o.step, vcpu: o.vcpu, kind: o.kind, target: hex(o.target), value: hex(o.value), what: o.what, sut: o.sut, oracle: o.oracle };
}

export function replayCommand(outDir: string, id: string): string {
  return `npm run replay -- ${outDir.replace(/\/+$/, '')}/${id}/report.json`;
}

export function buildReport<Ts>(f: FailedCheck<Ts>): Report {
  const d = f.details;
  if (!d.failed) throw new ReportError('the check did not fail');
  if (!(d.errorInstance instanceof Divergence))
    throw new ReportError(`the failure is not a divergence: ${d.errorInstance instanceof Error ? d.errorInstance.message : String(d.errorInstance)}`);
  const { guest, program, replayPath } = counterexampleOf(d);
  const target: ReplayTarget = { design: f.design, host: f.host, cpus: CONFORMANCE_CPUS, guest };
  const first = replay(target, program);
  if (!fails(first)) throw new ReportError('the shrunk program does not fail when replayed (is the world deterministic?)');
  const sig = signatureOf(f.design.id, first.divergence);
  const minimal = postShrink(target, program, sig);
  const r = replay(target, minimal);
  if (!fails(r)) throw new ReportError('the post-shrunk program does not fail when replayed');
  const id = reportId(sig);
  const o = r.divergence;
  const file: ReportFile = {
    format: REPORT_FORMAT,
    id,
    title: titleFor(o),
    signature: sig,
    property: f.property,
    design: f.design.id,
    host: f.hostName,
    cpus: CONFORMANCE_CPUS,
    guest: guestToJson(guest),
    program: programToJson(minimal),
    divergence: { ...observationToJson(o), rule: ruleFor(o) },
    search: {
      seed: d.seed,
      path: d.counterexamplePath,
      replayPath,
      numRuns: d.numRuns,
      numShrinks: d.numShrinks,
      shrunkCommands: program.length,
      postShrunkCommands: minimal.length,
    },
    versions: versions(),
    found: f.found,
    replay: replayCommand(f.outDir, id),
  };
  return { file, design: f.design, guest, program: minimal, replay: r, fastCheckMessage: fc.defaultReportMessage(d) ?? '' };
}
