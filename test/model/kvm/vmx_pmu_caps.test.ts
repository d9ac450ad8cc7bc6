/**
 * The checks of KVM selftests x86/vmx_pmu_caps_test.c (kvm-vpmu.md §3.1, §2.15) against the
 * emulated vPMU. host_cap is what KVM reports as the supported PERF_CAPABILITIES
 * (kvm_get_feature_msr): FW_WRITES always, the host's LBR format on a legacy-LBR host with
 * call-stack support, no PEBS bits (PEBS is not ported: decision K2).
 *
 * The vCPU starts as KVM_ONE_VCPU_TEST creates it: KVM_GET_SUPPORTED_CPUID (host family/model,
 * PDCM, leaf 0xA at KVM's version 2).
 */
import { describe, expect, it } from 'vitest';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { createVcpu, defaultCpuid, hostOk, hostVal, isGp, kvmSupportedPerfCaps, work, type World } from './util.js';
import {
  MSR_IA32_PERF_CAPABILITIES,
  PERF_CAP_FW_WRITES,
  PERF_CAP_LBR_FMT,
} from '../../../model/hw/msr/capabilities.js';
import { MSR_LBR_TOS } from '../../../model/hw/msr/lbr_legacy.js';

const host_cap = kvmSupportedPerfCaps(SKYLAKE);
const bitu = (i: number) => 1n << BigInt(i);

/** The LBR format and most PEBS features are immutable (immutable_caps). */
const IMMUTABLE = PERF_CAP_LBR_FMT | bitu(6) | bitu(7) | (0xfn << 8n) | bitu(14) | bitu(17);
/** lbr_format and pebs_format are multi-bit values, checked separately (format_caps). */
const FORMATS = PERF_CAP_LBR_FMT | (0xfn << 8n);
const U64 = (1n << 64n) - 1n;

function setCaps(w: World, v: bigint): boolean {
  return hostOk(w.vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, v));
}

/** guest_code: every guest WRMSR to PERF_CAPABILITIES #GPs, whatever the value. */
function guestCode(w: World, current: bigint): void {
  const gpFor = (v: bigint) =>
    expect(isGp(w.vcpu.guestWrmsr(MSR_IA32_PERF_CAPABILITIES, v)), `guest WRMSR 0x${v.toString(16)}`).toBe(true);
  gpFor(current);
  gpFor(0n);
  for (let i = 0; i < 64; i++) gpFor(current ^ bitu(i));
}

describe('vmx_pmu_caps_test (Skylake host)', () => {
  it('KVM advertises full-width writes', () => {
    expect(host_cap & PERF_CAP_FW_WRITES).toBe(PERF_CAP_FW_WRITES);
    const w = createVcpu();
    // KVM_X86_QUIRK_STUFF_FEATURE_MSRS: a new vCPU starts with the supported value.
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES))).toBe(host_cap);
  });

  it('guest_wrmsr_perf_capabilities: guest WRMSR #GPs for any value; host value kept; immutable after KVM_RUN', () => {
    const w = createVcpu();
    expect(setCaps(w, host_cap)).toBe(true);
    guestCode(w, host_cap); // vcpu_run
    expect(w.vcpu.s.hasRun, 'the guest ran').toBe(true);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES)), 'host value preserved').toBe(host_cap);
    expect(w.vcpu.guestRdmsr(MSR_IA32_PERF_CAPABILITIES)).toEqual({ ok: true, value: host_cap });

    expect(setCaps(w, host_cap), 'post-KVM_RUN write of the same value').toBe(true);
    expect(setCaps(w, 0n), "post-KVM_RUN write '0' fails").toBe(false);
    for (let i = 0; i < 64; i++)
      expect(setCaps(w, host_cap ^ bitu(i)), `post-KVM_RUN write with bit ${i} flipped fails`).toBe(false);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES))).toBe(host_cap);
  });

  it('basic_perf_capabilities: host may write 0 and the full supported value', () => {
    const w = createVcpu();
    expect(setCaps(w, 0n)).toBe(true);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES))).toBe(0n);
    expect(setCaps(w, host_cap)).toBe(true);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES))).toBe(host_cap);
  });

  it('fungible_perf_capabilities: each supported non-immutable bit can be set alone and cleared alone', () => {
    const w = createVcpu();
    const fungible = host_cap & ~IMMUTABLE;
    expect(fungible, 'FW_WRITES is fungible').not.toBe(0n);
    for (let b = 0; b < 64; b++) {
      if ((fungible & bitu(b)) === 0n) continue;
      expect(setCaps(w, bitu(b)), `set bit ${b} alone`).toBe(true);
      expect(setCaps(w, host_cap & ~bitu(b)), `clear bit ${b} alone`).toBe(true);
    }
    expect(setCaps(w, host_cap)).toBe(true);
  });

  it("immutable_perf_capabilities: unsupported or immutable bits, and any LBR/PEBS format but the host's, fail", () => {
    const w = createVcpu();
    const reserved = ((~host_cap & U64) | IMMUTABLE) & ~FORMATS;
    for (let b = 0; b < 64; b++) {
      if ((reserved & bitu(b)) === 0n) continue;
      expect(setCaps(w, host_cap ^ bitu(b)), `${(host_cap & bitu(b)) !== 0n ? 'clearing' : 'setting'} bit ${b}`).toBe(
        false,
      );
    }
    const hostFmt = host_cap & PERF_CAP_LBR_FMT;
    expect(hostFmt, 'Skylake has a legacy LBR format').toBe(5n);
    for (let fmt = 1n; fmt <= 63n; fmt++) {
      if (fmt === hostFmt) continue;
      expect(setCaps(w, (host_cap & ~PERF_CAP_LBR_FMT) | fmt), `LBR format ${fmt}`).toBe(false);
    }
    const hostPebs = (host_cap >> 8n) & 0xfn;
    for (let fmt = 1n; fmt <= 15n; fmt++) {
      if (fmt === hostPebs) continue;
      expect(setCaps(w, (host_cap & ~PERF_CAP_LBR_FMT & ~(0xfn << 8n)) | (fmt << 8n)), `PEBS format ${fmt}`).toBe(
        false,
      );
    }
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES)), 'nothing stuck').toBe(host_cap);
  });

  it("LBR format needs the guest model to be the host's", () => {
    const w = createVcpu({ cpuid: { model: SKYLAKE.model + 1 }, perfCaps: 0n });
    expect(setCaps(w, host_cap)).toBe(false);
    expect(setCaps(w, PERF_CAP_FW_WRITES)).toBe(true);
  });

  it('LBR format with the host model but another family is taken: cpuid_model_is_consistent compares x86_model only', () => {
    // Family 0xF, like 6, folds the extended model into x86_model, so the guest's model is the host's.
    const w = createVcpu({ cpuid: { family: 0xf }, perfCaps: 0n });
    expect(setCaps(w, host_cap)).toBe(true);
    expect(w.vcpu.lbrEnabled, 'intel_pmu_refresh gives it the host LBRs').toBe(true);
  });

  it('lbr_perf_capabilities: with LBR_FMT set the host can write LBR_TOS; clearing leaf 0xA (vPMU off) makes it fail', () => {
    const w = createVcpu();
    expect(setCaps(w, host_cap)).toBe(true);
    expect(hostOk(w.vcpu.hostSetMsr(MSR_LBR_TOS, 7n)), 'LBR_TOS = 7').toBe(true);
    w.vcpu.setCpuid({ ...defaultCpuid(SKYLAKE), leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 } });
    expect(hostOk(w.vcpu.hostSetMsr(MSR_LBR_TOS, 7n)), 'LBR_TOS = 7 without a vPMU').toBe(false);
  });

  it('KVM disallows enabling features via PERF_CAPABILITIES if the guest has no vPMU', () => {
    // pmu_counters_test writes PERF_CAPABILITIES before the version for this reason:
    // vmx_set_msr fails "data && !vcpu_to_pmu(vcpu)->version".
    const w = createVcpu({ version: 0, perfCaps: 0n });
    expect(setCaps(w, PERF_CAP_FW_WRITES), 'FW_WRITES with version 0').toBe(false);
    expect(setCaps(w, host_cap), 'LBR_FMT with version 0').toBe(false);
    expect(setCaps(w, 0n), 'zero is fine').toBe(true);
  });

  it('perf_capabilities_unsupported: without PDCM the host reads 0, may write 0, and no single bit', () => {
    const w = createVcpu();
    expect(setCaps(w, host_cap)).toBe(true);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES))).toBe(host_cap);
    w.vcpu.setCpuid({ ...defaultCpuid(SKYLAKE), pdcm: false });
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES)), 'read without PDCM').toBe(0n);
    expect(setCaps(w, 0n), 'write 0 without PDCM').toBe(true);
    for (let i = 0; i < 64; i++) expect(setCaps(w, bitu(i)), `write bit ${i} without PDCM`).toBe(false);
    // ...and the guest has no such MSR.
    expect(isGp(w.vcpu.guestRdmsr(MSR_IA32_PERF_CAPABILITIES))).toBe(true);
  });

  it('PERF_CAPABILITIES survives guest work and migration unchanged', () => {
    const w = createVcpu({ cpus: 2 });
    w.vcpu.guestRun(work(3, 5));
    w.vcpu.migrate(1);
    w.vcpu.guestRun(work(3, 5));
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES))).toBe(host_cap);
  });
});

describe('vmx_pmu_caps_test (Sapphire Rapids host: Arch LBR)', () => {
  it('KVM advertises no LBR format on an Arch LBR host, so LBR_FMT 0x3f is refused', () => {
    const cap = kvmSupportedPerfCaps(SAPPHIRE_RAPIDS);
    expect(cap).toBe(PERF_CAP_FW_WRITES);
    const w = createVcpu({ profile: SAPPHIRE_RAPIDS });
    expect(setCaps(w, cap)).toBe(true);
    expect(setCaps(w, cap | 0x3fn)).toBe(false);
    expect(hostOk(w.vcpu.hostSetMsr(MSR_LBR_TOS, 7n)), 'no legacy LBR MSRs for the guest').toBe(false);
  });
});
