/**
 * Every property's failure becomes a report: for each, a planted failure (a ported bug or a
 * planted fault of planted.ts) is found by the check npm start runs, built into a report, written,
 * deduplicated, replayed exactly by the replay CLI, and its generated regression test passes
 * vitest while the bug is present.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { designChecks } from '../../properties/checks.js';
import { designById } from '../../designs/registry.js';
import type { Design } from '../../properties/design.js';
import { buildReport, type Report } from '../../reports/build.js';
import { parseReport, REPORT_FORMAT, REPORT_FORMAT_V1 } from '../../reports/file.js';
import { regressionTest, reportMarkdown } from '../../reports/render.js';
import { fails, type PropertyId, replay } from '../../reports/replay.js';
import { writeReport } from '../../reports/write.js';
import { programToJson } from '../../scenarios/serialize.js';
import { PLANTED } from './planted.js';
import { describeReport } from '../../reports/rules.js';
import { showOutcome } from '../../scenarios/observation.js';
import { cli } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'vpmu-properties-'));
// Generated regressions import '../../…': they run from a folder two levels below the root.
mkdirSync('scratch', { recursive: true }); // gitignored: a clean clone has none
const regressions = mkdtempSync(join('scratch', 'regressions-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  rmSync(regressions, { recursive: true, force: true });
});

interface Planted {
  readonly property: PropertyId;
  readonly design: string;
  /** Seeds tried in order until the check fails (the first one does today). */
  readonly seeds: readonly number[];
  /** What the title must say. */
  readonly title: RegExp;
  /** The check's generation profile where the property has several runs. */
  readonly gen?: 'beyond-supported';
}

const PLANTS: readonly Planted[] = [
  {
    property: 'conformance',
    design: 'bug/5728a4a0ea79',
    seeds: [1, 3, 4],
    title: /^\[conformance\] KVM: x86\/pmu: guest RDPMC 0x80000000 at CPL 0 returns 0x0 where bare metal raises #GP$/,
  },
  {
    property: 'lbr-freeze',
    design: 'test/undeclared-v4-freeze',
    seeds: [2, 3, 4],
    // A v4 guest: beyond the version 2 KVM_GET_SUPPORTED_CPUID reports, so no KVM bug.
    gen: 'beyond-supported',
    title: /^\[lbr-freeze\] unsupported configuration: guest (RDMSR|gets|misses)/,
  },
  {
    property: 'no-leak',
    design: 'test/leaks-host-pmc0',
    seeds: [4, 5, 3],
    title:
      /^\[no-leak\] KVM: x86\/pmu: guest RDPMC 0x\w+ at CPL \d gets 0x\w+ with the host's values changed, 0x\w+ with the original ones$/,
  },
  {
    property: 'host-undisturbed',
    design: 'bug/971079464001',
    seeds: [5, 6, 7],
    title:
      /^\[host-undisturbed\] perf\/x86\/intel: host event \(config 0x\w+, pinned, exclude_kernel, exclude_guest\) counts guest work: \d+ with the guest running, \d+ without it$/,
  },
  {
    property: 'invisible',
    design: 'test/loses-counters-on-migrate',
    seeds: [6, 7, 4, 3],
    title: /^\[invisible\] KVM: x86\/pmu: guest (RDMSR|RDPMC) .* after a (save\/restore|migration), 0x\w+ without it$/,
  },
];

const designOf = (id: string): Design => PLANTED[id] ?? designById(id);

/** The failure as npm start finds it: the same check, the first failing seed, built into a report. */
function found(p: Planted): Report {
  const design = designOf(p.design);
  const check = designChecks(design, 'skylake', SKYLAKE).find(
    (c) => c.id === p.property && (p.gen === undefined || c.gen === p.gen),
  )!;
  for (const seed of p.seeds) {
    const details = fc.check(check.property(new Map()), { seed, numRuns: 3000 });
    if (!details.failed) continue;
    return buildReport({
      details,
      property: { id: check.id, rule: check.rule },
      gen: p.gen,
      design,
      hostName: 'skylake',
      host: SKYLAKE,
      found: '2026-01-01',
      outDir: 'reports/out',
    });
  }
  throw new Error(`${p.property} on ${p.design}: no failure with seeds ${p.seeds.join(', ')}`);
}

function tsx(script: string, ...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...args], {
    encoding: 'utf8',
    env: { ...process.env, INIT_CWD: process.cwd() },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
/** The replay CLI: the built command itself for built-in designs, the same code with planted ones added. */
const replayCli = (design: string, ...args: string[]) =>
  design in PLANTED ? tsx('test/reports/replay_planted.ts', ...args) : cli(['replay', ...args]);

const written = new Map<PropertyId, { report: Report; dir: string; json: string }>();

describe.each(PLANTS)('a $property failure ($design) becomes a report', (p) => {
  const r = found(p);
  const md = reportMarkdown(r);

  it('has a kernel-style title, the property and rule, and the case the property compares', () => {
    expect(r.file.format).toBe(REPORT_FORMAT);
    expect(r.file.title).toMatch(p.title);
    expect(md.split('\n')[0]).toBe(`# ${r.file.title}`);
    expect(r.file.property.id).toBe(p.property);
    expect(r.file.signature.startsWith(p.property === 'conformance' ? p.design : `${p.property}|${p.design}|`)).toBe(
      true,
    );
    expect(r.file.id).toBe(
      r.file.signature
        .split('|')
        .filter((x) => x !== '-')
        .join('-')
        .replace(/[^a-zA-Z0-9.-]+/g, '-')
        .toLowerCase(),
    );
    expect(r.file.baseline !== undefined).toBe(p.property === 'no-leak');
    expect(r.file.insertion !== undefined).toBe(p.property === 'invisible');
    expect(md).toContain(`- **Property:** ${p.property}: `);
    expect(md).toContain('- **Compared:** ');
    expect(md).toContain(`Rule: ${r.file.divergence.rule}.`);
    expect(md).toContain('**<- first divergence**');
    expect(md).toContain(r.file.replay);
    expect(r.file.search.postShrunkCommands).toBeLessThanOrEqual(r.file.search.shrunkCommands);
  });

  it("shows the first divergence in the property's words", () => {
    const o = r.file.divergence;
    if (p.property === 'no-leak') {
      expect(md).toContain(`with the host's values changed the guest saw ${o.sut}, with the original ones ${o.oracle}`);
      expect(md).toContain('const original = [');
      expect(md).toContain('const changed = [');
      expect(md).toContain('checkNoninterference(run, guest, original, changed)');
    } else if (p.property === 'host-undisturbed') {
      expect(o).toMatchObject({
        kind: 'host-event',
        vcpu: -1,
        event: {
          index: expect.any(Number) as number,
          attr: expect.stringMatching(/^attr\(\{ config: 0x\w+n, pinned: true/) as string,
        },
      });
      expect(BigInt(o.sut)).toBeGreaterThan(BigInt(o.oracle));
      expect(md).toContain(`counted ${o.sut} with the guest running, ${o.oracle} on the same host without it`);
      expect(md).toContain('checkHostUndisturbed(run, guest, program)');
    } else if (p.property === 'invisible') {
      expect(md).toContain(`with the insertion the guest saw ${o.sut}, without it ${o.oracle}`);
      expect(md).toMatch(/checkInvisible\(run, guest, program, \d+, new (Migrate|SaveRestore)\(0, \d\)\)/);
      expect(md).toContain(' (inserted)` |');
    } else {
      expect(md).toContain(`| bare metal (reference model) | ${o.oracle} |`);
      expect(md).toContain('fc.modelRun(setup, [');
    }
  });

  it('is written, reads back as the same case, and one signature keeps the shortest program', () => {
    const w = writeReport(r, tmp);
    expect(w.written).toBe(true);
    const back = parseReport(readFileSync(w.json, 'utf8'));
    expect(back.kase.property).toBe(p.property);
    expect(back.program.map(String)).toEqual(r.program.map(String));
    if (back.kase.property === 'no-leak' && r.kase.property === 'no-leak')
      expect(back.kase.baseline.map(String)).toEqual(r.kase.baseline.map(String));
    if (back.kase.property === 'invisible' && r.kase.property === 'invisible') {
      expect(back.kase.insertion.at).toBe(r.kase.insertion.at);
      expect(String(back.kase.insertion.command)).toBe(String(r.kase.insertion.command));
    }
    written.set(p.property, { report: r, dir: w.dir, json: w.json });
    // The same root cause found again with a longer program leaves the report alone.
    const extra = r.program[0]!;
    const longer: Report = {
      ...r,
      file: {
        ...r.file,
        program: programToJson([extra, ...r.program]),
        ...(r.file.baseline !== undefined ? { baseline: [r.file.baseline[0]!, ...r.file.baseline] } : {}),
      },
    };
    expect(writeReport(longer, tmp).written).toBe(false);
    expect(writeReport(r, tmp).written).toBe(false);
    const dedupe = join(tmp, 'dedupe');
    expect(writeReport(longer, dedupe).written).toBe(true);
    expect(writeReport(r, dedupe).written).toBe(true);
  });

  it('replays in-process to the divergence the file records', () => {
    const back = parseReport(readFileSync(written.get(p.property)!.json, 'utf8'));
    const again = replay(
      { design: designOf(p.design), host: SKYLAKE, cpus: back.file.cpus, guest: back.guest },
      back.kase,
    );
    expect(fails(again)).toBe(true);
    const d = again.divergence!;
    // The file holds the rendered words; the replay, the typed values they were rendered from.
    expect({ kind: d.kind, what: describeReport(d), sut: showOutcome(d.sut), oracle: showOutcome(d.oracle) }).toEqual({
      kind: r.file.divergence.kind,
      sut: r.file.divergence.sut,
      oracle: r.file.divergence.oracle,
      what: r.file.divergence.what,
    });
  });

  it('replays exactly through the replay CLI: the trace, the divergence, exit 1', () => {
    const { json } = written.get(p.property)!;
    const out = replayCli(p.design, json);
    expect(out.err).toBe('');
    expect(out.code).toBe(1);
    expect(out.out).toContain(`replay ${r.file.id}: ${r.file.title}`);
    expect(out.out).toContain(`property ${p.property}; design ${p.design} on skylake`);
    expect(out.out).toMatch(/<- first divergence/);
    expect(out.out).toContain(`rule: ${r.file.divergence.rule}`);
    expect(out.out).not.toContain('note: the signature is now');
    const sentence = out.out.split('\n').find((l) => l.startsWith('still diverges: '))!;
    expect(sentence).toContain(r.file.divergence.sut);
    expect(sentence).toContain(r.file.divergence.oracle);
  });
});

describe('replaying under the fixed design and malformed reports', () => {
  it('a host-undisturbed report no longer diverges on upstream perf', () => {
    const out = replayCli('bug/971079464001', written.get('host-undisturbed')!.json, '--design', 'emulated');
    expect(out.code).toBe(0);
    expect(out.out).toContain('no longer diverges: every host event counts the same with the guest and without it');
  });

  it('a no-leak report no longer diverges under the faithful design', () => {
    const out = replayCli('test/leaks-host-pmc0', written.get('no-leak')!.json, '--design', 'emulated');
    expect(out.code).toBe(0);
    expect(out.out).toContain('no longer diverges: every guest observation is the same in both runs');
  });

  it('a report@1 file (a conformance report) still replays', () => {
    const text = readFileSync(written.get('conformance')!.json, 'utf8').replace(REPORT_FORMAT, REPORT_FORMAT_V1);
    const json = join(tmp, 'v1.json');
    writeFileSync(json, text);
    expect(parseReport(text).kase.property).toBe('conformance');
    const out = replayCli('bug/5728a4a0ea79', json);
    expect(out.code).toBe(1);
    expect(out.out).toContain(
      'still diverges: step 1, vCPU 0: RDPMC 0x80000000 at CPL 0: guest saw 0x0, bare metal shows #GP',
    );
  });

  const edit = (p: PropertyId, f: (o: Record<string, unknown>) => void) => {
    const o = JSON.parse(readFileSync(written.get(p)!.json, 'utf8')) as Record<string, unknown>;
    f(o);
    const path = join(tmp, `bad-${p}-${Object.keys(o).length}-${Math.abs(JSON.stringify(o).length)}.json`);
    writeFileSync(path, JSON.stringify(o));
    return path;
  };
  it.each([
    [
      'a no-leak report without its baseline',
      'no-leak' as const,
      (o: Record<string, unknown>) => delete o.baseline,
      "report.json: a no-leak report needs 'baseline'",
    ],
    [
      'a baseline of another length',
      'no-leak' as const,
      (o: Record<string, unknown>) => (o.baseline = []),
      'report.json: baseline has 0 commands, program',
    ],
    [
      'an insertion point past the program',
      'invisible' as const,
      (o: Record<string, unknown>) => (o.insertion = { ...(o.insertion as object), at: 99 }),
      'report.json: insertion.at must be an integer 0..',
    ],
    [
      'an unknown inserted command',
      'invisible' as const,
      (o: Record<string, unknown>) =>
        (o.insertion = { ...(o.insertion as object), command: { cmd: 'Teleport', args: [] } }),
      "report.json: insertion.command.cmd: unknown command 'Teleport'",
    ],
    [
      'an unknown property',
      'host-undisturbed' as const,
      (o: Record<string, unknown>) => (o.property = { id: 'telepathy', rule: '' }),
      'report.json: property.id: expected one of conformance, lbr-freeze, no-leak, host-undisturbed, invisible, got "telepathy"',
    ],
    [
      'a malformed host event attr',
      'host-undisturbed' as const,
      (o: Record<string, unknown>) =>
        ((o.program as { cmd: string; args: unknown[] }[]).find((c) => c.cmd === 'HostOpen')!.args[1] = {
          config: 192,
        }),
      '].args[1].config: expected a "0x…" hex string, got 192',
    ],
  ])('exits 2 with one line on %s', (_what, p, f, msg) => {
    const design = PLANTS.find((x) => x.property === p)!.design;
    const out = replayCli(design, edit(p, f));
    expect(out.code).toBe(2);
    expect(out.err).toMatch(/^replay: report\.json: /);
    expect(out.err).toContain(msg);
    expect(out.err.trim().split('\n')).toHaveLength(1);
    expect(out.out).toBe('');
  });
});

describe('the generated regression tests', () => {
  it("call the property's own check on the minimal program(s)", () => {
    const src = (p: PropertyId) => readFileSync(join(written.get(p)!.dir, 'regression.test.ts'), 'utf8');
    expect(src('conformance')).toContain(
      "expect(firstDivergence('skylake', guest, program, 'bug/5728a4a0ea79', 2)).toMatchObject(",
    );
    expect(src('lbr-freeze')).toContain('runProgram(run, guest, program)');
    expect(src('no-leak')).toContain('checkNoninterference(run, guest, original, changed)');
    expect(src('host-undisturbed')).toContain('checkHostUndisturbed(run, guest, program)');
    expect(src('invisible')).toMatch(/checkInvisible\(run, guest, program, \d+, new (Migrate|SaveRestore)\(0, \d\)\)/);
    expect(regressionTest(written.get('no-leak')!.report)).toBe(src('no-leak'));
  });

  it('pass vitest while the bug is present (planted designs reached through PLANTED)', () => {
    for (const [p, { dir }] of written) {
      const design = PLANTS.find((x) => x.property === p)!.design;
      let src = readFileSync(join(dir, 'regression.test.ts'), 'utf8');
      if (design in PLANTED)
        src = src
          .replace(`designById('${design}')`, `PLANTED['${design}']!`)
          .replace(
            "import { describe, expect, it } from 'vitest';",
            "import { describe, expect, it } from 'vitest';\nimport { PLANTED } from '../../test/reports/planted.js';",
          );
      writeFileSync(join(regressions, `${p}.test.ts`), src);
    }
    writeFileSync(join(regressions, 'vitest.config.mjs'), "export default { test: { include: ['*.test.ts'] } };\n");
    const r = spawnSync(
      process.execPath,
      [
        'node_modules/vitest/vitest.mjs',
        'run',
        '--root',
        resolve(regressions),
        '--config',
        resolve(regressions, 'vitest.config.mjs'),
      ],
      { encoding: 'utf8', env: { ...process.env, CI: '1' } },
    );
    const out = `${r.stdout}\n${r.stderr}`;
    expect(out, out).toMatch(/Test Files\s+.*5 passed/);
    expect(out).toMatch(/Tests\s+.*5 passed/);
    expect(r.status).toBe(0);
    expect(relative('.', regressions).startsWith('scratch')).toBe(true);
  });
});
