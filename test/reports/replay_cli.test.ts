import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'vpmu-replay-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const replay = (...args: string[]) => cli(['replay', ...args]);

const ID = 'bug-5728a4a0ea79-rdpmc-0x80000000-bare-metal-gp';
const json = join(tmp, ID, 'report.json');

describe('npm start writes a report when conformance fails, and npm run replay replays it', () => {
  const start = cli([
    'start',
    '--only',
    'conformance',
    '--profile',
    'skylake',
    '--design',
    'bug/5728a4a0ea79',
    '--seed',
    '5',
    '--runs',
    '200',
    '--out',
    tmp,
  ]);

  it("npm start prints fast-check's report, then the report path and its replay command", () => {
    expect(start.code).toBe(1);
    expect(start.out).toContain('Property failed after');
    expect(start.out).toContain(`report: ${join(tmp, ID, 'report.md')} (replay: npm run replay -- ${json})`);
    // One conformance check per generation profile; each failure lands in the same report folder.
    expect(start.out.trim().split('\n').at(-1)).toMatch(
      /^0 passed, \d+ failed \(replay: npm start -- --seed 5 --runs 200 --only conformance --profile skylake --design bug\/5728a4a0ea79\)$/,
    );
    expect(readFileSync(join(tmp, ID, 'report.md'), 'utf8')).toMatch(
      /^# \[conformance\] KVM: x86\/pmu: guest RDPMC 0x80000000/,
    );
  });

  it('replay prints the trace with the first divergence marked and exits 1 while it still diverges', () => {
    const r = replay(json);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`replay ${ID}: [conformance] KVM: x86/pmu:`);
    expect(r.out).toMatch(
      /1\s+new GuestRdpmc\(0, 0x80000000, 0\)\s+RDPMC 0x80000000 at CPL 0\s+0x0\s+#GP\s+<- first divergence/,
    );
    expect(r.out).toContain(
      'still diverges: step 1, vCPU 0: RDPMC 0x80000000 at CPL 0: guest saw 0x0, bare metal shows #GP',
    );
  });

  it('exits 0 with "no longer diverges" under the fixed design', () => {
    const r = replay(json, '--design', 'emulated');
    expect(r.code).toBe(0);
    expect(r.out).toContain('no longer diverges');
  });

  it.each([
    ['a missing file', () => join(tmp, 'nope.json'), 'replay: cannot read'],
    ['a file that is not JSON', () => write('bad.json', '{ "format": '), 'replay: report.json is not JSON'],
    [
      'an unknown command',
      () => write('cmd.json', readFileSync(json, 'utf8').replace('"GuestRdpmc"', '"GuestRdpmx"')),
      "program[0].cmd: unknown command 'GuestRdpmx'",
    ],
    [
      'an unknown design',
      () =>
        write(
          'design.json',
          readFileSync(json, 'utf8').replace('"design": "bug/5728a4a0ea79"', '"design": "no-such-design"'),
        ),
      "replay: unknown design 'no-such-design'",
    ],
    [
      'an unknown host',
      () => write('host.json', readFileSync(json, 'utf8').replace('"host": "skylake"', '"host": "haswell"')),
      "replay: unknown host profile 'haswell'",
    ],
  ])('exits 2 with one line on %s', (_what, file, msg) => {
    const r = replay(file());
    expect(r.code).toBe(2);
    expect(r.err).toContain(msg);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.out).toBe('');
  });
});

function write(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}
