/**
 * What today's perf-based vPMU loses across a migration or a save/restore, each with the kernel
 * (or VMM) behaviour it comes from. Property 4 counts these as known divergences.
 */

import { isLegacyLbrMsr } from './common.js';
import type { KnownDivergence } from './types.js';
import type { Observation } from '../../scenarios/observation.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';

const afterSaveRestore = (h: readonly Observation[]) => h.some((x) => x.vmm?.op === 'save-restore');

export const EMULATED_INVISIBILITY_EXPECTATIONS: readonly KnownDivergence[] = [
  {
    id: 'debugctl-not-saved',
    title:
      'IA32_DEBUGCTL is not in KVM_GET_MSR_INDEX_LIST, so a save/restore resets it to 0 (decision K4, to confirm against QEMU)',
    kernelRef: 'arch/x86/kvm/x86.c msrs_to_save_pmu / emulated_msrs: no MSR_IA32_DEBUGCTLMSR',
    matches: (o, c) => o.kind === 'rdmsr' && o.target === MSR_IA32_DEBUGCTLMSR && afterSaveRestore(c.history),
  },
  {
    id: 'lbr-not-saved',
    title:
      'LBR MSRs are neither saved nor restored, and a reschedule with DEBUGCTL.LBR clear releases the guest LBR event: LBR records are lost',
    kernelRef: 'arch/x86/kvm/x86.c msrs_to_save (no LBR MSRs); vmx/pmu_intel.c intel_pmu_cleanup',
    matches: (o) => o.kind === 'rdmsr' && o.target !== null && isLegacyLbrMsr(o.target),
  },
];
