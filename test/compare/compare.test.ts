import { describe, expect, it } from 'vitest';
import { CostSpecError, defaultCosts, parseCostOverride, priced } from '../../compare/costs.js';
import { runWorkload } from '../../compare/run.js';
import { WORKLOADS } from '../../compare/workloads.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../model/hw/profiles.js';
import { newVpmuCost } from '../../model/kvm/cost.js';
import { designById } from '../../designs/registry.js';
import { parseCompareResults } from '../../cli/results.js';
import { cli } from '../support/cli.js';

const workload = (id: string) => WORKLOADS.find((w) => w.id === id)!;

describe('the cost model', () => {
  it('prices a tally step by step', () => {
    const t = { ...newVpmuCost(), msrExits: 2, perfCreates: 1 };
    const c = { ...defaultCosts(), msrExits: 10, perfCreates: 1000 };
    expect(priced(t, c)).toBe(1020);
  });

  it('takes overrides as step=ns and refuses anything else in one line', () => {
    expect(parseCostOverride('perfCreates=25000', defaultCosts()).perfCreates).toBe(25000);
    expect(() => parseCostOverride('perfCreate=1', defaultCosts())).toThrow(CostSpecError);
    expect(() => parseCostOverride('perfCreates=fast', defaultCosts())).toThrow(/expected step=nanoseconds/);
  });
});

describe('workloads on both designs', () => {
  it('perf stat: the perf-based vPMU creates a perf event per counter, the mediated one none, and both show the guest what bare metal does', () => {
    const e = runWorkload(workload('perf-stat'), designById('emulated'), 'skylake', SKYLAKE, defaultCosts());
    const m = runWorkload(workload('perf-stat'), designById('mediated'), 'skylake', SKYLAKE, defaultCosts());
    expect(e.verdict).toBe('conforms');
    expect(m.verdict).toBe('conforms');
    expect(e.steps.perfCreates).toBe(6);
    expect(m.steps.perfCreates).toBe(0);
    expect(m.ns).toBeLessThan(e.ns);
  });

  it('perf record: every PMI exits to the host on both designs and is injected once', () => {
    for (const d of ['emulated', 'mediated']) {
      const r = runWorkload(workload('perf-record'), designById(d), 'skylake', SKYLAKE, defaultCosts());
      expect(r.verdict, d).toBe('conforms');
      expect(r.steps.pmiExits, d).toBe(10);
      expect(r.steps.injectedPmis, d).toBe(10);
    }
  });

  it('seed 003: an assigned counter takes guest selector and counter writes directly, with no perf event after the first', () => {
    const d = runWorkload(workload('multiplex'), designById('hw-assigned'), 'skylake', SKYLAKE, defaultCosts());
    const e = runWorkload(workload('multiplex'), designById('emulated'), 'skylake', SKYLAKE, defaultCosts());
    expect(d.steps.perfCreates).toBe(4); // one per vPMC, the first time it is enabled
    expect(d.steps.perfReleases).toBe(0);
    expect(d.steps.reprograms).toBe(4);
    expect(d.steps.kvmMsrAccesses).toBeGreaterThan(0);
    expect(e.steps.kvmMsrAccesses).toBe(0);
    expect(d.ns).toBeLessThan(e.ns / 5);
    // perf stat as Linux programs it (select, then GLOBAL_CTRL) counts nothing: its controls are never loaded.
    const s = runWorkload(workload('perf-stat'), designById('hw-assigned'), 'skylake', SKYLAKE, defaultCosts());
    expect(s.verdict).toBe('declared: global-ctrl-not-loaded');
  });

  it('Arch LBR (seed 004): the v2 series records the guest perf record -b and passes its record reads through; a design without guest Arch LBR cannot run it', () => {
    const run = (d: string) =>
      runWorkload(workload('arch-lbr-pmi'), designById(d), 'sapphirerapids', SAPPHIRE_RAPIDS, defaultCosts());
    const a = run('arch-lbr');
    expect(a.verdict).toBe('conforms');
    expect(a.steps.perfCreates).toBe(2); // the branch counter's event and the guest LBR event
    expect(a.steps.pmiExits).toBe(10);
    // Every MSR access exits but the 80 record reads, which pass through while the guest LBR event is ACTIVE.
    expect(a.steps.msrExits).toBe(66);
    expect(a.ns).toBeGreaterThan(0);
    expect(run('emulated').verdict).toBe('unavailable: no guest Arch LBR (CPUID.(7,0):EDX[19]) from this design');
  });

  it('multiplexing: the perf-based vPMU releases and recreates events as the guest rotates them', () => {
    const e = runWorkload(workload('multiplex'), designById('emulated'), 'skylake', SKYLAKE, defaultCosts());
    expect(e.steps.perfReleases).toBeGreaterThan(0);
    expect(e.steps.perfCreates).toBeGreaterThan(e.steps.perfReleases - 1);
  });
});

describe('npm run compare', () => {
  const compare = (...args: string[]) => cli(['compare', ...args]);

  it('prints the workloads of the four designs as JSON for one host, without the property runs', () => {
    const r = compare('--runs', '0', '--profile', 'skylake', '--json');
    expect(r.code).toBe(0);
    const out = parseCompareResults(JSON.parse(r.out));
    expect(out.format).toBe('vpmu-conformance/compare@1');
    expect(out.workloads.map((w) => `${w.workload}/${w.design}`)).toEqual(
      WORKLOADS.flatMap((w) => ['pre-reuse', 'hw-assigned', 'emulated', 'mediated'].map((d) => `${w.id}/${d}`)),
    );
  });

  it.each([
    [['--cost', 'nope=1'], "unknown step 'nope'"],
    [['--cost', 'msrExits'], 'expected step=nanoseconds'],
    [['--design', 'bogus'], 'Allowed choices are'],
  ])('rejects %j with a one-line error', (args, msg) => {
    const r = compare(...args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(msg);
    expect(r.err).not.toMatch(/\n\s+at /);
  });
});
