/**
 * The declarations that excuse a PERF_CAPABILITIES or CPUID no CPU has (W4) decide on the contradiction's rule, never
 * on the words of its reason: each excuses its own contradiction, and a value KVM takes that no CPU has for another
 * reason is still reported.
 */
import { describe, expect, it } from 'vitest';
import { SAPPHIRE_RAPIDS } from '../../model/hw/profiles.js';
import { LBR_FMT_ARCH, leaf0aEax, leaf0aEdx, perfCaps } from '../../model/hw/profile.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_PERF_METRICS } from '../../model/hw/msr/capabilities.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import type { EmulatedOps } from '../../model/kvm/emulated/ops.js';
import type { HostAccess } from '../../model/kvm/types.js';
import { ARCH_LBR_OPS } from '../../model/kvm/series/arch_lbr.js';
import { TOPDOWN_RAW_OPS } from '../../model/kvm/series/topdown_raw.js';
import { designById } from '../../designs/registry.js';
import { VmmSetMsr } from '../../scenarios/vmm.js';
import { type GuestConfig, impossibleEnumeration, type VcpuFactory } from '../../scenarios/world.js';
import { vmmVerdict } from '../support/vmm.js';

const h = SAPPHIRE_RAPIDS;

/** The series with every KVM_SET_MSRS of PERF_CAPABILITIES taken, whatever KVM's own checks say. */
const takesAnyCaps =
  (ops: EmulatedOps): VcpuFactory =>
  (host, o) =>
    new (class extends EmulatedVcpu {
      override hostSetMsr(msr: number, value: bigint): HostAccess {
        const r = super.hostSetMsr(msr, value);
        return msr === MSR_IA32_PERF_CAPABILITIES ? { ok: true, value } : r;
      }
    })(host, o, ops);

function verdict(id: string, guest: GuestConfig, value: bigint, design?: VcpuFactory) {
  const d = designById(id);
  const run = { host: h, design: design ?? d.factory, hostKernel: d.hostKernel, expectations: d.expectations };
  return vmmVerdict(run, guest, [new VmmSetMsr(0, MSR_IA32_PERF_CAPABILITIES, value)]);
}

/** A v2 guest of the host's model with `nFixed` fixed counters and PDCM. */
const v2 = (nFixed: number, extra: Partial<GuestConfig['cpuid']> = {}): GuestConfig => ({
  cpuid: {
    family: h.family,
    model: h.model,
    leaf0a: { eax: leaf0aEax(2, 8, h.gpWidth, h.evLen), ebx: 0, ecx: 0, edx: leaf0aEdx(nFixed, h.fixedWidth) },
    pdcm: true,
    ...extra,
  },
  perfCapabilities: perfCaps({ fwWrite: true }),
});

describe('perf-metrics-without-slots (both topdown proposals) excuses PERF_METRICS without FIXED_CTR3 only', () => {
  const noSlots = v2(3);
  const withSlots = v2(4);
  const metrics = perfCaps({ fwWrite: true }) | PERF_CAP_PERF_METRICS;

  it('PERF_METRICS taken for a vCPU without FIXED_CTR3 is declared', () => {
    expect(impossibleEnumeration(h, { ...noSlots, perfCapabilities: metrics })?.rule).toBe('metrics-without-slots');
    expect(verdict('topdown-raw', noSlots, metrics).met).toEqual(['perf-metrics-without-slots']);
    // Like Xu's proposal offers PERF_METRICS the same way, checked against nothing of the vCPU.
    expect(verdict('topdown-rebuilt', noSlots, metrics).met).toEqual(['perf-metrics-without-slots']);
  });

  it('PERF_METRICS with FIXED_CTR3 but an LBR_FMT 0x3f without CPUID Arch LBR, taken, is reported', () => {
    const v = metrics | BigInt(LBR_FMT_ARCH);
    expect(impossibleEnumeration(h, { ...withSlots, perfCapabilities: v })?.rule).toBe('fmt-arch-without-leaf1c');
    expect(verdict('topdown-raw', withSlots, v, takesAnyCaps(TOPDOWN_RAW_OPS)).reported).toMatch(
      /KVM_SET_MSRS 0x345 <- 0xa03f: no CPU enumerates it/,
    );
  });
});

describe('lbr-fmt-arch-mismatch (arch-lbr) excuses an LBR_FMT and CPUID Arch LBR that disagree only', () => {
  const noArch = v2(3, { archLbr: false });

  it('LBR_FMT 0x3f taken for a vCPU without CPUID Arch LBR is declared', () => {
    const v = perfCaps({ fwWrite: true, lbrFmt: LBR_FMT_ARCH });
    expect(impossibleEnumeration(h, { ...noArch, perfCapabilities: v })?.rule).toBe('fmt-arch-without-leaf1c');
    expect(verdict('arch-lbr', noArch, v, takesAnyCaps(ARCH_LBR_OPS)).met).toEqual(['lbr-fmt-arch-mismatch']);
  });

  it('an undefined LBR_FMT (0x3e), taken, is reported', () => {
    const v = perfCaps({ fwWrite: true }) | 0x3en;
    expect(impossibleEnumeration(h, { ...noArch, perfCapabilities: v })?.rule).toBe('fmt-undefined');
    expect(verdict('arch-lbr', noArch, v, takesAnyCaps(ARCH_LBR_OPS)).reported).toMatch(
      /KVM_SET_MSRS 0x345 <- 0x203e: no CPU enumerates it/,
    );
  });
});
