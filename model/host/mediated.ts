/**
 * What perf provides for KVM's mediated vPMU (kernel/events/core.c and arch/x86/events/core.c,
 * CONFIG_PERF_GUEST_MEDIATED_PMU; kvm-vpmu.md §2.19): the accounting that keeps mediated VMs and
 * host events that count the guest (!exclude_guest) mutually exclusive, the world switch of host
 * context (exclude_guest events scheduled out while a guest's PMU is loaded), and the LVTPC switch
 * to the mediated PMI vector. perf.ts calls the accounting hooks; KVM calls the rest.
 */

import { ModelError } from '../hw/errors.js';
import { relied } from '../hw/relied.js';
import { X2APIC_LVTPC, APIC_LVT_MASKED, APIC_DM_NMI, APIC_DM_FIXED } from '../hw/msr/apic.js';
import type { HostKernel } from './perf.js';
import type { PerfEventAttr } from './types.js';

/** PERF_GUEST_MEDIATED_PMI_VECTOR (arch/x86/include/asm/irq_vectors.h). */
export const PERF_GUEST_MEDIATED_PMI_VECTOR = 0xf5;

/** nr_include_guest_events, nr_mediated_pmu_vms and the per-CPU guest_ctx_loaded / guest_lvtpc_loaded flags. */
export interface MediatedPmuState {
  nrIncludeGuestEvents: number;
  nrMediatedPmuVms: number;
  readonly guestCtxLoaded: Set<number>;
  readonly guestLvtpcLoaded: Set<number>;
}

export function newMediatedPmuState(): MediatedPmuState {
  return { nrIncludeGuestEvents: 0, nrMediatedPmuVms: 0, guestCtxLoaded: new Set(), guestLvtpcLoaded: new Set() };
}

/** is_include_guest_event: an event of the core PMU (which has PERF_PMU_CAP_MEDIATED_VPMU) that counts the guest. */
export function is_include_guest_event(a: PerfEventAttr): boolean {
  return !a.exclude_guest; // every event of the model is on the x86 core PMU (H15)
}

/** mediated_pmu_account_event, from perf_event_alloc: null, or the error perf_event_open returns. */
export function mediated_pmu_account_event(m: MediatedPmuState, a: PerfEventAttr): string | null {
  if (!is_include_guest_event(a)) return null;
  if (m.nrMediatedPmuVms > 0) {
    relied('H15');
    return 'EOPNOTSUPP: a VM with a mediated vPMU exists; only exclude_guest events are allowed';
  }
  m.nrIncludeGuestEvents++;
  return null;
}

/** mediated_pmu_unaccount_event, from _free_event. */
export function mediated_pmu_unaccount_event(m: MediatedPmuState, a: PerfEventAttr): void {
  if (!is_include_guest_event(a)) return;
  if (m.nrIncludeGuestEvents === 0)
    throw new ModelError('perf: unaccounting an include-guest event that was never accounted');
  m.nrIncludeGuestEvents--;
}

/** perf_create_mediated_pmu: -EBUSY while any host event counts the guest (the NMI watchdog included). */
export function perf_create_mediated_pmu(host: HostKernel): { readonly ok: true } | { readonly error: string } {
  const m = host.mediatedPmu;
  if (m.nrMediatedPmuVms > 0) {
    m.nrMediatedPmuVms++;
    return { ok: true };
  }
  if (m.nrIncludeGuestEvents > 0)
    return {
      error: `EBUSY: ${m.nrIncludeGuestEvents} host event(s) without exclude_guest exist (system-wide perf or nmi_watchdog)`,
    };
  m.nrMediatedPmuVms++;
  return { ok: true };
}

/** perf_release_mediated_pmu. */
export function perf_release_mediated_pmu(host: HostKernel): void {
  const m = host.mediatedPmu;
  if (m.nrMediatedPmuVms === 0) throw new ModelError('perf_release_mediated_pmu without a mediated PMU (WARN_ON_ONCE)');
  m.nrMediatedPmuVms--;
}

/**
 * perf_load_guest_context: schedule out the exclude_guest events of the CPU and current task contexts (EVENT_GUEST).
 */
export function perf_load_guest_context(host: HostKernel, cpu: number): void {
  const m = host.mediatedPmu;
  if (m.guestCtxLoaded.has(cpu))
    throw new ModelError(`perf_load_guest_context: CPU ${cpu} already has a guest context (WARN_ON_ONCE)`);
  host.schedGuestEvents(cpu, 'out');
  m.guestCtxLoaded.add(cpu);
}

/** perf_put_guest_context: schedule the host events back in (H16). */
export function perf_put_guest_context(host: HostKernel, cpu: number): void {
  const m = host.mediatedPmu;
  if (!m.guestCtxLoaded.has(cpu))
    throw new ModelError(`perf_put_guest_context: CPU ${cpu} has no guest context (WARN_ON_ONCE)`);
  relied('H16');
  host.schedGuestEvents(cpu, 'in');
  m.guestCtxLoaded.delete(cpu);
}

/** perf_load_guest_lvtpc: PMIs go to the mediated vector, Fixed mode, masked iff the guest's LVTPC is. */
export function perf_load_guest_lvtpc(host: HostKernel, cpu: number, guestLvtpc: bigint): void {
  const masked = guestLvtpc & APIC_LVT_MASKED;
  const r = host.pcpu(cpu).hw.wrmsr(X2APIC_LVTPC, APIC_DM_FIXED | BigInt(PERF_GUEST_MEDIATED_PMI_VECTOR) | masked);
  if (!r.ok) throw new ModelError(`perf_load_guest_lvtpc: ${r.gp}`);
  host.mediatedPmu.guestLvtpcLoaded.add(cpu);
}

/** perf_put_guest_lvtpc: back to perf's NMI delivery, unmasked. */
export function perf_put_guest_lvtpc(host: HostKernel, cpu: number): void {
  host.mediatedPmu.guestLvtpcLoaded.delete(cpu);
  const r = host.pcpu(cpu).hw.wrmsr(X2APIC_LVTPC, APIC_DM_NMI);
  if (!r.ok) throw new ModelError(`perf_put_guest_lvtpc: ${r.gp}`);
}
