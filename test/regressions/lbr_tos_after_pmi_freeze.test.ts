/**
 * Regression of a soak finding on the faithful emulated vPMU (not a KVM bug): a PMI the guest took with
 * FREEZE_LBRS_ON_PMI set cleared DEBUGCTL.LBR (KVM emulates the version-2 freeze so), so the next reschedule released
 * the guest LBR event, and a new one on another pCPU showed that pCPU's LBR_TOS. `lbr-tos-not-reset` judged DEBUGCTL.LBR
 * by the guest's last write alone and missed the release. Found with `npm start -- --seed 2 --only conformance
 * --profile skylake --design emulated --gen driver` (program 351), post-shrunk to 9 commands.
 */
import { describe, expect, it } from 'vitest';
import { designById, knownDivergencesMet } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { runProgram } from '../../properties/conformance.js';
import {
  DriverBoot,
  DriverLbr,
  DriverOpen,
  DriverRun,
  GuestRdmsr,
  GuestRun,
  GuestWrmsr,
  Migrate,
} from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';

const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0x0, ecx: 0x0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x5n,
};
const branch = { from: 0xffffffff81000000n, to: 0xffffffff81000000n, kind: 'COND' as const, mispredict: true, cpl: 0 };
const program = [
  new DriverOpen(0, [{ event: 0xc5n, usr: true, os: true, period: 0x1n }]),
  new DriverOpen(0, [{ event: 0xc5n, usr: true, os: true, period: 0x2n }]),
  new DriverLbr(0, { select: 0x0n, callStack: false }),
  new DriverBoot(0, { kernel: 'linux', ack: 'late', lvtpc: 0x400n }),
  // Two branches recorded (TOS 2), then the PMI that freezes the LBRs.
  new DriverRun(0, [{ cpl: 0, instructions: 2, branches: [branch, branch] }]),
  new Migrate(0, 0),
  new DriverOpen(0, [{ event: 0xc0n, usr: true, os: true, period: 0x2n }]),
  new Migrate(0, 1),
  new DriverLbr(0, { select: 0x0n, callStack: false }),
];

const run = (design?: VcpuFactory) => {
  const d = designById('emulated');
  return {
    host: BUILTIN_PROFILES.skylake!,
    design: design ?? d.factory,
    hostKernel: d.hostKernel,
    expectations: d.expectations,
  };
};

describe('lbr-tos-not-reset after a PMI froze the LBRs', () => {
  it("the new LBR event on the other pCPU shows that pCPU's TOS: the declared mechanism", () => {
    expect(knownDivergencesMet('skylake', guest, program, 'emulated')).toContain('lbr-tos-not-reset');
  });

  it('with DEBUGCTL.LBR set through the migration (no PMI), the event moves with its TOS: a wrong TOS is reported', () => {
    const shifted: VcpuFactory = (h, o) => {
      const x = designById('emulated').factory(h, o);
      const rdmsr = x.guestRdmsr.bind(x);
      x.guestRdmsr = (msr, kicked) => {
        const r = rdmsr(msr, kicked);
        return msr === 0x1c9 && r.ok ? { ok: true, value: (r.value + 1n) & 0x1fn } : r;
      };
      return x;
    };
    const kept = [
      new GuestWrmsr(0, 0x1d9, 0x801n),
      new GuestRun(0, [{ cpl: 0, instructions: 2, branches: [branch, branch] }]),
      new Migrate(0, 1),
      new GuestRdmsr(0, 0x1c9),
    ];
    expect(() => runProgram(run(), guest, kept)).not.toThrow();
    expect(() => runProgram(run(shifted), guest, kept)).toThrow(/RDMSR 0x1c9: guest saw 0x3, bare metal shows 0x2/);
  });
});
