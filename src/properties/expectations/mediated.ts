/**
 * Known divergences of the mediated vPMU (model/kvm/mediated) from bare metal, each observed by the
 * conformance property and traced to the upstream code it comes from. A program whose first
 * divergence matches one of these is a known divergence, not a failure.
 */

import type { KnownDivergence } from './types.js';

const version = (c: { guest: { cpuid: { leaf0a: { eax: number } } } }) => c.guest.cpuid.leaf0a.eax & 0xff;

export const MEDIATED_EXPECTATIONS: readonly KnownDivergence[] = [
  {
    id: 'p6-perfctr-quirk',
    title: 'absent MSR_P6_PERFCTR0/1 and MSR_P6_EVNTSEL0/1 read 0 and drop writes instead of #GP (intercepted, as with the emulated vPMU)',
    kernelRef: 'arch/x86/kvm/x86.c kvm_get_msr_common / kvm_set_msr_common, "case MSR_P6_PERFCTR0/1, MSR_P6_EVNTSEL0/1"',
    matches: (o) =>
      (o.kind === 'rdmsr' || o.kind === 'wrmsr') &&
      o.target !== null &&
      [0xc1, 0xc2, 0x186, 0x187].includes(o.target) &&
      o.oracle === '#GP' &&
      o.sut === '0x0',
  },
  {
    id: 'version-not-clamped',
    title: 'a guest whose CPUID says PMU version 4 or 5 gets no GLOBAL_STATUS_SET and no GLOBAL_INUSE: KVM intercepts them and knows only the v2 MSRs (decision K10)',
    kernelRef: 'arch/x86/kvm/pmu.c kvm_init_pmu_capability caps the version at 2 even with the mediated PMU; kvm_pmu_is_valid_msr has no 0x391/0x392; vmx.c vmx_recalc_pmu_msr_intercepts never passes them through',
    matches: (o, c) =>
      version(c) >= 4 && (o.kind === 'rdmsr' || o.kind === 'wrmsr') && (o.target === 0x391 || o.target === 0x392) && o.sut === '#GP',
  },
  {
    id: 'debugctl-subset',
    title: 'DEBUGCTL is not virtualized beyond RTM_DEBUG: LBR and BTF are dropped, FREEZE_LBRS_ON_PMI, FREEZE_PERFMON_ON_PMI and other bits #GP',
    kernelRef: 'arch/x86/kvm/vmx/vmx.c vmx_get_supported_debugctl: LBR|FREEZE_LBRS_ON_PMI only when LBR_FMT is advertised, which vmx_get_perf_capabilities never does with enable_mediated_pmu',
    // A refused write #GPs; a dropped LBR/BTF bit shows on the next read.
    matches: (o) =>
      o.target === 0x1d9 &&
      ((o.kind === 'wrmsr' && o.sut === '#GP' && o.oracle === '0x0') || (o.kind === 'rdmsr' && o.sut !== '#GP' && o.oracle !== '#GP')),
  },
  {
    id: 'anythread-reserved',
    title: 'AnyThread (EVTSEL bit 21, FIXED_CTR_CTRL bit 2 of each field) is reserved whatever the PMU version; selectors and FIXED_CTR_CTRL are intercepted so KVM can refuse it',
    kernelRef: 'arch/x86/kvm/pmu.c kvm_pmu_refresh reserved_bits 0xffffffff00200000; pmu_intel.c fixed_ctr_ctrl_rsvd keeps bit 2 of each field; vmx.c vmx_recalc_pmu_msr_intercepts: "Do NOT passthrough event selector or fixed counter control MSRs ... to prevent use of AnyThread events"',
    matches: (o, c) =>
      version(c) >= 3 &&
      o.kind === 'wrmsr' &&
      o.sut === '#GP' &&
      o.oracle === '0x0' &&
      o.value !== null &&
      ((o.target !== null && o.target >= 0x186 && o.target < 0x18e && (o.value & (1n << 21n)) !== 0n) ||
        (o.target === 0x38d && (o.value & 0x4444_4444n) !== 0n)),
  },
  {
    id: 'status-bits-v2',
    title: 'an intercepted GLOBAL_OVF_CTRL/STATUS_RESET takes only the counter bits and 62/63: the v3+ Ovf_Uncore and v4 LBR_FRZ/CTR_FRZ bits #GP (decision K10)',
    kernelRef: 'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_refresh: global_status_rsvd = global_ctrl_rsvd & ~(OVF_BUF | COND_CHGD); pmu.c kvm_need_perf_global_ctrl_intercept',
    matches: (o, c) =>
      version(c) >= 3 &&
      o.kind === 'wrmsr' &&
      o.target === 0x390 &&
      o.sut === '#GP' &&
      o.oracle === '0x0' &&
      o.value !== null &&
      (o.value & ((1n << 58n) | (1n << 59n) | (1n << 61n))) !== 0n,
  },
];

/** What the mediated vPMU loses across a migration or a save/restore. */
export const MEDIATED_INVISIBILITY_EXPECTATIONS: readonly KnownDivergence[] = [];
