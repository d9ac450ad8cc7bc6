/**
 * The Arch LBR v2 series (model/kvm/series/arch_lbr.ts) function by function, on one vCPU driven directly: what KVM
 * reports (leaf 0x1C, PERF_CAPABILITIES' LBR format, KVM_GET_MSR_INDEX_LIST), which LBR MSRs a guest and a VMM may
 * access for each guest CPUID, what an LBR_CTL write does to the guest LBR event, which MSRs pass through while that
 * event is ACTIVE, and XSS. Expectations follow series.md §4.2–§4.3 (the series as posted), not the port's output;
 * where the series differs from upstream KVM the test says so.
 */

import { describe, expect, it } from 'vitest';
import { type CpuidRegs, LBR_FMT_ARCH, perfCaps, type Profile } from '../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';
import {
  ARCH_LBR_KERNEL,
  ARCH_LBR_LBREN,
  ARCH_LBR_REL_JMP,
  ARCH_LBR_USER,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../../../model/hw/msr/lbr_arch.js';
import {
  MSR_LBR_INFO_0,
  MSR_LBR_NHM_FROM,
  MSR_LBR_NHM_TO,
  MSR_LBR_SELECT,
  MSR_LBR_TOS,
} from '../../../model/hw/msr/lbr_legacy.js';
import { HostKernel } from '../../../model/host/perf.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { ARCH_LBR_OPS } from '../../../model/kvm/series/arch_lbr.js';
import type { GuestCpuid } from '../../../model/kvm/types.js';
import { defaultCpuid, isGp, kvmSupportedPerfCaps, val } from './util.js';

const SPR = SAPPHIRE_RAPIDS;
const FW_ONLY = perfCaps({ fwWrite: true });
const ARCH_FMT = perfCaps({ fwWrite: true, lbrFmt: LBR_FMT_ARCH });
/** LBREn, both CPLs (CPUID.1CH.EBX[0] on every built-in Arch LBR host), near relative jumps. */
const LBR_ON = ARCH_LBR_LBREN | ARCH_LBR_KERNEL | ARCH_LBR_USER | ARCH_LBR_REL_JMP;

/** KVM_GET_SUPPORTED_CPUID's leaf 0x1C of the series on `p` (the host's deepest depth bit only). */
function supportedLeaf1c(p: Profile): CpuidRegs {
  const host = new HostKernel({ profile: p, cpus: 1 });
  const l = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(p) }, ARCH_LBR_OPS).supportedPmu().archLbr;
  if (l === undefined) throw new Error(`${p.name}: the series reports no leaf 0x1C`);
  return l;
}

/** The guest CPUID KVM reports on an Arch LBR host: CPUID.(7,0):EDX[19] and its leaf 0x1C. */
const archCpuid = (p: Profile): GuestCpuid => ({ ...defaultCpuid(p), archLbr: true, leaf1c: supportedLeaf1c(p) });

interface Setup {
  readonly profile?: Profile;
  readonly cpuid?: GuestCpuid;
  readonly perfCaps?: bigint;
  readonly lbrProbeFaulted?: boolean;
}

/**
 * One vCPU of the series on a two-pCPU host, set up as the selftests do: created with the default CPUID, then
 * PERF_CAPABILITIES, then the CPUID under test (whose KVM_SET_CPUID2 must succeed).
 */
function vcpuOf(o: Setup = {}): { host: HostKernel; v: EmulatedVcpu } {
  const profile = o.profile ?? SPR;
  const host = new HostKernel({ profile, cpus: 2, ...(o.lbrProbeFaulted === true ? { lbrProbeFaulted: true } : {}) });
  const v = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(profile) }, ARCH_LBR_OPS);
  if (o.perfCaps !== undefined) expect(v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, o.perfCaps).ok).toBe(true);
  const set = v.setCpuid(o.cpuid ?? archCpuid(profile));
  expect(set.ok, set.ok ? '' : set.error).toBe(true);
  return { host, v };
}

/** An Arch LBR guest on `profile` with the CPUID and LBR format KVM reports. */
const archGuest = (profile: Profile = SPR) => vcpuOf({ profile, cpuid: archCpuid(profile), perfCaps: ARCH_FMT });

/** Which of `msrs` a guest RDMSR faults on. */
const rdmsrGp = (v: EmulatedVcpu, msrs: readonly number[]) => msrs.filter((m) => isGp(v.guestRdmsr(m)));

const ARCH_MSRS = [MSR_ARCH_LBR_CTL, MSR_ARCH_LBR_DEPTH, MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0];

describe('cpuid_enable_lbr and intel_pmu_is_valid_lbr_msr (patches 04–06/15): which LBR MSRs exist for a guest', () => {
  it('an Arch LBR guest with KVM’s leaf 0x1C has every Arch LBR MSR and neither LBR_SELECT nor LBR_TOS', () => {
    const { v } = archGuest();
    expect(v.s.lbr.nr).toBe(SPR.archLbr!.maxDepth);
    expect(rdmsrGp(v, ARCH_MSRS)).toEqual([]);
    expect(val(v.guestRdmsr(MSR_ARCH_LBR_DEPTH))).toBe(BigInt(SPR.archLbr!.maxDepth));
    expect(rdmsrGp(v, [MSR_LBR_SELECT, MSR_LBR_TOS])).toEqual([MSR_LBR_SELECT, MSR_LBR_TOS]);
  });

  it('CPUID.(7,0):EDX[19] without a leaf 0x1C enables no guest LBR: every Arch LBR MSR #GPs, LBREn included', () => {
    const cpuid: GuestCpuid = { ...defaultCpuid(SPR), archLbr: true };
    const { v } = vcpuOf({ cpuid, perfCaps: ARCH_FMT });
    expect(v.s.lbr.nr).toBe(0);
    expect(rdmsrGp(v, ARCH_MSRS)).toEqual(ARCH_MSRS);
    expect(isGp(v.guestWrmsr(MSR_ARCH_LBR_CTL, LBR_ON))).toBe(true);
    expect(v.s.lbr.event).toBeNull();
  });

  it('leaf 0x1C without CPUID.(7,0):EDX[19] enables no guest LBR either', () => {
    const { v } = vcpuOf({ cpuid: { ...archCpuid(SPR), archLbr: false }, perfCaps: FW_ONLY });
    expect(v.s.lbr.nr).toBe(0);
    expect(rdmsrGp(v, ARCH_MSRS)).toEqual(ARCH_MSRS);
  });

  it('a guest without a vPMU (CPUID.0AH version 0) gets no LBR, Arch LBR CPUID or not', () => {
    const base = archCpuid(SPR);
    const cpuid: GuestCpuid = { ...base, leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 } };
    const { v } = vcpuOf({ cpuid });
    expect(v.s.lbr.nr).toBe(0);
    expect(rdmsrGp(v, ARCH_MSRS)).toEqual(ARCH_MSRS);
  });

  it('on a legacy LBR host the series leaves upstream’s checks: no LBR format, no LBR MSRs', () => {
    const { v } = vcpuOf({ profile: SKYLAKE, cpuid: defaultCpuid(SKYLAKE), perfCaps: FW_ONLY });
    expect(v.s.lbr.nr).toBe(0);
    expect(rdmsrGp(v, [MSR_LBR_SELECT, MSR_LBR_TOS, MSR_LBR_NHM_FROM])).toEqual([
      MSR_LBR_SELECT,
      MSR_LBR_TOS,
      MSR_LBR_NHM_FROM,
    ]);
  });

  it('on a legacy LBR host, a guest CPUID with ARCH_LBR (which KVM does not report there) keeps the legacy records but loses LBR_SELECT/TOS, and has no LBR_CTL or DEPTH', () => {
    // KVM_SET_CPUID2 takes any CPUID; intel_pmu_is_valid_lbr_msr reads guest CPUID for LBR_SELECT/TOS (patch 04/15)
    // and needs the KVM cap as well for LBR_CTL and DEPTH (patches 05–06/15).
    const cpuid: GuestCpuid = { ...defaultCpuid(SKYLAKE), archLbr: true };
    const { v } = vcpuOf({ profile: SKYLAKE, cpuid, perfCaps: kvmSupportedPerfCaps(SKYLAKE) });
    expect(v.s.lbr.nr).toBe(SKYLAKE.legacyLbr!.depth);
    expect(rdmsrGp(v, [MSR_ARCH_LBR_CTL, MSR_ARCH_LBR_DEPTH, MSR_LBR_SELECT, MSR_LBR_TOS])).toEqual([
      MSR_ARCH_LBR_CTL,
      MSR_ARCH_LBR_DEPTH,
      MSR_LBR_SELECT,
      MSR_LBR_TOS,
    ]);
    expect(rdmsrGp(v, [MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO + 31, MSR_LBR_INFO_0])).toEqual([]);
  });
});

describe('KVM_GET_SUPPORTED_CPUID and KVM_SET_CPUID2 (patch 15/15)', () => {
  it('leaf 0x1C is the host’s with only the deepest depth bit; a legacy host reports none', () => {
    const deepest = 1 << (SPR.archLbr!.depths.length - 1);
    expect(supportedLeaf1c(SPR)).toEqual({
      ...SPR.spec.leaf1c!,
      eax: ((SPR.spec.leaf1c!.eax & ~0xff) | deepest) >>> 0,
    });
    const host = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE) }, ARCH_LBR_OPS);
    expect(v.supportedPmu().archLbr).toBeUndefined();
  });

  it('a CPUID without leaf 0x1C is taken on either host', () => {
    expect(vcpuOf({ cpuid: defaultCpuid(SPR), perfCaps: FW_ONLY }).v.s.lbr.nr).toBe(0);
    expect(vcpuOf({ profile: SKYLAKE, cpuid: defaultCpuid(SKYLAKE) }).v.s.lbr.nr).toBe(SKYLAKE.legacyLbr!.depth);
  });
});
