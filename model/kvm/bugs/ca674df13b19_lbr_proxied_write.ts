/**
 * Bug #13 of bugs.md, before "KVM: VMX: Handle bad values on proxied writes to LBR MSRs"
 * (ca674df13b19, kvm-x86 next, 2026; mechanism inferred from the subject and the code): while
 * the guest LBR event is ACTIVE, intel_pmu_handle_lbr_msrs_access forwarded an intercepted guest
 * write to the hardware with an unchecked wrmsrq. A value the hardware refuses (a non-canonical
 * FROM/TO, reserved LBR_SELECT or LBR_INFO bits) faulted in host context: the exception fixup
 * skipped the WRMSR with an "unchecked MSR access" splat and KVM reported success, so the guest
 * saw its write accepted where bare metal raises #GP.
 */

import { type Access, ok } from '../../hw/access.js';
import { bit } from '../../hw/bits.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import { INTEL_PMC_IDX_FIXED_VLBR, type KvmVcpuState } from '../emulated/state.js';

export const FIXED_BY = 'ca674df13b19';

/** The pre-fix intel_pmu_handle_lbr_msrs_access: reads as today, writes with an unchecked wrmsrq. */
function intel_pmu_handle_lbr_msrs_access(vcpu: KvmVcpuState, msr: number, write: bigint | null): Access | null {
  if (write === null) return EMULATED_OPS.intel_pmu_handle_lbr_msrs_access(vcpu, msr, null);
  if (!vcpu.ops.intel_pmu_is_valid_lbr_msr(vcpu, msr)) return null;
  if (vcpu.lbr.event === null && !vcpu.ops.intel_pmu_create_guest_lbr_event(vcpu)) return ok(write);
  const ev = vcpu.lbr.event!;
  if (ev.state !== 'ACTIVE') {
    vcpu.pmu.pmc_in_use &= ~bit(INTEL_PMC_IDX_FIXED_VLBR);
    return ok(write);
  }
  vcpu.pmu.pmc_in_use |= bit(INTEL_PMC_IDX_FIXED_VLBR);
  vcpu.host.pcpu(vcpu.cpu).hw.wrmsr(msr, write); // wrmsrq: a fault is fixed up with a splat, never returned
  return ok(write);
}

export const PRE_LBR_PROXIED_WRITE_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, intel_pmu_handle_lbr_msrs_access };
