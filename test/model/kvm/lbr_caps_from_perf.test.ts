import fc from 'fast-check';
import { vmmSetMsr } from '../../../scenarios/vmm_ioctls.js';
import { describe, expect, it } from 'vitest';
import { leaf0aEax, leaf0aEdx, type Profile } from '../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { HostKernel } from '../../../model/host/perf.js';
import { attr } from '../../../model/host/types.js';
import { PRE_NO_LEGACY_LBR_ON_ARCH_LBR_FIX_OPS } from '../../../model/kvm/bugs/098f4c061ea1_legacy_lbr_on_arch_lbr.js';
import { PRE_LBR_IFF_PERF_FIX_OPS } from '../../../model/kvm/bugs/145dfad998ea_lbr_without_perf.js';
import type { GuestCpuid } from '../../../model/kvm/types.js';

import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { conformanceProperty } from '../../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../../properties/expectations/emulated.js';
import { World } from '../../../scenarios/world.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';
import { MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO, MSR_LBR_INFO_0, MSR_LBR_TOS } from '../../../model/hw/msr/lbr_legacy.js';
import { MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0 } from '../../../model/hw/msr/lbr_arch.js';
import { OK, REFUSED } from '../../../scenarios/observation.js';

const preNoLegacyLbrOnArchLbrFix = (h: HostKernel, o: { cpu: number; cpuid: GuestCpuid }) =>
  new EmulatedVcpu(h, o, PRE_NO_LEGACY_LBR_ON_ARCH_LBR_FIX_OPS);
const preLbrIffPerfFix = (h: HostKernel, o: { cpu: number; cpuid: GuestCpuid }) =>
  new EmulatedVcpu(h, o, PRE_LBR_IFF_PERF_FIX_OPS);

const cpuidOf = (p: Profile) => ({
  family: p.family,
  model: p.model,
  leaf0a: { eax: leaf0aEax(2, 4, p.gpWidth, p.evLen), ebx: 0, ecx: 0, edx: leaf0aEdx(3, p.fixedWidth) },
  pdcm: true,
});
const noLbrHost = (o: { profile: Profile; cpus: number }) => new HostKernel({ ...o, lbrProbeFaulted: true });

// x86_perf_get_lbr (H17): what perf reports to KVM, which KVM's LBR support now follows (145dfad998ea).
describe('x86_perf_get_lbr', () => {
  it('reports the legacy records of the part, Arch LBR bases on Arch LBR parts, nothing when the probe faulted', () => {
    expect(new HostKernel({ profile: SKYLAKE, cpus: 1 }).x86_perf_get_lbr()).toEqual({
      nr: 32,
      from: MSR_LBR_NHM_FROM,
      to: MSR_LBR_NHM_TO,
      info: MSR_LBR_INFO_0,
      hasCallstack: true,
    });
    expect(new HostKernel({ profile: SAPPHIRE_RAPIDS, cpus: 1 }).x86_perf_get_lbr()).toMatchObject({
      nr: 32,
      from: MSR_ARCH_LBR_FROM_0,
      to: MSR_ARCH_LBR_TO_0,
      info: MSR_ARCH_LBR_INFO_0,
    });
    expect(noLbrHost({ profile: SKYLAKE, cpus: 1 }).x86_perf_get_lbr().nr).toBe(0);
  });

  it('refuses branch-stack events when perf manages no LBRs', () => {
    const host = noLbrHost({ profile: SKYLAKE, cpus: 1 });
    const ev = host.perf_event_open(
      attr({ config: 0xc4n, sample_period: 100n, branchSample: { user: true, kernel: true, callStack: false } }),
      { cpu: 0 },
    );
    expect('error' in ev).toBe(true);
  });
});

describe('vmx_get_perf_capabilities asks perf for LBRs', () => {
  it('offers LBR_FMT only where perf manages legacy LBRs', () => {
    const caps = (h: HostKernel, f = (x: HostKernel) => new EmulatedVcpu(x, { cpu: 0, cpuid: cpuidOf(x.profile) })) =>
      f(h).s.supported_perf_cap;
    expect(caps(new HostKernel({ profile: SKYLAKE, cpus: 1 }))).toBe(0x2005n);
    expect(caps(noLbrHost({ profile: SKYLAKE, cpus: 1 }))).toBe(0x2000n);
    expect(caps(new HostKernel({ profile: SAPPHIRE_RAPIDS, cpus: 1 }))).toBe(0x2000n);
  });

  it('before 145dfad998ea offered the hardware format without perf, and the vCPU got no LBR records', () => {
    const v = preLbrIffPerfFix(noLbrHost({ profile: SKYLAKE, cpus: 1 }), { cpu: 0, cpuid: cpuidOf(SKYLAKE) });
    expect(v.s.supported_perf_cap).toBe(0x2005n);
    expect(v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, 0x2005n).ok).toBe(true);
    expect(v.s.lbr.nr).toBe(0);
    expect(v.guestRdmsr(MSR_LBR_NHM_FROM).ok).toBe(false);
  });

  it('before 098f4c061ea1 offered LBR_FMT 0x3f on Arch LBR hosts, with legacy LBR_SELECT/TOS among the proxied MSRs', () => {
    const v = preNoLegacyLbrOnArchLbrFix(new HostKernel({ profile: SAPPHIRE_RAPIDS, cpus: 1 }), {
      cpu: 0,
      cpuid: cpuidOf(SAPPHIRE_RAPIDS),
    });
    expect(v.s.supported_perf_cap).toBe(0x203fn);
    expect(v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, 0x203fn).ok).toBe(true);
    expect(v.s.lbr.nr).toBe(32);
    expect(v.guestRdmsr(MSR_LBR_TOS).ok).toBe(false); // the part has no LBR_TOS: the proxied RDMSR faults
  });
});

describe('a model no CPU has is a VMM-visible divergence (W4)', () => {
  const guest = { cpuid: cpuidOf(SAPPHIRE_RAPIDS), perfCapabilities: 0x2000n };
  it('is not met by the faithful KVM, which refuses LBR_FMT 0x3f', () => {
    const w = new World({ host: SAPPHIRE_RAPIDS, cpus: 1, guests: [guest], design: (h, o) => new EmulatedVcpu(h, o) });
    const [o] = vmmSetMsr(w, 0, MSR_IA32_PERF_CAPABILITIES, 0x203fn);
    expect([o!.sut, o!.oracle]).toEqual([REFUSED, REFUSED]);
  });
  it('is met by KVM before 098f4c061ea1', () => {
    const w = new World({ host: SAPPHIRE_RAPIDS, cpus: 1, guests: [guest], design: preNoLegacyLbrOnArchLbrFix });
    const [o] = vmmSetMsr(w, 0, MSR_IA32_PERF_CAPABILITIES, 0x203fn);
    expect([o!.sut, o!.oracle]).toEqual([OK, REFUSED]);
    const op = o!.vmm;
    expect(op?.op === 'set-msr' ? op.impossible : null).not.toBeNull(); // no CPU enumerates it (W4)
  });
});

describe('the faithful KVM on a host whose perf has no LBRs', () => {
  it('conforms (the guest is never offered LBRs)', () => {
    fc.assert(
      conformanceProperty({
        host: SKYLAKE,
        design: (h, o) => new EmulatedVcpu(h, o),
        hostKernel: noLbrHost,
        expectations: EMULATED_EXPECTATIONS,
      }),
      {
        numRuns: 150,
        seed: 11,
      },
    );
  });
});
