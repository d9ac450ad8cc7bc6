/**
 * Bug #41 of bugs.md, before "KVM: x86/pmu: Disallow "fast" RDPMC for architectural Intel PMUs"
 * (5728a4a0ea79, 6.9): KVM honoured RDPMC's ECX[31] "fast" flag on architectural PMUs and
 * returned the counter's low 32 bits, where the hardware raises #GP.
 */

import { type Access, ok } from '../../hw/access.js';
import type { HostKernel } from '../../host/perf.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';

export const FIXED_BY = '5728a4a0ea79';

export class PreFastRdpmcFixVcpu extends EmulatedVcpu {
  override guestRdpmc(ecx: number, cpl: number): Access {
    if ((ecx & 0x8000_0000) === 0) return super.guestRdpmc(ecx, cpl);
    // The pre-fix intel_rdpmc_ecx_to_pmc: strip the fast flag, mask the result to 32 bits.
    const r = super.guestRdpmc(ecx & 0x7fff_ffff, cpl);
    return r.ok ? ok(r.value & 0xffff_ffffn) : r;
  }
}

export const preFastRdpmcFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreFastRdpmcFixVcpu(host, opts);
