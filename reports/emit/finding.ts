/**
 * A report.json as a finding to reproduce, and where its reproducers go: `repro.c` and
 * `vpmu_<id>_test.c` beside a report.json, or `<stem>.repro.c` and `vpmu_<stem>_test.c` beside
 * another file (the filed findings, `reports/filed/NNNN-slug.json`).
 */

import { basename, dirname, join } from 'node:path';
import type { Profile } from '../../model/hw/profile.js';
import type { Design } from '../../properties/design.js';
import type { ReplayableReport } from '../file.js';
import { programRun, replay } from '../replay.js';
import type { Finding } from './emit.js';

/** The program index of the report's divergence, by replaying it (what the reproducer keeps checked). */
export function targetOf(
  t: { design: Design; host: Profile; cpus: number; guest: ReplayableReport['guest']; gen?: string | undefined },
  r: ReplayableReport,
): { source: number; kind: string } | undefined {
  const rep = replay({ ...t, shows: r.file.id }, r.kase, { trace: true });
  const d = rep.divergence;
  if (d === null) return undefined;
  const i = rep.steps.findIndex((s) => s.observations.includes(d));
  return i < 0 ? undefined : { source: i, kind: d.kind };
}

export function findingOfReport(
  r: ReplayableReport,
  design: Design,
  host: Profile,
  opts: { regenerate: string; reportPath?: string },
): Finding {
  const f = r.file;
  const t = { design, host, cpus: f.cpus, guest: r.guest, gen: f.gen };
  const k = r.kase;
  const program = programRun(k);
  const baseline =
    k.property === 'no-leak'
      ? k.baseline
      : k.property === 'invisible'
        ? program.map((c, i) => (i === Math.min(k.insertion.at, k.program.length) ? null : c))
        : undefined;
  return {
    id: f.id,
    title: f.title,
    property: k.property,
    design,
    hostName: f.host,
    host,
    cpus: f.cpus,
    guest: r.guest,
    program,
    ...(baseline !== undefined ? { baseline } : {}),
    target: targetOf(t, r),
    regenerate: opts.regenerate,
    ...(opts.reportPath !== undefined ? { reportPath: opts.reportPath } : {}),
  };
}

/** The reproducer file names for a report file. */
export function reproducerPaths(reportFile: string, id: string): { repro: string; selftest: string } {
  const dir = dirname(reportFile);
  const stem = basename(reportFile) === 'report.json' ? null : basename(reportFile).replace(/\.json$/, '');
  const name = (stem ?? id).replace(/[^A-Za-z0-9]+/g, '_').toLowerCase();
  return {
    repro: join(dir, stem === null ? 'repro.c' : `${stem}.repro.c`),
    selftest: join(dir, `vpmu_${name}_test.c`),
  };
}
