/**
 * The perf-based vPMU's guest LBR event and its LBR MSRs (vmx/pmu_intel.c: intel_pmu_create_guest_lbr_event,
 * intel_pmu_is_valid_lbr_msr, intel_pmu_handle_lbr_msrs_access; vmx.c: vmx_update_intercept_for_lbr_msrs) on a
 * legacy-LBR host: the event KVM asks host perf for, which MSRs are the guest's LBR MSRs, and which the MSR bitmap
 * passes through while the event owns the LBRs. Expectations are upstream's (kvm-vpmu.md §2.13), not the port's.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { defineProfile } from '../../../model/hw/profile.js';
import { PERF_CAP_LBR_FMT } from '../../../model/hw/msr/capabilities.js';
import { DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import {
  MSR_LBR_INFO_0,
  MSR_LBR_NHM_FROM,
  MSR_LBR_NHM_TO,
  MSR_LBR_SELECT,
  MSR_LBR_TOS,
} from '../../../model/hw/msr/lbr_legacy.js';
import { createVcpu, isGp, kvmSupportedPerfCaps, val, type World } from './util.js';

/** INTEL_FIXED_VLBR_EVENT (arch/x86/include/asm/perf_event.h). */
const INTEL_FIXED_VLBR_EVENT = 0x1b00n;
const NR = 32; // Skylake's LBR depth

/** A Skylake guest given the host's LBR format. */
function lbrGuest(): World {
  const w = createVcpu({ profile: SKYLAKE, perfCaps: kvmSupportedPerfCaps(SKYLAKE) });
  expect(w.vcpu.lbrEnabled).toBe(true);
  return w;
}

const range = (base: number) => Array.from({ length: NR }, (_, i) => base + i);

describe('the guest LBR event (intel_pmu_create_guest_lbr_event)', () => {
  it('is a pinned, exclude_host, user call-stack branch event of the vLBR config, bound to the vCPU task', () => {
    const w = lbrGuest();
    val(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR));
    const ev = w.vcpu.s.lbr.event!;
    expect(ev.target).toEqual({ task: w.vcpu.s.task });
    expect(ev.attr).toMatchObject({
      config: INTEL_FIXED_VLBR_EVENT,
      pinned: true,
      exclude_host: true,
      vlbr: true,
      branchSample: { user: true, kernel: false, callStack: true },
    });
  });

  it('the first access to an LBR MSR creates it, and with the event ACTIVE the access reaches the LBRs', () => {
    const w = lbrGuest();
    expect(w.vcpu.s.lbr.event).toBeNull();
    val(w.vcpu.guestWrmsr(MSR_LBR_SELECT, 0x5n)); // intercepted: no event yet
    expect(w.vcpu.s.lbr.event?.state).toBe('ACTIVE');
    expect(val(w.vcpu.guestRdmsr(MSR_LBR_SELECT))).toBe(0x5n);
  });
});

describe('the guest’s LBR MSRs: LBR_SELECT, LBR_TOS and the records’ FROM, TO and INFO, no more', () => {
  it('while the event owns the LBRs, the MSR bitmap passes exactly those through', () => {
    const w = lbrGuest();
    val(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR));
    w.vcpu.guestRun([]);
    const lbrMsrs = [
      MSR_LBR_SELECT,
      MSR_LBR_TOS,
      ...range(MSR_LBR_NHM_FROM),
      ...range(MSR_LBR_NHM_TO),
      ...range(MSR_LBR_INFO_0),
    ];
    expect(
      [...w.vcpu.s.passthrough].filter((m) => !lbrMsrs.includes(m) && m >= MSR_LBR_SELECT && m < MSR_LBR_INFO_0 + 64),
    ).toEqual([]);
    for (const m of lbrMsrs) expect(w.vcpu.s.passthrough.has(m), `0x${m.toString(16)}`).toBe(true);
  });

  it('the MSR after the last FROM or INFO record is no LBR MSR: #GP, and no LBR event', () => {
    for (const m of [MSR_LBR_NHM_FROM + NR, MSR_LBR_INFO_0 + NR]) {
      const w = lbrGuest();
      expect(isGp(w.vcpu.guestRdmsr(m)), `RDMSR 0x${m.toString(16)}`).toBe(true);
      expect(isGp(w.vcpu.guestWrmsr(m, 0n)), `WRMSR 0x${m.toString(16)}`).toBe(true);
      expect(w.vcpu.s.lbr.event, `0x${m.toString(16)}`).toBeNull();
    }
  });
});

describe('a host whose LBR format has no LBR_INFO (Haswell’s format 4): the records are FROM and TO only', () => {
  const NO_INFO = defineProfile({
    ...SKYLAKE.spec,
    name: 'skylake-lbr-fmt4',
    perfCapabilities: (SKYLAKE.spec.perfCapabilities & ~PERF_CAP_LBR_FMT) | 4n,
    legacyLbr: { depth: 16, fromBase: MSR_LBR_NHM_FROM, toBase: MSR_LBR_NHM_TO, select: true, callStack: true },
  });
  const guest = () => {
    const w = createVcpu({ profile: NO_INFO, perfCaps: kvmSupportedPerfCaps(NO_INFO) });
    expect(w.vcpu.lbrEnabled).toBe(true);
    return w;
  };

  it('the MSR bitmap passes through LBR_SELECT, LBR_TOS and the 16 FROM and TO records, and nothing from an info base of 0', () => {
    const w = guest();
    val(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR));
    w.vcpu.guestRun([]);
    const nr16 = (base: number) => Array.from({ length: 16 }, (_, i) => base + i);
    const lbrMsrs = [MSR_LBR_SELECT, MSR_LBR_TOS, ...nr16(MSR_LBR_NHM_FROM), ...nr16(MSR_LBR_NHM_TO)];
    for (const m of lbrMsrs) expect(w.vcpu.s.passthrough.has(m), `0x${m.toString(16)}`).toBe(true);
    expect([...w.vcpu.s.passthrough].filter((m) => m < 16)).toEqual([]);
  });

  it('an MSR below the depth is no LBR MSR (intel_pmu_is_valid_lbr_msr looks at INFO only with an info base)', () => {
    const w = guest();
    expect(isGp(w.vcpu.guestRdmsr(0x8))).toBe(true);
    expect(w.vcpu.s.lbr.event).toBeNull();
  });
});
