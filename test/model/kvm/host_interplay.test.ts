/**
 * Host and guest on the same pCPUs: what no upstream test checks (kvm-vpmu.md §3.3: "LBR
 * passthrough / host reclaim / lazy release", "vCPU thread migration", "LBR freeze-on-PMI"),
 * written from the upstream code paths of §2.9–§2.13 and the seed-004 questions about who owns
 * the LBRs when. Host: Skylake pCPUs.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { attr, type PerfEvent } from '../../../model/host/types.js';
import {
  branchy,
  createVcpu,
  CYCLES,
  guestBranches,
  INSTRUCTIONS,
  kvmSupportedPerfCaps,
  PC_VECTOR,
  val,
  work,
  type World,
} from './util.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import {
  DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
  DEBUGCTLMSR_LBR,
  MSR_IA32_DEBUGCTLMSR,
} from '../../../model/hw/msr/debugctl.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO, MSR_LBR_TOS } from '../../../model/hw/msr/lbr_legacy.js';

const HOST_CAP = kvmSupportedPerfCaps(SKYLAKE);
const MASK = (1n << 48n) - 1n;
const INSNS = ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTRUCTIONS;

const wr = (w: World, msr: number, v: bigint) => val(w.vcpu.guestWrmsr(msr, v), `WRMSR 0x${msr.toString(16)}`);
const rd = (w: World, msr: number) => val(w.vcpu.guestRdmsr(msr), `RDMSR 0x${msr.toString(16)}`);
const hwRd = (w: World, cpu: number, msr: number) => val(w.host.pcpu(cpu).hw.rdmsr(msr));

function ev(r: PerfEvent | { readonly error: string }): PerfEvent {
  if ('error' in r) throw new Error(`perf_event_open failed: ${r.error}`);
  return r;
}

/** `perf record -b -C <cpu>` pinned: a cpu-pinned cycles event sampling all branches. */
function hostLbrUser(w: World, cpu: number, period = 40n): PerfEvent {
  return ev(
    w.host.perf_event_open(
      attr({
        config: CYCLES,
        sample_period: period,
        pinned: true,
        branchSample: { user: true, kernel: true, callStack: false },
      }),
      { cpu },
    ),
  );
}

/** A guest with LBR (host format and FMS) whose LBR event is ACTIVE on pCPU 0. */
function guestWithActiveLbr(): World {
  const w = createVcpu({ profile: SKYLAKE, perfCaps: HOST_CAP, cpus: 2, cpu: 0 });
  wr(w, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
  expect(w.vcpu.s.lbr.event?.state, 'guest LBR event ACTIVE').toBe('ACTIVE');
  return w;
}

describe('seed 004: who owns the LBRs', () => {
  it("seed 004 Q1: perf takes the LBRs when a higher-priority LBR event is scheduled on the vCPU's pCPU", () => {
    const w = guestWithActiveLbr();
    const guestEv = w.vcpu.s.lbr.event!;
    expect(w.host.lbrOwner(0)).toBe(guestEv);
    w.vcpu.guestRun([branchy(guestBranches(4))]);
    expect(w.vcpu.s.lbr.msr_passthrough).toBe(true);

    const hostEv = hostLbrUser(w, 0); // cpu-pinned beats the task-pinned guest event
    expect(hostEv.state).toBe('ACTIVE');
    expect(w.host.lbrOwner(0)).toBe(hostEv);
    expect(guestEv.state, 'the guest LBR event is no longer ACTIVE').not.toBe('ACTIVE');
    // vmx_passthrough_lbr_msrs at the next entry: re-intercept.
    w.vcpu.guestRun([branchy(guestBranches(2))]);
    expect(w.vcpu.s.lbr.msr_passthrough).toBe(false);
    expect(w.vcpu.s.passthrough.has(MSR_LBR_NHM_FROM)).toBe(false);
    // A host LBR user on another pCPU takes nothing from this vCPU.
    const w2 = guestWithActiveLbr();
    hostLbrUser(w2, 1);
    expect(w2.vcpu.s.lbr.event!.state).toBe('ACTIVE');
    expect(w2.host.lbrOwner(0)).toBe(w2.vcpu.s.lbr.event);
  });

  it('seed 004 Q2: while perf holds the LBRs the guest reads zeros and writes are dropped', () => {
    const w = guestWithActiveLbr();
    const hostEv = hostLbrUser(w, 0);
    // Host work fills the LBRs with host (kernel) branches.
    const hostBr = guestBranches(8, 0xffff_ffff_8100_0000n);
    w.host.runHost(0, [branchy(hostBr, 0)]);
    const top = Number(hwRd(w, 0, MSR_LBR_TOS));
    expect(hwRd(w, 0, MSR_LBR_NHM_FROM + top), 'the host has records').toBe(hostBr[hostBr.length - 1]!.from);

    // The first guest access after perf took the LBRs: the entry before it re-intercepts.
    expect(rd(w, MSR_LBR_NHM_FROM + top), "guest reads 0, not the host's newest record").toBe(0n);
    for (let i = 0; i < 32; i++) expect(rd(w, MSR_LBR_NHM_FROM + i), `guest FROM ${i}`).toBe(0n);
    expect(rd(w, MSR_LBR_TOS)).toBe(0n);
    expect(w.vcpu.guestWrmsr(MSR_LBR_NHM_FROM + 1, 0x7777_0000n).ok, 'the write does not #GP').toBe(true);
    expect(w.vcpu.guestWrmsr(MSR_LBR_NHM_TO + 1, 0x7777_0040n).ok).toBe(true);
    for (let i = 0; i < 32; i++) {
      expect(hwRd(w, 0, MSR_LBR_NHM_FROM + i), `dropped: hardware FROM ${i}`).not.toBe(0x7777_0000n);
      expect(hwRd(w, 0, MSR_LBR_NHM_TO + i), `dropped: hardware TO ${i}`).not.toBe(0x7777_0040n);
    }
    expect(rd(w, MSR_LBR_NHM_FROM + 1)).toBe(0n);

    // Guest branches while perf holds the LBRs and the guest has DEBUGCTL.LBR = 1.
    //
    // What the model does, and upstream with it: YES, they are recorded into the host-owned
    // LBRs. KVM leaves the guest's DEBUGCTL (LBR = 1) in the VMCS whatever the state of the guest
    // LBR event; VM-entry loads it, so the hardware records guest branches with the host's
    // LBR_SELECT, and perf's PMI handler reads them into the host event's samples. The host
    // event here does not exclude the guest, so this is "the host asked to profile the guest"
    // (design.md property 2); with guest DEBUGCTL.LBR = 0 nothing of the guest is recorded.
    expect(rd(w, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_LBR).toBe(DEBUGCTLMSR_LBR);
    const guestSet = guestBranches(16, 0x7100_0000n);
    const before = hostEv.samples.length;
    w.vcpu.guestRun(guestSet.map((b) => ({ cpl: 3, instructions: 1, cycles: 20, branches: [b] })));
    const samples = hostEv.samples.slice(before);
    expect(samples.length, 'the host event sampled during the guest run').toBeGreaterThan(0);
    const seen = new Set(samples.flatMap((s) => (s.branches ?? []).map((b) => b.from)));
    expect(
      guestSet.some((b) => seen.has(b.from)),
      'guest branches are in the host samples',
    ).toBe(true);

    // Control: with DEBUGCTL.LBR clear the guest's branches do not reach the host's stack.
    wr(w, MSR_IA32_DEBUGCTLMSR, 0n);
    const quiet = guestBranches(16, 0x7200_0000n);
    const before2 = hostEv.samples.length;
    w.vcpu.guestRun(quiet.map((b) => ({ cpl: 3, instructions: 1, cycles: 20, branches: [b] })));
    const samples2 = hostEv.samples.slice(before2);
    expect(samples2.length).toBeGreaterThan(0);
    const seen2 = new Set(samples2.flatMap((s) => (s.branches ?? []).map((b) => b.from)));
    expect(
      quiet.some((b) => seen2.has(b.from)),
      'no guest branch recorded with DEBUGCTL.LBR = 0',
    ).toBe(false);
  });

  it('seed 004 Q3: guest LBR MSR accesses reach the hardware only while the guest LBR event is ACTIVE', () => {
    const w = guestWithActiveLbr();
    // ACTIVE: reads and writes are the hardware's.
    wr(w, MSR_LBR_NHM_FROM + 5, 0x7000_5000n);
    expect(hwRd(w, 0, MSR_LBR_NHM_FROM + 5)).toBe(0x7000_5000n);
    expect(rd(w, MSR_LBR_NHM_FROM + 5)).toBe(0x7000_5000n);

    // Reclaimed: nothing reaches the hardware.
    const hostEv = hostLbrUser(w, 0);
    const hwBefore = hwRd(w, 0, MSR_LBR_NHM_FROM + 5);
    wr(w, MSR_LBR_NHM_FROM + 5, 0x7000_6000n);
    expect(hwRd(w, 0, MSR_LBR_NHM_FROM + 5)).toBe(hwBefore);
    expect(rd(w, MSR_LBR_NHM_FROM + 5)).toBe(0n);

    // perf lets go, but the pinned guest event that failed to schedule stays out (ERROR):
    // still nothing reaches the hardware.
    w.host.perf_event_release_kernel(hostEv);
    wr(w, MSR_LBR_NHM_FROM + 5, 0x7000_7000n);
    expect(hwRd(w, 0, MSR_LBR_NHM_FROM + 5)).not.toBe(0x7000_7000n);
    expect(rd(w, MSR_LBR_NHM_FROM + 5)).toBe(0n);

    // The guest stops using LBRs and is rescheduled: the stale event is released lazily, and
    // the next LBR access creates a fresh one that is ACTIVE and reaches the hardware again.
    wr(w, MSR_IA32_DEBUGCTLMSR, 0n);
    w.vcpu.migrate(1);
    w.vcpu.guestRun([]);
    expect(w.vcpu.s.lbr.event).toBeNull();
    wr(w, MSR_LBR_NHM_FROM + 5, 0x7000_8000n);
    expect(w.vcpu.s.lbr.event?.state).toBe('ACTIVE');
    expect(hwRd(w, 1, MSR_LBR_NHM_FROM + 5)).toBe(0x7000_8000n);
    expect(rd(w, MSR_LBR_NHM_FROM + 5)).toBe(0x7000_8000n);
  });
});

describe('exclude_guest and exclude_host', () => {
  it('a host exclude_guest event does not count guest work; one without it does', () => {
    const w = createVcpu({ profile: SKYLAKE, cpus: 2 });
    const hostOnly = ev(
      w.host.perf_event_open(attr({ config: INSTRUCTIONS, pinned: true, exclude_guest: true }), { cpu: 0 }),
    );
    const both = ev(w.host.perf_event_open(attr({ config: INSTRUCTIONS, pinned: true }), { cpu: 0 }));
    const h0 = w.host.perf_event_read_value(hostOnly);
    const b0 = w.host.perf_event_read_value(both);
    w.vcpu.guestRun(work(10, 10));
    expect(w.host.perf_event_read_value(hostOnly) - h0, 'exclude_guest: no guest instructions').toBe(0n);
    expect(w.host.perf_event_read_value(both) - b0, 'the guest run is counted').toBe(100n);
    w.host.runHost(0, work(5, 10));
    expect(w.host.perf_event_read_value(hostOnly) - h0).toBe(50n);
    expect(w.host.perf_event_read_value(both) - b0).toBe(150n);
  });

  it("KVM's exclude_host events count neither host work nor KVM's own exit handling", () => {
    const w = createVcpu({ profile: SKYLAKE, cpus: 2 });
    wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 0n); // post-RESET it enables the GP counters
    wr(w, MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_ENABLE);
    wr(w, MSR_IA32_PMC0, 0n);
    wr(w, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n);
    wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0001n); // 1
    w.vcpu.guestRun(work(2, 10)); // 21
    w.host.runHost(0, work(7, 10)); // host work on the vCPU's pCPU: not counted
    for (let i = 0; i < 5; i++) rd(w, MSR_IA32_DEBUGCTLMSR); // 26: one each, not KVM's handler code
    wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(rd(w, MSR_IA32_PMC0)).toBe(26n);
    expect(rd(w, MSR_CORE_PERF_FIXED_CTR0)).toBe(26n);
  });
});

describe('vCPU migration', () => {
  it('a vCPU migrated mid-count keeps counting exactly, and overflows at the right unit on the new pCPU', () => {
    const w = createVcpu({ profile: SKYLAKE, cpus: 2, cpu: 0 });
    wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 0n); // post-RESET it enables the GP counters
    wr(w, X2APIC_LVTPC, PC_VECTOR);
    wr(w, MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_ENABLE);
    wr(w, MSR_P6_EVNTSEL0 + 1, INSNS | ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_INT);
    wr(w, MSR_IA32_PMC0, 0n);
    wr(w, MSR_IA32_PMC0 + 1, -(1n + 30n + 25n) & MASK); // wraps during the third unit after migrating
    wr(w, MSR_CORE_PERF_FIXED_CTR0, 0n);
    wr(w, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n);
    wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0003n); // 1
    expect(w.vcpu.guestRun(work(3, 10))).toEqual([]); // 31
    w.vcpu.migrate(1);
    expect(w.vcpu.cpu).toBe(1);
    const pmis = w.vcpu.guestRun(work(4, 10)); // 71
    expect(pmis).toEqual([{ afterUnit: 2, vector: Number(PC_VECTOR) }]);
    wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(rd(w, MSR_IA32_PMC0), 'GP0 across the migration').toBe(71n);
    expect(rd(w, MSR_CORE_PERF_FIXED_CTR0), 'FC0 across the migration').toBe(71n);
    expect(rd(w, MSR_IA32_PMC0 + 1), 'GP1 wrapped').toBe(71n - 56n);
    // And back again.
    wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 0x1n); // 72
    w.vcpu.migrate(0);
    w.vcpu.guestRun(work(1, 10)); // 82
    wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    expect(rd(w, MSR_IA32_PMC0)).toBe(82n);
  });

  it('lazy release: after DEBUGCTL.LBR is cleared and the vCPU is rescheduled, the next entry releases the guest LBR event', () => {
    const w = guestWithActiveLbr();
    wr(w, MSR_IA32_DEBUGCTLMSR, 0n);
    w.vcpu.guestRun([branchy(guestBranches(2))]);
    expect(w.vcpu.s.lbr.event, 'not released without a reschedule').not.toBeNull();
    w.vcpu.migrate(1);
    expect(w.vcpu.s.lbr.event, 'not released by vcpu_load itself').not.toBeNull();
    w.vcpu.guestRun([]);
    expect(w.vcpu.s.lbr.event, 'released at the next entry (kvm_pmu_cleanup)').toBeNull();
    expect(w.host.lbrOwner(1)).toBeNull();
    expect(w.host.lbrOwner(0)).toBeNull();
    expect(w.vcpu.s.lbr.msr_passthrough).toBe(false);

    // With DEBUGCTL.LBR still set the event survives the reschedule and follows the thread.
    const k = guestWithActiveLbr();
    const e = k.vcpu.s.lbr.event!;
    k.vcpu.migrate(1);
    k.vcpu.guestRun([]);
    expect(k.vcpu.s.lbr.event).toBe(e);
    expect(e.state).toBe('ACTIVE');
    expect(k.host.lbrOwner(1)).toBe(e);
    expect(k.host.lbrOwner(0)).toBeNull();
  });
});

describe('legacy Freeze_LBRs_On_PMI emulation', () => {
  it.each([1, 2, 3, 4, 5])(
    'guest PMU v%d: DEBUGCTL.LBR is cleared at PMI injection only for versions 2 and 3',
    (version) => {
      const w = createVcpu({ profile: SKYLAKE, perfCaps: HOST_CAP, version });
      expect(w.vcpu.lbrEnabled).toBe(true);
      wr(w, X2APIC_LVTPC, PC_VECTOR);
      wr(w, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
      if (version >= 2) wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
      wr(w, MSR_IA32_PMC0, -25n & MASK);
      wr(w, MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT | ARCH_PERFMON_EVENTSEL_ENABLE);
      if (version >= 2) wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 1n);
      w.vcpu.drainPmis();
      const pmis = w.vcpu.guestRun([
        branchy(guestBranches(10)),
        branchy(guestBranches(10)),
        branchy(guestBranches(10)),
      ]);
      expect(pmis.length, 'one PMI').toBe(1);
      const dbg = rd(w, MSR_IA32_DEBUGCTLMSR);
      const freezes = version === 2 || version === 3;
      expect(dbg & DEBUGCTLMSR_LBR, `v${version}: DEBUGCTL.LBR ${freezes ? 'cleared' : 'kept'}`).toBe(
        freezes ? 0n : DEBUGCTLMSR_LBR,
      );
      expect(dbg & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI).toBe(DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
    },
  );

  it('no emulation without FREEZE_LBRS_ON_PMI; without guest LBR the freeze bit cannot even be set', () => {
    const w = createVcpu({ profile: SKYLAKE, perfCaps: HOST_CAP, version: 2 });
    wr(w, X2APIC_LVTPC, PC_VECTOR);
    wr(w, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
    wr(w, MSR_IA32_PMC0, -5n & MASK);
    wr(w, MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT | ARCH_PERFMON_EVENTSEL_ENABLE);
    wr(w, MSR_CORE_PERF_GLOBAL_CTRL, 1n);
    expect(w.vcpu.guestRun(work(2, 10)).length).toBe(1);
    expect(rd(w, MSR_IA32_DEBUGCTLMSR)).toBe(DEBUGCTLMSR_LBR);

    // vmx_set_msr: an unsupported LBR bit is dropped, any other unsupported bit #GPs.
    const n = createVcpu({ profile: SKYLAKE, perfCaps: HOST_CAP & ~0x3fn, version: 2 });
    expect(n.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI).ok).toBe(false);
    expect(n.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR).ok).toBe(true);
    expect(rd(n, MSR_IA32_DEBUGCTLMSR)).toBe(0n);
  });
});
