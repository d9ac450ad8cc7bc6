import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, describe, expect, it } from 'vitest';
import { SCHEMA_FILES } from '../../scripts/schema_files.js';
import { cli } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'vpmu-schemas-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the exported JSON Schema files', () => {
  it.each(Object.keys(SCHEMA_FILES))('%s is the one its zod schema gives (npm run schemas rewrites it)', (path) => {
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(SCHEMA_FILES[path]!());
  });

  // What another tool does with them: a JSON Schema validator, not the suite's own reader.
  const validator = (path: string) =>
    new Ajv2020({ strict: false, allErrors: true }).compile(JSON.parse(readFileSync(path, 'utf8')) as object);

  it('start --json output and the report.json a failure writes validate against them', () => {
    const out = join(tmp, 'out');
    const r = cli([
      'start',
      ...['--only', 'conformance', 'frozen', '--profile', 'skylake', '--design', 'bug/5728a4a0ea79', '--gen', 'quiet'],
      ...['--seed', '5', '--runs', '200', '--out', out, '--json'],
    ]);
    expect(r.code).toBe(1);
    const results = JSON.parse(r.out) as { checks: { report: { json: string } | null }[] };
    const v = validator('cli/results.schema.json');
    expect(v(results), JSON.stringify(v.errors)).toBe(true);
    const report = JSON.parse(readFileSync(results.checks.find((c) => c.report !== null)!.report!.json, 'utf8')) as {
      program: { args: unknown[] }[];
    };
    const vr = validator('reports/report.schema.json');
    expect(vr(report), JSON.stringify(vr.errors)).toBe(true);
    // And they refuse what the readers refuse.
    expect(v({ ...results, format: 'vpmu-conformance/results@0' })).toBe(false);
    report.program[0]!.args[1] = 911;
    expect(vr(report)).toBe(false);
  });
});
