/**
 * Versions recorded next to the replay token: a seed/path/replayPath triple is only valid for
 * the fast-check version and generator sources that produced it (toolchain.md §1.4), so the
 * report names both; the hash says whether the generators changed since.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';

// The repository root, from reports/ in the sources and from dist/ in the build alike.
const root = new URL('../', import.meta.url);

/** The sources that decide what fast-check generates, whatever the property. */
const COMMON_SOURCES = [
  'scenarios/arbitraries.ts',
  'scenarios/generation.ts',
  'scenarios/vmm.ts',
  'scenarios/work.ts',
  'scenarios/values.ts',
];

/** Each property's own generators (its arbitrary lives beside its check). */
const PROPERTY_SOURCES: Readonly<Record<string, string>> = {
  conformance: 'properties/conformance.ts',
  'lbr-freeze': 'properties/lbr_freeze.ts',
  'no-leak': 'properties/noninterference.ts',
  'host-undisturbed': 'properties/host_undisturbed.ts',
  invisible: 'properties/invisible.ts',
};

function read(rel: string): string | null {
  try {
    return readFileSync(new URL(rel, root), 'utf8');
  } catch {
    return null;
  }
}

export interface Versions {
  readonly fastCheck: string;
  readonly node: string;
  readonly package: string;
  readonly generators: string;
}

export function versions(property = 'conformance'): Versions {
  const pkg = read('package.json');
  const version = pkg === null ? undefined : (JSON.parse(pkg) as { version?: unknown }).version;
  const h = createHash('sha256');
  for (const f of [...COMMON_SOURCES, PROPERTY_SOURCES[property] ?? PROPERTY_SOURCES.conformance!])
    h.update(`${f}\0${read(f) ?? ''}\0`);
  return {
    fastCheck: fc.__version,
    node: process.version,
    package: typeof version === 'string' ? version : 'unknown',
    generators: `sha256:${h.digest('hex').slice(0, 16)}`,
  };
}
