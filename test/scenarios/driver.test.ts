import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { leaf0aEax, leaf0aEdx } from '../../model/hw/profile.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { MediatedVcpu } from '../../model/kvm/mediated/vcpu.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../model/hw/msr/global.js';
import { MSR_CORE_PERF_FIXED_CTR0, MSR_IA32_PERFCTR0 } from '../../model/hw/msr/counters.js';
import {
  DriverBoot,
  DriverClose,
  DriverLbr,
  DriverNmi,
  DriverOpen,
  DriverRun,
  DriverSwitch,
  type WorldCommand,
} from '../../scenarios/commands.js';
import { driverCommands, profileProgramArb } from '../../scenarios/generation.js';
import { programFromJson, programToJson } from '../../scenarios/serialize.js';
import { probeSupportedPmu } from '../../scenarios/supported.js';
import { emulatedWith } from '../../designs/registry.js';
import { EMULATED_OPS } from '../../model/kvm/emulated/ops.js';
import { type Observation, pmisOf } from '../../scenarios/observation.js';
import { type GuestConfig, World } from '../../scenarios/world.js';

const guestOf = (version: number, nGP: number, nFixed: number, caps = 0x2000n): GuestConfig => ({
  cpuid: {
    family: 6,
    model: 0x55,
    leaf0a: {
      eax: leaf0aEax(version, nGP, 48, 7),
      ebx: 0,
      ecx: 0,
      edx: version > 1 ? leaf0aEdx(nFixed, 48) : 0,
    },
    pdcm: true,
  },
  perfCapabilities: caps,
});
const insns = (n: number, k = 1) => Array.from({ length: k }, () => ({ cpl: 3, instructions: n }));

/** Runs `cmds` on a world of one guest on the faithful emulated vPMU, comparing at every step. */
function run(guest: GuestConfig, cmds: readonly WorldCommand[], design: 'emulated' | 'mediated' = 'emulated') {
  const w = new World({
    host: SKYLAKE,
    cpus: 2,
    guests: [guest],
    design: design === 'emulated' ? (h, o) => new EmulatedVcpu(h, o) : (h, o) => new MediatedVcpu(h, o),
  });
  fc.modelRun(() => ({ model: {}, real: w }), cmds);
  return w.observations;
}

const wrote = (obs: readonly Observation[], msr: number) => obs.filter((o) => o.kind === 'wrmsr' && o.target === msr);
const reads = (obs: readonly Observation[], msr: number) => obs.filter((o) => o.kind === 'rdmsr' && o.target === msr);

const sampling = (period: bigint) => ({ event: 0xc0n, usr: true, os: true, period });

describe('guest driver routines: each side runs Linux perf on what it reads', () => {
  it('v2: an overflow takes the PMI handler, which reads GLOBAL_STATUS, acks it raw, re-arms with -period and looks again', () => {
    const obs = run(guestOf(2, 4, 3), [
      new DriverBoot(0, { kernel: 'linux', ack: 'late', lvtpc: 0x400n }),
      new DriverOpen(0, [sampling(4n)]),
      new DriverRun(0, insns(3, 3)),
    ]);
    const acks = wrote(obs, MSR_CORE_PERF_GLOBAL_OVF_CTRL);
    expect(acks.length).toBeGreaterThan(0);
    // The ack writes back what the handler read; the read after it is 0 (the loop ends).
    for (const a of acks) {
      const i = obs.indexOf(a);
      const before = reads(obs.slice(0, i), MSR_CORE_PERF_GLOBAL_STATUS).at(-1)!;
      expect(before.oracle).toEqual({ kind: 'value', value: a.value });
      const after = reads(obs.slice(i), MSR_CORE_PERF_GLOBAL_STATUS)[0]!;
      expect(after.oracle).toEqual({ kind: 'value', value: 0n });
    }
    // Instructions go to fixed counter 0 (perf prefers it): preset to -4, then re-armed at -left after each ack
    // (the handler's own kernel instructions count once GLOBAL_CTRL is back, so left may be under 4, never under 2).
    const presets = wrote(obs, MSR_CORE_PERF_FIXED_CTR0).map((o) => (1n << 48n) - o.value!);
    expect(presets[0]).toBe(4n);
    expect(presets.length).toBe(acks.length + 1);
    expect(presets.every((p) => p >= 2n && p <= 4n)).toBe(true);
    expect(wrote(obs, MSR_CORE_PERF_GLOBAL_CTRL).map((o) => o.value)).toContain(0n);
  });

  it('v1: no global MSR is touched; the handler finds the overflowed counter by its clear top bit', () => {
    const obs = run(guestOf(1, 2, 0, 0n), [
      new DriverBoot(0, { kernel: 'linux-old', ack: 'early', lvtpc: 0x400n }),
      new DriverOpen(0, [sampling(3n), { event: 0xc4n, usr: true, os: true, period: 0n }]),
      new DriverRun(0, insns(4, 2)),
      new DriverNmi(0),
    ]);
    const globals = [MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_OVF_CTRL];
    expect(obs.filter((o) => o.target !== null && globals.includes(o.target) && o.kind !== 'rdpmc')).toEqual([]);
    // Re-armed through the legacy alias at -3 (32-bit write, sign-extended).
    expect(wrote(obs, MSR_IA32_PERFCTR0).filter((o) => (o.value! & 0xffff_ffffn) === 0xffff_fffdn).length).toBe(
      wrote(obs, MSR_IA32_PERFCTR0).length - 1, // the boot probe's counter write is the other one
    );
  });

  it('a context switch saves each count with RDPMC and restarts the counter at -left; both vPMU designs agree with bare metal', () => {
    const program = [
      new DriverBoot(0, { kernel: 'linux', ack: 'late', lvtpc: 0x400n }),
      new DriverLbr(0, { select: 0x1c4n, callStack: false }),
      new DriverOpen(0, [sampling(6n), { event: 0x3cn, usr: true, os: false, period: 0n }]),
      new DriverRun(0, insns(2, 2)),
      new DriverSwitch(0, insns(5)),
      new DriverRun(0, insns(3, 3)),
      new DriverClose(0, 1),
      new DriverRun(0, insns(3, 2)),
    ];
    for (const design of ['emulated', 'mediated'] as const) {
      const obs = run(guestOf(2, 4, 3), program, design);
      expect(obs.filter((o) => o.kind === 'rdpmc').length).toBeGreaterThan(2);
      expect(obs.some((o) => o.kind === 'driver')).toBe(false);
    }
  });

  it('prints each command as the code that builds it, and serialises it like every other command', () => {
    const cmds: WorldCommand[] = [
      new DriverBoot(1, { kernel: 'linux-old', ack: 'mid', lvtpc: 0x20n }),
      new DriverOpen(0, [{ event: 0xc4n, usr: true, os: false, period: 0x2n }]),
      new DriverRun(0, [{ cpl: 3, instructions: 2 }]),
      new DriverSwitch(0, [{ cpl: 0, instructions: 1 }]),
      new DriverNmi(2),
      new DriverClose(0, 3),
      new DriverLbr(0, { select: 0x1c4n, callStack: true }),
    ];
    expect(cmds.map(String)).toEqual([
      "new DriverBoot(1, { kernel: 'linux-old', ack: 'mid', lvtpc: 0x20n })",
      'new DriverOpen(0, [{ event: 0xc4n, usr: true, os: false, period: 0x2n }])',
      'new DriverRun(0, [{cpl: 3, instructions: 2}])',
      'new DriverSwitch(0, [{cpl: 0, instructions: 1}])',
      'new DriverNmi(2)',
      'new DriverClose(0, 3)',
      'new DriverLbr(0, { select: 0x1c4n, callStack: true })',
    ]);
    fc.assert(
      fc.property(fc.array(fc.oneof(...driverCommands()), { maxLength: 10 }), (c) => {
        expect(programFromJson(JSON.parse(JSON.stringify(programToJson(c)))).map(String)).toEqual(c.map(String));
      }),
      { numRuns: 200 },
    );
  });

  it('the driver profile: most programs count to an overflow, whose PMI the driver then handles', () => {
    const supported = probeSupportedPmu(SKYLAKE, emulatedWith(EMULATED_OPS));
    const programs = fc.sample(profileProgramArb(SKYLAKE, 'driver', supported), { numRuns: 60, seed: 7 });
    let overflowed = 0;
    for (const [guest, cmds] of programs) {
      const w = new World({
        host: SKYLAKE,
        cpus: 2,
        guests: [guest],
        design: (h, o) => new EmulatedVcpu(h, o),
        compare: false,
      });
      for (const c of cmds) c.run({}, w);
      // Bare metal raised a PMI: a counter wrapped with its PMI enabled, and the driver's handler ran for it.
      if (w.observations.some((o) => pmisOf(o.oracle).length > 0)) overflowed++;
    }
    expect(overflowed / programs.length).toBeGreaterThan(0.5);
  });
});
