/**
 * Bug #35 of bugs.md, before "KVM: x86/pmu: Always treat Fixed counters as available when
 * supported" (cbbd1aa89139, 6.9) and "KVM: x86/pmu: Allow programming events that match
 * unsupported arch events" (6.9, id not pinned): the hw_event_available static call
 * (intel_hw_event_available) refused to count any PMC whose event select and umask match an
 * architectural event that guest CPUID.0AH.EBX marks unavailable. Fixed counters were caught too,
 * as their eventsel holds perf's generic encoding (FC0: instructions). Real CPUs count them.
 */

import type { HostKernel } from '../../host/perf.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';
import type { GuestCpuid } from '../types.js';

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

export class PreUnavailableArchEventsFixVcpu extends EmulatedVcpu {
  constructor(host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) {
    super(host, opts);
    this.s.ops = { ...this.s.ops, hw_event_available: intel_hw_event_available };
  }
}

export const preUnavailableArchEventsFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreUnavailableArchEventsFixVcpu(host, opts);
