/** Shared helpers for the host perf tests: MSR reads that must succeed, work units, events. */
import { expect } from 'vitest';
import type { Cpu } from '../../../model/hw/cpu.js';
import type { WorkUnit } from '../../../model/hw/work.js';
import { attr, type PerfEvent } from '../../../model/host/types.js';
import type { HostKernel, PerfOpenResult } from '../../../model/host/perf.js';
import { VLBR_CONFIG } from '../../../model/host/schedule.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { defineProfile, leaf0aEax, leaf0aEdx } from '../../../model/hw/profile.js';

/** Architectural encodings the tests use. */
export const INSTRUCTIONS = 0x00c0n;
export const CYCLES = 0x003cn;
export const LLC_REFERENCES = 0x4f2en;
export const BRANCHES = 0x00c4n;
export const REF_TSC = 0x0300n;
export const SLOTS = 0x0400n;

export function rd(hw: Cpu, msr: number): bigint {
  const r = hw.rdmsr(msr);
  if (!r.ok) throw new Error(`RDMSR 0x${msr.toString(16)} faulted: ${r.gp}`);
  return r.value;
}

export function ev(r: PerfOpenResult): PerfEvent {
  if ('error' in r) throw new Error(`open failed: ${r.error}`);
  return r;
}

export function errorOf(r: PerfOpenResult): string {
  expect('error' in r, 'the open should have failed').toBe(true);
  return 'error' in r ? r.error : '';
}

/** n identical units. */
export function units(n: number, u: WorkUnit): WorkUnit[] {
  return Array.from({ length: n }, () => u);
}

/** A unit at CPL 0 or 3 with the given instructions, cycles and LLC references. */
export function work(cpl: number, instructions: number, cycles = instructions, llc = 0): WorkUnit {
  return { cpl, instructions, cycles, llcReferences: llc };
}

/** Runs units on a pCPU that the test has put in guest mode, handling each PMI as an NMI. */
export function runGuest(hw: Cpu, guestCtrl: bigint, us: readonly WorkUnit[], nmi: () => boolean): number {
  hw.mode = 'guest';
  expect(hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, guestCtrl).ok).toBe(true); // what VM-entry would load
  let pmis = 0;
  for (const u of us) {
    if (hw.step(u) === null) continue;
    pmis++;
    nmi();
  }
  return pmis;
}

/** VM-exit as the later VMX layer will do it: host GLOBAL_CTRL, host mode. */
export function exitGuest(hw: Cpu, hostCtrl: bigint): void {
  expect(hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, hostCtrl).ok).toBe(true);
  hw.mode = 'host';
}

/** A part with a PMU and no LBRs at all (LBR_FMT 0, no leaf 1CH). */
export const NO_LBR = defineProfile({
  name: 'no-lbr',
  family: 6,
  model: 0x3c,
  leaf0a: { eax: leaf0aEax(3, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
  pdcm: false,
  perfCapabilities: 0n,
});

/** KVM's guest LBR event on `task` (intel_pmu_create_guest_lbr_event): pinned, host excluded, user call stack. */
export function guestLbrEvent(k: HostKernel, task: number): PerfEvent {
  return ev(
    k.perf_event_create_kernel_counter(
      attr({
        config: VLBR_CONFIG,
        vlbr: true,
        pinned: true,
        exclude_host: true,
        branchSample: { user: true, kernel: false, callStack: true },
      }),
      { task },
    ),
  );
}
