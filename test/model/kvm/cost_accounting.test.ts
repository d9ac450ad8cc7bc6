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
import { BUILTIN_PROFILES, SKYLAKE } from '../../../model/hw/profiles.js';
import { profileProgramArb } from '../../../scenarios/generation.js';
import { type HostKernelFactory, type VcpuFactory, World } from '../../../scenarios/world.js';
import type { VpmuVcpu } from '../../../model/kvm/types.js';
import { pmisOf } from '../../../scenarios/observation.js';
import type { VpmuCost } from '../../../model/kvm/cost.js';
import { PERF_CAP_LBR_FMT } from '../../../model/hw/msr/capabilities.js';
import { attr } from '../../../model/host/types.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import { createVcpu, CYCLES, INSTRUCTIONS, val, work, type World as VcpuWorld } from './util.js';

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
          // A seed of its own: the share of programs with PMIs below is this sample's, not the run's seed's.
          { numRuns: 15, seed: 1 },
        );
        // The count is held where it moves: most driver programs take PMIs.
        expect(withPmis).toBeGreaterThan(5);
      });
});

/**
 * The perf-based vPMU's own MSR accesses at VM-entry and VM-exit (entryExitMsrAccesses): atomic_switch_perf_msrs puts
 * perf's GLOBAL_CTRL pair on the entry and exit MSR-load lists only while the guest and host values differ, so such a
 * round trip loads it twice and otherwise not at all; and the exit restores the host's DEBUGCTL (update_debugctlmsr)
 * only when it is not 0. One guest run without PMIs is one entry and one exit.
 */
describe('the perf-based vPMU counts its MSR switch at entry and exit', () => {
  const INSNS = ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTRUCTIONS;
  /** What one guest run of two units, no PMI, costs in entries and entry/exit MSR accesses. */
  const oneRun = (w: VcpuWorld) => {
    const { entries, entryExitMsrAccesses } = w.vcpu.cost;
    expect(w.vcpu.guestRun(work(2, 10))).toEqual([]);
    return {
      entries: w.vcpu.cost.entries - entries,
      msrs: w.vcpu.cost.entryExitMsrAccesses - entryExitMsrAccesses,
    };
  };
  const hostDebugctl = (w: VcpuWorld) => val(w.host.pcpu(w.vcpu.cpu).hw.rdmsr(MSR_IA32_DEBUGCTLMSR));

  it('nothing while guest and host GLOBAL_CTRL agree and the host DEBUGCTL is 0', () => {
    const w = createVcpu({ profile: SKYLAKE });
    expect(oneRun(w)).toEqual({ entries: 1, msrs: 0 });
    expect(hostDebugctl(w)).toBe(0n);
  });

  it('GLOBAL_CTRL loaded at entry and at exit while a guest counter runs and the host counts nothing', () => {
    const w = createVcpu({ profile: SKYLAKE });
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_ENABLE));
    expect(oneRun(w)).toEqual({ entries: 1, msrs: 2 });
    expect(hostDebugctl(w)).toBe(0n);
  });

  it("the host's DEBUGCTL restored at each exit while a host LBR user keeps DEBUGCTL.LBR set", () => {
    const w = createVcpu({ profile: SKYLAKE });
    // `perf record -b -C 0`: its cycles event counts guest and host alike, so GLOBAL_CTRL needs no switch.
    const r = w.host.perf_event_open(
      attr({
        config: CYCLES,
        sample_period: 1_000_000n,
        pinned: true,
        branchSample: { user: true, kernel: true, callStack: false },
      }),
      { cpu: 0 },
    );
    expect('error' in r).toBe(false);
    expect(hostDebugctl(w)).not.toBe(0n);
    expect(oneRun(w)).toEqual({ entries: 1, msrs: 1 });
  });
});
