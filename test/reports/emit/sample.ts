/**
 * A fixed-seed sample of generated reports, one per property kind: the check `npm start` runs,
 * on a ported bug or a planted fault (planted.ts), on the first seed that fails, built into a
 * report as `npm start` builds it, then read back as a finding. `npm run reproducers:check`
 * compiles their reproducers; test/reports/emit/properties.test.ts checks their predictions.
 */

import fc from 'fast-check';
import { BUILTIN_PROFILES } from '../../../model/hw/profiles.js';
import { designById } from '../../../designs/registry.js';
import { designChecks } from '../../../properties/checks.js';
import type { Design } from '../../../properties/design.js';
import { buildReport } from '../../../reports/build.js';
import { parseReport, reportToText } from '../../../reports/file.js';
import type { PropertyId } from '../../../reports/replay.js';
import type { Finding } from '../../../reports/emit/emit.js';
import { findingOfReport } from '../../../reports/emit/finding.js';
import { PLANTED } from '../planted.js';

/** Seeds on which each check fails within a few hundred programs (the search is the test's cost). */
export const SAMPLE: readonly {
  property: PropertyId;
  design: string;
  seeds: readonly number[];
  /** The check's generation profile where not its first (quiet, or the property's only run). */
  gen?: 'beyond-supported';
}[] = [
  { property: 'conformance', design: 'bug/5728a4a0ea79', seeds: [10, 6] },
  // A v4 guest, beyond the version 2 KVM reports: the property's beyond-supported run.
  { property: 'lbr-freeze', design: 'test/undeclared-v4-freeze', seeds: [5, 2], gen: 'beyond-supported' },
  { property: 'no-leak', design: 'test/leaks-host-pmc0', seeds: [9, 8] },
  { property: 'host-undisturbed', design: 'bug/971079464001', seeds: [5, 6] },
  { property: 'invisible', design: 'test/loses-counters-on-migrate', seeds: [4, 7] },
];

export const sampleDesign = (id: string): Design => PLANTED[id] ?? designById(id);

export function sampleFinding(s: (typeof SAMPLE)[number]): Finding {
  const design = sampleDesign(s.design);
  const check = designChecks(design, 'skylake', BUILTIN_PROFILES.skylake!).find(
    (c) => c.id === s.property && (s.gen !== undefined ? c.gen === s.gen : c.gen === undefined || c.gen === 'quiet'),
  );
  if (check === undefined) throw new Error(`no ${s.property} check for ${s.design}`);
  for (const seed of s.seeds) {
    const details = fc.check(check.property(new Map()), { seed, numRuns: 1000 });
    if (!details.failed) continue;
    const r = buildReport({
      details,
      property: { id: check.id, rule: check.rule },
      gen: check.gen,
      design,
      hostName: 'skylake',
      host: BUILTIN_PROFILES.skylake!,
      found: 'sample',
      outDir: 'reports/out',
    });
    return findingOfReport(parseReport(reportToText(r.file)), design, BUILTIN_PROFILES.skylake!, {
      regenerate: 'npm run reproducers:check (sample)',
    });
  }
  throw new Error(`${s.design} did not fail ${s.property} on seeds ${s.seeds.join(', ')}`);
}
