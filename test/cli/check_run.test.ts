import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type CheckSpec, CheckSpecError, checkOf, countsOfRuns, runCheck } from '../../cli/check_run.js';
import { designChecks, notApplicable } from '../../properties/checks.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { DESIGNS } from '../../designs/registry.js';

const tmp = mkdtempSync(join(tmpdir(), 'vpmu-check-run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const spec = (over: Partial<CheckSpec> = {}): CheckSpec => ({
  check: 'conformance',
  design: 'emulated',
  host: 'skylake',
  gen: 'quiet',
  seed: 1,
  runs: 30,
  timeSeconds: null,
  out: tmp,
  found: '2026-01-01',
  ...over,
});

describe('runCheck: a check from a plain spec to a plain result (what a worker runs)', () => {
  it('runs the check the spec names and returns a structured-clonable result', () => {
    const r = runCheck(spec());
    expect(r).toMatchObject({
      check: 'conformance',
      gen: 'quiet',
      design: 'emulated',
      host: 'skylake',
      result: 'passed',
      programs: 30,
    });
    expect(structuredClone(r)).toEqual(r);
  });

  it('a law of the model has no design', () => {
    expect(runCheck(spec({ check: 'readback', design: null, host: 'random', gen: null }))).toMatchObject({
      design: null,
      result: 'passed',
    });
  });

  it('stops when the flag is set: interrupted, never failed, even before its first program', () => {
    const stop = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(stop, 0, 1);
    const r = runCheck(spec({ runs: 1000 }), stop);
    expect(r).toMatchObject({ result: 'interrupted', reason: 'signal', programs: 0, failure: null });
  });

  it('writes a vmm-conformance failure as a property 1 report its replay still fails; a vmm-abi one says it has no report', () => {
    // Seed 2 shrinks to a guest's RDMSR of the filtered counter (seed 1 to the VMM's KVM_GET_MSRS of it).
    const r = runCheck(spec({ check: 'vmm-conformance', design: 'bug/dfdeda67ea2d', gen: null, runs: 1000, seed: 2 }));
    expect(r).toMatchObject({ result: 'failed', reportError: null });
    expect(r.report?.markdown).toMatch(/rdmsr-0xc1/);
    const replayed = readFileSync(r.report!.json, 'utf8');
    const { program } = JSON.parse(replayed) as { program: readonly { cmd: string }[] };
    expect(program.some((c) => c.cmd === 'VmmSetPmuEventFilter')).toBe(true);
    const abi = runCheck(spec({ check: 'vmm-abi', design: 'bug/e33b6d79acac', gen: null, runs: 1000 }));
    expect(abi).toMatchObject({ result: 'failed', report: null });
    expect(abi.reportError).toMatch(/no report format yet/);
  });

  it('refuses a spec that names no check', () => {
    expect(() => checkOf(spec({ gen: 'nope' }))).toThrow(CheckSpecError);
  });
});

describe('notApplicable: the complement of designChecks', () => {
  it.each(DESIGNS.map((d) => [d.id, d] as const))('%s: every check either runs or is n/a with a reason', (_id, d) => {
    const all = new Set(designChecks(DESIGNS[0]!, 'skylake', BUILTIN_PROFILES.skylake!).map((c) => c.id));
    for (const [name, host] of Object.entries(BUILTIN_PROFILES)) {
      const run = new Set(designChecks(d, name, host).map((c) => c.id));
      const na = notApplicable(d, name, host);
      for (const n of na) expect(n.reason.length).toBeGreaterThan(0);
      if (na.some((n) => n.id === '*')) expect(run.size).toBe(0);
      else expect(new Set([...run, ...na.map((n) => n.id)])).toEqual(all);
      for (const n of na) expect(run.has(n.id)).toBe(false);
    }
  });
});

describe('countsOfRuns: a check reports the programs it counted, not the runs of its shrinker', () => {
  it('a failure at run 5 tallies 5 programs, however often shrinking runs the property again', () => {
    const known = new Map<string, number>();
    const ended = new Map<string, number>();
    const counted = countsOfRuns(known, ended);
    const tally = (m: Map<string, number>) => m.set('x', (m.get('x') ?? 0) + 1);
    let runs = 0;
    const p = fc.property(fc.nat(1000), (n) => {
      tally(known);
      tally(ended);
      return ++runs < 5 || n < 3; // fails from the fifth run on, for values the shrinker tries many of
    });
    const d = fc.check(p, { seed: 1, numRuns: 100, plugins: [counted.plugin] });
    expect(d.failed).toBe(true);
    expect(ended.get('x')!).toBeGreaterThan(d.numRuns); // the shrinker ran it too
    const [k, e] = counted.after(d.numRuns);
    expect([k.get('x'), e.get('x')]).toEqual([d.numRuns, d.numRuns]);
  });
});
