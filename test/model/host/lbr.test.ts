/**
 * The LBR facility as intel/lbr.c runs it: one filter per CPU, host branch samples, the guest
 * LBR event's ownership (seed 000) and call-stack save/restore when a task is switched out and
 * in again, on legacy (Skylake) and architectural (Sapphire Rapids) LBRs.
 */
import { describe, expect, it } from 'vitest';
import { type Branch, type WorkUnit } from '../../../model/hw/work.js';
import { type Profile } from '../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { attr, type BranchSampleType, type PerfEvent } from '../../../model/host/types.js';
import { HostKernel } from '../../../model/host/perf.js';
import { IDX_VLBR, VLBR_CONFIG } from '../../../model/host/schedule.js';
import { intel_pmu_lbr_read } from '../../../model/host/lbr.js';
import { CYCLES, ev, rd, units } from './util.js';
import {
  MSR_IA32_DEBUGCTLMSR,
  DEBUGCTLMSR_LBR,
  DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
} from '../../../model/hw/msr/debugctl.js';
import { MSR_ARCH_LBR_CTL } from '../../../model/hw/msr/lbr_arch.js';
import { MSR_LBR_SELECT } from '../../../model/hw/msr/lbr_legacy.js';

const ALL: BranchSampleType = { user: true, kernel: true, callStack: false };
const USER: BranchSampleType = { user: true, kernel: false, callStack: false };
const USER_CALLSTACK: BranchSampleType = { user: true, kernel: false, callStack: true };

function jmp(i: number, cpl = 0): Branch {
  return { from: 0x40_1000n + BigInt(i), to: 0x40_2000n + BigInt(i), kind: 'NEAR_REL_JMP', cpl };
}

function call(i: number): Branch {
  return { from: 0x50_1000n + BigInt(i), to: 0x50_2000n + BigInt(i), kind: 'NEAR_REL_CALL', cpl: 3 };
}

function branchy(brs: readonly Branch[], cycles = 1, cpl = 0): WorkUnit {
  return { cpl, instructions: brs.length, cycles, branches: brs };
}

/** `perf record -b` on one CPU. */
function recordB(k: HostKernel, cpu: number, b: BranchSampleType, period: bigint, pinned = false): PerfEvent {
  return ev(k.perf_event_open(attr({ config: CYCLES, sample_period: period, branchSample: b, pinned }), { cpu }));
}

/** KVM's guest LBR event (intel_pmu_create_guest_lbr_event) on the vCPU thread. */
function guestLbrEvent(k: HostKernel, vcpu: number): PerfEvent {
  return ev(
    k.perf_event_create_kernel_counter(
      attr({ config: VLBR_CONFIG, vlbr: true, pinned: true, exclude_host: true, branchSample: USER_CALLSTACK }),
      { task: vcpu },
    ),
  );
}

const PARTS: readonly (readonly [string, Profile])[] = [
  ['legacy LBR', SKYLAKE],
  ['Arch LBR', SAPPHIRE_RAPIDS],
];

describe.each(PARTS)('host branch sampling (%s)', (_, profile) => {
  it('programs the filter, enables recording and attaches the stack newest first to each sample', () => {
    const k = new HostKernel({ profile, cpus: 1 });
    const e = recordB(k, 0, ALL, 100n);
    const hw = k.pcpu(0).hw;
    if (profile.archLbr !== undefined) {
      expect(rd(hw, MSR_ARCH_LBR_CTL)).toBe((0x7fn << 16n) | 0b111n); // all branch types, OS, USR, LBREn
    } else {
      expect(rd(hw, MSR_LBR_SELECT)).toBe(0n); // suppress nothing
      expect(rd(hw, MSR_IA32_DEBUGCTLMSR) & (DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI)).toBe(
        DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
      );
    }
    k.runHost(0, [branchy([jmp(1)], 50), branchy([jmp(2)], 50), branchy([jmp(3)], 50), branchy([jmp(4)], 50)]);
    expect(e.samples.map((s) => s.branches)).toEqual([
      [jmp(2), jmp(1)].map(({ from, to }) => ({ from, to })),
      [jmp(4), jmp(3), jmp(2), jmp(1)].map(({ from, to }) => ({ from, to })),
    ]);
  });

  it('filters by privilege level', () => {
    const k = new HostKernel({ profile, cpus: 1 });
    const e = recordB(k, 0, USER, 2n);
    if (profile.archLbr === undefined) expect(rd(k.pcpu(0).hw, MSR_LBR_SELECT)).toBe(1n); // suppress CPL 0
    k.runHost(0, [branchy([jmp(1, 0), jmp(2, 3)], 1, 3), branchy([], 1, 3)]);
    expect(e.samples[0]!.branches).toEqual([{ from: jmp(2).from, to: jmp(2).to }]);
  });
});

describe('one LBR configuration per CPU (H4)', () => {
  it('a later user with a different filter cannot go on: flexible stays INACTIVE, pinned goes to ERROR', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const first = recordB(k, 0, USER, 1000n, true);
    const same = recordB(k, 0, USER, 1000n);
    const flex = recordB(k, 0, ALL, 1000n);
    const pinned = recordB(k, 0, ALL, 1000n, true);
    expect([first.state, same.state, flex.state, pinned.state]).toEqual(['ACTIVE', 'ACTIVE', 'INACTIVE', 'ERROR']);
    expect(k.lbrOwner(0)).toBe(first);
    k.perf_event_release_kernel(first);
    k.perf_event_release_kernel(same);
    k.perf_event_enable(pinned); // the filter in use is gone: ALL users may go on now
    expect([pinned.state, flex.state]).toEqual(['ACTIVE', 'ACTIVE']);
    expect(k.lbrOwner(0)).toBe(pinned);
  });
});

describe('the guest LBR event (seed 000)', () => {
  it('owns the LBRs without enabling them and takes no counter', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const vcpu = k.createTask('vcpu0');
    const vlbr = guestLbrEvent(k, vcpu);
    expect(vlbr.state).toBe('INACTIVE');
    expect(k.lbrOwner(0)).toBeNull();
    k.context_switch(0, vcpu);
    expect(vlbr.state).toBe('ACTIVE');
    expect(vlbr.hw_idx).toBe(IDX_VLBR);
    expect(k.lbrOwner(0)).toBe(vlbr);
    const hw = k.pcpu(0).hw;
    expect(rd(hw, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_LBR).toBe(0n);
    expect(k.perf_guest_get_msrs(0)).toEqual({ host: 0n, guest: 0n });
    k.runHost(0, [branchy([jmp(1)])]);
    expect(intel_pmu_lbr_read(hw)).toEqual([]); // host branches are not recorded for the guest
  });

  it('loses the LBRs to a host cpu-pinned LBR event, and keeps them against a flexible one', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const vcpu = k.createTask('vcpu0');
    const vlbr = guestLbrEvent(k, vcpu);
    k.context_switch(0, vcpu);
    const flex = recordB(k, 0, ALL, 1000n);
    expect([vlbr.state, flex.state]).toEqual(['ACTIVE', 'INACTIVE']);
    const host = recordB(k, 0, ALL, 1000n, true);
    expect([vlbr.state, host.state]).toEqual(['ERROR', 'ACTIVE']);
    expect(k.lbrOwner(0)).toBe(host);
    expect(rd(k.pcpu(0).hw, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_LBR).toBe(DEBUGCTLMSR_LBR);
  });
});

describe.each(PARTS)('call-stack save/restore with the task (%s)', (_, profile) => {
  it("restores a task's call stack when it is switched back in, on the same CPU or another", () => {
    const k = new HostKernel({ profile, cpus: 2 });
    const t = k.createTask('T');
    const u = k.createTask('U');
    const open = (task: number) =>
      ev(k.perf_event_open(attr({ config: CYCLES, branchSample: USER_CALLSTACK }), { task }));
    open(t);
    open(u);
    const hw0 = k.pcpu(0).hw;
    const brs = (xs: readonly Branch[]) => xs.map(({ from, to }) => ({ from, to }));
    k.context_switch(0, t);
    if (profile.archLbr === undefined) {
      expect(rd(hw0, MSR_LBR_SELECT)).toBe(0x3c5n); // call stack, user calls and returns only
      expect(rd(hw0, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI).toBe(0n); // not with call-stack mode
    } else {
      expect(rd(hw0, MSR_ARCH_LBR_CTL)).toBe((7n << 19n) | (1n << 3n) | (1n << 2n) | 1n);
    }
    k.runHost(0, units(1, branchy([call(1), call(2)], 1, 3)));
    expect(intel_pmu_lbr_read(hw0)).toEqual(brs([call(2), call(1)]));
    k.context_switch(0, u);
    expect(intel_pmu_lbr_read(hw0)).toEqual([]); // U starts from a wiped stack
    k.runHost(0, [branchy([call(7)], 1, 3)]);
    expect(intel_pmu_lbr_read(hw0)).toEqual(brs([call(7)]));
    k.context_switch(0, t);
    expect(intel_pmu_lbr_read(hw0)).toEqual(brs([call(2), call(1)]));
    k.context_switch(0, null);
    k.context_switch(1, t); // migration: the stack arrives through WRMSR or XRSTORS on fresh hardware
    const hw1 = k.pcpu(1).hw;
    expect(intel_pmu_lbr_read(hw1)).toEqual(brs([call(2), call(1)]));
    k.runHost(1, [branchy([call(3)], 1, 3)]);
    expect(intel_pmu_lbr_read(hw1)).toEqual(brs([call(3), call(2), call(1)]));
    k.context_switch(1, u);
    expect(intel_pmu_lbr_read(hw1)).toEqual(brs([call(7)]));
  });
});
