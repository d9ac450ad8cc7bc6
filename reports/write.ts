/**
 * Writes a report to <outDir>/<id>/ (report.md, report.json, regression.test.ts). The id is the
 * root-cause signature, so a second failure with the same signature lands in the same folder:
 * the shorter program wins, and an equal or longer one leaves the existing report alone.
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Report } from './build.js';
import { parseReport, reportToText } from './file.js';
import { regressionTest, reportMarkdown } from './render.js';

export interface Written {
  readonly dir: string;
  readonly markdown: string;
  readonly json: string;
  /** False when an existing report with the same signature had a program no longer than this one. */
  readonly written: boolean;
}

/** The program length of the report already in `dir`, or null if there is none (or it is unreadable). */
function existingLength(json: string): number | null {
  try {
    return parseReport(readFileSync(json, 'utf8')).program.length;
  } catch {
    return null;
  }
}

export function writeReport(r: Report, outDir: string): Written {
  const dir = join(outDir, r.file.id);
  const paths = { dir, markdown: join(dir, 'report.md'), json: join(dir, 'report.json') };
  const old = existingLength(paths.json);
  if (old !== null && old <= r.file.program.length) return { ...paths, written: false };
  mkdirSync(dir, { recursive: true });
  writeFileSync(paths.json, reportToText(r.file));
  writeFileSync(paths.markdown, reportMarkdown(r));
  writeFileSync(join(dir, 'regression.test.ts'), regressionTest(r));
  return { ...paths, written: true };
}
