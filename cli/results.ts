/**
 * The contract of `--json`: for each command a zod schema, the TypeScript types read from it, and
 * (`npm run schemas`) the JSON Schema exported beside it (cli/results.schema.json for start,
 * cli/bugs.schema.json, cli/compare.schema.json) for other tools. A change that breaks a reader
 * bumps the format's version.
 */

import { z } from 'zod';
import { BUGS_FORMAT, COMPARE_FORMAT, RESULTS_FORMAT } from './formats.js';

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
    ended: z
      .record(z.string(), count)
      .nullable()
      .describe(
        'programs that ended at a declared divergence (no weaker contract or adoption to go on under), by id; null for a check whose programs never end at one',
      ),
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
    interruptedBy: z
      .string()
      .nullable()
      .describe(
        'what stopped the run: SIGINT, SIGTERM, or SIGPIPE for a stdout its reader closed; null if nothing did',
      ),
    seed: z.int(),
    options: z.strictObject({
      runs: count,
      timeSeconds: count.nullable(),
      only: z.array(z.string()).nullable(),
      profile: z.array(z.string()).nullable(),
      design: z.array(z.string()),
      gen: z.array(z.string()).nullable(),
      out: z.string(),
      shard: z
        .strictObject({ index: z.int().positive(), count: z.int().positive() })
        .nullable()
        .describe(
          '--shard i/n: this run holds rows i-1, i-1+n, i-1+2n, ... of the plan (npm run merge joins the shards)',
        ),
    }),
    replay: z.string().describe('the command that runs the same checks again, every flag that shapes the run included'),
    totals: TotalsSchema,
    checks: z.array(CheckResultSchema),
    knownDivergences: z.record(z.string(), count).describe('declared divergences met over every check, by id'),
    oldReports: z
      .array(z.string())
      .describe('report folders in the output folder that this run did not write or keep (--clean clears them)'),
    versions: z.strictObject({ package: z.string(), node: z.string(), fastCheck: z.string() }),
    resources: z
      .strictObject({
        seconds: z.number().nonnegative().describe('wall time of the run'),
        workers: count.describe('worker threads that ran checks'),
        peakRssMb: count.describe("the process's peak resident set (the workers are its threads)"),
        perWorkerMb: count.describe(
          "that peak less the main thread's before the pool started, shared among the workers",
        ),
        mainRssMb: count.describe("the main thread's resident set before the pool started"),
      })
      .nullable()
      .describe("what the run cost; null for shards joined by npm run merge (each shard's file has its own)"),
  })
  .describe('vpmu-conformance start --json');

export type CheckResult = z.infer<typeof CheckResultSchema>;
export type Totals = z.infer<typeof TotalsSchema>;
export type StartResults = z.infer<typeof StartResultsSchema>;
export type Resources = NonNullable<StartResults['resources']>;

/** Reads --json output back (other tools, tests): throws a ZodError naming the field. */
export const parseStartResults = (v: unknown): StartResults => StartResultsSchema.parse(v);

/** The JSON Schema of the --json output (cli/results.schema.json). */
export const startResultsJsonSchema = () => z.toJSONSchema(StartResultsSchema, { target: 'draft-2020-12' });

// ---------------------------------------------------------------------------------------------
// `vpmu-conformance bugs --json` and `vpmu-conformance compare --json`.

const exitStatus = z.union([z.literal(0), z.literal(1), z.literal(130)]);

export const BugsResultsSchema = z
  .strictObject({
    format: z.literal(BUGS_FORMAT),
    command: z.literal('bugs'),
    exitStatus,
    interruptedBy: z.string().nullable(),
    seeds: count,
    firstSeed: z.int(),
    runs: count,
    replay: z.string(),
    totals: z.strictObject({
      rows: count.describe('catalogue rows asked for'),
      measured: count.describe('rows measured before an interruption'),
      detectedOnEverySeed: count,
      shrunkWithinTarget: count,
      missedTargets: count.describe('rows that missed a target (then the exit status is 1)'),
      faults: count.describe('planted faults asked for'),
      faultsMeasured: count,
      faultsDetectedOnEverySeed: count,
      faultsMissed: count.describe('planted faults not found on every seed (then the exit status is 1)'),
    }),
    rows: z.array(
      z.strictObject({
        row: count.describe('the row of docs/bugs.md'),
        subject: z.string(),
        fixedBy: z.string().nullable().describe('the upstream commit that fixed it'),
        design: z.string(),
        check: z.string(),
        host: z.string(),
        seeds: z.array(z.int()),
        detected: count.describe('seeds on which the check found it'),
        medianPrograms: z.number(),
        medianMs: z.number(),
        minimalTrigger: count,
        medianShrunk: z.number().nullable(),
        maxShrunk: count.nullable(),
        report: z.string().nullable(),
        example: z.array(z.string()).nullable().describe('the shrunk program of the first seed that found it'),
        missed: z.array(z.string()).describe('each target missed, with how far off it was'),
      }),
    ),
    outOfScope: z.array(z.strictObject({ row: count, subject: z.string(), reason: z.string() })),
    faults: z
      .array(
        z.strictObject({
          id: z.string(),
          file: z.string().describe('the ported file the change is in'),
          fn: z.string().describe('the kernel function it changes'),
          class: z.string().describe('MASK, OBO, REQ, ORD, CLR, EXIT, CHK, UPD or COND'),
          change: z.string(),
          design: z.string(),
          check: z.string(),
          gen: z.string().nullable(),
          host: z.string(),
          seeds: z.array(z.int()),
          detected: count,
          medianPrograms: z.number(),
          medianMs: z.number(),
          medianShrunk: z.number().nullable(),
          maxShrunk: count.nullable(),
          example: z.array(z.string()).nullable(),
          missed: z.array(z.string()),
        }),
      )
      .describe('the planted faults of catalogue/faults.ts, measured like the rows'),
    equivalentFaults: z
      .array(z.strictObject({ id: z.string(), file: z.string(), fn: z.string(), change: z.string(), why: z.string() }))
      .describe('planted faults no property can see, each with the argument; not counted'),
  })
  .describe('vpmu-conformance bugs --json');

export const CompareResultsSchema = z
  .strictObject({
    format: z.literal(COMPARE_FORMAT),
    command: z.literal('compare'),
    exitStatus,
    interruptedBy: z.string().nullable(),
    seed: z.int(),
    runs: count,
    costs: z.record(z.string(), z.number()).describe('ns per step'),
    totals: z.strictObject({
      properties: count,
      held: count,
      declared: count,
      violated: count,
      unavailable: count,
      workloads: count,
    }),
    properties: z.array(
      z.strictObject({
        design: z.string(),
        host: z.string(),
        check: z.string(),
        programs: count,
        verdict: z.enum(['held', 'declared', 'violated']),
        known: z.record(z.string(), count),
      }),
    ),
    unavailable: z.array(z.strictObject({ design: z.string(), host: z.string(), why: z.string() })),
    workloads: z.array(
      z.strictObject({
        workload: z.string(),
        design: z.string(),
        host: z.string(),
        verdict: z
          .string()
          .describe("'conforms', 'declared: <id>', 'diverges: <observation>', or why it could not run"),
        guestOps: count,
        steps: z.record(z.string(), z.number()).describe('steps counted, by cost step'),
        ns: z.number().describe('the priced cost'),
      }),
    ),
    topdown: z
      .array(
        z.strictObject({
          design: z.string(),
          scenario: z.string().describe("'one window', or 'preempted' (the vCPU thread preempted mid-period)"),
          bucket: z.string().describe('the periods of S slots it covers, or all'),
          metric: z.string(),
          level: z.union([z.literal(1), z.literal(2)]),
          cases: count,
          worst: z.number().describe('largest |guest byte - bare metal byte|, in 1/255'),
          mean: z.number().describe('mean |error|, in 1/255'),
          bias: z.number().describe('mean signed error, in 1/255'),
        }),
      )
      .describe('the topdown accuracy of each proposal against bare metal (compare/topdown.ts)'),
  })
  .describe('vpmu-conformance compare --json');

export type BugsResults = z.infer<typeof BugsResultsSchema>;
export type CompareResults = z.infer<typeof CompareResultsSchema>;
export const parseBugsResults = (v: unknown): BugsResults => BugsResultsSchema.parse(v);
export const parseCompareResults = (v: unknown): CompareResults => CompareResultsSchema.parse(v);
export const bugsResultsJsonSchema = () => z.toJSONSchema(BugsResultsSchema, { target: 'draft-2020-12' });
export const compareResultsJsonSchema = () => z.toJSONSchema(CompareResultsSchema, { target: 'draft-2020-12' });
