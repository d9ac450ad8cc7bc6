/**
 * `npm run compare` prices a design by the perf API calls its vCPUs count (model/kvm/cost.ts). On generated programs
 * without host users, every perf call after boot is KVM's: each design's counts of events created and released, and
 * of its other calls on them, must be the calls host perf saw, one for one, and its count of injected PMIs the PMIs
 * the guest got (seldom any: quiet programs rarely unmask LVTPC and overflow a counter with INT, so driver programs,
 * which take PMIs, hold that count too); on the perf-based vPMU, its exits by kind are the guest instructions that
 * always exit. A count bumped twice, or a call made without its count, prices a design wrong.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { designById } from '../../../designs/registry.js';
import { HostKernel } from '../../../model/host/perf.js';
import { BUILTIN_PROFILES } from '../../../model/hw/profiles.js';
import { profileProgramArb } from '../../../scenarios/generation.js';
import { type HostKernelFactory, type VcpuFactory, World } from '../../../scenarios/world.js';
import type { VpmuVcpu } from '../../../model/kvm/types.js';
import { pmisOf } from '../../../scenarios/observation.js';
import type { VpmuCost } from '../../../model/kvm/cost.js';
import { PERF_CAP_LBR_FMT } from '../../../model/hw/msr/capabilities.js';

/** The perf calls KVM counts as perfCalls (cost.ts): period, enable, disable, pause, read, and the topdown push. */
const CALLS = [
  'perf_event_enable',
  'perf_event_disable',
  'perf_event_read_value',
  'perf_event_pause',
  'perf_event_period',
  'perf_event_topdown_metrics',
] as const;

type Seen = { creates: number; releases: number; calls: number };

/**
 * The design's host kernel, its perf API counted from the moment `seen.on` is set (after boot). Only the outermost
 * call counts: host perf's own calls inside one (perf_event_pause disables the event) are not KVM's.
 */
function counted(factory: HostKernelFactory | undefined, seen: Seen & { on: boolean }): HostKernelFactory {
  return (o) => {
    const h = (factory ?? ((x) => new HostKernel(x)))(o);
    let depth = 0;
    const wrap = (name: string, k: keyof Seen) => {
      const f = (h as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!.bind(h);
      (h as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
        if (seen.on && depth === 0) seen[k]++;
        depth++;
        try {
          return f(...a);
        } finally {
          depth--;
        }
      };
    };
    wrap('perf_event_create_kernel_counter', 'creates');
    wrap('perf_event_release_kernel', 'releases');
    for (const name of CALLS) wrap(name, 'calls');
    seen.on = true; // the NMI watchdog and the kernel's start-up are made; what follows is KVM's
    return h;
  };
}

/** The designs built on the perf-based vPMU, whose exits follow from the guest's instructions alone. */
const EXITS_ALWAYS = ['emulated', 'pre-reuse', 'topdown-raw', 'topdown-rebuilt'];

const DESIGNS = ['emulated', 'mediated', 'pre-reuse', 'arch-lbr', 'hw-assigned', 'topdown-raw', 'topdown-rebuilt'];

describe("a design's perf costs are the perf calls it made", () => {
  for (const id of DESIGNS)
    for (const host of ['skylake', 'sapphirerapids'])
      it(`${id} on ${host}`, () => {
        const d = designById(id);
        const profile = BUILTIN_PROFILES[host]!;
        const supported = d.supported(profile);
        fc.assert(
          fc.property(profileProgramArb(profile, 'quiet', supported), ([guest, cmds]) => {
            const seen = { on: false, creates: 0, releases: 0, calls: 0 };
            const w = new World({
              host: profile,
              cpus: 2,
              guests: [guest],
              design: d.factory,
              hostKernel: counted(d.hostKernel, seen),
              compare: false,
            });
            fc.modelRun(() => ({ model: {}, real: w }), [...cmds]);
            const sum = (k: keyof VpmuCost) => w.vcpus.reduce((n, v) => n + v.cost[k], 0);
            // Every PMI the guest got is one the design injected: in a run, or around an instruction.
            const pmis = w.observations.reduce(
              (n, o) => n + (o.kind === 'run' || o.kind === 'pmi' ? pmisOf(o.sut).length : 0),
              0,
            );
            expect({
              creates: sum('perfCreates'),
              releases: sum('perfReleases'),
              calls: sum('perfCalls'),
              injected: sum('injectedPmis'),
            }).toEqual({ creates: seen.creates, releases: seen.releases, calls: seen.calls, injected: pmis });
            if (!EXITS_ALWAYS.includes(id)) return;
            // The perf-based vPMU intercepts every RDPMC and every PMU MSR but the LBRs' (passed through while the
            // guest LBR event runs), and a forced-emulation prefix always exits.
            const n = (...kinds: string[]) => w.observations.filter((o) => kinds.includes(o.kind)).length;
            const lbr = guest.cpuid.pdcm && (guest.perfCapabilities & PERF_CAP_LBR_FMT) !== 0n;
            expect({
              rdpmc: sum('rdpmcExits'),
              emulation: sum('emulationExits'),
              ...(lbr ? {} : { msr: sum('msrExits') }),
            }).toEqual({ rdpmc: n('rdpmc'), emulation: n('emulate'), ...(lbr ? {} : { msr: n('rdmsr', 'wrmsr') }) });
          }),
          { numRuns: 40 },
        );
      });
});

/** The design's factory, keeping every vCPU it makes: a save/restore replaces a vCPU, whose counts start again. */
function kept(factory: VcpuFactory, all: VpmuVcpu[]): VcpuFactory {
  return (h, o) => {
    const v = factory(h, o);
    all.push(v);
    return v;
  };
}

describe("a design's injected PMIs are the PMIs its guest got, on driver programs", () => {
  for (const id of DESIGNS)
    for (const host of ['skylake', 'sapphirerapids'])
      it(`${id} on ${host}`, () => {
        const d = designById(id);
        const profile = BUILTIN_PROFILES[host]!;
        let withPmis = 0;
        fc.assert(
          fc.property(profileProgramArb(profile, 'driver', d.supported(profile)), ([guest, cmds]) => {
            const all: VpmuVcpu[] = [];
            const w = new World({
              host: profile,
              cpus: 2,
              guests: [guest],
              design: kept(d.factory, all),
              ...(d.hostKernel !== undefined ? { hostKernel: d.hostKernel } : {}),
              compare: false,
            });
            fc.modelRun(() => ({ model: {}, real: w }), [...cmds]);
            const pmis = w.observations.reduce(
              (n, o) => n + (o.kind === 'run' || o.kind === 'pmi' ? pmisOf(o.sut).length : 0),
              0,
            );
            if (pmis > 0) withPmis++;
            expect(all.reduce((n, v) => n + v.cost.injectedPmis, 0)).toBe(pmis);
          }),
          { numRuns: 15 },
        );
        // The count is held where it moves: most driver programs take PMIs.
        expect(withPmis).toBeGreaterThan(5);
      });
});
