/**
 * report.json: everything needed to replay a finding without the generators (design id, host
 * profile name, guest configuration, the program as JSON), plus the fast-check replay token and
 * versions for the record. Replay must not depend on the generators staying unchanged
 * (toolchain.md §1.4), so the program, not the seed, is what `npm run replay` runs.
 */

import type { WorldCommand } from '../scenarios/commands.js';
import {
  commandFromJson,
  guestFromJson,
  ProgramFormatError,
  programFromJson,
  type SerializedCommand,
  type SerializedGuest,
} from '../scenarios/serialize.js';
import type { GuestConfig } from '../scenarios/world.js';
import type { ObservationKind } from '../scenarios/observation.js';
import { type Case, isReportProperty, type PropertyId, REPORT_PROPERTIES } from './replay.js';

/**
 * @2 adds the property's comparison (baseline, insertion, host events); @1 files are conformance reports and still
 * read.
 */
export const REPORT_FORMAT = 'vpmu-conformance/report@2';
export const REPORT_FORMAT_V1 = 'vpmu-conformance/report@1';

export interface SerializedObservation {
  readonly step: number;
  /** -1 for a host event. */
  readonly vcpu: number;
  readonly kind: ObservationKind | 'host-event';
  readonly target: string | null;
  readonly value: string | null;
  readonly what: string;
  /**
   * The failing side: the guest under the design, the changed program, the run with the insertion, the host with the
   * guest.
   */
  readonly sut: string;
  /** What it is compared with: bare metal, the baseline program, the plain program, the host-only run. */
  readonly oracle: string;
  /** host-undisturbed: which host event (index among the opened ones, pCPU, attr as code). */
  readonly event?: { readonly index: number; readonly cpu: number; readonly attr: string; readonly perf: string };
}

export interface ReportFile {
  readonly format: typeof REPORT_FORMAT | typeof REPORT_FORMAT_V1;
  readonly id: string;
  readonly title: string;
  readonly signature: string;
  readonly property: { readonly id: PropertyId; readonly rule: string };
  /** The generation profile of the conformance check that found it (scenarios/generation.ts), where it has one. */
  readonly gen?: string;
  readonly design: string;
  readonly host: string;
  readonly cpus: number;
  readonly guest: SerializedGuest;
  /** The failing program (see Case in replay.ts for what it is per property). */
  readonly program: readonly SerializedCommand[];
  /** no-leak: the same program with the host's original values, command for command. */
  readonly baseline?: readonly SerializedCommand[];
  /** invisible: the VMM action inserted before command `at` (0-based) of the program. */
  readonly insertion?: { readonly at: number; readonly command: SerializedCommand };
  /** The first divergent observation when the report was written, and the rule that decides it. */
  readonly divergence: SerializedObservation & { readonly rule: string };
  readonly search: {
    readonly seed: number;
    readonly path: string | null;
    readonly replayPath: string | null;
    readonly numRuns: number;
    readonly numShrinks: number;
    /** Commands (no-leak: pairs) in fast-check's shrunk program, and after deleting the ones not needed. */
    readonly shrunkCommands: number;
    readonly postShrunkCommands: number;
  };
  readonly versions: {
    readonly fastCheck: string;
    readonly node: string;
    readonly package: string;
    readonly generators: string;
  };
  readonly found: string;
  readonly replay: string;
}

/** A report.json that cannot be replayed: not JSON, the wrong format, a missing field. */
export class ReportFormatError extends Error {
  override readonly name = 'ReportFormatError';
}

/** What replay needs from a report.json, read and checked. */
export interface ReplayableReport {
  readonly file: ReportFile;
  readonly guest: GuestConfig;
  /** The failing program (the same as `kase.program`). */
  readonly program: WorldCommand[];
  readonly kase: Case;
}

function need(o: Record<string, unknown>, k: string, type: 'string' | 'number' | 'object'): void {
  const v = o[k];
  const ok = type === 'object' ? typeof v === 'object' && v !== null : typeof v === type;
  if (!ok)
    throw new ReportFormatError(
      `report.json: field '${k}' must be ${type === 'object' ? 'an object' : `a ${type}`}, got ${JSON.stringify(v) ?? 'nothing'}`,
    );
}

/** The property a report is about: every @1 report is a conformance report. */
function propertyOf(o: Record<string, unknown>): PropertyId {
  if (o.format === REPORT_FORMAT_V1) return 'conformance';
  need(o, 'property', 'object');
  const id = (o.property as Record<string, unknown>).id;
  if (typeof id !== 'string' || !isReportProperty(id))
    throw new ReportFormatError(
      `report.json: property.id must be one of ${REPORT_PROPERTIES.join(', ')}, got ${JSON.stringify(id) ?? 'nothing'}`,
    );
  return id;
}

function caseOf(o: Record<string, unknown>, property: PropertyId, program: WorldCommand[]): Case {
  switch (property) {
    case 'no-leak': {
      if (o.baseline === undefined)
        throw new ReportFormatError(
          "report.json: a no-leak report needs 'baseline' (the program with the host's original values)",
        );
      const baseline = programFromJson(o.baseline, 'baseline');
      if (baseline.length !== program.length)
        throw new ReportFormatError(
          `report.json: baseline has ${baseline.length} commands, program ${program.length}; they pair command for command`,
        );
      return { property, program, baseline };
    }
    case 'invisible': {
      need(o, 'insertion', 'object');
      const ins = o.insertion as Record<string, unknown>;
      if (typeof ins.at !== 'number' || !Number.isSafeInteger(ins.at) || ins.at < 0 || ins.at > program.length)
        throw new ReportFormatError(
          `report.json: insertion.at must be an integer 0..${program.length}, got ${JSON.stringify(ins.at) ?? 'nothing'}`,
        );
      return {
        property,
        program,
        insertion: { at: ins.at, command: commandFromJson(ins.command, 'insertion.command') },
      };
    }
    default:
      return { property, program };
  }
}

/** Parses the text of a report.json (@1 or @2); every problem is one line naming the field. */
export function parseReport(text: string): ReplayableReport {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ReportFormatError(`report.json is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new ReportFormatError('report.json: expected an object');
  const o = v as Record<string, unknown>;
  if (o.format !== REPORT_FORMAT && o.format !== REPORT_FORMAT_V1)
    throw new ReportFormatError(
      `report.json: format must be '${REPORT_FORMAT}' (or '${REPORT_FORMAT_V1}'), got ${JSON.stringify(o.format) ?? 'nothing'}`,
    );
  for (const k of ['id', 'title', 'design', 'host']) need(o, k, 'string');
  need(o, 'cpus', 'number');
  if (!Number.isSafeInteger(o.cpus) || (o.cpus as number) < 1)
    throw new ReportFormatError(`report.json: cpus must be a positive integer`);
  const property = propertyOf(o);
  if (o.gen !== undefined && typeof o.gen !== 'string')
    throw new ReportFormatError(`report.json: gen must be a string, got ${JSON.stringify(o.gen)}`);
  try {
    const program = programFromJson(o.program);
    const kase = caseOf(o, property, program);
    return { file: o as unknown as ReportFile, guest: guestFromJson(o.guest), program, kase };
  } catch (e) {
    if (e instanceof ProgramFormatError) throw new ReportFormatError(`report.json: ${e.message}`);
    throw e;
  }
}

/**
 * JSON text of a report: two-space indent, but one line per command, so the program reads as a
 * list of steps and a diff of two reports shows which commands changed.
 */
export function reportToText(r: ReportFile): string {
  const lines = (p: readonly SerializedCommand[]) =>
    p.length === 0 ? '[]' : `[\n${p.map((c) => `    ${JSON.stringify(c)}`).join(',\n')}\n  ]`;
  const holes: Record<string, string> = {
    program: lines(r.program),
    ...(r.baseline !== undefined ? { baseline: lines(r.baseline) } : {}),
  };
  const text = JSON.stringify(
    { ...r, ...Object.fromEntries(Object.keys(holes).map((k) => [k, `__${k.toUpperCase()}__`])) },
    null,
    2,
  );
  return `${Object.entries(holes).reduce((t, [k, v]) => t.replace(`"__${k.toUpperCase()}__"`, () => v), text)}\n`;
}
