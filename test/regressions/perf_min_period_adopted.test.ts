/**
 * perf-min-period adopted (W6): where bare metal can tell when KVM's perf arms a guest counter (a reprogram KVM makes on
 * a control write or a count it takes in software, the context reschedule perf makes when KVM enables or creates an
 * event, a reschedule of the vCPU thread, a restore), its counter overflows when KVM's perf event does: one event
 * late when armed at -1 (perf's "left < 2" floor), never when KVM pauses it after the wrap, or a whole sample period
 * after the wrap when perf re-arms it there (its period used up: "left += period"). The program then runs on
 * and is compared exactly: counts stay bare metal's, and any other mechanism on the same counter is still reported.
 */
import { describe, expect, it } from 'vitest';
import { ok } from '../../model/hw/access.js';
import type { Cpu } from '../../model/hw/cpu.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import {
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_P6_EVNTSEL0,
} from '../../model/hw/msr/counters.js';
import { HOST_PERF_OPS, type HostPerfOps } from '../../model/host/perf.js';
import type { PerfEvent } from '../../model/host/types.js';
import { X2APIC_LVTPC } from '../../model/hw/msr/apic.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { designById, firstDivergence, hostWith, knownDivergencesMet } from '../../designs/registry.js';
import { runProgram } from '../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import {
  DriverBoot,
  DriverNmi,
  DriverOpen,
  DriverRun,
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
} from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';

const unit = (cpl: number, instructions: number) => ({ cpl, instructions });

// Skylake-like v2 guest, 4 GP and 3 fixed counters: Linux perf puts instructions on fixed counter 0.
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0x0, ecx: 0x0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x0n,
};
const skylake = BUILTIN_PROFILES['skylake']!;

// Fixed counter 0 counts OS instructions from -3; the WRMSR enabling it globally retires in KVM's software count (to
// -2), which re-arms it exactly. Two guest instructions take it to -1 and to the wrap; the GLOBAL_CTRL toggles around
// them re-arm it at -1, where perf arms KVM's event with 2 left: bare metal wraps at the first, KVM overflows a unit later.
const lateByOne = [
  new GuestWrmsr(0, X2APIC_LVTPC, 0x400n), // PMIs as NMIs
  new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR0, 0xffff_ffff_fffdn),
  new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x9n), // OS, PMI
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0000n),
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x0n), // FC0 at -1, paused
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0000n), // FC0 at -1 when KVM resumes it: perf arms 2 left
  new GuestRun(0, [unit(0, 1), unit(0, 1), unit(3, 5)]),
  new GuestRdpmc(0, 0x4000_0000, 0),
  new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
];

// Linux perf's PMI handler with period 1 on fixed counter 0 (the driver writes -2; its own instructions bring it to -1
// at the handler's re-enable), then a workload: the case the driver profile meets most.
const handlerLoop = [
  new DriverBoot(0, { kernel: 'linux', ack: 'early', lvtpc: 0x400n }),
  new DriverOpen(0, [{ event: 0xc0n, usr: true, os: true, period: 0x1n }]),
  new DriverNmi(0),
  new DriverRun(0, [unit(0, 1), unit(3, 3), unit(0, 2)]),
  new DriverNmi(0),
  new DriverRun(0, [unit(3, 4)]),
];

// Fixed counter 0 counts user instructions from -4 (KVM's sample period 4) and reaches -1 in hardware; creating PMC0's
// event reschedules the vCPU task's events, and perf arms FC0 with 2 left though 1 is. One unit wraps the guest's count
// with no overflow (period used up); re-creating PMC0's event re-arms FC0 with a whole period (left += 4): KVM's
// overflow comes at the fourth event after, where a counter floored again would overflow at the second.
const periodAfterSilentWrap = [
  new GuestWrmsr(0, X2APIC_LVTPC, 0x400n), // PMIs as NMIs
  new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR0, 0xffff_ffff_fffcn),
  new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xan), // USR, PMI: the WRMSRs below do not count
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0001n),
  new GuestRun(0, [unit(3, 3)]), // FC0 at -1, counted in hardware
  new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x53003cn), // PMC0's event created: FC0 re-armed at -1
  new GuestRun(0, [unit(3, 1)]), // the guest's wrap: bare metal overflows, KVM's event is one short
  new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x51003cn), // PMC0's event re-created: FC0's used-up period re-armed
  new GuestRun(0, [unit(3, 1), unit(3, 1), unit(3, 1), unit(3, 1), unit(3, 1)]),
  new GuestRdpmc(0, 0x4000_0000, 0),
  new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
];

const run = { host: skylake, expectations: EMULATED_EXPECTATIONS };

/** A planted host perf whose period floor is 3, not 2 ("left < 3"): an event armed at -1 or -2 overflows late. */
const FLOOR_OF_3: HostPerfOps = {
  ...HOST_PERF_OPS,
  x86_perf_event_set_event_base(hw: Cpu, event: PerfEvent, msr: number, val: bigint): void {
    const m = hw.profile.gpMask;
    HOST_PERF_OPS.x86_perf_event_set_event_base(hw, event, msr, val === m - 1n ? m - 2n : val);
  },
};

/** A planted vPMU whose fixed counter 0 reads one high through RDPMC (a count invented on the adopted counter). */
const fc0ReadsHigh: VcpuFactory = (h, o) =>
  new (class extends EmulatedVcpu {
    override guestRdpmc(ecx: number, cpl: number) {
      const r = super.guestRdpmc(ecx, cpl);
      return r.ok && ecx === 0x4000_0000 ? ok((r.value + 1n) & ((1n << 48n) - 1n)) : r;
    }
  })(h, o);

/** A planted vPMU that never shows fixed counter 0's overflow bit in GLOBAL_STATUS reads. */
const dropsFc0Bit: VcpuFactory = (h, o) =>
  new (class extends EmulatedVcpu {
    override guestRdmsr(msr: number) {
      const r = super.guestRdmsr(msr);
      return r.ok && msr === MSR_CORE_PERF_GLOBAL_STATUS ? ok(r.value & ~(1n << 32n)) : r;
    }
  })(h, o);

describe('perf-min-period adopted: bare metal overflows a counter when KVM’s perf event does', () => {
  it('a counter KVM re-arms at -1 overflows a unit late on both sides, and the program runs on to the end', () => {
    expect(firstDivergence('skylake', guest, lateByOne, 'emulated')).toBeNull();
    expect(knownDivergencesMet('skylake', guest, lateByOne, 'emulated')).toEqual(['perf-min-period']);
    // Without the adoption, bare metal's PMI comes a unit earlier: the mechanism is there to adopt.
    const withoutAdoption = EMULATED_EXPECTATIONS.map(({ periodFloor: _, ...k }) => k);
    const known = new Map<string, number>();
    const ended = new Map<string, number>();
    runProgram(
      { ...run, design: designById('emulated').factory, expectations: withoutAdoption, known, ended },
      guest,
      lateByOne,
    );
    expect([...ended.keys()]).toEqual(['perf-min-period']);
  });

  it("inside Linux perf's PMI handler: both sides handle the same overflows and the program is judged to its end", () => {
    expect(firstDivergence('skylake', guest, handlerLoop, 'emulated')).toBeNull();
    const known = new Map<string, number>();
    const ended = new Map<string, number>();
    runProgram({ ...run, design: designById('emulated').factory, known, ended }, guest, handlerLoop);
    expect([...known.keys()]).toEqual(['perf-min-period']);
    expect(ended.size).toBe(0);
  });

  it('a period perf found used up at a reschedule is re-armed whole: KVM overflows a period later, on both sides', () => {
    expect(firstDivergence('skylake', guest, periodAfterSilentWrap, 'emulated')).toBeNull();
    expect(knownDivergencesMet('skylake', guest, periodAfterSilentWrap, 'emulated')).toEqual(['perf-min-period']);
    // The count stays exact across the re-arm: one invented on that counter is still reported.
    expect(() => runProgram({ ...run, design: fc0ReadsHigh }, guest, periodAfterSilentWrap)).toThrow(
      /RDPMC 0x40000000 at CPL 0: guest saw 0x6, bare metal shows 0x5/,
    );
  });

  it('the mediated vPMU arms no perf event for the guest: nothing to adopt, and it conforms', () => {
    expect(firstDivergence('skylake', guest, lateByOne, 'mediated')).toBeNull();
    expect(knownDivergencesMet('skylake', guest, lateByOne, 'mediated')).toEqual([]);
  });

  it('a host perf that floors periods at 3 makes the same counter later still: reported, not excused', () => {
    const e = designById('emulated');
    const floor3 = { ...run, design: e.factory, hostKernel: hostWith(FLOOR_OF_3) };
    expect(() => runProgram(floor3, guest, lateByOne)).toThrow(
      /run 3 units: guest saw no PMI, bare metal shows PMI\(vector 2\) after unit 1/,
    );
    expect(() => runProgram(floor3, guest, handlerLoop)).toThrow(
      /WRMSR 0x834 <- 0x400: PMIs: guest saw no PMI, bare metal shows PMI\(vector 2\) after unit 0/,
    );
  });

  it('a count invented on the adopted counter is reported: the adoption moves overflows, never values', () => {
    expect(() => runProgram({ ...run, design: fc0ReadsHigh }, guest, lateByOne)).toThrow(
      /RDPMC 0x40000000 at CPL 0: guest saw 0x2, bare metal shows 0x1/,
    );
    expect(() => runProgram({ ...run, design: fc0ReadsHigh }, guest, handlerLoop)).toThrow(/RDPMC 0x40000000/);
  });

  it('an overflow bit the design loses after KVM’s event did overflow is reported', () => {
    expect(() => runProgram({ ...run, design: dropsFc0Bit }, guest, lateByOne)).toThrow(
      /RDMSR 0x38e: guest saw 0x0, bare metal shows 0x100000000/,
    );
    expect(() => runProgram({ ...run, design: dropsFc0Bit }, guest, handlerLoop)).toThrow(
      /RDMSR 0x38e: guest saw 0x0, bare metal shows 0x100000000/,
    );
  });
});
