/**
 * The Arch LBR v2 series (model/kvm/series/arch_lbr.ts) function by function, on one vCPU driven directly: what KVM
 * reports (leaf 0x1C, PERF_CAPABILITIES' LBR format, KVM_GET_MSR_INDEX_LIST), which LBR MSRs a guest and a VMM may
 * access for each guest CPUID, what an LBR_CTL write does to the guest LBR event, which MSRs pass through while that
 * event is ACTIVE, and XSS. Expectations follow series.md §4.2–§4.3 (the series as posted), not the port's output;
 * where the series differs from upstream KVM the test says so.
 */

import { describe, expect, it } from 'vitest';
import { bit } from '../../../model/hw/bits.js';
import { type CpuidRegs, defineProfile, LBR_FMT_ARCH, perfCaps, type Profile } from '../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_LBR_FMT } from '../../../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  ICL_EVENTSEL_ADAPTIVE,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import {
  DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
  DEBUGCTLMSR_LBR,
  MSR_IA32_DEBUGCTLMSR,
} from '../../../model/hw/msr/debugctl.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
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
import { MSR_IA32_XSS, XFEATURE_LBR } from '../../../model/hw/msr/system.js';
import type { WorkUnit } from '../../../model/hw/work.js';
import { HostKernel } from '../../../model/host/perf.js';
import { attr } from '../../../model/host/types.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { ARCH_LBR_OPS, XFEATURE_MASK_LBR } from '../../../model/kvm/series/arch_lbr.js';
import { type GuestCpuid, NO_CPUID } from '../../../model/kvm/types.js';
import { CYCLES, defaultCpuid, hostVal, INSTRUCTIONS, isGp, kvmSupportedPerfCaps, PC_VECTOR, val } from './util.js';
import { recordHw } from './mediated/util.js';

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

/** Guest user-space work with `n` taken jumps, each from its own address. */
const jumps = (n: number): WorkUnit[] =>
  Array.from({ length: n }, (_, i) => ({
    cpl: 3,
    instructions: 1,
    cycles: 2,
    branches: [{ from: 0x40_0000n + BigInt(i) * 0x40n, to: 0x40_8000n, kind: 'NEAR_REL_JMP' as const }],
  }));

/** Which of `msrs` a guest RDMSR faults on. */
const rdmsrGp = (v: EmulatedVcpu, msrs: readonly number[]) => msrs.filter((m) => isGp(v.guestRdmsr(m)));

/** The MSRs FROM/TO/INFO[0, n) of each base (an info base of 0: none). */
const records = (n: number, from: number, to: number, info: number): number[] =>
  Array.from({ length: n }, (_, i) => [from + i, to + i, ...(info !== 0 ? [info + i] : [])]).flat();

/** An Arch LBR host without GP counters, where KVM has no vPMU (enable_pmu is off). */
const SPR_NO_GP = defineProfile({
  ...SPR.spec,
  name: 'sapphirerapids-nogp',
  leaf0a: { ...SPR.spec.leaf0a, eax: SPR.spec.leaf0a.eax & ~0xff00 },
});

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

  it('a leaf 0x1C of another depth mask fails KVM_SET_CPUID2 with -EINVAL (kvm_check_cpuid) and changes nothing', () => {
    const { v } = archGuest();
    const good = archCpuid(SPR);
    for (const mask of [0x1, 0x3, 0xff & ~(good.leaf1c!.eax & 0xff)]) {
      const r = v.setCpuid({ ...good, leaf1c: { ...good.leaf1c!, eax: ((good.leaf1c!.eax & ~0xff) | mask) >>> 0 } });
      expect(r.ok).toBe(false);
      expect(!r.ok && r.error).toMatch(/-EINVAL/);
      expect(v.s.cpuid).toEqual(good);
      expect(v.s.lbr.nr).toBe(SPR.archLbr!.maxDepth);
    }
  });

  it('a vCPU whose first KVM_SET_CPUID2 is refused keeps the empty CPUID it was created with: no vPMU, no LBRs', () => {
    const good = archCpuid(SPR);
    const bad = { ...good, leaf1c: { ...good.leaf1c!, eax: ((good.leaf1c!.eax & ~0xff) | 0x1) >>> 0 } };
    const v = new EmulatedVcpu(new HostKernel({ profile: SPR, cpus: 1 }), { cpu: 0, cpuid: bad }, ARCH_LBR_OPS);
    expect(v.s.cpuid).toEqual(NO_CPUID);
    expect(v.s.pmu.version).toBe(0);
    expect(v.s.lbr.nr).toBe(0);
    expect(isGp(v.guestRdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(true);
    expect(isGp(v.guestRdmsr(MSR_ARCH_LBR_CTL))).toBe(true);
  });

  it('a CPUID without leaf 0x1C is taken on either host', () => {
    expect(vcpuOf({ cpuid: defaultCpuid(SPR), perfCaps: FW_ONLY }).v.s.lbr.nr).toBe(0);
    expect(vcpuOf({ profile: SKYLAKE, cpuid: defaultCpuid(SKYLAKE) }).v.s.lbr.nr).toBe(SKYLAKE.legacyLbr!.depth);
  });
});

describe('intel_pmu_get/set_msr (patches 05, 06, 14/15)', () => {
  it('a selector write goes through KVM’s checks, not the raw path of the records: a bit KVM reserves #GPs', () => {
    // EVTSEL bit 34 (adaptive PEBS) is reserved for the guest: KVM does not expose PEBS (K2).
    const { v } = archGuest();
    expect(isGp(v.guestWrmsr(MSR_P6_EVNTSEL0, ARCH_PERFMON_EVENTSEL_USR | ICL_EVENTSEL_ADAPTIVE))).toBe(true);
    expect(val(v.guestRdmsr(MSR_P6_EVNTSEL0))).toBe(0n);
  });

  it('KVM_GET/SET_MSRS of records 0..31 is a raw access of the pCPU, which creates no guest LBR event', () => {
    const { host, v } = archGuest();
    const hw = host.pcpu(0).hw;
    expect(v.hostSetMsr(MSR_ARCH_LBR_FROM_0 + 31, 0x40_1000n).ok).toBe(true);
    expect(val(hw.rdmsr(MSR_ARCH_LBR_FROM_0 + 31))).toBe(0x40_1000n);
    expect(v.hostGetMsr(MSR_ARCH_LBR_FROM_0 + 31)).toEqual({ ok: true, value: 0x40_1000n });
    expect(v.hostGetMsr(MSR_ARCH_LBR_INFO_0)).toEqual({ ok: true, value: val(hw.rdmsr(MSR_ARCH_LBR_INFO_0)) });
    expect(v.s.lbr.event).toBeNull();
  });

  it('on a 64-deep host, records 32..63 are left to intel_pmu_handle_lbr_msrs_access, which creates the guest LBR event', () => {
    // Patch 14/15's raw cases stop at "+ 31"; the records beyond take upstream's intercepted path.
    const deep = defineProfile({
      ...SPR.spec,
      name: 'sapphirerapids-64',
      leaf1c: { ...SPR.spec.leaf1c!, eax: 0x8000_00ff },
    });
    const { v } = archGuest(deep);
    expect(v.s.lbr.nr).toBe(64);
    expect(v.hostGetMsr(MSR_ARCH_LBR_TO_0 + 31).ok).toBe(true);
    expect(v.s.lbr.event).toBeNull();
    expect(v.hostGetMsr(MSR_ARCH_LBR_TO_0 + 32).ok).toBe(true);
    expect(v.s.lbr.event).not.toBeNull();
  });
});

describe('KVM_GET/SET_MSRS of LBR_CTL and DEPTH (patches 05, 06, 08/15)', () => {
  it('with guest Arch LBR, DEPTH takes only the host’s depth and LBR_CTL what guest CPUID allows', () => {
    const { v } = archGuest();
    const depth = BigInt(SPR.archLbr!.maxDepth);
    expect(v.hostSetMsr(MSR_ARCH_LBR_DEPTH, depth)).toEqual({ ok: true, value: depth });
    expect(v.hostSetMsr(MSR_ARCH_LBR_DEPTH, 8n).ok).toBe(false);
    expect(v.hostSetMsr(MSR_ARCH_LBR_CTL, LBR_ON)).toEqual({ ok: true, value: LBR_ON });
    expect(v.hostGetMsr(MSR_ARCH_LBR_CTL)).toEqual({ ok: true, value: LBR_ON });
  });

  it('without guest Arch LBR, both are advertised MSRs that read 0 and take only 0', () => {
    // The series' own "host-initiated, no Arch LBR: only 0" branches sit behind intel_pmu_is_valid_lbr_msr, which
    // needs records.nr ≠ 0; what a VMM meets is kvm_set_msr_common's rule for an advertised MSR KVM does not handle.
    const { v } = vcpuOf({ cpuid: { ...archCpuid(SPR), archLbr: false }, perfCaps: FW_ONLY });
    for (const m of [MSR_ARCH_LBR_CTL, MSR_ARCH_LBR_DEPTH]) {
      expect(v.hostGetMsr(m)).toEqual({ ok: true, value: 0n });
      expect(v.hostSetMsr(m, 0n)).toEqual({ ok: true, value: 0n });
    }
    expect(v.hostSetMsr(MSR_ARCH_LBR_CTL, ARCH_LBR_LBREN).ok).toBe(false);
    expect(v.hostSetMsr(MSR_ARCH_LBR_DEPTH, BigInt(SPR.archLbr!.maxDepth)).ok).toBe(false);
  });
});

describe('LBR_CTL and the guest LBR event (patch 06/15)', () => {
  it('a valid LBR_CTL without LBREn is stored but creates no guest LBR event, and the records stay intercepted', () => {
    const { v } = archGuest();
    expect(val(v.guestWrmsr(MSR_ARCH_LBR_CTL, ARCH_LBR_KERNEL | ARCH_LBR_USER))).toBe(ARCH_LBR_KERNEL | ARCH_LBR_USER);
    v.guestRun(jumps(1));
    expect(val(v.guestRdmsr(MSR_ARCH_LBR_CTL))).toBe(ARCH_LBR_KERNEL | ARCH_LBR_USER);
    expect(v.s.lbr.event).toBeNull();
    expect(v.s.passthrough.has(MSR_ARCH_LBR_FROM_0)).toBe(false);
    // LBREn creates it; the next VM-entry passes the records through.
    v.guestWrmsr(MSR_ARCH_LBR_CTL, LBR_ON);
    expect(v.s.lbr.event?.state).toBe('ACTIVE');
  });

  it('the guest LBR event outlives the lazy cleanup after a reschedule while LBREn is set, and goes once it is clear', () => {
    const { v } = archGuest();
    v.guestWrmsr(MSR_ARCH_LBR_CTL, LBR_ON);
    v.guestRun(jumps(3));
    const ev = v.s.lbr.event;
    expect(ev).not.toBeNull();
    v.migrate(1); // kvm_arch_vcpu_load asks for kvm_pmu_cleanup at the next VM-entry
    v.guestRun(jumps(1));
    expect(v.s.lbr.event).toBe(ev);
    expect(val(v.guestRdmsr(MSR_ARCH_LBR_FROM_0))).toBe(0x40_0000n);
    expect(val(v.guestRdmsr(MSR_ARCH_LBR_FROM_0 + 1))).toBe(0x40_0080n);
    v.guestWrmsr(MSR_ARCH_LBR_CTL, 0n);
    v.migrate(0);
    v.guestRun(jumps(1));
    expect(v.s.lbr.event).toBeNull();
  });
});

describe('intel_pmu_legacy_freezing_lbrs_on_pmi (patch 06/15): what a v2 guest’s PMI freezes', () => {
  it('on a legacy host, a guest CPUID with ARCH_LBR still has DEBUGCTL.LBR frozen (the KVM cap is not there)', () => {
    // DEBUGCTL.LBR can reach such a guest only from a VMM that restored it before KVM_SET_CPUID2 (patch 06/15 drops
    // bit 0 from writes once guest CPUID has ARCH_LBR): vmm-debugctl-lbr-kept-across-cpuid.
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE) }, ARCH_LBR_OPS);
    const frozen = DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
    expect(v.hostSetMsr(MSR_IA32_DEBUGCTLMSR, frozen)).toEqual({ ok: true, value: frozen });
    expect(v.setCpuid({ ...defaultCpuid(SKYLAKE), archLbr: true }).ok).toBe(true);
    expect(val(v.guestRdmsr(MSR_IA32_DEBUGCTLMSR))).toBe(frozen);
    val(v.guestWrmsr(X2APIC_LVTPC, PC_VECTOR));
    val(v.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n));
    val(v.guestWrmsr(MSR_IA32_PMC0, -5n & SKYLAKE.gpMask));
    val(
      v.guestWrmsr(
        MSR_P6_EVNTSEL0,
        INSTRUCTIONS | ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_INT | ARCH_PERFMON_EVENTSEL_ENABLE,
      ),
    );
    val(v.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, bit(0)));
    expect(v.guestRun(jumps(10)).length).toBe(1);
    expect(val(v.guestRdmsr(MSR_IA32_DEBUGCTLMSR))).toBe(DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
  });
});

describe('vmx_passthrough_lbr_msrs (patches 04, 07/15): what passes through while the guest LBR event is ACTIVE', () => {
  it('for an Arch LBR guest, FROM/TO/INFO of records 0..depth-1 exactly', () => {
    const { v } = archGuest();
    v.guestWrmsr(MSR_ARCH_LBR_CTL, LBR_ON);
    v.guestRun(jumps(1));
    expect(v.s.lbr.event?.state).toBe('ACTIVE');
    const depth = SPR.archLbr!.maxDepth;
    expect([...v.s.passthrough].sort((a, b) => a - b)).toEqual(
      records(depth, MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0).sort((a, b) => a - b),
    );
  });

  it('for a legacy guest on a legacy host, as upstream: LBR_SELECT, LBR_TOS and FROM/TO/INFO of each record', () => {
    const { v } = vcpuOf({ profile: SKYLAKE, cpuid: defaultCpuid(SKYLAKE), perfCaps: kvmSupportedPerfCaps(SKYLAKE) });
    v.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
    v.guestRun(jumps(1));
    expect(v.s.lbr.event?.state).toBe('ACTIVE');
    const g = SKYLAKE.legacyLbr!;
    expect([...v.s.passthrough].sort((a, b) => a - b)).toEqual(
      [MSR_LBR_SELECT, MSR_LBR_TOS, ...records(g.depth, g.fromBase, g.toBase, g.infoBase!)].sort((a, b) => a - b),
    );
  });

  it('for a legacy format without LBR_INFO, no INFO MSRs', () => {
    const { depth, fromBase, toBase, select, callStack } = SKYLAKE.spec.legacyLbr!;
    const geometry = { depth, fromBase, toBase, select, callStack }; // no infoBase: LBR_FMT 4 has no LBR_INFO
    const fmt4 = defineProfile({
      ...SKYLAKE.spec,
      name: 'skylake-fmt4',
      perfCapabilities: (SKYLAKE.perfCapabilities & ~PERF_CAP_LBR_FMT) | 4n,
      legacyLbr: geometry,
    });
    const { v } = vcpuOf({ profile: fmt4, cpuid: defaultCpuid(fmt4), perfCaps: kvmSupportedPerfCaps(fmt4) });
    v.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
    v.guestRun(jumps(1));
    expect(v.s.lbr.event?.state).toBe('ACTIVE');
    expect([...v.s.passthrough].sort((a, b) => a - b)).toEqual(
      [MSR_LBR_SELECT, MSR_LBR_TOS, ...records(geometry.depth, geometry.fromBase, geometry.toBase, 0)].sort(
        (a, b) => a - b,
      ),
    );
  });
});

describe('PERF_CAPABILITIES (patch 10/15)', () => {
  const supported = (o: { profile: Profile; lbrProbeFaulted?: boolean }) => {
    const host = new HostKernel({
      profile: o.profile,
      cpus: 1,
      ...(o.lbrProbeFaulted === true ? { lbrProbeFaulted: true } : {}),
    });
    return new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(o.profile) }, ARCH_LBR_OPS).supportedPerfCapabilities();
  };

  it('an Arch LBR host reports LBR_FMT 0x3f only while perf manages its LBRs', () => {
    expect(supported({ profile: SPR }) & PERF_CAP_LBR_FMT).toBe(BigInt(LBR_FMT_ARCH));
    expect(supported({ profile: SPR, lbrProbeFaulted: true })).toBe(FW_ONLY);
  });

  it('no vPMU (a host without GP counters): nothing reported', () => {
    expect(supported({ profile: SPR_NO_GP })).toBe(0n);
  });

  it('a legacy host without call-stack LBRs reports no LBR format, as upstream', () => {
    const noCallStack = defineProfile({
      ...SKYLAKE.spec,
      name: 'skylake-nocallstack',
      legacyLbr: { ...SKYLAKE.spec.legacyLbr!, callStack: false },
    });
    expect(supported({ profile: noCallStack })).toBe(FW_ONLY);
  });

  it('a vCPU without a vPMU takes only 0, the Arch LBR format alone included (vmx_set_msr checks "data && !pmu->version" first, K7)', () => {
    const base = archCpuid(SPR);
    const { v } = vcpuOf({ cpuid: { ...base, leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 } } });
    const before = hostVal(v.hostGetMsr(MSR_IA32_PERF_CAPABILITIES));
    for (const data of [BigInt(LBR_FMT_ARCH), ARCH_FMT, FW_ONLY])
      expect(v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, data).ok).toBe(false);
    expect(hostVal(v.hostGetMsr(MSR_IA32_PERF_CAPABILITIES))).toBe(before);
    expect(v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, 0n)).toEqual({ ok: true, value: 0n });
  });

  it('LBR_FMT 0x3f needs no guest family/model of the host’s (the legacy consistency check does not apply to it)', () => {
    const other: GuestCpuid = { ...archCpuid(SPR), model: SKYLAKE.model };
    const { v } = vcpuOf({ cpuid: other });
    expect(v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, ARCH_FMT)).toEqual({ ok: true, value: ARCH_FMT });
    expect(v.s.lbr.nr).toBe(SPR.archLbr!.maxDepth);
  });
});

describe('IA32_XSS (patches 02, 11/15) and KVM_GET_MSR_INDEX_LIST (patch 08/15)', () => {
  /** An XSS component KVM does not support (any supervisor component but LBR). */
  const OTHER = bit(XFEATURE_LBR + 1);

  it('XSS takes the LBR component on an Arch LBR host and refuses any other bit', () => {
    const { v } = archGuest();
    expect(val(v.guestWrmsr(MSR_IA32_XSS, XFEATURE_MASK_LBR))).toBe(XFEATURE_MASK_LBR);
    expect(isGp(v.guestWrmsr(MSR_IA32_XSS, XFEATURE_MASK_LBR | OTHER))).toBe(true);
    expect(v.hostSetMsr(MSR_IA32_XSS, OTHER).ok).toBe(false);
    expect(val(v.guestRdmsr(MSR_IA32_XSS))).toBe(XFEATURE_MASK_LBR);
  });

  it('a legacy host supports no XSS component', () => {
    const { v } = vcpuOf({ profile: SKYLAKE, cpuid: defaultCpuid(SKYLAKE) });
    expect(isGp(v.guestWrmsr(MSR_IA32_XSS, XFEATURE_MASK_LBR))).toBe(true);
    expect(val(v.guestRdmsr(MSR_IA32_XSS))).toBe(0n);
  });

  it('the index list gains XSS, LBR_CTL and DEPTH on an Arch LBR host only', () => {
    const arch = [MSR_IA32_XSS, MSR_ARCH_LBR_CTL, MSR_ARCH_LBR_DEPTH];
    const l = archGuest().v.msrIndexList();
    expect(arch.filter((m) => l.includes(m))).toEqual(arch);
    const legacy = vcpuOf({ profile: SKYLAKE, cpuid: defaultCpuid(SKYLAKE) }).v.msrIndexList();
    expect(arch.filter((m) => legacy.includes(m))).toEqual([]);
  });

  it('the index list is upstream’s with XSS, LBR_CTL and DEPTH on an Arch LBR host, with XSS alone without a vPMU', () => {
    // Patch 02/15 reports XSS as KVM supports an XSS feature (the LBR component, whatever the vPMU); the port lists
    // patch 08/15's LBR_CTL and DEPTH with the PMU MSRs, probed only with enable_pmu (msrs_to_save_pmu).
    const upstream = (p: Profile) =>
      new EmulatedVcpu(new HostKernel({ profile: p, cpus: 1 }), { cpu: 0, cpuid: defaultCpuid(p) }).msrIndexList();
    const series = (p: Profile) =>
      new EmulatedVcpu(
        new HostKernel({ profile: p, cpus: 1 }),
        { cpu: 0, cpuid: defaultCpuid(p) },
        ARCH_LBR_OPS,
      ).msrIndexList();
    expect(series(SPR)).toEqual([MSR_IA32_XSS, MSR_ARCH_LBR_CTL, MSR_ARCH_LBR_DEPTH, ...upstream(SPR)]);
    expect(series(SPR_NO_GP)).toEqual([MSR_IA32_XSS, ...upstream(SPR_NO_GP)]);
    expect(series(SKYLAKE)).toEqual(upstream(SKYLAKE));
  });
});

describe('VM-entry and VM-exit (patch 10/15): LBR_CTL through the VMCS for every VM of an Arch LBR host, and only there', () => {
  /** The accesses to IA32_LBR_CTL `f` makes on pCPU 0. */
  const lbrCtlAccesses = (host: HostKernel, f: () => void) =>
    recordHw(host.pcpu(0).hw, f).filter((a) => a.target === MSR_ARCH_LBR_CTL);

  it('an Arch LBR guest: the entry loads GUEST_IA32_LBR_CTL, the exit saves LBR_CTL into it and clears it', () => {
    const { host, v } = archGuest();
    val(v.guestWrmsr(MSR_ARCH_LBR_CTL, LBR_ON));
    expect(lbrCtlAccesses(host, () => v.guestRun(jumps(2)))).toEqual([
      { op: 'wrmsr', target: MSR_ARCH_LBR_CTL, value: LBR_ON },
      { op: 'rdmsr', target: MSR_ARCH_LBR_CTL },
      { op: 'wrmsr', target: MSR_ARCH_LBR_CTL, value: 0n },
    ]);
    expect(val(host.pcpu(0).hw.rdmsr(MSR_ARCH_LBR_CTL))).toBe(0n);
  });

  it('a guest without Arch LBR on that host gets its LBR_CTL of 0 loaded and cleared all the same', () => {
    const { host, v } = vcpuOf({ cpuid: defaultCpuid(SPR), perfCaps: FW_ONLY });
    expect(lbrCtlAccesses(host, () => v.guestRun(jumps(2)))).toEqual([
      { op: 'wrmsr', target: MSR_ARCH_LBR_CTL, value: 0n },
      { op: 'rdmsr', target: MSR_ARCH_LBR_CTL },
      { op: 'wrmsr', target: MSR_ARCH_LBR_CTL, value: 0n },
    ]);
  });

  it('a legacy LBR host has neither VM-entry nor VM-exit control: no LBR_CTL access, whatever the guest CPUID', () => {
    for (const cpuid of [defaultCpuid(SKYLAKE), { ...defaultCpuid(SKYLAKE), archLbr: true }]) {
      const { host, v } = vcpuOf({ profile: SKYLAKE, cpuid, perfCaps: kvmSupportedPerfCaps(SKYLAKE) });
      val(v.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR));
      expect(lbrCtlAccesses(host, () => v.guestRun(jumps(2)))).toEqual([]);
    }
  });
});

describe('kvm_pmu_cleanup under the series’ intel_pmu_refresh (patch 05/15), which changes only the vLBR index', () => {
  const CYCLES_ON = CYCLES | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_ENABLE;

  for (const [what, make] of [
    ['an Arch LBR guest', () => archGuest()],
    ['a guest without guest LBR', () => vcpuOf({ cpuid: defaultCpuid(SPR), perfCaps: FW_ONLY })],
  ] as const)
    it(`${what}: a counter disabled and left alone loses its perf event at the second reschedule, as upstream`, () => {
      const { v } = make();
      const pmc0 = v.s.pmu.gp_counters[0]!;
      val(v.guestWrmsr(MSR_P6_EVNTSEL0, CYCLES_ON));
      v.guestRun(jumps(2));
      val(v.guestWrmsr(MSR_P6_EVNTSEL0, CYCLES_ON & ~ARCH_PERFMON_EVENTSEL_ENABLE));
      const ev = pmc0.perf_event;
      expect(ev, 'the disabled counter keeps its paused event').not.toBeNull();
      v.migrate(1);
      v.guestRun(jumps(1)); // kvm_pmu_cleanup: PMC0 written since the last one, kept; pmc_in_use emptied
      expect(pmc0.perf_event).toBe(ev);
      v.migrate(0);
      const released = v.cost.perfReleases;
      v.guestRun(jumps(1)); // kvm_pmu_cleanup: PMC0 unused and disabled
      expect(pmc0.perf_event).toBeNull();
      expect(v.cost.perfReleases - released).toBe(1);
    });
});

describe('vmx_passthrough_lbr_msrs with the guest LBR event reclaimed by host perf (patch 06/15): only the LBR’s in-use bit goes', () => {
  const INSNS_ON = INSTRUCTIONS | ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_ENABLE;
  const pmc0Event = (v: EmulatedVcpu) => v.s.pmu.gp_counters[0]!.perf_event;

  /** `perf record -b -C <cpu>`: a pinned cpu event sampling branches, which takes the LBRs from the guest LBR event. */
  function hostLbrUser(host: HostKernel, cpu: number): void {
    const branchSample = { user: true, kernel: true, callStack: false };
    const r = host.perf_event_open(attr({ config: CYCLES, sample_period: 1000n, pinned: true, branchSample }), { cpu });
    if ('error' in r) throw new Error(r.error);
  }

  /** An Arch LBR guest with LBREn set and PMC0 counted once, then disabled: its perf event is paused, not released. */
  function guestWithDisabledPmc0() {
    const g = archGuest();
    val(g.v.guestWrmsr(MSR_ARCH_LBR_CTL, LBR_ON));
    val(g.v.guestWrmsr(MSR_P6_EVNTSEL0, INSNS_ON));
    g.v.guestRun(jumps(2));
    val(g.v.guestWrmsr(MSR_P6_EVNTSEL0, INSNS_ON & ~ARCH_PERFMON_EVENTSEL_ENABLE));
    expect(pmc0Event(g.v), 'PMC0 keeps its (paused) perf event').not.toBeNull();
    return g;
  }

  it('a counter the guest wrote since the last reschedule keeps its perf event', () => {
    const { host, v } = guestWithDisabledPmc0();
    const ev = pmc0Event(v);
    hostLbrUser(host, 0);
    expect(v.s.lbr.event!.state, 'the guest LBR event is reclaimed').not.toBe('ACTIVE');
    v.guestRun([]); // re-intercept the records, clear the LBR's in-use bit and no counter's
    expect(v.s.lbr.msr_passthrough).toBe(false);
    expect(v.s.passthrough.has(MSR_ARCH_LBR_FROM_0)).toBe(false);
    v.migrate(1);
    v.guestRun([]); // kvm_pmu_cleanup: PMC0 is in use (written since the last cleanup)
    expect(pmc0Event(v)).toBe(ev);
    expect(v.s.lbr.event, 'LBREn is set: the guest LBR event stays').not.toBeNull();
  });

  it('a disabled counter the guest left alone since the last reschedule loses its perf event at the next one', () => {
    const { host, v } = guestWithDisabledPmc0();
    v.migrate(1);
    v.guestRun([]); // the first cleanup keeps PMC0 (written before it) and empties pmc_in_use
    expect(pmc0Event(v)).not.toBeNull();
    hostLbrUser(host, 1);
    expect(v.s.lbr.event!.state, 'the guest LBR event is reclaimed').not.toBe('ACTIVE');
    v.guestRun([]); // vmx_passthrough_lbr_msrs marks no counter in use
    v.migrate(0);
    const released = v.cost.perfReleases;
    v.guestRun([]); // kvm_pmu_cleanup: PMC0 unused and not enabled
    expect(pmc0Event(v)).toBeNull();
    expect(v.cost.perfReleases - released, "only PMC0's event goes").toBe(1);
    expect(v.s.lbr.event).not.toBeNull();
  });
});
