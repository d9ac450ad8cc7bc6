/**
 * The VMX side of the mediated vPMU (vmx.c, kvm-vpmu.md §2.13, §2.15, §2.19) held to upstream: which PMU MSRs the
 * MSR bitmap passes through (vmx_recalc_pmu_msr_intercepts, for every counter the guest has and against every one it
 * no longer has after a second KVM_SET_CPUID2), which DEBUGCTL bits KVM takes (vmx_get_supported_debugctl's
 * RTM_DEBUG), what the VM-exit saves of DEBUGCTL, the vendor checks of PERF_CAPABILITIES, and a VM-entry whose VMCS
 * guest state the hardware would refuse, which is a port bug the model reports rather than a guest #GP.
 */
import { describe, expect, it } from 'vitest';
import type { Profile } from '../../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../../model/hw/profiles.js';
import { ModelError } from '../../../../model/hw/errors.js';
import { DecisionLog, recording } from '../../../../model/hw/relied.js';
import { HostKernel } from '../../../../model/host/perf.js';
import { MediatedVcpu } from '../../../../model/kvm/mediated/vcpu.js';
import { MEDIATED_OPS, type MediatedOps } from '../../../../model/kvm/mediated/ops.js';
import type { GuestCpuid, HostAccess } from '../../../../model/kvm/types.js';
import {
  MSR_IA32_PERF_CAPABILITIES,
  PERF_CAP_FW_WRITES,
  PERF_CAP_LBR_FMT,
} from '../../../../model/hw/msr/capabilities.js';
import { MSR_CORE_PERF_FIXED_CTR0, MSR_IA32_PERFCTR0, MSR_IA32_PMC0 } from '../../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../../../model/hw/msr/global.js';
import { DEBUGCTLMSR_RTM_DEBUG, MSR_IA32_DEBUGCTLMSR } from '../../../../model/hw/msr/debugctl.js';
import { guestCpuid, val } from './util.js';
import { fixedGlobalEnable } from '../util.js';
import { thrownBy } from '../../../support/thrown.js';

/** KVM_CREATE_VCPU with `cpuid`, running `ops`, then KVM_SET_MSRS(PERF_CAPABILITIES = FW_WRITES). */
function vcpuOf(profile: Profile, cpuid: GuestCpuid, ops: MediatedOps = MEDIATED_OPS) {
  const host = new HostKernel({ profile, cpus: 2 });
  const vcpu = new MediatedVcpu(host, { cpu: 0, cpuid }, ops);
  expect(vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES)).toEqual({
    ok: true,
    value: PERF_CAP_FW_WRITES,
  });
  return { host, vcpu };
}

const range = (base: number, n: number) => Array.from({ length: n }, (_, i) => base + i);
const GLOBALS = [MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_OVF_CTRL];
/** Why KVM_SET_MSRS failed, or null where it succeeded. */
const refusal = (r: HostAccess): string | null => (r.ok ? null : r.error);

const sorted = (s: ReadonlySet<number>) => [...s].sort((a, b) => a - b);

describe('vmx_recalc_pmu_msr_intercepts: the MSR bitmap', () => {
  it('a Skylake guest with every counter and FW_WRITES: exactly its counters, both GP aliases, and the global MSRs pass through', () => {
    const { vcpu } = vcpuOf(SKYLAKE, guestCpuid(SKYLAKE));
    expect(sorted(vcpu.s.passthrough)).toEqual(
      [
        ...range(MSR_IA32_PERFCTR0, 4),
        ...range(MSR_CORE_PERF_FIXED_CTR0, 3),
        ...GLOBALS,
        ...range(MSR_IA32_PMC0, 4),
      ].sort((a, b) => a - b),
    );
  });

  it('a second KVM_SET_CPUID2 with fewer counters, before KVM_RUN: those it took away are intercepted again and #GP', () => {
    const { vcpu } = vcpuOf(SKYLAKE, guestCpuid(SKYLAKE));
    expect(vcpu.setCpuid(guestCpuid(SKYLAKE, { nrGp: 2, nrFixed: 1 })).ok).toBe(true);
    // Fewer counters than the host: the global MSRs exit too (kvm_need_perf_global_ctrl_intercept).
    expect(sorted(vcpu.s.passthrough)).toEqual([
      ...range(MSR_IA32_PERFCTR0, 2),
      MSR_CORE_PERF_FIXED_CTR0,
      ...range(MSR_IA32_PMC0, 2),
    ]);
    // Left passed through, these would reach the host's counters 2, 3 and fixed 1, 2, which the guest does not have.
    for (const msr of [
      MSR_IA32_PMC0 + 2,
      MSR_IA32_PMC0 + 3,
      MSR_CORE_PERF_FIXED_CTR0 + 1,
      MSR_CORE_PERF_FIXED_CTR0 + 2,
    ])
      expect(vcpu.guestWrmsr(msr, 1n).ok, `WRMSR 0x${msr.toString(16)}`).toBe(false);
    expect(val(vcpu.guestWrmsr(MSR_IA32_PMC0 + 1, 7n))).toBe(7n);
  });
});

describe('vmx_get_supported_debugctl: RTM_DEBUG needs RTM on the host, and in guest CPUID unless host-initiated', () => {
  const tsxGuest = (tsx: boolean): GuestCpuid => ({ ...guestCpuid(SAPPHIRE_RAPIDS), tsx });

  it('Skylake (no RTM): neither the guest nor userspace may set it, whatever the guest CPUID says', () => {
    const { vcpu } = vcpuOf(SKYLAKE, { ...guestCpuid(SKYLAKE), tsx: true });
    const r = vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.gp).toBe('IA32_DEBUGCTL: bits KVM does not support (vmx_is_valid_debugctl)');
    expect(vcpu.hostSetMsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG).ok).toBe(false);
    expect(val(vcpu.guestRdmsr(MSR_IA32_DEBUGCTLMSR))).toBe(0n);
  });

  it('Sapphire Rapids, a guest without RTM: the guest #GPs, a host-initiated write is taken', () => {
    const { vcpu } = vcpuOf(SAPPHIRE_RAPIDS, tsxGuest(false));
    expect(vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG).ok).toBe(false);
    expect(vcpu.hostSetMsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG)).toEqual({
      ok: true,
      value: DEBUGCTLMSR_RTM_DEBUG,
    });
  });

  it('Sapphire Rapids, a guest with RTM: taken, and what VM-exit saves of DEBUGCTL keeps it through a run', () => {
    const { vcpu } = vcpuOf(SAPPHIRE_RAPIDS, tsxGuest(true));
    expect(val(vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG))).toBe(DEBUGCTLMSR_RTM_DEBUG);
    vcpu.guestRun([{ cpl: 3, instructions: 4 }]);
    expect(val(vcpu.guestRdmsr(MSR_IA32_DEBUGCTLMSR))).toBe(DEBUGCTLMSR_RTM_DEBUG);
    expect(vcpu.hostGetMsr(MSR_IA32_DEBUGCTLMSR)).toEqual({ ok: true, value: DEBUGCTLMSR_RTM_DEBUG });
  });
});

describe('vmx_set_msr(PERF_CAPABILITIES): the vendor checks before kvm_set_msr_common', () => {
  it('a guest without a vPMU (version 0, PDCM set) takes only 0 (K7)', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const vcpu = new MediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(SKYLAKE, { version: 0 }) });
    const log = new DecisionLog();
    const r = recording(log, () => vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES));
    expect(refusal(r)).toMatch(/a non-zero value needs a vPMU \(K7\)/);
    expect(log.ids).toContain('K7');
    expect(vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, 0n)).toEqual({ ok: true, value: 0n });
  });

  it('an LBR format is refused by the LBR_FMT check itself (no LBR with the mediated vPMU)', () => {
    const { vcpu } = vcpuOf(SKYLAKE, guestCpuid(SKYLAKE));
    const r = vcpu.hostSetMsr(
      MSR_IA32_PERF_CAPABILITIES,
      PERF_CAP_FW_WRITES | (SKYLAKE.perfCapabilities & PERF_CAP_LBR_FMT),
    );
    expect(refusal(r)).toMatch(/LBR_FMT is not supported with the mediated vPMU/);
  });
});

describe('a VM-entry loading guest state the hardware refuses is a port bug, reported as such', () => {
  it('a DEBUGCTL bit KVM took but the host lacks (RTM_DEBUG on Skylake)', () => {
    const ops: MediatedOps = { ...MEDIATED_OPS, vmx_get_supported_debugctl: () => DEBUGCTLMSR_RTM_DEBUG };
    const { vcpu } = vcpuOf(SKYLAKE, guestCpuid(SKYLAKE), ops);
    expect(vcpu.hostSetMsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG).ok).toBe(true);
    const e = thrownBy(() => vcpu.guestRun([{ cpl: 3, instructions: 1 }]));
    expect(e).toBeInstanceOf(ModelError);
    expect((e as Error).message).toMatch(/^KVM: VM-entry GUEST_IA32_DEBUGCTL faulted: /);
  });

  it('a GLOBAL_CTRL enable for a fixed counter the host lacks (fixed counter 3 on Skylake)', () => {
    const ops: MediatedOps = {
      ...MEDIATED_OPS,
      intel_pmu_write_global_ctrl: (v, ctrl) => {
        v.vmcsGuestPerfGlobalCtrl = ctrl | fixedGlobalEnable(3);
      },
    };
    const { vcpu } = vcpuOf(SKYLAKE, guestCpuid(SKYLAKE), ops);
    const e = thrownBy(() => vcpu.guestRun([{ cpl: 3, instructions: 1 }]));
    expect(e).toBeInstanceOf(ModelError);
    expect((e as Error).message).toMatch(/^KVM: VM-entry GUEST_IA32_PERF_GLOBAL_CTRL faulted: /);
  });
});
