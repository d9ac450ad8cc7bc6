/**
 * The vPMU part of arch/x86/kvm/cpuid.c: what KVM_GET_SUPPORTED_CPUID reports for leaf 0xA, from
 * kvm_pmu_cap. Both designs report the same leaf; the mediated vPMU only requires more of the host.
 */

import { leaf0aEax, leaf0aEdx, type CpuidRegs, type Profile } from '../../hw/profile.js';
import type { GuestCpuid, SupportedPmu } from '../types.js';
import type { KvmPmuCap } from './pmu.h.js';

/** CPUID leaf 0xA: Architectural Performance Monitoring. */
export const CPUID_LEAF_ARCH_PERFMON = 0xa;

const ZERO: CpuidRegs = Object.freeze({ eax: 0, ebx: 0, ecx: 0, edx: 0 });

/** CPUID leaf 0x1C: Architectural LBR. */
export const CPUID_LEAF_ARCH_LBR = 0x1c;

/**
 * __do_cpuid_func, leaves 0xA and 0x1C only. 0xA: all zero without a vPMU; else version, counts, widths and mask
 * length from kvm_pmu_cap (the version capped at 2), EBX the host's unavailable-event mask, ECX 0 (no v5
 * fixed-counter bitmap), EDX the fixed counters with AnyThread deprecated. 0x1C: KVM reports no Arch LBR (all zero).
 */
export function __do_cpuid_func(cap: KvmPmuCap, func: number, _host?: Profile): CpuidRegs {
  if (func === CPUID_LEAF_ARCH_LBR) return ZERO;
  if (func !== CPUID_LEAF_ARCH_PERFMON)
    throw new Error(`__do_cpuid_func: only leaf 0xa is ported, not 0x${func.toString(16)}`);
  if (!cap.enable_pmu) return ZERO;
  return {
    eax: leaf0aEax(cap.version, cap.num_counters_gp, cap.bit_width_gp, cap.events_mask_len),
    ebx: cap.events_mask,
    ecx: 0,
    edx: leaf0aEdx(cap.num_counters_fixed, cap.bit_width_fixed, cap.version !== 0),
  };
}

/** What a vCPU's state holds that KVM_GET_SUPPORTED_CPUID and the feature MSRs are answered from. */
interface SupportedSource {
  readonly ops: { readonly __do_cpuid_func: typeof __do_cpuid_func };
  readonly kvm_pmu_cap: KvmPmuCap;
  readonly supported_perf_cap: bigint;
  readonly host: { readonly profile: Profile };
}

/** KVM_GET_SUPPORTED_CPUID leaf 0xA and the feature MSR PERF_CAPABILITIES; an LBR format needs the host's model. */
export function supportedPmuOf(s: SupportedSource): SupportedPmu {
  const p = s.host.profile;
  // CPUID.(7,0):EDX[19] goes with a non-empty leaf 0x1C (both come from kvm_cpu_caps).
  const l1c = s.ops.__do_cpuid_func(s.kvm_pmu_cap, CPUID_LEAF_ARCH_LBR, p);
  return {
    leaf0a: s.ops.__do_cpuid_func(s.kvm_pmu_cap, CPUID_LEAF_ARCH_PERFMON, p),
    perfCapabilities: s.supported_perf_cap,
    lbrModel: { family: p.family, model: p.model },
    ...((l1c.eax & 0xff) !== 0 ? { archLbr: l1c } : {}),
  };
}

const sameRegs = (x: CpuidRegs | undefined, y: CpuidRegs | undefined) =>
  x === y ||
  (x !== undefined && y !== undefined && x.eax === y.eax && x.ebx === y.ebx && x.ecx === y.ecx && x.edx === y.edx);

/** Two KVM_SET_CPUID2 payloads that give the same vCPU model (as far as the PMU goes). */
export function sameGuestCpuid(a: GuestCpuid, b: GuestCpuid): boolean {
  return (
    a.family === b.family &&
    a.model === b.model &&
    a.pdcm === b.pdcm &&
    a.tsx === b.tsx &&
    sameRegs(a.leaf0a, b.leaf0a) &&
    (a.archLbr ?? false) === (b.archLbr ?? false) &&
    sameRegs(a.leaf1c, b.leaf1c)
  );
}
