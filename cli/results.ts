/**
 * The contract of `vpmu-conformance start --json`: a zod schema, the TypeScript types read from it,
 * and (`npm run schemas`) the JSON Schema exported beside it as cli/results.schema.json for other
 * tools. A change that breaks a reader bumps the format's version.
 */

import { z } from 'zod';
import { RESULTS_FORMAT } from './formats.js';

const count = z.int().nonnegative();

export const CheckResultSchema = z
  .strictObject({
    check: z.string().describe('the check id (properties/checks.ts), e.g. conformance, no-leak, readback'),
    gen: z.string().nullable().describe("the generation profile of the check's programs, where it has one"),
    design: z
      .string()
      .nullable()
      .describe("the vPMU design's id (designs/registry.ts); null for the hardware model's laws"),
    host: z.string().describe("the built-in host profile, or 'random' for the hardware model's laws"),
    rule: z.string().describe('what the check holds the design to'),
    result: z
      .enum(['passed', 'failed', 'interrupted', 'n/a', 'not run'])
      .describe(
        'interrupted: stopped by --time or a signal before its budget of programs; n/a: nothing to check; not run: the run was interrupted before it',
      ),
    reason: z
      .string()
      .nullable()
      .describe("n/a: why the check does not apply; interrupted: 'time limit' or the signal; otherwise null"),
    programs: count.describe('programs generated and run (for a failed check: up to the first failure)'),
    ms: count.describe('wall time of the check, shrinking and the report included'),
    known: z
      .record(z.string(), count)
      .describe('declared known divergences met, by id, and how many programs met each'),
    failure: z
      .strictObject({
        error: z.string().describe("the first line of the property's error"),
        message: z.string().describe("fast-check's report: seed, path, the shrunk counterexample"),
        seed: z.int(),
        path: z.string().nullable().describe('fast-check counterexample path (replays the search with --seed)'),
        rootCause: z
          .string()
          .describe('failures with the same root cause share this key (the report id where there is one)'),
      })
      .nullable(),
    report: z
      .strictObject({
        id: z.string(),
        dir: z.string(),
        markdown: z.string().describe('path of report.md'),
        json: z.string().describe('path of report.json (what replay reads)'),
        regression: z.string().describe('path of regression.test.ts'),
        status: z
          .enum(['written', 'kept'])
          .describe('kept: a report with the same root cause and a program no longer than this one was already there'),
        replay: z.string().describe('the command that replays it'),
      })
      .nullable()
      .describe('the bug report of a failed check of the five properties reports cover'),
    reportError: z.string().nullable().describe('why no report could be written for a failure that should have one'),
  })
  .describe('one check: a property of a design on a host (and a generation profile), or a law of the model');

export const TotalsSchema = z.strictObject({
  checks: count.describe('every row: run, interrupted, n/a and not run'),
  passed: count,
  failed: count,
  interrupted: count,
  notApplicable: count,
  notRun: count.describe('checks not reached because the run was interrupted'),
});

export const StartResultsSchema = z
  .strictObject({
    format: z.literal(RESULTS_FORMAT),
    command: z.literal('start'),
    exitStatus: z.union([z.literal(0), z.literal(1), z.literal(130)]),
    interruptedBy: z.string().nullable().describe('the signal (SIGINT, SIGTERM) that stopped the run, or null'),
    seed: z.int(),
    options: z.strictObject({
      runs: count,
      timeSeconds: count.nullable(),
      only: z.array(z.string()).nullable(),
      profile: z.array(z.string()).nullable(),
      design: z.array(z.string()),
      gen: z.array(z.string()).nullable(),
      out: z.string(),
    }),
    replay: z.string().describe('the command that runs the same checks again, every flag that shapes the run included'),
    totals: TotalsSchema,
    checks: z.array(CheckResultSchema),
    knownDivergences: z.record(z.string(), count).describe('declared divergences met over every check, by id'),
    oldReports: z
      .array(z.string())
      .describe('report folders in the output folder that this run did not write or keep (--clean clears them)'),
    versions: z.strictObject({ package: z.string(), node: z.string(), fastCheck: z.string() }),
  })
  .describe('vpmu-conformance start --json');

export type CheckResult = z.infer<typeof CheckResultSchema>;
export type Totals = z.infer<typeof TotalsSchema>;
export type StartResults = z.infer<typeof StartResultsSchema>;

/** Reads --json output back (other tools, tests): throws a ZodError naming the field. */
export const parseStartResults = (v: unknown): StartResults => StartResultsSchema.parse(v);

/** The JSON Schema of the --json output (cli/results.schema.json). */
export const startResultsJsonSchema = () => z.toJSONSchema(StartResultsSchema, { target: 'draft-2020-12' });
