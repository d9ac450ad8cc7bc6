/**
 * Every committed reproducer (the filed findings' and the catalogue rows'), emitted in memory:
 * `npm run reproducers` writes them, `npm run reproducers:check` builds them, and
 * test/reports/emit/emit.test.ts holds the committed files to being current.
 */

import { type Emitted, emitFiles } from '../reports/emit/files.js';
import { filedFindings } from '../reports/emit/filed.js';
import { GUEST_BASE, LAYOUT } from '../reports/emit/guest.js';
import { regressionFindings } from './regression.js';

export function filedReproducers(): Emitted[] {
  return filedFindings().map((f) => emitFiles(f.finding, f.paths));
}

export function catalogueReproducers(): Emitted[] {
  return regressionFindings().map((r) => emitFiles(r.finding, r.paths, r.fixed));
}

/** The guest code the model ran, as a reproducer's --dump-guest writes it. */
export function guestCode(e: Emitted): Buffer {
  const b = e.emission.plan.builder;
  const buf = Buffer.alloc(b.asm.at - GUEST_BASE - LAYOUT.code);
  for (const p of b.asm.placed) Buffer.from(p.insn.bytes).copy(buf, p.addr - GUEST_BASE - LAYOUT.code);
  return buf;
}
