import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
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
      'a vCPU the world does not have',
      () =>
        write(
          'vcpu.json',
          readFileSync(json, 'utf8').replace('"args":[0,"0x80000000",0]', '"args":[3,"0x80000000",0]'),
        ),
      'replay: report.json: program[0].args[0] (vcpu): vCPU 3 does not exist: the world has 1 vCPU (index 0)',
    ],
    [
      'a pCPU the world does not have',
      () =>
        write(
          'pcpu.json',
          readFileSync(json, 'utf8').replace(
            '{"cmd":"GuestRdpmc"',
            '{"cmd":"Migrate","args":[0,7]},{"cmd":"GuestRdpmc"',
          ),
        ),
      'replay: report.json: program[0].args[1] (cpu): pCPU 7 does not exist: the world has 2 pCPUs (0..1)',
    ],
    [
      'a guest CPUID no CPU has (255 GP counters)',
      () => write('cpuid.json', readFileSync(json, 'utf8').replace(/"eax": "0x730(..)(..)"/, '"eax": "0x730ff$2"')),
      "replay: report.json: guest.cpuid: no CPU enumerates this guest (profile 'guest': leaf0a.eax[15:8]: 255 GP counters",
    ],
    [
      'a billion pCPUs',
      () => write('cpus.json', readFileSync(json, 'utf8').replace('"cpus": 2', '"cpus": 1000000000')),
      'replay: report.json: cpus: expected an integer 1..64, got 1000000000',
    ],
    [
      'a title of a megabyte',
      () => write('title.json', readFileSync(json, 'utf8').replace('"title": "', `"title": "${'x'.repeat(1 << 20)}`)),
      /^replay: report\.json: title: \d+ characters, at most 500$/,
    ],
    [
      'a file of 100 MB',
      () => {
        const p = join(tmp, 'huge.json');
        writeFileSync(p, '');
        truncateSync(p, 100 * 2 ** 20); // sparse: no 100 MB written
        return p;
      },
      `replay: ${join(tmp, 'huge.json')} is 100 MB; a report.json is at most 64 MB`,
    ],
    [
      'an unknown generation profile',
      () => write('gen.json', readFileSync(json, 'utf8').replace('"gen": "', '"gen": "x')),
      'replay: report.json: gen: expected one of quiet, contended, lbr-heavy, topdown, save-restore-heavy, beyond-supported, driver, got "x',
    ],
    [
      'an unknown host',
      () => write('host.json', readFileSync(json, 'utf8').replace('"host": "skylake"', '"host": "haswell"')),
      "replay: unknown host profile 'haswell'",
    ],
  ])('exits 2 with one line on %s', (_what, file, msg) => {
    const r = replay(file());
    expect(r.code).toBe(2);
    if (typeof msg === 'string') expect(r.err).toContain(msg);
    else expect(r.err.trim()).toMatch(msg);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.out).toBe('');
  });
});

function write(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}
