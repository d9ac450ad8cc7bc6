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
import { basename, join } from 'node:path';
import type { Report } from './build.js';
import { parseReport, reportToText } from './file.js';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { emitFiles, type EmittedFile, predictionLine } from './emit/files.js';
import { findingOfReport, reproducerPaths } from './emit/finding.js';
import { regressionTest, reportMarkdown, type ReproducerLinks } from './render.js';

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

/**
 * A report's files as text, ready to be put in place: what a worker thread hands back, so that the
 * main thread publishes the reports of a run in the run's order whatever the number of workers.
 */
export interface RenderedReport {
  readonly id: string;
  readonly programLength: number;
  readonly files: readonly { readonly name: string; readonly text: string }[];
}

export function renderReport(r: Report, outDir: string): RenderedReport {
  const json = join(outDir, r.file.id, 'report.json');
  const repro = reproducers(r, json);
  return {
    id: r.file.id,
    programLength: r.file.program.length,
    files: [
      { name: 'report.json', text: reportToText(r.file) },
      { name: 'report.md', text: reportMarkdown(r, repro.links) },
      { name: 'regression.test.ts', text: regressionTest(r) },
      ...repro.files.map((f) => ({ name: basename(f.path), text: f.text })),
    ],
  };
}

/** Puts a rendered report in place unless one with the same signature and a program no longer is there. */
export function publishReport(p: RenderedReport, outDir: string): Written {
  const dir = join(outDir, p.id);
  const paths = { dir, markdown: join(dir, 'report.md'), json: join(dir, 'report.json') };
  const old = existingLength(paths.json);
  if (old !== null && old <= p.programLength) return { ...paths, written: false };
  mkdirSync(outDir, { recursive: true });
  // Same file system as the destination (a rename across file systems fails).
  const tmp = mkdtempSync(join(outDir, `.${p.id}.tmp-`));
  try {
    for (const f of p.files) writeDurably(join(tmp, f.name), f.text);
    publish(tmp, dir, outDir, p.id);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { ...paths, written: true };
}

export function writeReport(r: Report, outDir: string): Written {
  return publishReport(renderReport(r, outDir), outDir);
}

/**
 * The report's reproducers (standalone C and KVM selftest), to be written beside it, and report.md's
 * links to them; a failure to emit is said in report.md, not fatal to the report.
 */
function reproducers(r: Report, json: string): { links: ReproducerLinks; files: readonly EmittedFile[] } {
  try {
    const host = BUILTIN_PROFILES[r.file.host];
    if (host === undefined) return { links: { error: `unknown host '${r.file.host}'` }, files: [] };
    const f = findingOfReport(parseReport(reportToText(r.file)), r.design, host, {
      regenerate: `npm run replay -- ${json} --emit both`,
    });
    const e = emitFiles(f, reproducerPaths(json, r.file.id));
    return {
      links: {
        repro: basename(e.repro.path),
        selftest: basename(e.selftest.path),
        prediction: predictionLine(e.emission),
      },
      files: [e.repro, e.selftest],
    };
  } catch (e) {
    return { links: { error: `the emitter failed: ${e instanceof Error ? e.message : String(e)}` }, files: [] };
  }
}
