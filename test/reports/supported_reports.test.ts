import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES, SKYLAKE } from '../../model/hw/profiles.js';
import { designById } from '../../designs/registry.js';
import { designChecks } from '../../properties/checks.js';
import { type Design, DesignError } from '../../properties/design.js';
import { lbrFreezeProperty } from '../../properties/lbr_freeze.js';
import { buildReport, ReportError, subjectPrefix, withRests } from '../../reports/build.js';
import { parseReport } from '../../reports/file.js';
import { reportMarkdown } from '../../reports/render.js';
import { KVM_PORT_BASE } from '../../model/kvm/base.js';
import { readFileSync } from 'node:fs';
import { replay } from '../../reports/replay.js';

const emulated = designById('emulated');
/** bugs.md #17 undeclared: the emulated vPMU's missing streamlined freeze for v4+ guests is then a finding. */
const undeclared: Design = {
  ...emulated,
  expectations: emulated.expectations.filter((e) => e.id !== 'no-v4-lbr-freeze'),
};

function beyondFinding(design: Design) {
  const details = fc.check(
    lbrFreezeProperty(
      {
        host: SKYLAKE,
        design: design.factory,
        expectations: design.expectations,
        supported: design.supported(SKYLAKE),
      },
      'beyond-supported',
    ),
    { seed: 11, numRuns: 500 },
  );
  expect(details.failed).toBe(true);
  return {
    details,
    property: { id: 'lbr-freeze', rule: 'design.md property 3' },
    gen: 'beyond-supported' as const,
    design,
    hostName: 'skylake',
    host: SKYLAKE,
    found: '2026-01-01',
    outDir: 'reports/out',
  };
}

describe('findings outside what a design reports are unsupported configurations, never KVM bugs', () => {
  const f = beyondFinding(undeclared);
  const r = buildReport(f);

  it('a v4+ guest (KVM reports version 2) is titled, listed and explained as an unsupported configuration', () => {
    expect(r.file.title).toMatch(/^\[lbr-freeze\] unsupported configuration: guest /);
    expect(r.file.title).not.toContain('KVM: x86/pmu:');
    expect(r.file.unsupported?.join()).toMatch(/CPUID\.0AH version [45] \(KVM_GET_SUPPORTED_CPUID: 2\)/);
    const md = reportMarkdown(r);
    expect(md).toContain('- **Configuration:** unsupported.');
    expect(md).toContain(`- **Base:** ${KVM_PORT_BASE}.`);
    // And it survives report.json.
    expect(parseReport(JSON.stringify(r.file)).file.unsupported).toEqual(r.file.unsupported);
  });

  it('every report names its base; a design that names none files nothing', () => {
    expect(r.file.base).toBe(KVM_PORT_BASE);
    expect(KVM_PORT_BASE).toMatch(/v7\.0-rc1.*bf2c3138ae36.*ca674df13b19/);
    expect(designById('bug/971079464001').base).toMatch(/^Linux v7\.0-rc1 \(perf core.*with 971079464001 reverted$/);
    const nameless = { ...undeclared, base: undefined } as unknown as Design;
    expect(() => buildReport({ ...f, design: nameless })).toThrow(ReportError);
    expect(() => buildReport({ ...f, design: nameless })).toThrow(/names no upstream base/);
  });

  it('the subject names the layer at fault: KVM, or host perf for a perf design', () => {
    expect(subjectPrefix(emulated, [])).toBe('KVM: x86/pmu:');
    expect(subjectPrefix(designById('bug/971079464001'), [])).toBe('perf/x86/intel:');
    expect(subjectPrefix(designById('bug/971079464001'), ['CPUID.0AH version 4'])).toBe('unsupported configuration:');
  });

  it('a design that does not state its supported configuration is refused with a message saying so', () => {
    const silent = { ...emulated, supported: undefined } as unknown as Design;
    expect(() => designChecks(silent, 'skylake', SKYLAKE)).toThrow(DesignError);
    expect(() => designChecks(silent, 'skylake', SKYLAKE)).toThrow(/does not state its supported/);
  });
});

/** The replay of a filed finding's report.json as its reproducers run it: bare metal does not take on its own declaration. */
function filedReplay(name: string) {
  const r = parseReport(readFileSync(`reports/filed/${name}.json`, 'utf8'));
  const host = BUILTIN_PROFILES[r.file.host]!;
  return {
    file: r.file,
    replay: replay(
      { design: designById(r.file.design), host, cpus: r.file.cpus, guest: r.guest, shows: r.file.id },
      r.kase,
    ),
  };
}

describe('a report says which unverified decisions its verdict rests on', () => {
  it('the decisions the program applied up to its divergence, not the world set-up before it', () => {
    const v1 = filedReplay('0005-kvm-no-lbr-freeze-for-pmu-v1');
    expect(v1.replay.rests).toContain('D37');
    expect(v1.file.rests).toEqual(v1.replay.rests);
    // 0001 touches counters and GLOBAL_STATUS only: host perf's LBR set-up at boot is not the program's.
    expect(filedReplay('0001-kvm-pmc-write-period-from-base').replay.rests).toEqual([]);
  });

  it('in the title and in the header, each decision with its choice', () => {
    expect(withRests('[conformance] KVM: x86/pmu: x', ['D37', 'K4'])).toBe(
      '[conformance] KVM: x86/pmu: x [rests on D37, K4]',
    );
    expect(withRests('t', [])).toBe('t');
    const r = buildReport(beyondFinding(undeclared));
    expect(r.file.rests).toEqual(r.replay.rests);
    const md = reportMarkdown(r);
    if (r.file.rests!.length === 0) expect(md).toContain('- **Rests on unverified decisions:** none');
    else {
      expect(r.file.title.endsWith(`[rests on ${r.file.rests!.join(', ')}]`)).toBe(true);
      expect(md).toMatch(new RegExp(`- \\*\\*Rests on unverified decisions:\\*\\* ${r.file.rests![0]} \\(.+ Choice: `));
    }
  });
});
