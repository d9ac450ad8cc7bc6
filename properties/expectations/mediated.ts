/**
 * Known divergences of the mediated vPMU (model/kvm/mediated) from bare metal, each observed by the
 * conformance property and traced to the upstream code it comes from. A program whose first
 * divergence matches one of these is a known divergence, not a failure.
 */

import {
  ANYTHREAD_RESERVED,
  DEBUGCTL_SUBSET,
  FIXED_CTR_WIDTH,
  P6_PERFCTR_QUIRK,
  STATUS_BITS_V2,
  VERSION_NOT_CLAMPED,
  version,
} from './common.js';
import type { KnownDivergence } from './types.js';
import { isGp } from '../../scenarios/observation.js';
import {
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  GLOBAL_STATUS_LBRS_FROZEN,
  GLOBAL_STATUS_COUNTERS_FROZEN,
  GLOBAL_STATUS_UNC_OVF,
} from '../../model/hw/msr/global.js';

// The shared entries (common.ts), with the mediated path to the same upstream code in the title and reference.
export const MEDIATED_EXPECTATIONS: readonly KnownDivergence[] = [
  {
    ...P6_PERFCTR_QUIRK,
    title:
      'absent MSR_P6_PERFCTR0/1 and MSR_P6_EVNTSEL0/1 read 0 and drop writes instead of #GP (intercepted, as with the emulated vPMU)',
  },
  {
    ...VERSION_NOT_CLAMPED,
    title:
      'a guest whose CPUID says PMU version 4 or 5 gets no GLOBAL_STATUS_SET and no GLOBAL_INUSE: KVM intercepts them and knows only the v2 MSRs (decision K10)',
    kernelRef:
      'arch/x86/kvm/pmu.c kvm_init_pmu_capability caps the version at 2 even with the mediated PMU; kvm_pmu_is_valid_msr has no 0x391/0x392; vmx.c vmx_recalc_pmu_msr_intercepts never passes them through',
  },
  {
    ...FIXED_CTR_WIDTH,
    title:
      "a VMM's KVM_SET_MSRS of a fixed counter with bits above the counter width is masked, not refused (a guest's own write reaches the counter)",
    kernelRef:
      'arch/x86/kvm/pmu.c pmc_write_counter (mediated: counter = val & pmc_bitmask); vmx/pmu_intel.c intel_pmu_set_msr: get_fixed_pmc, no width check',
    matches: () => false,
    // Only a host-initiated write: bare metal is written what the counter keeps (W6).
    adoptValue: (a, host) => (a.hostInitiated === undefined ? null : FIXED_CTR_WIDTH.adoptValue!(a, host)),
  },
  {
    ...DEBUGCTL_SUBSET,
    title:
      'DEBUGCTL is not virtualized beyond RTM_DEBUG: LBR and BTF are dropped, FREEZE_LBRS_ON_PMI, FREEZE_PERFMON_ON_PMI and other bits #GP',
    kernelRef:
      'arch/x86/kvm/vmx/vmx.c vmx_get_supported_debugctl: LBR|FREEZE_LBRS_ON_PMI only when LBR_FMT is advertised, which vmx_get_perf_capabilities never does with enable_mediated_pmu',
  },
  {
    ...ANYTHREAD_RESERVED,
    title:
      'AnyThread (EVTSEL bit 21, FIXED_CTR_CTRL bit 2 of each field) is reserved whatever the PMU version; selectors and FIXED_CTR_CTRL are intercepted so KVM can refuse it',
    kernelRef:
      'arch/x86/kvm/pmu.c kvm_pmu_refresh reserved_bits 0xffffffff00200000; pmu_intel.c fixed_ctr_ctrl_rsvd keeps bit 2 of each field; vmx.c vmx_recalc_pmu_msr_intercepts: "Do NOT passthrough event selector or fixed counter control MSRs ... to prevent use of AnyThread events"',
  },
  {
    ...STATUS_BITS_V2,
    title:
      'an intercepted GLOBAL_OVF_CTRL/STATUS_RESET takes only the counter bits and 62/63: the v3+ Ovf_Uncore and v4 LBR_FRZ/CTR_FRZ bits #GP (decision K10)',
    kernelRef:
      'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_refresh: global_status_rsvd = global_ctrl_rsvd & ~(OVF_BUF | COND_CHGD); pmu.c kvm_need_perf_global_ctrl_intercept',
  },
  {
    id: 'ovf-ctrl-passthrough',
    title:
      "with every host counter the guest's, GLOBAL_OVF_CTRL passes through: a v2/v3 guest can clear the host PMU's v4 status bits (LBR_FRZ, CTR_FRZ, Ovf_Uncore) that its own version reserves",
    kernelRef:
      "arch/x86/kvm/vmx/vmx.c vmx_recalc_pmu_msr_intercepts: GLOBAL_CTRL/STATUS/OVF_CTRL intercepted only if kvm_need_perf_global_ctrl_intercept (counter counts, v2+), not by the guest's version",
    matches: (o, c) =>
      o.kind === 'wrmsr' &&
      o.target === MSR_CORE_PERF_GLOBAL_OVF_CTRL &&
      o.sut.kind === 'accepted' &&
      isGp(o.oracle) &&
      o.value !== null &&
      c.host.version >= 4 &&
      version(c) >= 2 &&
      version(c) < 4 &&
      // Passed through only when the guest has every host counter (kvm_need_perf_global_ctrl_intercept).
      ((c.guest.cpuid.leaf0a.eax >>> 8) & 0xff) === c.host.nGP &&
      (c.guest.cpuid.leaf0a.edx & 0x1f) === c.host.nFixedContig &&
      (o.value & (GLOBAL_STATUS_LBRS_FROZEN | GLOBAL_STATUS_COUNTERS_FROZEN | GLOBAL_STATUS_UNC_OVF)) !== 0n,
  },
];

/** What the mediated vPMU loses across a migration or a save/restore. */
export const MEDIATED_INVISIBILITY_EXPECTATIONS: readonly KnownDivergence[] = [];
