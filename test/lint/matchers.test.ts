/**
 * The rule that keeps matchers off display text bites: a declared divergence that tests an observation's words fails
 * lint, one that decides on typed values passes, and today's declarations pass it (npm run lint runs it over the tree).
 */

import { join } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import { matchersReadNoText } from '../../eslint.config.js';

const root = join(import.meta.dirname, '..', '..');
const eslint = new ESLint({
  cwd: root,
  overrideConfigFile: true,
  overrideConfig: [{ languageOptions: { parser: tseslint.parser } }, matchersReadNoText],
});

async function ruleIds(code: string, filePath = 'properties/expectations/planted.ts'): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: join(root, filePath) });
  return (r?.messages ?? []).map((m) => m.ruleId ?? m.message);
}

describe('matchers read no display text', () => {
  it.each([
    ['a prefix of what', "export const m = (o: { what: string }) => o.what.startsWith('host opens');\n"],
    ['a regular expression', 'export const m = (o: { impossible: string }) => /PERF_METRICS/.test(o.impossible);\n'],
    ['the words of a reason', "export const m = (o: { impossible: { why: string } }) => o.impossible.why !== '';\n"],
  ])('fail on %s', async (_what, code) => {
    expect(await ruleIds(code)).toContain('no-restricted-syntax');
  });

  it('pass a decision on typed values', async () => {
    const code =
      "export const m = (o: { impossible: { rule: string } | null }) => o.impossible?.rule === 'fmt-undefined';\n";
    expect(await ruleIds(code)).toEqual([]);
  });

  it('hold only for the declarations: a report may render and read its words', async () => {
    const code = "export const m = (o: { what: string }) => o.what.startsWith('x');\n";
    expect(await ruleIds(code, 'reports/planted.ts')).not.toContain('no-restricted-syntax');
  });
});
