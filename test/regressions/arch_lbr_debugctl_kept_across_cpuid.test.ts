/**
 * The Arch LBR v2 series (arch-lbr) under the VMM property: DEBUGCTL.LBR that a VMM restores before KVM_SET_CPUID2
 * gives the guest Arch LBR reads back through KVM_GET_MSRS until the guest runs. Patch 10/15 advertises LBR_FMT 0x3f, so
 * a host-initiated write may set LBR; patch 06/15 drops bit 0 only on writes for an Arch LBR guest, and KVM keeps
 * GUEST_IA32_DEBUGCTL across a new CPUID. Bare metal of an Arch LBR model never shows bit 0. Found by vmm-conformance on
 * sapphirerapids (seed 1, 384 programs); upstream, on an Arch LBR host, refuses LBR to host writes and so passes.
 */
import { describe, expect, it } from 'vitest';
import { SAPPHIRE_RAPIDS } from '../../model/hw/profiles.js';
import { DEBUGCTLMSR_BTF, DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import { MSR_IA32_PERFCTR0 } from '../../model/hw/msr/counters.js';
import { designById } from '../../designs/registry.js';
import { GuestRun, type WorldCommand } from '../../scenarios/commands.js';
import { VmmGetMsr, VmmSetCpuid, VmmSetMsr } from '../../scenarios/vmm.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import { vmmVerdict } from '../support/vmm.js';

const d = designById('arch-lbr');

const verdict = (guest: GuestConfig, program: readonly WorldCommand[], design: VcpuFactory = d.factory) =>
  vmmVerdict({ host: SAPPHIRE_RAPIDS, design, expectations: d.expectations }, guest, program);

// A v1 model without LBRs (PERF_CAPABILITIES 0), then a v2 model with Arch LBR (depths 8, LBR_FMT 0x3f).
const noLbr: GuestConfig = {
  cpuid: { family: 6, model: 0x8f, leaf0a: { eax: 0x8300101, ebx: 0x40, ecx: 0x0, edx: 0x0 }, pdcm: true },
  perfCapabilities: 0x0n,
};
const archLbr: GuestConfig = {
  cpuid: {
    family: 6,
    model: 0x8f,
    leaf0a: { eax: 0x8300002, ebx: 0x0, ecx: 0x0, edx: 0x600 },
    pdcm: true,
    archLbr: true,
    leaf1c: { eax: 0x80000008, ebx: 0x7, ecx: 0x7, edx: 0x0 },
  },
  perfCapabilities: 0x3fn,
};

describe('arch-lbr: DEBUGCTL.LBR restored before KVM_SET_CPUID2 reads back (vmm-debugctl-lbr-kept-across-cpuid)', () => {
  const program = (before: readonly WorldCommand[] = []) => [
    new VmmSetMsr(0, MSR_IA32_PERFCTR0, 0x0n),
    new VmmSetMsr(0, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR),
    new VmmSetCpuid(0, archLbr),
    ...before,
    new VmmGetMsr(0, MSR_IA32_DEBUGCTLMSR),
  ];

  it('the shrunk counterexample is that declaration', () => {
    expect(verdict(noLbr, program())).toEqual({ met: ['vmm-debugctl-lbr-kept-across-cpuid'] });
  });

  it('once the guest has run, the first VM-exit took bit 0 away: nothing to excuse', () => {
    expect(verdict(noLbr, program([new GuestRun(0, [{ cpl: 0, instructions: 1 }])]))).toEqual({ met: [] });
  });

  it('a read that shows another bit than LBR is still reported', () => {
    // A planted vPMU whose KVM_GET_MSRS of DEBUGCTL also shows BTF.
    const addsBtf: VcpuFactory = (h, o) => {
      const v = d.factory(h, o);
      const get = v.hostGetMsr.bind(v);
      v.hostGetMsr = (m) => {
        const r = get(m);
        return r.ok && m === MSR_IA32_DEBUGCTLMSR ? { ok: true, value: r.value | DEBUGCTLMSR_BTF } : r;
      };
      return v;
    };
    const r = verdict(noLbr, program(), addsBtf);
    expect('reported' in r ? r.reported : r.met).toContain('KVM_GET_MSRS 0x1d9');
  });
});
