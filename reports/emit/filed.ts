/**
 * The filed findings' reproducers: each reports/filed/NNNN-slug.json (a report.json of the
 * finding) gives reports/filed/NNNN-slug.repro.c and reports/filed/vpmu_NNNN_slug_test.c.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { designById } from '../../designs/registry.js';
import { parseReport } from '../file.js';
import type { Finding } from './emit.js';
import { findingOfReport, reproducerPaths } from './finding.js';

export const FILED_DIR = 'reports/filed';

export interface FiledFinding {
  readonly json: string;
  readonly finding: Finding;
  readonly paths: { readonly repro: string; readonly selftest: string };
}

/** Every filed finding with a report.json, in file order (paths relative to the repository). */
export function filedFindings(root = '.'): FiledFinding[] {
  return readdirSync(join(root, FILED_DIR))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const json = `${FILED_DIR}/${f}`;
      const r = parseReport(readFileSync(join(root, json), 'utf8'));
      const host = BUILTIN_PROFILES[r.file.host];
      if (host === undefined) throw new Error(`${json}: unknown host '${r.file.host}'`);
      const finding = findingOfReport(r, designById(r.file.design), host, {
        regenerate: 'npm run reproducers',
        reportPath: json.replace(/\.json$/, '.md'),
      });
      return { json, finding, paths: reproducerPaths(json, r.file.id) };
    });
}

const BEGIN = '<!-- reproducers: written by npm run reproducers -->';
const END = '<!-- /reproducers -->';

/** The filed finding's Markdown with its reproducers section (added at the end, or replaced). */
export function withReproducersSection(md: string, f: FiledFinding, prediction: string): string {
  const file = (p: string) => p.replace(`${FILED_DIR}/`, '');
  const section = `${BEGIN}
## Reproducers (not run on hardware yet)

- [\`${file(f.paths.repro)}\`](${file(f.paths.repro)}): standalone, raw \`/dev/kvm\` ioctls and the system's \`<linux/kvm.h>\`: \`gcc -O2 -Wall -o repro ${file(f.paths.repro)} && ./repro\`. Exit 0: the divergence is absent; 1: present (it prints the first divergent observation); 2: the reproducer itself failed; 77: the host lacks what the program needs.
- [\`${file(f.paths.selftest)}\`](${file(f.paths.selftest)}): the same program as a KVM selftest (\`tools/testing/selftests/kvm/x86/\`, \`x86_64/\` before 6.14); its header says how to build it in a kernel tree.
- [\`${file(f.json)}\`](${file(f.json)}): the finding as a report.json (\`npm run replay -- ${f.json}\`).

They were generated where there is no \`/dev/kvm\` with an Intel PMU: ${prediction}. Nobody has run them on an Intel host yet; until someone does and reports back what they print, that is a prediction (README, "Reproducers").
${END}
`;
  const i = md.indexOf(BEGIN);
  if (i < 0) return `${md.trimEnd()}\n\n${section}`;
  const j = md.indexOf(END, i);
  return `${md.slice(0, i)}${section}${md.slice(j + END.length + 1)}`;
}
