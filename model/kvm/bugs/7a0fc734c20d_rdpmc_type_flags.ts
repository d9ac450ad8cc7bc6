/**
 * Bug #42 of bugs.md, before "KVM: x86/pmu: Treat "fixed" PMU type in RDPMC as index as a value,
 * not flag" (7a0fc734c20d) and "KVM: x86/pmu: Explicitly check for RDPMC of unsupported Intel PMC
 * types" (a634c76b2c1a), both 6.9: intel_rdpmc_ecx_to_pmc read ECX[31:30] as flags — bit 30
 * selected the fixed counters and both bits were stripped (idx &= ~(3u << 30)) before the bounds
 * check — instead of ECX[31:16] as a type value. Types with bits 29:16 set still failed the bounds
 * check (a634c76b2c1a says so), so what the flag reading accepts is types 0x8000 and 0xC000. The
 * 32-bit "fast" truncation of bit 31 is row #41 (5728a4a0ea79) and is not part of this patch.
 */

import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';

export const FIXED_BY = '7a0fc734c20d';

/** The pre-fix intel_rdpmc_ecx_to_pmc: bit 30 picks the fixed counters, bits 31:30 are stripped, the rest is the index. */
function intel_rdpmc_ecx_to_pmc(vcpu: KvmVcpuState, ecx: number): { pmc: KvmPmc; mask: bigint } | null {
  const pmu = vcpu.pmu;
  const fixed = (ecx & 0x4000_0000) !== 0;
  const idx = ecx & 0x3fff_ffff;
  if (fixed)
    return idx < pmu.nr_arch_fixed_counters ? { pmc: pmu.fixed_counters[idx]!, mask: pmu.counter_bitmask_fixed } : null;
  return idx < pmu.nr_arch_gp_counters ? { pmc: pmu.gp_counters[idx]!, mask: pmu.counter_bitmask_gp } : null;
}

export const PRE_RDPMC_TYPE_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, intel_rdpmc_ecx_to_pmc };
