/**
 * The historical bug catalogue (../shared/bugs.md), ported: each in-scope row as a design with
 * the fix reverted and the check that must find it; each other row with why it cannot fit.
 * `npm run bugs` measures them; test/bugs/catalogue.test.ts holds each to its budget.
 */

import { designById, DESIGNS, type Design } from '../properties/designs.js';
import { EMULATED_EXPECTATIONS } from '../properties/expectations/emulated.js';
import type { BugEntry, OutOfScope } from './types.js';

const emulated = designById('emulated');

/** A bug KVM still has: the faithful design, with the divergence that declares it taken out. */
function undeclared(id: string, title: string): Design {
  return {
    ...emulated,
    id: `undeclared/${id}`,
    title,
    expectations: EMULATED_EXPECTATIONS.filter((e) => e.id !== id),
  };
}

const design = (id: string): Design => {
  const d = DESIGNS.find((x) => x.id === id);
  if (d === undefined) throw new Error(`catalogue: no design '${id}'`);
  return d;
};

export const CATALOGUE: readonly BugEntry[] = [
  {
    row: 1,
    subject: 'perf/x86: fix masking logic for MSR_CORE_PERF_GLOBAL_CTRL',
    fixedBy: '971079464001',
    kernel: '6.7',
    classes: ['HL'],
    design: design('bug/971079464001'),
    check: 'host-undisturbed',
    host: 'skylake',
    minimalTrigger: 2,
    trigger: 'host opens an exclude_guest counter; the guest runs',
  },
  {
    row: 17,
    subject: 'v4+ streamlined Freeze_LBRs_On_PMI not emulated (no upstream fix)',
    fixedBy: null,
    kernel: 'all (proposal of 2023 unmerged)',
    classes: ['FZ', 'AC'],
    design: undeclared('no-v4-lbr-freeze', 'bugs.md #17: no LBR freeze for PMU v4+ guests (undeclared)'),
    check: 'lbr-freeze',
    host: 'skylake',
    minimalTrigger: 6,
    trigger: 'v4 guest: DEBUGCTL=LBR|FRZ, EVNTSEL0 branches with INT, PMC0=-k, GLOBAL_CTRL=1, branchy run, RDMSR GLOBAL_STATUS',
    report: 'reports/0002-kvm-no-lbr-freeze-for-pmu-v4.md',
  },
  {
    row: 41,
    subject: 'KVM: x86/pmu: Disallow "fast" RDPMC for architectural Intel PMUs',
    fixedBy: '5728a4a0ea79',
    kernel: '6.9',
    classes: ['GP'],
    design: design('bug/5728a4a0ea79'),
    check: 'conformance',
    host: 'skylake',
    minimalTrigger: 1,
    trigger: 'RDPMC(0x80000000)',
  },
];

export const OUT_OF_SCOPE: readonly OutOfScope[] = [];
