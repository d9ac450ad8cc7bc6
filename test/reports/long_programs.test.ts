/**
 * Bad or big input never crashes replay: a program of 200 000 commands is read and its trace
 * printed without recursion; vCPU and pCPU indices past the world are reduced before a report is
 * written, and the reduced program runs the same.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { designById } from '../../designs/registry.js';
import { parseReport, REPORT_FORMAT, type ReportFile } from '../../reports/file.js';
import { traceMarkdown, traceText } from '../../reports/render.js';
import { replay, type Replay } from '../../reports/replay.js';
import { quietHostCommands, savedAtExitCommands } from '../../scenarios/arbitraries.js';
import { supportedGuestArb } from '../../scenarios/supported.js';
import { GuestRdmsr, GuestRdpmc, Migrate } from '../../scenarios/commands.js';
import { guestToJson, programToJson, reduceIndices } from '../../scenarios/serialize.js';
import type { GuestConfig } from '../../scenarios/world.js';

const N = 200_000;
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0, ecx: 0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x2000n,
};

describe('a program of 200 000 commands', () => {
  it('reads back from report.json', () => {
    const program = Array.from({ length: N }, (_, i) => new GuestRdmsr(0, 0x38f + (i % 3)));
    const file: ReportFile = {
      format: REPORT_FORMAT,
      id: 'long',
      title: 'a long program',
      signature: 'x',
      property: { id: 'conformance', rule: 'r' },
      design: 'emulated',
      host: 'skylake',
      cpus: 2,
      guest: guestToJson(guest),
      program: programToJson(program),
      divergence: {
        step: 1,
        vcpu: 0,
        kind: 'rdmsr',
        target: null,
        value: null,
        what: '',
        sut: '',
        oracle: '',
        rule: '',
      },
      search: {
        seed: 1,
        path: null,
        replayPath: null,
        numRuns: 1,
        numShrinks: 0,
        shrunkCommands: N,
        postShrunkCommands: N,
      },
      versions: { fastCheck: '', node: '', package: '', generators: '' },
      found: '2026-01-01',
      replay: '',
    };
    expect(parseReport(JSON.stringify(file)).program).toHaveLength(N);
  });

  it('prints its trace as text and as Markdown (no argument list as long as the program)', () => {
    const command = new GuestRdpmc(0, 0, 0);
    const r: Replay = {
      property: 'conformance',
      steps: Array.from({ length: N }, (_, i) => ({ index: i + 1, command, observations: [] })),
      divergence: null,
      known: null,
    };
    expect(traceText(r).split('\n')).toHaveLength(N + 1);
    expect(traceMarkdown(r).split('\n')).toHaveLength(N + 2);
  });
});

describe('indices a report names', () => {
  it('are reduced into the world (one vCPU, two pCPUs) and the program runs the same', () => {
    const l = { vcpus: 1, cpus: 2 };
    expect(
      reduceIndices([new GuestRdmsr(3, 0x38f), new Migrate(5, 7), new GuestRdmsr(2, 0xc1, 3)], l).map(String),
    ).toEqual([
      'new GuestRdmsr(0, 0x38f)',
      'new Migrate(0, 1)',
      'new GuestRdmsr(0, 0xc1, /* saved and restored at its exit onto pCPU */ 1)',
    ]);
    const target = { design: designById('emulated'), host: SKYLAKE, cpus: 2 };
    fc.assert(
      fc.property(
        supportedGuestArb(SKYLAKE, target.design.supported(SKYLAKE)),
        fc.array(fc.oneof(...quietHostCommands(), savedAtExitCommands([])), { maxLength: 15 }),
        (g, p) => {
          const seen = (prog: typeof p) =>
            replay({ ...target, guest: g }, prog).steps.map((s) => s.observations.map((o) => [o.sut, o.oracle]));
          expect(seen(reduceIndices(p, l))).toEqual(seen(p));
        },
      ),
      { numRuns: 50 },
    );
  });
});
