/**
 * Bug #42 of bugs.md, before "KVM: x86/pmu: Treat "fixed" PMU type in RDPMC as index as a value,
 * not flag" (7a0fc734c20d) and "KVM: x86/pmu: Explicitly check for RDPMC of unsupported Intel PMC
 * types" (a634c76b2c1a), both 6.9: intel_rdpmc_ecx_to_pmc read ECX[31:30] as flags — bit 30
 * selected the fixed counters and both bits were stripped (idx &= ~(3u << 30)) before the bounds
 * check — instead of ECX[31:16] as a type value. Types with bits 29:16 set still failed the bounds
 * check (a634c76b2c1a says so), so what the flag reading accepts is types 0x8000 and 0xC000. The
 * 32-bit "fast" truncation of bit 31 is row #41 (5728a4a0ea79) and is not part of this patch.
 */

import type { Access } from '../../hw/access.js';
import type { HostKernel } from '../../host/perf.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';

export const FIXED_BY = '7a0fc734c20d';

export class PreRdpmcTypeFixVcpu extends EmulatedVcpu {
  override guestRdpmc(ecx: number, cpl: number): Access {
    // Bits 31:30 are flags to the pre-fix decoder; any other type bit fails its bounds check.
    const flags = ecx >>> 30;
    if (flags === 0 || flags === 1) return super.guestRdpmc(ecx, cpl);
    if ((ecx & 0x3fff_0000) !== 0) return super.guestRdpmc(ecx, cpl); // the bounds check fails either way
    // Type 0x8000 reads as GP, 0xC000 as fixed: the same counter the faithful decoder gives 0x0000 / 0x4000.
    return super.guestRdpmc((ecx & 0x4000_ffff) >>> 0, cpl);
  }
}

export const preRdpmcTypeFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreRdpmcTypeFixVcpu(host, opts);
