/**
 * The vPMU part of arch/x86/kvm/cpuid.c: what KVM_GET_SUPPORTED_CPUID reports for leaf 0xA, from
 * kvm_pmu_cap. Both designs report the same leaf; the mediated vPMU only requires more of the host.
 */

import { leaf0aEax, leaf0aEdx, type CpuidRegs, type Profile } from '../../hw/profile.js';
import type { SupportedPmu } from '../types.js';
import type { KvmPmuCap } from './pmu.h.js';

/** CPUID leaf 0xA: Architectural Performance Monitoring. */
export const CPUID_LEAF_ARCH_PERFMON = 0xa;

const ZERO: CpuidRegs = Object.freeze({ eax: 0, ebx: 0, ecx: 0, edx: 0 });

/**
 * __do_cpuid_func, leaf 0xA only: all zero without a vPMU; else version, counts, widths and mask length from
 * kvm_pmu_cap (the version capped at 2), EBX the host's unavailable-event mask, ECX 0 (no v5 fixed-counter bitmap),
 * EDX the fixed counters with AnyThread deprecated.
 */
export function __do_cpuid_func(cap: KvmPmuCap, func: number): CpuidRegs {
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
  return {
    leaf0a: s.ops.__do_cpuid_func(s.kvm_pmu_cap, CPUID_LEAF_ARCH_PERFMON),
    perfCapabilities: s.supported_perf_cap,
    lbrModel: { family: p.family, model: p.model },
  };
}
