/**
 * The catalogue as a regression suite upstream could take: each ported row's shrunk program (the
 * one `npm run bugs` finds on its first seed, unless said otherwise), kept as code so it does not
 * depend on the generators. `npm run reproducers` emits each as a KVM selftest and a standalone reproducer under
 * catalogue/regression/; test/catalogue/regression.test.ts holds every one to failing on the ported
 * bug and, where upstream has a fix, passing on the fixed design, in the model.
 */

import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { attr } from '../model/host/types.js';
import { designById } from '../designs/registry.js';
import { CONFORMANCE_CPUS } from '../properties/conformance.js';
import type { Design } from '../properties/design.js';
import type { Finding } from '../reports/emit/emit.js';
import { replay } from '../reports/replay.js';
import { CATALOGUE } from './catalogue.js';
import type { BugEntry } from './types.js';
import {
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
  HostOpen,
  Migrate,
  type WorldCommand,
} from '../scenarios/commands.js';
import { IrqExit, VmmGetMsr, VmmSetCpuid, VmmSetMsr, VmmSetPmuEventFilter } from '../scenarios/vmm.js';
import type { GuestConfig } from '../scenarios/world.js';

export interface RegressionProgram {
  /** The bugs.md row (catalogue.ts). */
  readonly row: number;
  readonly guest: GuestConfig;
  readonly program: readonly WorldCommand[];
}

export const REGRESSION_PROGRAMS: readonly RegressionProgram[] = [
  {
    row: 1,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300101, ebx: 0x2, ecx: 0x0, edx: 0x0 }, pdcm: false },
      perfCapabilities: 0x2000n,
    },
    program: [
      new HostOpen(1, attr({ config: 0xc0n, pinned: true, exclude_kernel: true, exclude_guest: true })),
      new Migrate(0, 1),
      new GuestRun(0, [
        {
          cpl: 3,
          instructions: 1,
          cycles: 0,
          refCycles: 0,
          tscCycles: 0,
          llcReferences: 0,
          llcMisses: 0,
          untakenBranches: 0,
          branches: [{ from: 0x400000n, to: 0x400000n, kind: 'COND', mispredict: false, cpl: 3 }],
          slots: {
            retiring: 0,
            badSpeculation: 0,
            frontendBound: 0,
            backendBound: 0,
            heavyOperations: 0,
            branchMispredicts: 0,
            fetchLatency: 0,
            memoryBound: 0,
          },
        },
      ]),
    ],
  },
  {
    row: 9,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300204, ebx: 0x73, ecx: 0x0, edx: 0x603 }, pdcm: true },
      perfCapabilities: 0x2005n,
    },
    program: [
      new HostOpen(0, attr({ config: 0x3cn, sample_period: 0x32n, pinned: true, exclude_guest: true })),
      new IrqExit(0, [{ cpl: 0, instructions: 17, cycles: 51 }]),
    ],
  },
  {
    row: 10,
    guest: {
      cpuid: { family: 6, model: 0x8f, leaf0a: { eax: 0x8300002, ebx: 0x67, ecx: 0x0, edx: 0x603 }, pdcm: true },
      perfCapabilities: 0x0n,
    },
    program: [new VmmSetMsr(0, 0x345, 0x203fn)],
  },
  {
    row: 11,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300005, ebx: 0x0, ecx: 0x0, edx: 0x602 }, pdcm: true },
      perfCapabilities: 0x2005n,
    },
    program: [new GuestRdmsr(0, 0x1c8)],
  },
  {
    row: 13,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300105, ebx: 0x7f, ecx: 0x0, edx: 0x602 }, pdcm: true },
      perfCapabilities: 0x2005n,
    },
    program: [new GuestWrmsr(0, 0x1c8, 0x400n)],
  },
  {
    row: 14,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300003, ebx: 0x1, ecx: 0x0, edx: 0x600 }, pdcm: false },
      perfCapabilities: 0x0n,
    },
    program: [new GuestRdpmc(0, 0x0, 0)],
  },
  {
    row: 17,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300405, ebx: 0x0, ecx: 0x0, edx: 0x603 }, pdcm: true },
      perfCapabilities: 0x2005n,
    },
    program: [
      new GuestWrmsr(0, 0x1d9, 0x801n),
      new GuestWrmsr(0, 0x186, 0x5300c4n),
      new GuestWrmsr(0, 0x4c1, 0xfffffffffffen),
      new GuestWrmsr(0, 0x38f, 0x1n),
      new GuestRun(0, [
        {
          cpl: 0,
          instructions: 2,
          cycles: 2,
          branches: [{ from: 0xffffffff81000000n, to: 0xffffffff81000000n, kind: 'COND', mispredict: false, cpl: 0 }],
        },
      ]),
      new GuestRun(0, [
        {
          cpl: 0,
          instructions: 2,
          cycles: 2,
          branches: [{ from: 0xffffffff81000000n, to: 0xffffffff81000000n, kind: 'COND', mispredict: false, cpl: 0 }],
        },
      ]),
      new GuestRdmsr(0, 0x38e),
    ],
  },
  {
    row: 34,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300302, ebx: 0x2f, ecx: 0x0, edx: 0x603 }, pdcm: true },
      perfCapabilities: 0x2000n,
    },
    program: [
      new VmmSetMsr(0, 0xc3, 0xffffffffffffn),
      new VmmSetCpuid(0, {
        cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300301, ebx: 0x1, ecx: 0x0, edx: 0x0 }, pdcm: true },
        perfCapabilities: 0x0n,
      }),
      new GuestRdmsr(0, 0xc3),
    ],
  },
  {
    row: 35,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300302, ebx: 0x2f, ecx: 0x0, edx: 0x603 }, pdcm: true },
      perfCapabilities: 0x2000n,
    },
    program: [new GuestWrmsr(0, 0x187, 0x4200c0n), new GuestRdpmc(0, 0x1, 0)],
  },
  {
    row: 36,
    // Seed 4's program: seed 1's counts the cycles of a CPL-3 run with no instructions, which
    // hardware need not count at CPL 3 at all, so it could not show the bug there.
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300301, ebx: 0x0, ecx: 0x0, edx: 0x0 }, pdcm: true },
      perfCapabilities: 0x2005n,
    },
    program: [new GuestWrmsr(0, 0x186, 0x4200c0n), new GuestRdmsr(0, 0xc1)],
  },
  {
    row: 41,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300102, ebx: 0x1, ecx: 0x0, edx: 0x600 }, pdcm: true },
      perfCapabilities: 0x0n,
    },
    program: [new GuestRdpmc(0, 0x80000000, 0)],
  },
  {
    row: 42,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300102, ebx: 0x1, ecx: 0x0, edx: 0x600 }, pdcm: true },
      perfCapabilities: 0x0n,
    },
    program: [new GuestRdpmc(0, 0x80000000, 0)],
  },
  {
    row: 45,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300002, ebx: 0x7f, ecx: 0x0, edx: 0x600 }, pdcm: false },
      perfCapabilities: 0x0n,
    },
    program: [new VmmGetMsr(0, 0x345)],
  },
  {
    row: 47,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300002, ebx: 0x0, ecx: 0x0, edx: 0x600 }, pdcm: true },
      perfCapabilities: 0x0n,
    },
    program: [],
  },
  {
    row: 49,
    guest: {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300203, ebx: 0x10, ecx: 0x0, edx: 0x600 }, pdcm: false },
      perfCapabilities: 0x2000n,
    },
    program: [
      new VmmSetPmuEventFilter({ action: 1, flags: 0, fixed_counter_bitmap: 0x0, events: [0xc0n, 0x4f2en] }),
      new GuestWrmsr(0, 0x186, 0x4200c0n),
      new GuestRdmsr(0, 0xc1),
    ],
  },
];

/** Where a row's reproducers go. */
export const REGRESSION_DIR = 'catalogue/regression';

/** The design with the row's fix in place: today's vPMU (or the mediated one for its own rule); none where upstream has no fix. */
export function fixedDesignOf(b: BugEntry): Design | undefined {
  if (b.fixedBy === null && !b.design.id.startsWith('bug/mediated')) return undefined;
  return designById(b.design.id.startsWith('bug/mediated') ? 'mediated' : 'emulated');
}

export interface RegressionFinding {
  readonly entry: BugEntry;
  readonly finding: Finding;
  readonly fixed: Design | undefined;
  readonly paths: { readonly repro: string; readonly selftest: string };
}

const slug = (b: BugEntry) =>
  `bug${b.row}_${b.fixedBy ?? b.design.id.replace(/^.*\//, '').replace(/[^a-z0-9]+/gi, '_')}`;

/** Each row's shrunk program as a finding of its check on its ported design. */
export function regressionFindings(): RegressionFinding[] {
  return REGRESSION_PROGRAMS.map((p) => {
    const b = CATALOGUE.find((x) => x.row === p.row);
    if (b === undefined) throw new Error(`catalogue/regression.ts: no catalogue row ${p.row}`);
    const host = BUILTIN_PROFILES[b.host];
    if (host === undefined) throw new Error(`catalogue row ${b.row}: unknown host '${b.host}'`);
    const t = { design: b.design, host, cpus: CONFORMANCE_CPUS, guest: p.guest };
    const bare = b.check === 'conformance' || b.check === 'lbr-freeze' || b.check === 'vmm-conformance';
    const r = bare ? replay(t, p.program) : null;
    const at =
      r?.divergence === null || r === null ? -1 : r.steps.findIndex((s) => s.observations.includes(r.divergence!));
    const finding: Finding = {
      id: slug(b).replace(/_/g, '-'),
      title: `bugs.md #${b.row}: ${b.subject}${b.fixedBy !== null ? ` (fixed by ${b.fixedBy}, ${b.kernel})` : ''}`,
      property: b.check,
      design: b.design,
      hostName: b.host,
      host,
      cpus: CONFORMANCE_CPUS,
      guest: p.guest,
      program: p.program,
      // The row's own divergence stays checked even where a declared one matches it too.
      target: at < 0 ? undefined : { source: at, kind: r!.divergence!.kind },
      regenerate: 'npm run reproducers',
      reportPath: `catalogue/catalogue.ts (row ${b.row})`,
    };
    return {
      entry: b,
      finding,
      fixed: fixedDesignOf(b),
      paths: {
        repro: `${REGRESSION_DIR}/${slug(b)}.repro.c`,
        selftest: `${REGRESSION_DIR}/vpmu_${slug(b).toLowerCase()}_test.c`,
      },
    };
  });
}
