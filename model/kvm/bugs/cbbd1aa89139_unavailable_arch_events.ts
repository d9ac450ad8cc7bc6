/**
 * Bug #35 of bugs.md, before "KVM: x86/pmu: Always treat Fixed counters as available when
 * supported" (cbbd1aa89139, 6.9) and "KVM: x86/pmu: Allow programming events that match
 * unsupported arch events" (6.9, id not pinned): the hw_event_available static call
 * (intel_hw_event_available) refused to count any PMC whose event select and umask match an
 * architectural event that guest CPUID.0AH.EBX marks unavailable. Fixed counters were caught too,
 * as their eventsel holds perf's generic encoding (FC0: instructions). Real CPUs count them.
 */

import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';

export const FIXED_BY = 'cbbd1aa89139';

/** intel_arch_events[] up to NR_REAL_INTEL_ARCH_EVENTS: (event select, umask), indexed as CPUID.0AH.EBX. */
const INTEL_ARCH_EVENTS: readonly (readonly [number, number])[] = [
  [0x3c, 0x00], // cycles
  [0xc0, 0x00], // instructions
  [0x3c, 0x01], // reference cycles
  [0x2e, 0x4f], // LLC references
  [0x2e, 0x41], // LLC misses
  [0xc4, 0x00], // branch instructions retired
  [0xc5, 0x00], // branch misses retired
];

/** The pre-fix intel_hw_event_available: an architectural encoding counts iff CPUID enumerates it. */
function intel_hw_event_available(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const event = Number(pmc.eventsel & 0xffn);
  const umask = Number((pmc.eventsel >> 8n) & 0xffn);
  const i = INTEL_ARCH_EVENTS.findIndex(([e, u]) => e === event && u === umask);
  return i < 0 || ((vcpu.pmu.available_event_types >>> i) & 1) === 1;
}

/** pmc_is_event_allowed (pmc_event_is_allowed up to 6.8) with the hw_event_available static call in front. */
function pmc_is_event_allowed(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  return intel_hw_event_available(vcpu, pmc) && EMULATED_OPS.pmc_is_event_allowed(vcpu, pmc);
}

export const PRE_UNAVAILABLE_ARCH_EVENTS_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, pmc_is_event_allowed };
