import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../model/hw/decisions.js';
import { KVM_DECISIONS } from '../../model/kvm/decisions.js';
import { WORLD_DECISIONS } from '../../scenarios/decisions.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe.each([
  ['KVM port (K)', 'model/kvm', KVM_DECISIONS, /\bK\d+\b/g],
  ['world (W)', 'scenarios', WORLD_DECISIONS, /\bW\d+\b/g],
] as const)('the %s decision list and its code cite each other', (_name, dir, list: readonly Decision[], re) => {
  const code = sources(dir)
    .filter((f) => !f.endsWith('decisions.ts'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const cited = new Set(code.match(re) ?? []);
  it('defines every id the code cites, once', () => {
    const ids = list.map((d) => d.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of cited) expect(ids, `code cites ${id}`).toContain(id);
  });
  it('has every decision cited by the code', () => {
    for (const d of list) expect(cited, `${d.id} is cited nowhere`).toContain(d.id);
  });
});
