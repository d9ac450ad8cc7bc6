/**
 * What the reproducers claim, held in the model: every filed finding's reproducer fails on a kernel
 * like its design at the finding's own observation and passes on bare metal; every catalogue row's
 * fails on the ported bug and passes on the fixed design; the checks are exact where hardware is
 * and bounds where it is not; and the committed files are what the emitters write today.
 */
import { existsSync, readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../../model/hw/profiles.js';
import { designById } from '../../../designs/registry.js';
import { catalogueReproducers, filedReproducers } from '../../../catalogue/reproducers.js';
import { regressionFindings } from '../../../catalogue/regression.js';
import type { Access } from '../../../model/hw/access.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import type { Design } from '../../../properties/design.js';
import { GuestRdmsr, GuestRdpmc, GuestRun, GuestWrmsr } from '../../../scenarios/commands.js';
import type { Failure, GuestCheck } from '../../../reports/emit/checks.js';
import { emitFinding, type Finding } from '../../../reports/emit/emit.js';
import { type Emitted, predictionLine } from '../../../reports/emit/files.js';
import { filedFindings, withReproducersSection } from '../../../reports/emit/filed.js';
import { failureText } from '../../../reports/emit/render_c.js';
import { SKYLAKE_V2 } from '../../support/guests.js';

let filed: Emitted[] = [];
let catalogue: Emitted[] = [];
beforeAll(() => {
  filed = filedReproducers();
  catalogue = catalogueReproducers();
});

const sourceOf = (f: Failure) => (f.kind === 'guest' || f.kind === 'pmi' ? f.check.source : null);

describe('the committed reproducers', () => {
  it('are what the emitters write today (else: npm run reproducers)', () => {
    for (const e of [...filed, ...catalogue])
      for (const f of [e.repro, e.selftest]) {
        expect(existsSync(f.path), `${f.path} is missing: npm run reproducers`).toBe(true);
        expect(readFileSync(f.path, 'utf8') === f.text, `${f.path} is stale: npm run reproducers`).toBe(true);
      }
  });

  it('are linked from the filed findings, with what the model predicts (else: npm run reproducers)', () => {
    const f = filedFindings();
    filed.forEach((e, i) => {
      const md = f[i]!.json.replace(/\.json$/, '.md');
      const text = readFileSync(md, 'utf8');
      expect(withReproducersSection(text, f[i]!, predictionLine(e.emission)) === text, `${md} is stale`).toBe(true);
      expect(text).toContain('## Reproducers (not run on hardware yet)');
    });
  });

  it('of a filed finding fail on its design at its own divergence, and pass on bare metal', () => {
    expect(filed).toHaveLength(6);
    for (const e of filed) {
      const em = e.emission;
      const d = em.onDesign;
      expect(d, `${em.finding.id}: the reproducer cannot show it`).not.toBeNull();
      expect(sourceOf(d!), `${em.finding.id} fails at ${failureText(d!)}`).toBe(em.finding.target?.source);
      expect(em.onBareMetal).toBeNull();
      expect(e.repro.text).toContain('STATUS: NOT RUN ON HARDWARE YET');
    }
  });

  it('of a catalogue row fail before its fix, pass after it, and pass on bare metal', () => {
    const rows = regressionFindings();
    expect(catalogue).toHaveLength(rows.length);
    catalogue.forEach((e, i) => {
      const r = rows[i]!;
      const em = e.emission;
      expect(em.onDesign, `#${r.entry.row}: no check fails on the ported bug`).not.toBeNull();
      expect(em.onBareMetal).toBeNull();
      if (r.fixed !== undefined)
        expect(em.afterFix?.failure ?? null, `#${r.entry.row} still fails after the fix`).toBeNull();
      else expect(em.afterFix).toBeUndefined();
    });
  });
});

const skylake = BUILTIN_PROFILES.skylake!;
const v2 = SKYLAKE_V2;
const finding = (program: Finding['program']): Finding => ({
  id: 'test',
  title: 'test',
  property: 'conformance',
  design: designById('emulated'),
  hostName: 'skylake',
  host: skylake,
  cpus: 2,
  guest: v2,
  program,
  regenerate: 'test',
});
const readOf = (checks: readonly GuestCheck[], source: number) =>
  checks.find((c) => c.source === source && c.valAddr !== null)!;

/** A planted fault: a GP counter reads one more than it counted. */
class ReadsOneMore extends EmulatedVcpu {
  override guestRdmsr(msr: number): Access {
    const r = super.guestRdmsr(msr);
    return r.ok && msr >= 0xc1 && msr < 0xc9 ? { ok: true, value: r.value + 1n } : r;
  }
}
const readsOneMore: Design = {
  ...designById('emulated'),
  id: 'test/reads-one-more',
  factory: (h, o) => new ReadsOneMore(h, o),
};

const countInstructions = [
  new GuestWrmsr(0, 0x186, 0x4200c0n), // INST_RETIRED, OS, EN: GLOBAL_CTRL's reset value enables PMC0 already
  new GuestWrmsr(0, 0x38f, 0x1n),
  new GuestRun(0, [{ cpl: 0, instructions: 5 }]),
  new GuestRdmsr(0, 0xc1),
];

describe('the checks', () => {
  it('are exact for instructions at CPL 0, counting every instruction the guest itself retires', () => {
    const e = emitFinding(finding(countInstructions));
    // The EVNTSEL0 WRMSR (it counts itself) and its store; GLOBAL_CTRL's set-up (4), WRMSR and
    // store; the unit's 5; the RDMSR's set-up (2): 15.
    expect(readOf(e.checks.guest, 3).value).toEqual({ mode: 'exact', value: 15n });
    expect(e.onDesign).toBeNull(); // today's vPMU counts these exactly
    expect(e.onBareMetal).toBeNull();
  });

  it('fail on a counter that reads one too many, at that read', () => {
    const e = emitFinding({ ...finding(countInstructions), design: readsOneMore });
    expect(e.onDesign).toMatchObject({ kind: 'guest', got: '0x10', check: { source: 3 } });
  });

  it('step over a divergence declared only through facts of the World, judged as the simulation made it', () => {
    // A USR-only counter written -1 while enabled: with 0001's fix, KVM arms perf from -1 and perf raises the period to
    // 2, so the one user instruction wraps bare metal's counter only. GLOBAL_STATUS then differs, which perf-min-period
    // declares through bare metal's counters armed at -1: a fact of the World, not in the history.
    const e = emitFinding({
      ...finding([
        new GuestWrmsr(0, 0x186, 0x4100c0n),
        new GuestWrmsr(0, 0xc1, 0xffffffffffffn),
        new GuestRun(0, [{ cpl: 3, instructions: 1 }]),
        new GuestRdmsr(0, 0x38e),
        new GuestRdmsr(0, 0xc1),
      ]),
      design: designById('fix/0001-write-period-from-value'),
    });
    expect(e.checks.declared.map((d) => d.id)).toEqual(['perf-min-period']);
    expect(e.checks.guest.find((c) => c.source === 3)!.why).toContain("'perf-min-period'");
    // The reproducer does not fail where the search excused the program.
    expect(e.onDesign).toBeNull();
    expect(e.onBareMetal).toBeNull();
  });

  it('are a range where a ring crossing counts on either side, and a floor for cycles', () => {
    const e = emitFinding(
      finding([
        new GuestWrmsr(0, 0x186, 0x4100c0n), // INST_RETIRED, USR only
        new GuestWrmsr(0, 0x187, 0x43003cn), // CPU_CLK_UNHALTED, USR|OS
        new GuestWrmsr(0, 0x38f, 0x3n),
        new GuestRun(0, [{ cpl: 3, instructions: 4, cycles: 9 }]),
        new GuestRdpmc(0, 0, 0),
        new GuestRdpmc(0, 1, 0),
      ]),
    );
    // SYSRET and SYSCALL count on the user side, or not.
    expect(readOf(e.checks.guest, 4).value).toEqual({ mode: 'range', lo: 4n, hi: 6n });
    const cycles = readOf(e.checks.guest, 5);
    expect(cycles.value.mode).toBe('atLeast');
    expect(cycles.why).toMatch(/cycles/);
  });
});
