/** Every H decision the host model relies on is listed once, and every listed one is cited. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HOST_DECISIONS, hostDecision } from '../../../model/host/decisions.js';

const DIR = 'model/host';

describe('the host decision list', () => {
  const code = readdirSync(DIR)
    .filter((f) => f.endsWith('.ts') && f !== 'decisions.ts')
    .map((f) => readFileSync(join(DIR, f), 'utf8'))
    .join('\n');
  const cited = new Set(code.match(/\bH\d+\b/g) ?? []);
  const ids = HOST_DECISIONS.map((d) => d.id);

  it('defines every decision the code cites, once', () => {
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of cited) expect(ids, `code cites ${id}`).toContain(id);
  });

  it('has no decision the code does not cite', () => {
    for (const id of ids) expect(cited.has(id), `${id} is never cited`).toBe(true);
  });

  it('finds a decision by id and refuses an unknown one', () => {
    expect(hostDecision('H1').id).toBe('H1');
    expect(() => hostDecision('H999')).toThrow();
  });
});
