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
import type { HostKernel } from '../../host/perf.js';
import { intel_pmu_create_guest_lbr_event, intel_pmu_is_valid_lbr_msr } from '../emulated/pmu_intel.js';
import { INTEL_PMC_IDX_FIXED_VLBR } from '../emulated/state.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';

export const FIXED_BY = 'ca674df13b19';

export class PreLbrProxiedWriteFixVcpu extends EmulatedVcpu {
  /** Host-side faults the unchecked WRMSR hit ("unchecked MSR access error" splats), oldest first. */
  readonly hostMsrFaults: string[] = [];

  protected override setMsr(msr: number, data: bigint, host: boolean): Access | null {
    const s = this.s;
    if (!intel_pmu_is_valid_lbr_msr(s, msr)) return super.setMsr(msr, data, host);
    // The pre-fix intel_pmu_handle_lbr_msrs_access, write side.
    if (s.lbr.event === null && !intel_pmu_create_guest_lbr_event(s)) return ok(data);
    const ev = s.lbr.event!;
    if (ev.state !== 'ACTIVE') {
      s.pmu.pmc_in_use &= ~bit(INTEL_PMC_IDX_FIXED_VLBR);
      return ok(data);
    }
    s.pmu.pmc_in_use |= bit(INTEL_PMC_IDX_FIXED_VLBR);
    const r = s.host.pcpu(s.cpu).hw.wrmsr(msr, data); // wrmsrq: a fault is fixed up, not returned
    if (!r.ok) this.hostMsrFaults.push(`WRMSR 0x${msr.toString(16)} <- 0x${data.toString(16)}: ${r.gp}`);
    return ok(data);
  }
}

export const preLbrProxiedWriteFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreLbrProxiedWriteFixVcpu(host, opts);
