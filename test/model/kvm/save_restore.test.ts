/**
 * The userspace save/restore surface (kvm-vpmu.md §2.18): KVM_GET_MSR_INDEX_LIST, then
 * KVM_GET_MSRS on the source and KVM_SET_MSRS on a fresh vCPU in QEMU's order (CPUID first,
 * PERF_CAPABILITIES, counters, status, selectors, FIXED_CTR_CTRL and GLOBAL_CTRL last).
 */
import { describe, expect, it } from 'vitest';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { HostKernel } from '../../../model/host/perf.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { createVcpu, defaultCpuid, hostOk, hostVal, INSTRUCTIONS, val, work } from './util.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../../model/hw/msr/global.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';
import { MSR_LBR_NHM_FROM } from '../../../model/hw/msr/lbr_legacy.js';

/** QEMU's kvm_put_msrs order for the PMU: counters, then status, then controls, GLOBAL_CTRL last. */
function restoreOrder(list: readonly number[]): number[] {
  const rank = (m: number) =>
    m === MSR_IA32_PERF_CAPABILITIES
      ? 0
      : (m >= MSR_IA32_PERFCTR0 && m < MSR_IA32_PERFCTR0 + 8) ||
          (m >= MSR_CORE_PERF_FIXED_CTR0 && m < MSR_CORE_PERF_FIXED_CTR0 + 4)
        ? 1
        : m === MSR_CORE_PERF_GLOBAL_STATUS
          ? 2
          : m >= MSR_P6_EVNTSEL0 && m < MSR_P6_EVNTSEL0 + 8
            ? 3
            : m === MSR_CORE_PERF_FIXED_CTR_CTRL
              ? 4
              : 5;
  return [...list].sort((a, b) => rank(a) - rank(b));
}

/** A guest that counts instructions on GP0 (with PMI) and FC0, and has overflowed GP1. */
function busyGuest() {
  const w = createVcpu({ profile: SKYLAKE, cpus: 2 });
  const wr = (m: number, v: bigint) => expect(w.vcpu.guestWrmsr(m, v).ok, `guest WRMSR 0x${m.toString(16)}`).toBe(true);
  wr(MSR_CORE_PERF_GLOBAL_CTRL, 0n);
  wr(
    MSR_P6_EVNTSEL0,
    INSTRUCTIONS |
      ARCH_PERFMON_EVENTSEL_USR |
      ARCH_PERFMON_EVENTSEL_OS |
      ARCH_PERFMON_EVENTSEL_INT |
      ARCH_PERFMON_EVENTSEL_ENABLE,
  );
  wr(
    MSR_P6_EVNTSEL0 + 1,
    INSTRUCTIONS | ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_ENABLE,
  );
  wr(MSR_IA32_PMC0 + 1, (1n << 48n) - 3n);
  wr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n);
  wr(MSR_CORE_PERF_GLOBAL_CTRL, 0x1_0000_0003n);
  w.vcpu.guestRun(work(4, 5, 3));
  return w;
}

describe('KVM_GET_MSRS / KVM_SET_MSRS round trip', () => {
  it('a fresh vCPU restored in QEMU order reads back every saved MSR and counts on identically', () => {
    const src = busyGuest();
    const list = src.vcpu.msrIndexList();
    const saved = new Map(list.map((m) => [m, hostVal(src.vcpu.hostGetMsr(m), `save 0x${m.toString(16)}`)]));
    expect(saved.get(MSR_CORE_PERF_GLOBAL_STATUS)! & 2n, 'GP1 overflowed before the save').toBe(2n);

    // The destination: another host, the vCPU thread on its second pCPU.
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const dst = new EmulatedVcpu(host, { cpu: 1, cpuid: defaultCpuid(SKYLAKE) });
    for (const m of restoreOrder(list))
      expect(hostOk(dst.hostSetMsr(m, saved.get(m)!)), `restore 0x${m.toString(16)}`).toBe(true);
    for (const m of list) expect(hostVal(dst.hostGetMsr(m)), `0x${m.toString(16)} after restore`).toBe(saved.get(m));

    // Both sides run the same guest work; the guest cannot tell them apart.
    src.vcpu.guestRun(work(3, 7, 3));
    dst.guestRun(work(3, 7, 3));
    for (const m of [MSR_IA32_PERFCTR0, MSR_IA32_PERFCTR0 + 1, MSR_CORE_PERF_FIXED_CTR0, MSR_CORE_PERF_GLOBAL_STATUS])
      expect(val(dst.guestRdmsr(m)), `guest 0x${m.toString(16)}`).toBe(val(src.vcpu.guestRdmsr(m)));
  });

  it('host-initiated counter writes are not sign-extended; guest writes through the legacy alias are', () => {
    const w = createVcpu({ profile: SKYLAKE });
    expect(hostOk(w.vcpu.hostSetMsr(MSR_IA32_PERFCTR0, 0x8000_0000n))).toBe(true);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERFCTR0))).toBe(0x8000_0000n);
    expect(w.vcpu.guestWrmsr(MSR_IA32_PERFCTR0, 0x8000_0000n).ok).toBe(true);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERFCTR0))).toBe(0xffff_8000_0000n);
  });

  it('GLOBAL_STATUS is writable by the host (reserved bits rejected); GLOBAL_OVF_CTRL host writes clear nothing', () => {
    const w = createVcpu({ profile: SKYLAKE });
    expect(hostOk(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_STATUS, 0x1_0000_0001n))).toBe(true);
    expect(
      hostOk(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_STATUS, 1n << 48n)),
      'bit 48 is reserved in the legacy vPMU',
    ).toBe(false);
    expect(hostOk(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, 0x1_0000_0001n))).toBe(true);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0x1_0000_0001n);
    expect(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_STATUS, 0n).ok, 'read-only to the guest').toBe(false);
  });

  it('the index list holds what this host can expose and nothing else (e33b6d79acac; decision K4)', () => {
    const list = createVcpu({ profile: SKYLAKE }).vcpu.msrIndexList();
    for (let i = 0; i < 4; i++) expect(list).toContain(MSR_IA32_PERFCTR0 + i);
    expect(list).not.toContain(MSR_IA32_PERFCTR0 + 4); // Skylake has 4 GP counters
    expect(list).toContain(MSR_CORE_PERF_FIXED_CTR0 + 2);
    expect(list).not.toContain(MSR_CORE_PERF_FIXED_CTR0 + 3);
    expect(list).not.toContain(MSR_CORE_PERF_GLOBAL_OVF_CTRL);
    expect(list).not.toContain(MSR_IA32_DEBUGCTLMSR);
    expect(list).not.toContain(MSR_LBR_NHM_FROM);
  });

  // kvm_init_msr_lists: msrs_to_save_pmu through kvm_probe_msr_to_save (counters up to KVM's counts, the v2 MSRs with
  // KVM's version 2), then the feature MSR; KVM offers three fixed counters even where the host has four.
  for (const [profile, nGp] of [
    [SKYLAKE, 4],
    [ICELAKE, 8],
    [SAPPHIRE_RAPIDS, 8],
  ] as const)
    it(`on ${profile.name}: exactly ${nGp} counters and selectors, three fixed counters, the v2 MSRs and PERF_CAPABILITIES`, () => {
      const list = createVcpu({ profile }).vcpu.msrIndexList();
      const want = [
        ...[0, 1, 2].map((j) => MSR_CORE_PERF_FIXED_CTR0 + j),
        MSR_CORE_PERF_FIXED_CTR_CTRL,
        MSR_CORE_PERF_GLOBAL_STATUS,
        MSR_CORE_PERF_GLOBAL_CTRL,
        ...Array.from({ length: nGp }, (_, i) => [MSR_IA32_PERFCTR0 + i, MSR_P6_EVNTSEL0 + i]).flat(),
        MSR_IA32_PERF_CAPABILITIES,
      ];
      expect([...list].sort((a, b) => a - b)).toEqual(want.sort((a, b) => a - b));
    });

  it('an advertised MSR the vCPU does not have reads 0 and takes only 0 from the host', () => {
    const w = createVcpu({ profile: SKYLAKE, nrGp: 1 });
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERFCTR0 + 2))).toBe(0n);
    expect(hostOk(w.vcpu.hostSetMsr(MSR_IA32_PERFCTR0 + 2, 0n))).toBe(true);
    expect(hostOk(w.vcpu.hostSetMsr(MSR_IA32_PERFCTR0 + 2, 5n))).toBe(false);
  });
});
