import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../model/hw/profiles.js';
import {
  ARCH_LBR_LBREN,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../../model/hw/msr/lbr_arch.js';
import { attr } from '../../model/host/types.js';
import { ARCH_LBR_OPS } from '../../model/kvm/series/arch_lbr.js';
import type { Design } from '../../properties/design.js';
import { ARCH_LBR_DISTURBANCES } from '../../properties/expectations/arch_lbr.js';
import {
  GuestRdmsr,
  GuestRun,
  GuestWrmsr,
  GuestXrstors,
  HostOpen,
  HostWork,
  type WorldCommand,
} from '../../scenarios/commands.js';
import { reportedGuest } from '../support/guests.js';
import { buildReport } from '../../reports/build.js';
import { PRE_GLOBAL_CTRL_MASK_FIX_OPS } from '../../model/host/bugs/971079464001_global_ctrl_mask.js';
import { designById, emulatedWith, hostWith } from '../../designs/registry.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { EMULATED_OPS } from '../../model/kvm/emulated/ops.js';
import { MSR_LBR_NHM_FROM } from '../../model/hw/msr/lbr_legacy.js';
import {
  checkHostUndisturbed,
  HostDisturbed,
  HostLbrDisturbed,
  type HostUndisturbedRun,
  hostUndisturbedProperty,
} from '../../properties/host_undisturbed.js';

const emulated: HostUndisturbedRun = { host: SKYLAKE, design: (h, o) => new EmulatedVcpu(h, o) };

describe('property 2 (guest to host): the guest does not disturb host events', () => {
  it('holds for the emulated vPMU on upstream perf (1000 programs)', () => {
    fc.assert(hostUndisturbedProperty(emulated), { numRuns: 1000 });
  });

  it('finds bug #1 (exclude_guest counters left enabled in the guest, fixed by 971079464001) in a two-command program', () => {
    // Seeds 1-5 all find it in a program or six; on seed 1 the host event is a branch-stack user's (its attr has more).
    for (const seed of [1, 2]) {
      const d = fc.check(hostUndisturbedProperty({ ...emulated, hostKernel: hostWith(PRE_GLOBAL_CTRL_MASK_FIX_OPS) }), {
        numRuns: 1000,
        seed,
      });
      expect(d.failed).toBe(true);
      expect(d.errorInstance).toBeInstanceOf(HostDisturbed);
      const [[, cmds]] = d.counterexample!;
      const program = cmds.map(String).filter((c) => !c.startsWith('new Migrate'));
      expect(program).toHaveLength(2);
      expect(program[0]).toMatch(
        /^new HostOpen\(\d, attr\(\{ config: 0x[0-9a-f]+n, .*pinned: true, exclude_kernel: true, exclude_guest: true/,
      );
      expect(program[1]).toMatch(/^new GuestRun\(/);
    }
  });
});

describe("property 2 (guest to host) on a legacy LBR host: host perf's DEBUGCTL LBR bits, LBR_SELECT and records hold", () => {
  it('finds a vPMU whose VM-exit writes a host LBR record (MSR_LBR_NHM_FROM), on two seeds', () => {
    // Seeds 1-3 find it within 137 to 510 programs; the faithful design passes the same programs (the test above).
    const writesRecord = emulatedWith({
      ...EMULATED_OPS,
      vmx_vcpu_exit: (vcpu) => {
        const entered = vcpu.inGuest;
        EMULATED_OPS.vmx_vcpu_exit(vcpu);
        if (entered) vcpu.host.pcpu(vcpu.cpu).hw.wrmsr(MSR_LBR_NHM_FROM, 0xffff_ffff_8123_4567n);
      },
    });
    for (const seed of [1, 3]) {
      const d = fc.check(hostUndisturbedProperty({ ...emulated, design: writesRecord }), {
        seed,
        numRuns: 200,
        endOnFailure: true,
      });
      expect(d.failed).toBe(true);
      expect(d.errorInstance).toBeInstanceOf(HostLbrDisturbed);
      expect(String(d.errorInstance)).toMatch(/host perf's records after step \d+ .* is .*ffffffff81234567->/);
    }
  });
});

const archLbr = designById('arch-lbr');
const onSpr = (design: Design): HostUndisturbedRun => ({
  host: SAPPHIRE_RAPIDS,
  design: design.factory,
  supported: design.supported(SAPPHIRE_RAPIDS),
});

/** A guest with Arch LBR as the series reports it (KVM's leaf 0x1C, LBR_FMT 0x3f). */
const archGuest = reportedGuest(archLbr, SAPPHIRE_RAPIDS, true);

/** perf record -b -a -e branches:u on pCPU 0, then host user work it records. */
const hostRecording: WorldCommand[] = [
  new HostOpen(
    0,
    attr({
      config: 0xc4n,
      pinned: true,
      exclude_guest: true,
      exclude_kernel: true,
      sample_period: 1_000_000n,
      branchSample: { user: true, kernel: false, callStack: false },
    }),
  ),
  new HostWork(0, [
    {
      cpl: 3,
      instructions: 4,
      cycles: 6,
      branches: [
        { from: 0x7f00_0000_1000n, to: 0x7f00_0000_2000n, kind: 'NEAR_REL_JMP' },
        { from: 0x7f00_0000_2040n, to: 0x7f00_0000_3000n, kind: 'NEAR_REL_CALL' },
      ],
    },
  ]),
];

describe("property 2 (guest to host) on an Arch LBR host: host perf's LBR_CTL, DEPTH and records hold", () => {
  it('holds for the emulated vPMU, a host LBR user among its programs (200 programs)', () => {
    fc.assert(hostUndisturbedProperty(onSpr(designById('emulated'))), { numRuns: 200, seed: 1 });
  });

  it('finds the v2 series clearing the host LBR_CTL at VM-exit once its declarations are set aside', () => {
    // Seeds 1-8 all find it, within 1 to 18 programs.
    for (const seed of [1, 2]) {
      const d = fc.check(hostUndisturbedProperty(onSpr(archLbr)), { seed, numRuns: 20, endOnFailure: true });
      expect(d.failed).toBe(true);
      expect(d.errorInstance).toBeInstanceOf(HostLbrDisturbed);
      expect(String(d.errorInstance)).toMatch(/host perf's LBR_CTL after step \d+ .* is 0x0 with the guest running/);
      // No report format for it yet: the run says so and points at the counterexample, not "not a divergence".
      const f = {
        details: d,
        property: { id: 'host-undisturbed', rule: 'design.md property 2' },
        design: archLbr,
        hostName: 'sapphirerapids',
        host: SAPPHIRE_RAPIDS,
        found: '2026-01-01',
        outDir: 'reports/out',
      };
      expect(() => buildReport(f)).toThrow(/LBR comparison has no report format yet: the counterexample above/);
    }
  });

  it('holds for the v2 series up to its declared disturbances, each met by a program (and 200 generated ones)', () => {
    const run = { ...onSpr(archLbr), disturbances: ARCH_LBR_DISTURBANCES };
    const met = (guestCommands: WorldCommand[]): string[] => {
      const known = new Map<string, number>();
      checkHostUndisturbed({ ...run, known }, archGuest, [...hostRecording, ...guestCommands]);
      return [...known.keys()].sort();
    };
    expect(met([new GuestRdmsr(0, MSR_ARCH_LBR_CTL)])).toEqual(['exit-clears-host-lbr-ctl']);
    expect(met([new GuestWrmsr(0, MSR_ARCH_LBR_DEPTH, 32n)])).toEqual([
      'depth-write-zeroes-host-records',
      'exit-clears-host-lbr-ctl',
    ]);
    expect(met([new GuestWrmsr(0, MSR_ARCH_LBR_FROM_0, 0xffff_ffff_8100_0000n)])).toEqual([
      'exit-clears-host-lbr-ctl',
      'raw-record-write-overwrites-host-records',
    ]);
    expect(met([new GuestXrstors(0)])).toEqual(['exit-clears-host-lbr-ctl', 'xrstors-overwrites-host-records']);
    // Upstream KVM (no Arch LBR for its guests), on the same programs: nothing of the host's LBRs changes.
    const upstreamGuest = reportedGuest(designById('emulated'), SAPPHIRE_RAPIDS, false);
    for (const c of [
      new GuestRdmsr(0, MSR_ARCH_LBR_CTL),
      new GuestWrmsr(0, MSR_ARCH_LBR_DEPTH, 32n),
      new GuestXrstors(0),
    ])
      checkHostUndisturbed(onSpr(designById('emulated')), upstreamGuest, [...hostRecording, c]);
    const known = new Map<string, number>();
    fc.assert(hostUndisturbedProperty({ ...run, known }), { numRuns: 200, seed: 1 });
    expect(known.get('exit-clears-host-lbr-ctl')).toBeGreaterThan(10);
  });

  it("entry-loads-guest-lbr-ctl: a guest with LBREn set records into a host user's LBRs; with LBREn clear, a VM-entry that sets it is reported", () => {
    // FC_SEED=1216755622: LBREn and call-stack mode set before the host user takes the LBRs; the kernel's return pops
    // the host's record and its branches take the host's stack.
    const kernelWork = new GuestRun(0, [
      {
        cpl: 0,
        instructions: 3,
        cycles: 3,
        branches: [
          { from: 0xffff_ffff_8100_0000n, to: 0xffff_ffff_8100_0040n, kind: 'NEAR_RET' },
          { from: 0xffff_ffff_8100_0080n, to: 0xffff_ffff_8100_00c0n, kind: 'COND' },
        ],
      },
    ]);
    const program = (ctl: bigint) => [new GuestWrmsr(0, MSR_ARCH_LBR_CTL, ctl), ...hostRecording, kernelWork];
    const met = (design: Design['factory'], ctl: bigint) => {
      const known = new Map<string, number>();
      const run = { ...onSpr(archLbr), design, disturbances: ARCH_LBR_DISTURBANCES, known };
      checkHostUndisturbed(run, archGuest, program(ctl));
      return [...known.keys()].sort();
    };
    expect(met(archLbr.factory, 0x7f000fn)).toEqual(['entry-loads-guest-lbr-ctl', 'exit-clears-host-lbr-ctl']);
    expect(met(archLbr.factory, 0x7f000en)).toEqual(['exit-clears-host-lbr-ctl']);
    const entersEnabled = emulatedWith({
      ...ARCH_LBR_OPS,
      vmx_vcpu_enter: (vcpu) => {
        ARCH_LBR_OPS.vmx_vcpu_enter(vcpu);
        const hw = vcpu.host.pcpu(vcpu.cpu).hw;
        const ctl = hw.rdmsr(MSR_ARCH_LBR_CTL);
        if (ctl.ok) hw.wrmsr(MSR_ARCH_LBR_CTL, ctl.value | ARCH_LBR_LBREN);
      },
    });
    expect(() => met(entersEnabled, 0x7f000en)).toThrow(/host perf's records after step 4 .* with the guest running/);
    // Seed 1295219272: call-stack mode recording calls and returns only. The return pops the host's call record and the
    // guest records nothing of its own.
    expect(met(archLbr.factory, 0x38000fn)).toEqual(['entry-loads-guest-lbr-ctl', 'exit-clears-host-lbr-ctl']);
    // Without call-stack mode the guest's branches go on top and the host's records stay below them, in order.
    expect(met(archLbr.factory, 0x7f0007n)).toEqual(['exit-clears-host-lbr-ctl']);
  });

  it("entry-loads-guest-lbr-ctl excuses no more of the host's records than the guest's returns pop", () => {
    const condOnly = new GuestRun(0, [
      {
        cpl: 0,
        instructions: 2,
        cycles: 2,
        branches: [{ from: 0xffff_ffff_8100_0080n, to: 0xffff_ffff_8100_00c0n, kind: 'COND' }],
      },
    ]);
    const met = (design: Design['factory']) => {
      const known = new Map<string, number>();
      const run = { ...onSpr(archLbr), design, disturbances: ARCH_LBR_DISTURBANCES, known };
      checkHostUndisturbed(run, archGuest, [
        new GuestWrmsr(0, MSR_ARCH_LBR_CTL, 0x7f000fn),
        ...hostRecording,
        condOnly,
      ]);
      return [...known.keys()].sort();
    };
    expect(met(archLbr.factory)).toEqual(['exit-clears-host-lbr-ctl']);
    // Planted: VM-entry also zeroes the newest record, the host's call, in a run without a return.
    const zeroesNewest = emulatedWith({
      ...ARCH_LBR_OPS,
      vmx_vcpu_enter: (vcpu) => {
        ARCH_LBR_OPS.vmx_vcpu_enter(vcpu);
        const hw = vcpu.host.pcpu(vcpu.cpu).hw;
        for (const m of [MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0]) hw.wrmsr(m, 0n);
      },
    });
    expect(() => met(zeroesNewest)).toThrow(/host perf's records after step 4 .* with the guest running/);
  });

  it('catches a series whose VM-exit also resets the LBRs (a DEPTH write) through those declarations, on two seeds', () => {
    const resets = emulatedWith({
      ...ARCH_LBR_OPS,
      vmx_vcpu_exit: (vcpu) => {
        const entered = vcpu.inGuest;
        ARCH_LBR_OPS.vmx_vcpu_exit(vcpu);
        if (entered) vcpu.host.pcpu(vcpu.cpu).hw.wrmsr(MSR_ARCH_LBR_DEPTH, 32n);
      },
    });
    // Seeds 1-12 all find it within 264 programs; seeds 1 and 7 within 4.
    for (const seed of [1, 7]) {
      const run = { ...onSpr(archLbr), design: resets, disturbances: ARCH_LBR_DISTURBANCES };
      const d = fc.check(hostUndisturbedProperty(run), { seed, numRuns: 30, endOnFailure: true });
      expect(d.failed).toBe(true);
      expect(String(d.errorInstance)).toMatch(
        /host perf's records after step \d+ .* is \(none\) with the guest running/,
      );
    }
  });
});
