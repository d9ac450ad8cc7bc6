/**
 * report.json: everything needed to replay a finding without the generators (design id, host
 * profile name, guest configuration, the program as JSON), plus the fast-check replay token and
 * versions for the record. Replay must not depend on the generators staying unchanged
 * (toolchain.md §1.4), so the program, not the seed, is what `npm run replay` runs.
 */

import { z } from 'zod';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import type { WorldCommand } from '../scenarios/commands.js';
import { GENERATION_PROFILES } from '../scenarios/generation.js';
import {
  checkIndices,
  CommandJson,
  describeIssue,
  GuestJson,
  natural,
  ProgramFormatError,
  ProgramJson,
  type SerializedCommand,
  show,
} from '../scenarios/serialize.js';
import { type GuestConfig, impossibleEnumeration } from '../scenarios/world.js';
import { type Case, type PropertyId, REPORT_PROPERTIES } from './replay.js';

/**
 * @2 adds the property's comparison (baseline, insertion, host events); @1 files are conformance reports and still
 * read.
 */
export const REPORT_FORMAT = 'vpmu-conformance/report@2';
export const REPORT_FORMAT_V1 = 'vpmu-conformance/report@1';

/** The largest report.json replay reads: about a million commands. */
export const REPORT_MAX_BYTES = 64 * 1024 * 1024;
/** pCPUs a report's world may have (the checks use 2). */
export const REPORT_MAX_CPUS = 64;

/** Text of at most `max` characters: a report is printed, and a field of megabytes is not a report. */
const text = (max: number) =>
  z.string({ error: (i) => `expected a string, got ${show(i.input)}` }).max(max, {
    error: (i) => `${(i.input as string).length} characters, at most ${max}`,
  });

const cpusError = (i: { input?: unknown }) => `expected an integer 1..${REPORT_MAX_CPUS}, got ${show(i.input)}`;

const hexOrNull = z
  .string()
  .regex(/^0x[0-9a-fA-F]+$/)
  .max(18)
  .nullable();

const ObservationJson = z.strictObject({
  step: natural(),
  vcpu: z.int().min(-1).describe('-1 for a host event'),
  kind: text(40),
  target: hexOrNull,
  value: hexOrNull,
  what: text(2000),
  sut: text(2000).describe(
    'the failing side: the design, the changed program, the run with the insertion, the host with the guest',
  ),
  oracle: text(2000).describe(
    'what it is compared with: bare metal, the baseline program, the plain program, the host-only run',
  ),
  event: z
    .strictObject({ index: natural(), cpu: natural(), attr: text(2000), perf: text(2000) })
    .optional()
    .describe('host-undisturbed: which host event (index among the opened ones, pCPU, attr as code)'),
});

/**
 * The schema of report.json: the readers below are its parse, the type of what build.ts writes
 * is its input type, and reports/report.schema.json is generated from it (`npm run schemas`).
 */
export const ReportFileSchema = z
  .strictObject({
    format: z.enum([REPORT_FORMAT, REPORT_FORMAT_V1], {
      error: (i) => `expected '${REPORT_FORMAT}' (or '${REPORT_FORMAT_V1}'), got ${show(i.input)}`,
    }),
    id: z.string().regex(/^[a-zA-Z0-9.-]{1,200}$/, {
      error: (i) => `expected a folder name of letters, digits, '.' and '-', got ${show(i.input)}`,
    }),
    title: text(500),
    signature: text(500),
    property: z
      .strictObject({
        id: z.enum(REPORT_PROPERTIES, {
          error: (i) => `expected one of ${REPORT_PROPERTIES.join(', ')}, got ${show(i.input)}`,
        }),
        rule: text(2000),
      })
      .optional()
      .describe('required from @2 on; every @1 report is a conformance report'),
    gen: z
      .enum(GENERATION_PROFILES, {
        error: (i) => `expected one of ${GENERATION_PROFILES.join(', ')}, got ${show(i.input)}`,
      })
      .optional()
      .describe('the generation profile of the conformance check that found it (scenarios/generation.ts)'),
    design: text(200).describe("the design's id (designs/registry.ts)"),
    base: text(1000)
      .optional()
      .describe('the upstream tree the design models (model/kvm/base.ts); required of every report written now'),
    unsupported: z
      .array(text(500))
      .max(32)
      .optional()
      .describe(
        'where the guest goes beyond what the design reports on the host (KVM_GET_SUPPORTED_CPUID, PERF_CAPABILITIES): an unsupported configuration, not a bug',
      ),
    rests: z
      .array(
        z
          .string()
          .regex(/^[DHKW][0-9]{1,4}$/, { error: (i) => `expected a decision id like D37, got ${show(i.input)}` }),
      )
      .max(200)
      .optional()
      .describe(
        'the unverified decisions (D hardware, H host perf, K KVM port, W world) the program applied up to its first divergence',
      ),
    host: text(200).describe('a built-in host profile name (model/hw/profiles.ts)'),
    cpus: z
      .int({ error: cpusError })
      .min(1, { error: cpusError })
      .max(REPORT_MAX_CPUS, { error: cpusError })
      .describe("the pCPUs of the report's world"),
    guest: GuestJson,
    program: ProgramJson.describe('the failing program (see Case in reports/replay.ts for what it is per property)'),
    baseline: ProgramJson.optional().describe(
      "no-leak: the same program with the host's original values, command for command",
    ),
    insertion: z
      .strictObject({ at: natural(), command: CommandJson })
      .optional()
      .describe('invisible: the VMM action inserted before command `at` (0-based) of the program'),
    divergence: ObservationJson.extend({ rule: text(2000) }).describe(
      'the first divergent observation when the report was written, and the rule that decides it',
    ),
    search: z.strictObject({
      seed: z.int(),
      path: text(100_000).nullable(),
      replayPath: text(100_000).nullable(),
      numRuns: natural(),
      numShrinks: natural(),
      shrunkCommands: natural().describe("commands (no-leak: pairs) in fast-check's shrunk program"),
      postShrunkCommands: natural().describe('and after deleting the ones not needed'),
    }),
    versions: z.strictObject({ fastCheck: text(100), node: text(100), package: text(100), generators: text(100) }),
    found: text(200).describe('when and how it was found: a date, or the regression test whose program it is'),
    replay: text(5000),
  })
  .meta({
    title: 'vpmu-conformance report.json',
    description: 'A finding of vpmu-conformance: what replay needs, and the record',
  });

type ReportJson = z.input<typeof ReportFileSchema>;
/** A report.json as build.ts writes it (the schema's input side: commands as `{ cmd, args }`), property included. */
export type ReportFile = ReportJson & { readonly property: NonNullable<ReportJson['property']> };
export type SerializedObservation = z.input<typeof ObservationJson>;

/** The JSON Schema of report.json (reports/report.schema.json). */
export const reportJsonSchema = () =>
  z.toJSONSchema(ReportFileSchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any', reused: 'ref' });

/** A report.json that cannot be replayed: not JSON, the wrong format, a missing field, a field out of range. */
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

const bad = (msg: string) => new ReportFormatError(`report.json: ${msg}`);

/** The case the property compares, from the fields its property needs. */
function caseOf(f: z.output<typeof ReportFileSchema>, property: PropertyId): Case {
  const program = f.program;
  switch (property) {
    case 'no-leak': {
      if (f.baseline === undefined)
        throw bad("a no-leak report needs 'baseline' (the program with the host's original values)");
      if (f.baseline.length !== program.length)
        throw bad(
          `baseline has ${f.baseline.length} commands, program ${program.length}; they pair command for command`,
        );
      return { property, program, baseline: f.baseline };
    }
    case 'invisible': {
      if (f.insertion === undefined) throw bad("an invisible report needs 'insertion' (the VMM action inserted)");
      if (f.insertion.at > program.length)
        throw bad(`insertion.at must be an integer 0..${program.length}, got ${f.insertion.at}`);
      return { property, program, insertion: f.insertion };
    }
    default:
      return { property, program };
  }
}

/**
 * Parses the text of a report.json (@1 or @2): the schema, then what it cannot say alone (the
 * fields a property needs, vCPU and pCPU indices within the world, a guest some CPU has).
 * Every problem is one line naming the field.
 */
export function parseReport(raw: string): ReplayableReport {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw new ReportFormatError(`report.json is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('expected an object');
  const r = ReportFileSchema.safeParse(v);
  if (!r.success) throw bad(describeIssue('', r.error.issues[0]!, v));
  const f = r.data;
  if (f.property === undefined && f.format !== REPORT_FORMAT_V1) throw bad("missing field 'property'");
  const property = f.property?.id ?? 'conformance';
  const file = { ...(v as ReportJson), property: f.property ?? { id: property, rule: 'design.md property 1' } };
  const kase = caseOf(f, property);
  // A report's world has one guest (one vCPU) and `cpus` pCPUs: an index past them names nothing.
  const limits = { vcpus: 1, cpus: f.cpus };
  try {
    checkIndices(file.program, limits, 'program');
    if (file.baseline !== undefined) checkIndices(file.baseline, limits, 'baseline');
    if (file.insertion !== undefined) checkIndices([file.insertion.command], limits, 'insertion.command');
  } catch (e) {
    if (e instanceof ProgramFormatError) throw bad(e.message.replace(/^insertion\.command\[0\]/, 'insertion.command'));
    throw e;
  }
  const host = Object.hasOwn(BUILTIN_PROFILES, f.host) ? BUILTIN_PROFILES[f.host] : undefined;
  const impossible = host === undefined ? null : impossibleEnumeration(host, f.guest);
  if (impossible !== null) throw bad(`guest.cpuid: no CPU enumerates this guest (${impossible.why})`);
  return { file, guest: f.guest, program: f.program, kase };
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
