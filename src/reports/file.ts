/**
 * report.json: everything needed to replay a finding without the generators (design id, host
 * profile name, guest configuration, the program as JSON), plus the fast-check replay token and
 * versions for the record. Replay must not depend on the generators staying unchanged
 * (toolchain.md §1.4), so the program, not the seed, is what `npm run replay` runs.
 */

import { ProgramFormatError, type SerializedCommand, type SerializedGuest, guestFromJson, programFromJson } from '../scenarios/serialize.js';
import type { WorldCommand } from '../scenarios/commands.js';
import type { GuestConfig, ObservationKind } from '../scenarios/world.js';

export const REPORT_FORMAT = 'vpmu-conformance/report@1';

export interface SerializedObservation {
  readonly step: number;
  readonly vcpu: number;
  readonly kind: ObservationKind;
  readonly target: string | null;
  readonly value: string | null;
  readonly what: string;
  readonly sut: string;
  readonly oracle: string;
}

export interface ReportFile {
  readonly format: typeof REPORT_FORMAT;
  readonly id: string;
  readonly title: string;
  readonly signature: string;
  readonly property: { readonly id: string; readonly rule: string };
  readonly design: string;
  readonly host: string;
  readonly cpus: number;
  readonly guest: SerializedGuest;
  readonly program: readonly SerializedCommand[];
  /** The first divergent observation when the report was written, and the rule that decides it. */
  readonly divergence: SerializedObservation & { readonly rule: string };
  readonly search: {
    readonly seed: number;
    readonly path: string | null;
    readonly replayPath: string | null;
    readonly numRuns: number;
    readonly numShrinks: number;
    /** Commands in fast-check's shrunk program, and after deleting the ones not needed. */
    readonly shrunkCommands: number;
    readonly postShrunkCommands: number;
  };
  readonly versions: { readonly fastCheck: string; readonly node: string; readonly package: string; readonly generators: string };
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
  readonly program: WorldCommand[];
}

function need(o: Record<string, unknown>, k: string, type: 'string' | 'number' | 'object'): void {
  const v = o[k];
  const ok = type === 'object' ? typeof v === 'object' && v !== null : typeof v === type;
  if (!ok) throw new ReportFormatError(`report.json: field '${k}' must be ${type === 'object' ? 'an object' : `a ${type}`}, got ${JSON.stringify(v) ?? 'nothing'}`);
}

/** Parses the text of a report.json; every problem is one line naming the field. */
export function parseReport(text: string): ReplayableReport {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ReportFormatError(`report.json is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ReportFormatError('report.json: expected an object');
  const o = v as Record<string, unknown>;
  if (o.format !== REPORT_FORMAT)
    throw new ReportFormatError(`report.json: format must be '${REPORT_FORMAT}', got ${JSON.stringify(o.format) ?? 'nothing'}`);
  for (const k of ['id', 'title', 'design', 'host']) need(o, k, 'string');
  need(o, 'cpus', 'number');
  if (!Number.isSafeInteger(o.cpus) || (o.cpus as number) < 1) throw new ReportFormatError(`report.json: cpus must be a positive integer`);
  try {
    return { file: o as unknown as ReportFile, guest: guestFromJson(o.guest), program: programFromJson(o.program) };
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
  const hole = '"__PROGRAM__"';
  const text = JSON.stringify({ ...r, program: '__PROGRAM__' }, null, 2);
  const program = r.program.length === 0 ? '[]' : `[\n${r.program.map((c) => `    ${JSON.stringify(c)}`).join(',\n')}\n  ]`;
  return `${text.replace(hole, () => program)}\n`;
}
