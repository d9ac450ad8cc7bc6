/**
 * Writes a report to <outDir>/<id>/ (report.md, report.json, regression.test.ts). The id is the
 * root-cause signature, so a second failure with the same signature lands in the same folder:
 * the shorter program wins, and an equal or longer one leaves the existing report alone.
 *
 * The three files are written into a temporary folder beside it and renamed into place, so a run
 * stopped half-way (Ctrl-C, a full disk) never leaves a report whose files disagree.
 */

import {
  closeSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
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

function writeDurably(path: string, text: string): void {
  const fd = openSync(path, 'wx');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Puts the folder `tmp` at `dir`. A folder cannot be renamed onto a non-empty one, so an old report
 * is renamed away first and removed after; if another writer got there in between, try again.
 */
function publish(tmp: string, dir: string, outDir: string, id: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      renameSync(tmp, dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || attempt === 3) throw e;
    }
    const old = mkdtempSync(join(outDir, `.${id}.old-`));
    try {
      renameSync(dir, join(old, 'report'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    rmSync(old, { recursive: true, force: true });
  }
}

export function writeReport(r: Report, outDir: string): Written {
  const dir = join(outDir, r.file.id);
  const paths = { dir, markdown: join(dir, 'report.md'), json: join(dir, 'report.json') };
  const old = existingLength(paths.json);
  if (old !== null && old <= r.file.program.length) return { ...paths, written: false };
  mkdirSync(outDir, { recursive: true });
  // Same file system as the destination (a rename across file systems fails).
  const tmp = mkdtempSync(join(outDir, `.${r.file.id}.tmp-`));
  try {
    writeDurably(join(tmp, 'report.json'), reportToText(r.file));
    writeDurably(join(tmp, 'report.md'), reportMarkdown(r));
    writeDurably(join(tmp, 'regression.test.ts'), regressionTest(r));
    publish(tmp, dir, outDir, r.file.id);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { ...paths, written: true };
}
