/**
 * A finding's two reproducer files, rendered (and written): the standalone C and the KVM selftest,
 * with what the model predicts they do.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Design } from '../../properties/design.js';
import { type Emission, emitFinding, type Finding } from './emit.js';
import { failureText, renderRepro, renderSelftest } from './render_c.js';

export interface EmittedFile {
  readonly path: string;
  readonly text: string;
}

export interface Emitted {
  readonly emission: Emission;
  readonly repro: EmittedFile;
  readonly selftest: EmittedFile;
}

export type EmitKind = 'c' | 'selftest';

export function emitFiles(
  f: Finding,
  paths: { readonly repro: string; readonly selftest: string },
  fixed?: Design,
): Emitted {
  const emission = emitFinding(f, fixed);
  return {
    emission,
    repro: { path: paths.repro, text: renderRepro(emission, basename(paths.repro)) },
    selftest: { path: paths.selftest, text: renderSelftest(emission, basename(paths.selftest)) },
  };
}

export function writeEmitted(e: Emitted, kinds: readonly EmitKind[] = ['c', 'selftest']): string[] {
  const out: string[] = [];
  for (const k of kinds) {
    const f = k === 'c' ? e.repro : e.selftest;
    mkdirSync(dirname(f.path), { recursive: true });
    writeFileSync(f.path, f.text);
    out.push(f.path);
  }
  return out;
}

/** One line: what the model predicts the reproducer does. */
export function predictionLine(e: Emission): string {
  return e.onDesign === null
    ? 'the model predicts it passes on a kernel like the design too: it cannot show this finding'
    : `the model predicts it fails on a kernel like the design at ${failureText(e.onDesign)}`;
}
