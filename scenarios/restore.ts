/**
 * How a VMM saves and restores a vCPU's PMU state, as QEMU does it (kvm-vpmu.md §2.18;
 * pmu-semantics.md §6): KVM_GET_MSR_INDEX_LIST, KVM_GET_MSRS, and on the destination CPUID first,
 * then PERF_CAPABILITIES, the counters, GLOBAL_STATUS, the selectors, FIXED_CTR_CTRL, Arch LBR's DEPTH, LBR_CTL
 * and records, and GLOBAL_CTRL last. The LVTPC travels with the LAPIC state (KVM_GET_LAPIC / KVM_SET_LAPIC).
 */

import type { HostAccess, VpmuVcpu } from '../model/kvm/types.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../model/hw/msr/capabilities.js';
import { X2APIC_LVTPC } from '../model/hw/msr/apic.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { relied } from '../model/hw/relied.js';
import {
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
} from '../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL } from '../model/hw/msr/global.js';
import {
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../model/hw/msr/lbr_arch.js';

export interface SavedVcpu {
  readonly msrs: ReadonlyMap<number, bigint>;
  readonly lvtpc: bigint;
}

/** The rank of an MSR in QEMU's kvm_put_msrs order. */
function rank(m: number): number {
  if (m === MSR_IA32_PERF_CAPABILITIES) return 0;
  if (
    (m >= MSR_IA32_PERFCTR0 && m < 0xc9) ||
    (m >= MSR_IA32_PMC0 && m < 0x4c9) ||
    (m >= MSR_CORE_PERF_FIXED_CTR0 && m < 0x30d)
  )
    return 1;
  if (m === MSR_CORE_PERF_GLOBAL_STATUS) return 2;
  if (m >= MSR_P6_EVNTSEL0 && m < 0x18e) return 3;
  if (m === MSR_CORE_PERF_FIXED_CTR_CTRL) return 4;
  if (m === MSR_CORE_PERF_GLOBAL_CTRL) return 6;
  // Arch LBR: DEPTH (its write resets the records), then LBR_CTL, then the records.
  if (m === MSR_ARCH_LBR_DEPTH) return 5.1;
  if (m === MSR_ARCH_LBR_CTL) return 5.2;
  if (archLbrRecordIndex(m) !== null) return 5.3;
  return 5;
}

/** The record an Arch LBR FROM/TO/INFO MSR names, or null. */
function archLbrRecordIndex(m: number): number | null {
  for (const base of [MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0])
    if (m >= base && m < base + 64) return m - base;
  return null;
}

/**
 * The Arch LBR records QEMU adds to KVM_GET_MSRS for a guest with CPUID.(7,0):EDX[19] (they are not in
 * KVM_GET_MSR_INDEX_LIST): FROM/TO/INFO of every record up to the depth KVM_GET_MSRS of IA32_LBR_DEPTH reads.
 */
function archLbrRecords(v: VpmuVcpu): number[] {
  const d = v.hostGetMsr(MSR_ARCH_LBR_DEPTH);
  if (!d.ok) return [];
  const out: number[] = [];
  for (let i = 0; i < Number(d.value); i++)
    out.push(MSR_ARCH_LBR_FROM_0 + i, MSR_ARCH_LBR_TO_0 + i, MSR_ARCH_LBR_INFO_0 + i);
  return out;
}

export function restoreOrder(list: readonly number[]): number[] {
  return [...list].sort((a, b) => rank(a) - rank(b));
}

function value(r: HostAccess, what: string): bigint {
  if (!r.ok) throw new Error(`${what}: ${r.error}`);
  return r.value;
}

export function saveVcpu(v: VpmuVcpu): SavedVcpu {
  // DEBUGCTL and the LBRs are not in the list (K4): a guest with either set loses them here.
  const dbg = v.hostGetMsr(MSR_IA32_DEBUGCTLMSR);
  if (dbg.ok && dbg.value !== 0n) relied('K4');
  const msrs = new Map<number, bigint>();
  for (const m of [...v.msrIndexList(), ...archLbrRecords(v)])
    msrs.set(m, value(v.hostGetMsr(m), `KVM_GET_MSRS 0x${m.toString(16)}`));
  return { msrs, lvtpc: value(v.hostGetMsr(X2APIC_LVTPC), 'KVM_GET_LAPIC LVTPC') };
}

export function restoreVcpu(v: VpmuVcpu, saved: SavedVcpu): void {
  for (const m of restoreOrder([...saved.msrs.keys()]))
    value(v.hostSetMsr(m, saved.msrs.get(m)!), `KVM_SET_MSRS 0x${m.toString(16)}`);
  value(v.hostSetMsr(X2APIC_LVTPC, saved.lvtpc), 'KVM_SET_LAPIC LVTPC');
}
