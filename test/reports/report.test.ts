import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { conformanceProperty } from '../../properties/conformance.js';
import { designById } from '../../designs/registry.js';
import type { Design } from '../../properties/design.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { buildReport, type Report } from '../../reports/build.js';
import { parseReport } from '../../reports/file.js';
import { postShrink } from '../../reports/minimize.js';
import { FIRST_DIVERGENCE, regressionTest, reportMarkdown } from '../../reports/render.js';
import { fails, replay } from '../../reports/replay.js';
import { ruleFor, titleFor } from '../../reports/rules.js';
import { pmiShape, reportId, signatureOf } from '../../reports/signature.js';
import { writeReport } from '../../reports/write.js';
import { GuestRdmsr, GuestRdpmc, GuestRun, GuestWrmsr, Migrate } from '../../scenarios/commands.js';
import { programToJson } from '../../scenarios/serialize.js';
import type { GuestConfig } from '../../scenarios/world.js';
import { ACCEPTED, gpOutcome, type Observation, pmisOutcome, valueOutcome } from '../../scenarios/observation.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_INUSE,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
} from '../../model/hw/msr/global.js';
import { MSR_P6_EVNTSEL0, MSR_IA32_PMC0 } from '../../model/hw/msr/counters.js';

const bug = designById('bug/5728a4a0ea79');
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0, ecx: 0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x2000n,
};
const target = { design: bug, host: SKYLAKE, cpus: 2, guest };
const tmp = mkdtempSync(join(tmpdir(), 'vpmu-reports-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The bug #41 catch, as npm start makes it: fc.check of the conformance property on the bug design. */
function bug41Report(): Report {
  const details = fc.check(
    conformanceProperty({ host: SKYLAKE, design: bug.factory, expectations: bug.expectations }),
    { seed: 1, numRuns: 1000 },
  );
  expect(details.failed).toBe(true);
  return buildReport({
    details,
    property: { id: 'conformance', rule: 'design.md property 1 (bug/5728a4a0ea79, quiet host)' },
    design: bug,
    hostName: 'skylake',
    host: SKYLAKE,
    found: '2026-01-01',
    outDir: 'reports/out',
  });
}

describe('a report built from the bug #41 run', () => {
  const r = bug41Report();
  const md = reportMarkdown(r);

  it('has a kernel-style title naming the instruction and both sides', () => {
    expect(r.file.title).toBe(
      '[conformance] KVM: x86/pmu: guest RDPMC 0x80000000 at CPL 0 returns 0x0 where bare metal raises #GP',
    );
    expect(md.split('\n')[0]).toBe(`# ${r.file.title}`);
  });

  it('has the one-command program, as pasteable code and as JSON', () => {
    expect(r.program.map(String)).toEqual(['new GuestRdpmc(0, 0x80000000, 0)']);
    expect(r.file.program).toEqual([{ cmd: 'GuestRdpmc', args: [0, '0x80000000', 0] }]);
    expect(md).toContain('fc.modelRun(setup, [\n  new GuestRdpmc(0, 0x80000000, 0),\n]);');
  });

  it('has the first divergent observation with the rule that decides it', () => {
    expect(r.file.divergence).toMatchObject({ kind: 'rdpmc', target: '0x80000000', sut: '0x0', oracle: '#GP' });
    expect(r.file.divergence.rule).toContain('§4.9 RDPMC');
    expect(r.file.divergence.rule).toContain('ECX[31]');
    expect(md).toContain('| guest under `bug/5728a4a0ea79` | 0x0 |');
    expect(md).toContain('| bare metal (reference model) | #GP |');
  });

  it('has the trace with the first divergence marked, the replay command, the search token and versions', () => {
    expect(md).toMatch(
      new RegExp(
        `\\| 1 \\| \`new GuestRdpmc\\(0, 0x80000000, 0\\)\` \\| RDPMC 0x80000000 at CPL 0 \\| 0x0 \\| #GP \\| \\*\\*${FIRST_DIVERGENCE}\\*\\* \\|`,
      ),
    );
    expect(r.file.replay).toBe(
      'npm run replay -- reports/out/bug-5728a4a0ea79-rdpmc-0x80000000-bare-metal-gp/report.json',
    );
    expect(md).toContain(r.file.replay);
    expect(r.file.search).toMatchObject({ seed: 1, postShrunkCommands: 1 });
    expect(r.file.search.path).toMatch(/^\d+(:\d+)*$/);
    expect(r.file.search.replayPath).not.toBeNull();
    expect(r.file.versions.fastCheck).toBe(fc.__version);
    // Read from the repository root, as the generator sources the hash covers are.
    expect(r.file.versions.package).toBe(
      (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version,
    );
    expect(md).toContain("## fast-check's report");
  });

  it('writes report.md, report.json (which reads back) and a regression test', () => {
    const w = writeReport(r, tmp);
    expect(w.written).toBe(true);
    const back = parseReport(readFileSync(w.json, 'utf8'));
    expect(back.program.map(String)).toEqual(r.program.map(String));
    expect(back.guest).toEqual(r.guest);
    expect(readFileSync(join(w.dir, 'regression.test.ts'), 'utf8')).toContain(
      "expect(firstDivergence('skylake', guest, program, 'bug/5728a4a0ea79', 2)).toMatchObject(",
    );
  });

  it('dedupes by signature: an equal or longer program keeps the existing report, a shorter one replaces it', () => {
    const extra = new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_CTRL);
    const longer: Report = {
      ...r,
      program: [extra, ...r.program],
      file: { ...r.file, program: programToJson([extra, ...r.program]) },
    };
    writeReport(longer, join(tmp, 'dedupe'));
    expect(writeReport(r, join(tmp, 'dedupe')).written).toBe(true);
    expect(writeReport(longer, join(tmp, 'dedupe')).written).toBe(false);
    expect(writeReport(r, join(tmp, 'dedupe')).written).toBe(false);
  });
});

describe('post-shrinking', () => {
  it('deletes commands and work units the divergence does not need', () => {
    const program = [
      new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1n),
      new GuestRun(0, [
        { cpl: 3, instructions: 1 },
        { cpl: 0, instructions: 2 },
      ]),
      new Migrate(0, 1),
      new GuestRdpmc(0, 0x80000000, 0),
    ];
    const r = replay(target, program);
    expect(fails(r)).toBe(true);
    const sig = signatureOf(bug.id, r.divergence!);
    expect(postShrink(target, program, sig).map(String)).toEqual(['new GuestRdpmc(0, 0x80000000, 0)']);
  });

  it('keeps a command the divergence needs', () => {
    // A made-up design that misreads GLOBAL_CTRL only after EVTSEL0 was written.
    class AfterEvtsel extends EmulatedVcpu {
      private armed = false;
      override guestWrmsr(msr: number, value: bigint) {
        if (msr === MSR_P6_EVNTSEL0) this.armed = true;
        return super.guestWrmsr(msr, value);
      }
      override guestRdmsr(msr: number) {
        const r = super.guestRdmsr(msr);
        return this.armed && msr === MSR_CORE_PERF_GLOBAL_CTRL && r.ok ? { ok: true as const, value: r.value ^ 1n } : r;
      }
    }
    const design: Design = {
      ...designById('emulated'),
      id: 'test/after-evtsel',
      factory: (h, o) => new AfterEvtsel(h, o),
    };
    const t = { ...target, design };
    const program = [
      new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x4300c0n),
      new Migrate(0, 1),
      new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_CTRL),
    ];
    const sig = signatureOf(design.id, replay(t, program).divergence!);
    expect(postShrink(t, program, sig).map(String)).toEqual([
      'new GuestWrmsr(0, 0x186, 0x4300c0n)',
      'new GuestRdmsr(0, 0x38f)',
    ]);
    // A program that does not fail is left as it is.
    expect(postShrink({ ...target, design: designById('emulated') }, program, sig)).toHaveLength(4);
  });
});

const GP = gpOutcome('a rule');
const NO_PMI = pmisOutcome([]);

describe('signatures, rules and titles', () => {
  const obs = (o: Partial<Observation>): Observation => ({
    step: 1,
    vcpu: 0,
    kind: 'rdmsr',
    target: MSR_CORE_PERF_GLOBAL_STATUS,
    value: null,
    sut: valueOutcome(0n),
    oracle: valueOutcome(1n),
    ...o,
  });

  it('tell PMI differences apart by shape', () => {
    const pmi = (afterUnit: number, vector = 2) => pmisOutcome([{ afterUnit, vector }]);
    expect(pmiShape(NO_PMI, pmi(4))).toBe('missing-pmi');
    expect(pmiShape(pmi(1), NO_PMI)).toBe('extra-pmi');
    expect(pmiShape(pmi(1), pmi(1, 254))).toBe('pmi-vector');
    expect(pmiShape(pmi(1), pmi(4))).toBe('pmi-timing');
  });

  it('keep design, kind, target and which side #GP-ed, and drop values', () => {
    expect(
      signatureOf('emulated', obs({ sut: GP, oracle: valueOutcome(0n), target: MSR_CORE_PERF_GLOBAL_INUSE })),
    ).toBe('emulated|rdmsr|0x392|guest-gp');
    expect(signatureOf('emulated', obs({}))).toBe(
      signatureOf('emulated', obs({ sut: valueOutcome(5n), oracle: valueOutcome(7n) })),
    );
    expect(
      signatureOf(
        'emulated',
        obs({ kind: 'run', target: null, sut: NO_PMI, oracle: pmisOutcome([{ afterUnit: 4, vector: 2 }]) }),
      ),
    ).toBe('emulated|run|-|missing-pmi');
    expect(reportId('emulated|run|-|missing-pmi')).toBe('emulated-run-missing-pmi');
  });

  it('cite the SDM section, the KVM functions and the pmu-semantics.md section for the MSR family', () => {
    expect(ruleFor(obs({ target: MSR_CORE_PERF_GLOBAL_STATUS }))).toBe(
      'Intel SDM Vol. 3B §18.2.2 "Architectural Performance Monitoring Version 2"; KVM: kvm_pmu_get_msr/kvm_pmu_set_msr (pmu.c), intel_pmu_get_msr/intel_pmu_set_msr (vmx/pmu_intel.c); kvm_perf_overflow, pmc_pause_counter (pmu.c) set its bits; docs/pmu-semantics.md §2.6 IA32_PERF_GLOBAL_STATUS',
    );
    const evtsel = ruleFor(obs({ kind: 'wrmsr', target: MSR_P6_EVNTSEL0, sut: GP, oracle: ACCEPTED }));
    expect(evtsel).toMatch(
      /^Intel SDM Vol\. 3B §18\.2\.1 "Architectural Performance Monitoring Version 1"; Intel SDM Vol\. 4 /,
    );
    expect(evtsel).toContain('KVM: kvm_pmu_get_msr/kvm_pmu_set_msr (pmu.c)');
    expect(evtsel).toMatch(/docs\/pmu-semantics\.md §2\.3 IA32_PERFEVTSELi; §5 #GP master table$/);
    const pmi = ruleFor(obs({ kind: 'pmi', target: MSR_IA32_PMC0 }));
    expect(pmi).toContain('§4.3');
    expect(pmi).toContain('Intel SDM Vol. 3A "Local Vector Table"');
    expect(pmi).toContain('kvm_pmu_deliver_pmi');
  });

  it('title a divergence in domain words', () => {
    expect(titleFor(obs({ sut: GP, oracle: valueOutcome(0n), target: MSR_CORE_PERF_GLOBAL_INUSE }))).toBe(
      '[conformance] KVM: x86/pmu: guest RDMSR IA32_PERF_GLOBAL_INUSE (0x392) raises #GP where bare metal reads 0x0',
    );
    expect(titleFor(obs({ kind: 'wrmsr', target: MSR_CORE_PERF_GLOBAL_OVF_CTRL, sut: ACCEPTED, oracle: GP }))).toBe(
      '[conformance] KVM: x86/pmu: guest WRMSR IA32_PERF_GLOBAL_OVF_CTRL (0x390) is accepted where bare metal raises #GP',
    );
    expect(
      titleFor(
        obs({ kind: 'run', target: null, units: 6, sut: NO_PMI, oracle: pmisOutcome([{ afterUnit: 4, vector: 2 }]) }),
      ),
    ).toBe('[conformance] KVM: x86/pmu: guest gets no PMI during guest work where bare metal delivers one');
    // An XSAVES names the first field of the image that differs, not RDMSR and the whole image.
    const area = { lbrCtl: 0x7f000fn, lbrDepth: 32n, lerFrom: 0n, lerTo: 0n, lerInfo: 0n, entries: [] };
    const xsave = obs({
      kind: 'xsaves',
      target: null,
      sut: { kind: 'xsave', area },
      oracle: { kind: 'xsave', area: { ...area, lbrCtl: 0x7f000en } },
    });
    expect(titleFor(xsave)).toBe(
      '[conformance] KVM: x86/pmu: guest XSAVES of the Arch LBR state saves LBR_CTL 0x7f000f where bare metal saves 0x7f000e',
    );
  });
});

describe('the generated regression test', () => {
  it('replays the plain program under the report design and pins the observation', () => {
    const src = regressionTest(bug41Report());
    expect(src).toContain('new GuestRdpmc(0, 0x80000000, 0),');
    expect(src).toContain("import { GuestRdpmc } from '../../scenarios/commands.js';");
    expect(src).toContain("import { firstDivergence } from '../../designs/registry.js';");
    expect(src).toContain(
      "{ kind: 'rdpmc', target: 0x80000000, sut: { kind: 'value', value: 0x0n }, oracle: { kind: 'gp' } }",
    );
  });
});
