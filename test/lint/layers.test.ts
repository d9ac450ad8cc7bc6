/**
 * The layer rules bite: an upward import and a value cycle each fail lint, a type-only cycle does
 * not, and today's tree passes them (npm run lint runs them over the whole tree).
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { afterAll, describe, expect, it } from 'vitest';
import { layers } from '../../eslint.config.js';

const root = join(import.meta.dirname, '..', '..');
const eslint = new ESLint({
  cwd: root,
  overrideConfigFile: true,
  overrideConfig: [{ languageOptions: { parser: tseslint.parser } }, layers],
});

async function ruleIds(code: string, filePath: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: join(root, filePath) });
  return (r?.messages ?? []).map((m) => m.ruleId ?? m.message);
}

const dir = mkdtempSync(join(root, 'scratch-lint-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the layer rules', () => {
  it('fail an upward import: the hardware model importing the world', async () => {
    const code = "import { World } from '../../scenarios/world.js';\nexport const w = World;\n";
    expect(await ruleIds(code, 'model/hw/planted.ts')).toContain('import-x/no-restricted-paths');
  });

  it('fail a sideways import between the KVM model and the host model upward', async () => {
    const code = "import { EmulatedVcpu } from '../kvm/emulated/vcpu.js';\nexport const v = EmulatedVcpu;\n";
    expect(await ruleIds(code, 'model/host/planted.ts')).toContain('import-x/no-restricted-paths');
  });

  it('pass a downward import', async () => {
    const code = "import { Cpu } from '../../model/hw/cpu.js';\nexport const c = Cpu;\n";
    expect(await ruleIds(code, 'scenarios/planted.ts')).toEqual([]);
  });

  it('fail two modules that import each other with values, and pass them with types only', async () => {
    writeFileSync(join(dir, 'a.ts'), "import { b } from './b.js';\nexport const a = () => b;\n");
    writeFileSync(join(dir, 'b.ts'), "import { a } from './a.js';\nexport const b = () => a;\n");
    writeFileSync(join(dir, 'c.ts'), "import type { D } from './d.js';\nexport interface C { d?: D }\n");
    writeFileSync(join(dir, 'd.ts'), "import type { C } from './c.js';\nexport interface D { c?: C }\n");
    const [a, c] = await eslint.lintFiles([join(dir, 'a.ts'), join(dir, 'c.ts')]);
    expect(a?.messages.map((m) => m.ruleId)).toContain('import-x/no-cycle');
    expect(c?.messages).toEqual([]);
  });
});
