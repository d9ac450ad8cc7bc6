/**
 * perf-min-period's second face, found by the driver profile (seeds 3, 5, 6 and 7 of `--gen driver` on the emulated
 * vPMU): a counter perf armed at -1 (period raised to 2) whose one event came from the hardware, and which KVM then
 * pauses (a control write, an instruction it counts in software), never overflows under KVM. pmc_pause_counter takes
 * prev_counter after folding perf's count, so the wrap perf counted without overflowing is never signalled; bare metal
 * set the bit. Where bare metal can tell when perf armed the counter, it takes that on (W6) and the program runs on;
 * where it cannot (a write of -1 to a running counter, whose period KVM takes from the old base), the declaration's
 * matcher takes it, only through bare metal's GLOBAL_STATUS bits of such counters.
 */
import { describe, expect, it } from 'vitest';
import { ok } from '../../model/hw/access.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import { MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { designById, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { runProgram } from '../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { replay } from '../../reports/replay.js';
import {
  DriverBoot,
  DriverClose,
  DriverNmi,
  DriverOpen,
  DriverRun,
  GuestRdmsr,
  GuestRun,
  GuestWrmsr,
} from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import { condBranch } from '../support/work.js';

const unit = (cpl: number, instructions: number, mispredicts = 0) => ({
  cpl,
  instructions,
  branches: Array.from({ length: mispredicts }, () => condBranch(cpl, true)),
});

// Skylake-like v2 guest, 4 GP and 3 fixed counters: Linux perf puts instructions on fixed counter 0.
const skylakeGuest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0x0, ecx: 0x0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x0n,
};
// Period 1 is written as -2 (the guest's own perf floor); the enabling WRMSR takes it to -1, where KVM arms perf with
// 2 left. The PMI handler's own instructions overflow it again on each pass; the third pass leaves a PMI pending, and
// the workload's one instruction wraps it on bare metal only, before the handler's LVTPC write makes KVM pause it.
const handlerLoop = [
  new DriverBoot(0, { kernel: 'linux', ack: 'early', lvtpc: 0x400n }),
  new DriverOpen(0, [{ event: 0xc0n, usr: true, os: true, period: 0x1n }]),
  new DriverNmi(0),
  new DriverRun(0, [unit(0, 1)]),
];

const icelakeGuest: GuestConfig = {
  cpuid: { family: 6, model: 0x6a, leaf0a: { eax: 0x8300802, ebx: 0x5, ecx: 0x0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x0n,
};
// GP1 counts branch mispredicts from -2; the PMI of another counter after the first unit reschedules perf's events,
// which re-arms GP1 at -1 with 2 left. The second mispredict wraps it on bare metal only; the driver then closes it
// and reuses GP1 for another event: bare metal's status bit stays, KVM never had it.
const rewritten = [
  new DriverOpen(0, [
    { event: 0xc5n, usr: true, os: true, period: 0x9n },
    { event: 0xc5n, usr: true, os: true, period: 0x1n },
    { event: 0xc0n, usr: true, os: true, period: 0x2n },
  ]),
  new GuestRun(0, [unit(3, 2, 1), unit(0, 1, 1)]),
  new DriverClose(0, 1),
  new DriverOpen(0, [{ event: 0xc0n, usr: true, os: true, period: 0x12n }]),
  new DriverOpen(0, [{ event: 0xc0n, usr: true, os: true, period: 0x1n }]),
  new DriverBoot(0, { kernel: 'linux', ack: 'late', lvtpc: 0x400n }),
];

// GP0 and GP1 count branches from -1 and -5, GP0 written while it runs (GLOBAL_CTRL's reset value enables it), so its
// period is KVM's from the old base, which bare metal cannot tell. One branch wraps GP0 on bare metal; the disable that
// follows makes KVM pause it (its wrap folded away); four more wrap GP1 on both. Bare metal reads 0b11, KVM 0b10.
const writtenRunning = [
  new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x4300c4n),
  new GuestWrmsr(0, MSR_P6_EVNTSEL0 + 1, 0x4300c4n),
  new GuestWrmsr(0, MSR_IA32_PERFCTR0, 0xffffffffn), // -1, sign-extended
  new GuestWrmsr(0, MSR_IA32_PERFCTR0 + 1, 0xfffffffbn), // -5
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x3n),
  new GuestRun(0, [unit(3, 1, 1)]),
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x0n),
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x3n),
  new GuestRun(0, [unit(3, 4, 4)]),
  new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
];

describe('perf-min-period: an overflow KVM folds away when it pauses a counter armed at -1 after one event', () => {
  it("inside Linux perf's PMI handler: bare metal takes the lost bit on, and the program runs on", () => {
    expect(firstDivergence('skylake', skylakeGuest, handlerLoop, 'emulated')).toBeNull();
    expect(knownDivergencesMet('skylake', skylakeGuest, handlerLoop, 'emulated')).toEqual(['perf-min-period']);
    expect(firstDivergence('skylake', skylakeGuest, handlerLoop, 'mediated')).toBeNull();
  });

  it('after the guest rewrites the counter: bare metal never had the bit either', () => {
    expect(firstDivergence('icelake', icelakeGuest, rewritten, 'emulated')).toBeNull();
    expect(knownDivergencesMet('icelake', icelakeGuest, rewritten, 'emulated')).toEqual(['perf-min-period']);
  });

  it('a counter written -1 while it runs: the declaration takes the bit, and replay names it', () => {
    expect(firstDivergence('skylake', skylakeGuest, writtenRunning, 'emulated')).toMatchObject({
      target: MSR_CORE_PERF_GLOBAL_STATUS,
      sut: { kind: 'value', value: 0b10n },
      oracle: { kind: 'value', value: 0b11n },
    });
    expect(knownDivergencesMet('skylake', skylakeGuest, writtenRunning, 'emulated')).toEqual(['perf-min-period']);
    const t = { design: designById('emulated'), host: BUILTIN_PROFILES['skylake']!, cpus: 2, guest: skylakeGuest };
    const r = replay(t, writtenRunning, { trace: false });
    expect(r.divergence?.target).toBe(MSR_CORE_PERF_GLOBAL_STATUS);
    expect(r.known?.id).toBe('perf-min-period');
  });

  it("a status bit lost for a counter that was never at -1 is still reported (GP1's, beside GP0's)", () => {
    const program = writtenRunning;
    // A planted vPMU that also drops GP1's overflow bit from GLOBAL_STATUS reads: GP1 never stood at -1.
    const dropsGp1: VcpuFactory = (h, o) =>
      new (class extends EmulatedVcpu {
        override guestRdmsr(msr: number) {
          const r = super.guestRdmsr(msr);
          return r.ok && msr === MSR_CORE_PERF_GLOBAL_STATUS ? ok(r.value & ~0b10n) : r;
        }
      })(h, o);
    const run = { host: BUILTIN_PROFILES['skylake']!, expectations: EMULATED_EXPECTATIONS };
    expect(() => runProgram({ ...run, design: dropsGp1 }, skylakeGuest, program)).toThrow(
      /RDMSR 0x38e: guest saw 0x0, bare metal shows 0x3/,
    );
  });
});
