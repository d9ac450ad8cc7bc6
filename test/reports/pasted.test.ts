/**
 * A report's minimal program pastes into a test and runs: the ```ts block of report.md (imports, guest, setup and
 * program) written into a file beside the tests and imported, which runs it; it must throw the report's Divergence.
 * Also the report's Fixes and Affected guests lines.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { designById } from '../../designs/registry.js';
import { conformanceProperty } from '../../properties/conformance.js';
import { buildReport } from '../../reports/build.js';
import { reportMarkdown } from '../../reports/render.js';
import { affectedGuests } from '../../reports/affected.js';
import {
  Divergence,
  DriverLbr,
  DriverNmi,
  DriverOpen,
  GuestEmulate,
  GuestRdpmc,
  GuestWrmsr,
  HostOpen,
} from '../../scenarios/commands.js';
import { attr } from '../../model/host/types.js';
import type { GuestConfig } from '../../scenarios/world.js';

// Two levels below the repository, as test/regressions/ is, so the block's relative imports resolve; a scratch-*
// folder, which git, ESLint and Prettier leave alone.
const root = mkdtempSync(resolve('scratch-pasted-'));
const dir = join(root, 'regressions');
mkdirSync(dir);
afterAll(() => rmSync(root, { recursive: true, force: true }));

function reportOf(id: string, seed: number) {
  const design = designById(id);
  const details = fc.check(
    conformanceProperty({ host: SKYLAKE, design: design.factory, expectations: design.expectations }),
    { seed, numRuns: 1000 },
  );
  expect(details.failed).toBe(true);
  return buildReport({
    details,
    property: { id: 'conformance', rule: `design.md property 1 (${id}, quiet host)` },
    design,
    hostName: 'skylake',
    host: SKYLAKE,
    found: '2026-01-01',
    outDir: 'reports/out',
  });
}

const block = (md: string) => /```ts\n([\s\S]*?)\n```/.exec(md)![1]!;

describe("a report's pasted program", () => {
  it('runs as a test file: its setup is defined and the program throws the Divergence the report shows', async () => {
    const r = reportOf('bug/5728a4a0ea79', 10);
    const code = block(reportMarkdown(r));
    expect(code).toContain('const setup = () => ({');
    const file = join(dir, 'bug41.ts');
    writeFileSync(file, `${code}\n`);
    const e: unknown = await import(file).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(Divergence);
    expect((e as Divergence).observation).toMatchObject({
      kind: 'rdpmc',
      sut: { kind: 'value' },
      oracle: { kind: 'gp' },
    });
  });
});

describe('the Fixes and Affected guests lines', () => {
  it('name the commit where the port knows it, and say so where it does not', () => {
    const md = reportMarkdown(reportOf('bug/5728a4a0ea79', 10));
    expect(md).toContain('- **Fixes:** not known to the port (upstream fixed it in 5728a4a0ea79).');
    expect(md).toMatch(/- \*\*Affected guests:\*\* RDPMC with the "fast" flag/);
  });

  it('derive the affected guests from the commands and the guest PMU version', () => {
    const v2: GuestConfig = {
      cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0, ecx: 0, edx: 0x603 }, pdcm: true },
      perfCapabilities: 0x2000n,
    };
    const v1: GuestConfig = { ...v2, cpuid: { ...v2.cpuid, leaf0a: { ...v2.cpuid.leaf0a, eax: 0x7300401 } } };
    expect(affectedGuests([new GuestWrmsr(0, 0x38f, 1n)], v2)[0]).toMatch(/^Linux perf/);
    expect(affectedGuests([new GuestWrmsr(0, 0x186, 0x4300c0n)], v1)[0]).toMatch(/version-1 PMU/);
    expect(affectedGuests([new GuestEmulate(0, 'jne', 0)], v2)[0]).toMatch(/kvm-unit-tests/);
    expect(affectedGuests([new GuestRdpmc(0, 0, 3)], v2)[0]).toMatch(/user-space self-monitoring/);
    expect(affectedGuests([new GuestWrmsr(0, 0x1d9, 1n)], v2)[0]).toMatch(/LBR/);
    expect(affectedGuests([new DriverOpen(0, [{ event: 0xc0n, usr: true, os: true, period: 2n }])], v2)[0]).toMatch(
      /^Linux perf/,
    );
    expect(affectedGuests([new DriverNmi(0)], v1)[0]).toMatch(/version-1 PMU/);
    expect(affectedGuests([new DriverLbr(0, { select: 0n, callStack: false })], v2)[0]).toMatch(/LBR/);
    expect(affectedGuests([new HostOpen(0, attr({ config: 0xc0n }))], v2)).toEqual([
      expect.stringMatching(/^host perf/),
    ]);
  });
});
