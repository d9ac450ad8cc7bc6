/**
 * Bug #41 of bugs.md, before "KVM: x86/pmu: Disallow "fast" RDPMC for architectural Intel PMUs"
 * (5728a4a0ea79, 6.9): KVM honoured RDPMC's ECX[31] "fast" flag on architectural PMUs and
 * returned the counter's low 32 bits, where the hardware raises #GP.
 */

import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';

export const FIXED_BY = '5728a4a0ea79';

/**
 * The pre-fix intel_rdpmc_ecx_to_pmc: the fast flag is stripped before decoding, and kvm_pmu_rdpmc's
 * fast_mode mask (~0u, which the decoder narrows further) is folded into the mask returned here.
 */
function intel_rdpmc_ecx_to_pmc(vcpu: KvmVcpuState, ecx: number): { pmc: KvmPmc; mask: bigint } | null {
  if ((ecx & 0x8000_0000) === 0) return EMULATED_OPS.intel_rdpmc_ecx_to_pmc(vcpu, ecx);
  const r = EMULATED_OPS.intel_rdpmc_ecx_to_pmc(vcpu, ecx & 0x7fff_ffff);
  return r === null ? null : { pmc: r.pmc, mask: r.mask & 0xffff_ffffn };
}

export const PRE_FAST_RDPMC_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, intel_rdpmc_ecx_to_pmc };
