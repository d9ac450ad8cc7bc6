/**
 * A finding of each property kind gets reproducers that would show it: against bare metal
 * (conformance), between two runs that differ only in host-private values (no-leak) or in an
 * inserted migration (invisible), host counts with the guest and without (host-undisturbed). Each
 * fails on its design in the model and passes where the design conforms. Where gcc is installed,
 * each standalone C compiles with -Wall -Werror and writes the guest code the model ran. (The
 * reports npm start generates get the same emitters: scripts/reproducers.ts compiles a fixed-seed
 * sample of them.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../../model/hw/profiles.js';
import { attr } from '../../../model/host/types.js';
import { designById } from '../../../designs/registry.js';
import { guestCode } from '../../../catalogue/reproducers.js';
import { GuestRdmsr, GuestRdpmc, GuestRun, GuestWrmsr, HostOpen, Migrate } from '../../../scenarios/commands.js';
import { VmmSetPmuEventFilter } from '../../../scenarios/vmm.js';
import type { Finding, PropertyKind } from '../../../reports/emit/emit.js';
import { emitFiles, writeEmitted } from '../../../reports/emit/files.js';
import { PLANTED } from '../planted.js';
import { SKYLAKE_V2 } from '../../support/guests.js';

const tmp = mkdtempSync(join(tmpdir(), 'vpmu-emit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const hasGcc = spawnSync('gcc', ['--version']).status === 0;

const v2 = SKYLAKE_V2;
const finding = (
  property: PropertyKind,
  design: string,
  program: Finding['program'],
  baseline?: Finding['baseline'],
): Finding => ({
  id: `test-${property}`,
  title: property,
  property,
  design: PLANTED[design] ?? designById(design),
  hostName: 'skylake',
  host: BUILTIN_PROFILES.skylake!,
  cpus: 2,
  guest: v2,
  program,
  ...(baseline !== undefined ? { baseline } : {}),
  regenerate: 'test',
});

const countAndRead = [new GuestWrmsr(0, 0x186, 0x4300c0n), new GuestRun(0, [{ cpl: 0, instructions: 5 }])];

const CASES: readonly { readonly f: Finding; readonly mode: string; readonly fixed: string }[] = [
  {
    f: finding('conformance', 'bug/5728a4a0ea79', [new GuestRdpmc(0, 0x8000_0000, 0)]),
    mode: 'bare-metal',
    fixed: 'emulated',
  },
  {
    f: finding(
      'no-leak',
      'test/leaks-host-pmc0',
      // The host's sampling period is host-private: the planted fault lets the armed PMC0 show through RDPMC.
      [new HostOpen(0, attr({ config: 0xc4n, sample_period: 0x15n })), new GuestRdpmc(0, 0, 0)],
      [new HostOpen(0, attr({ config: 0xc4n, sample_period: 0x14n })), new GuestRdpmc(0, 0, 0)],
    ),
    mode: 'differential',
    fixed: 'emulated',
  },
  {
    f: finding(
      'invisible',
      'test/loses-counters-on-migrate',
      [...countAndRead, new Migrate(0, 1), new GuestRdmsr(0, 0xc1)],
      [...countAndRead, null, new GuestRdmsr(0, 0xc1)],
    ),
    mode: 'differential',
    fixed: 'emulated',
  },
  {
    f: finding('host-undisturbed', 'bug/971079464001', [
      new HostOpen(1, attr({ config: 0xc0n, pinned: true, exclude_kernel: true, exclude_guest: true })),
      new Migrate(0, 1),
      new GuestRun(0, [{ cpl: 3, instructions: 1 }]),
    ]),
    mode: 'host-counts',
    fixed: 'emulated',
  },
  {
    // A bad action with 301 events: -EINVAL first on upstream, -E2BIG on the planted KVM (one line of C for 301).
    f: finding('vmm-abi', 'test/filter-size-first', [
      new VmmSetPmuEventFilter({
        action: 2,
        flags: 0,
        fixed_counter_bitmap: 0,
        events: Array<bigint>(301).fill(0xc0n),
      }),
    ]),
    mode: 'vmm-abi',
    fixed: 'emulated',
  },
];

describe('reproducers of a finding of each property kind', () => {
  for (const c of CASES)
    it(`${c.f.property} (${c.f.design.id})`, () => {
      const stem = c.f.property.replace(/-/g, '_');
      const e = emitFiles(
        c.f,
        { repro: join(tmp, `${stem}.c`), selftest: join(tmp, `vpmu_${stem}_test.c`) },
        designById(c.fixed),
      );
      expect(e.emission.mode).toBe(c.mode);
      expect(e.emission.onDesign, 'the reproducer would not show the finding').not.toBeNull();
      expect(e.emission.onBareMetal).toBeNull();
      expect(e.emission.afterFix?.failure ?? null, `it fails on ${c.fixed} too`).toBeNull();
      if (!hasGcc) return;
      writeEmitted(e, ['c']);
      const bin = join(tmp, stem);
      const cc = spawnSync('gcc', ['-O2', '-Wall', '-Werror', '-o', bin, e.repro.path], { encoding: 'utf8' });
      expect(cc.stderr).toBe('');
      expect(cc.status).toBe(0);
      expect(spawnSync(bin, ['--dump-guest']).stdout.equals(guestCode(e))).toBe(true);
    });
});
