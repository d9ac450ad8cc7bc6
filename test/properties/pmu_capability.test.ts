/**
 * The per-VM PMU switch in the VMM property: a VM created with KVM_PMU_CAP_DISABLE (a guest's `pmuCap`, CPUID leaf
 * 0xA zero as QEMU's pmu=off gives it, as api.rst asks of userspace) shows the guest what a CPU without a PMU shows,
 * KVM_ENABLE_CAP after KVM_CREATE_VCPU is refused, generation reaches both, and the property fails on a KVM that takes
 * the switch late. (With leaf 0xA zero, whether KVM honours the switch shows only on the host side of the mediated
 * design and in a VM whose CPUID still enumerates a PMU: test/model/kvm/pmu_capability.test.ts.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { emulatedWith, mediatedWith } from '../../designs/registry.js';
import { EMULATED_OPS, type EmulatedOps } from '../../model/kvm/emulated/ops.js';
import { MEDIATED_OPS } from '../../model/kvm/mediated/ops.js';
import { KVM_PMU_CAP_DISABLE } from '../../model/kvm/types.js';
import type { ConformanceRun } from '../../properties/conformance.js';
import { runVmmProgram, vmmConformanceProperty, vmmGuestArb } from '../../properties/vmm_conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { MEDIATED_EXPECTATIONS } from '../../properties/expectations/mediated.js';
import {
  Divergence,
  GuestEmulate,
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
  type WorldCommand,
} from '../../scenarios/commands.js';
import { VmmPmuCapability, VmmSetMsr } from '../../scenarios/vmm.js';
import type { GuestConfig } from '../../scenarios/world.js';
import { MSR_IA32_PERFCTR0, MSR_IA32_PMC0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../model/hw/msr/global.js';
import { supportedOf, unsupportedBy } from '../../scenarios/supported.js';
import { thrownBy } from '../support/thrown.js';

const emulated: ConformanceRun = {
  host: SKYLAKE,
  design: emulatedWith(EMULATED_OPS),
  expectations: EMULATED_EXPECTATIONS,
};
const mediated: ConformanceRun = {
  host: SKYLAKE,
  design: mediatedWith(MEDIATED_OPS),
  expectations: MEDIATED_EXPECTATIONS,
};

/** QEMU's `-cpu ...,pmu=off`: KVM_PMU_CAP_DISABLE before KVM_CREATE_VCPU, CPUID leaf 0xA zero, no PDCM. */
const PMU_OFF: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 }, pdcm: false },
  perfCapabilities: 0n,
  pmuCap: KVM_PMU_CAP_DISABLE,
};

/** A guest probing for a PMU it has not got, and the VMM trying the switch again too late. */
const PROBE: WorldCommand[] = [
  new VmmPmuCapability(0, 0n),
  new VmmSetMsr(0, MSR_IA32_PERFCTR0 + 2, 0x10n),
  new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_CTRL),
  new GuestWrmsr(0, MSR_P6_EVNTSEL0 + 2, 0x4300c0n),
  new GuestRdmsr(0, MSR_IA32_PMC0),
  new GuestRdmsr(0, MSR_IA32_PERFCTR0 + 1),
  new GuestRdpmc(0, 0, 0),
  new GuestRun(0, [{ cpl: 0, instructions: 5 }]),
  new GuestEmulate(0, 'jne', 0),
  new GuestRdmsr(0, MSR_IA32_PERFCTR0 + 2),
];

/** A KVM that takes the switch whenever asked (without kvm->created_vcpus under kvm->lock). */
const TAKES_IT_LATE: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_vm_ioctl_enable_cap: (kvm, enable_pmu, args0) =>
    EMULATED_OPS.kvm_vm_ioctl_enable_cap({ ...kvm, created_vcpus: 0 }, enable_pmu, args0),
};

describe('KVM_CAP_PMU_CAPABILITY in the VMM property', () => {
  it.each([
    ['emulated', emulated],
    ['mediated', mediated],
  ] as const)('a VM created with KVM_PMU_CAP_DISABLE shows the guest a CPU without a PMU on the %s design', (_n, r) => {
    expect(() => runVmmProgram(r, PMU_OFF, PROBE)).not.toThrow();
  });

  it('a PMU-off VM whose CPUID still enumerates a PMU is an unsupported configuration', () => {
    const s = supportedOf(emulated);
    expect(unsupportedBy(s, PMU_OFF)).toEqual([]);
    expect(unsupportedBy(s, { ...PMU_OFF, cpuid: { ...PMU_OFF.cpuid, leaf0a: s.leaf0a } })).toEqual([
      'CPUID.0AH version 2 on a VM created with KVM_PMU_CAP_DISABLE (its vCPUs have no vPMU)',
    ]);
  });

  it('fails on a KVM that takes KVM_ENABLE_CAP after KVM_CREATE_VCPU', () => {
    const e = thrownBy(() => runVmmProgram({ ...emulated, design: emulatedWith(TAKES_IT_LATE) }, PMU_OFF, PROBE));
    expect(e).toBeInstanceOf(Divergence);
    expect((e as Divergence).message).toMatch(
      /KVM_ENABLE_CAP\(KVM_CAP_PMU_CAPABILITY, 0x0\).*guest saw ok, expected refused/,
    );
  });

  it('generation reaches both: a share of the VMM property guests are PMU-off VMs, and it finds the late switch', () => {
    const guests = fc.sample(vmmGuestArb(emulated), { numRuns: 300, seed: 13 });
    const off = guests.filter((g) => g.pmuCap === KVM_PMU_CAP_DISABLE).length;
    expect(off).toBeGreaterThan(20);
    const d = fc.check(vmmConformanceProperty({ ...emulated, design: emulatedWith(TAKES_IT_LATE) }), {
      numRuns: 300,
      seed: 13,
    });
    expect(d.failed).toBe(true);
  });
});
