import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { PRE_PERF_CAPS_PDCM_FIX_OPS } from '../../model/kvm/bugs/d75cac366f44_perf_caps_without_pdcm.js';
import { PRE_MSR_LIST_FIXED_FIX_OPS } from '../../model/kvm/bugs/e33b6d79acac_msr_list_fixed.js';
import { emulatedWith, mediatedWith } from '../../designs/registry.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import {
  checkMsrIndexList,
  checkPmuCapDisable,
  type VmmAbiRun,
  VmmAbiViolation,
  vmmAbiProperty,
} from '../../properties/vmm_abi.js';
import { EMULATED_OPS, type EmulatedOps } from '../../model/kvm/emulated/ops.js';
import { MEDIATED_OPS } from '../../model/kvm/mediated/ops.js';
import { Divergence } from '../../scenarios/commands.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';

const emulated: VmmAbiRun = {
  host: SKYLAKE,
  design: (h, o) => new EmulatedVcpu(h, o),
  expectations: EMULATED_EXPECTATIONS,
};

describe('the VMM ABI: MSR index list, save round trip, PERF_CAPABILITIES without PDCM, KVM_SET_CPUID2, KVM_PMU_CAP_DISABLE', () => {
  // That the faithful designs pass it on every host: vmm_faithful.test.ts.
  it('finds bug #45 (PERF_CAPABILITIES without PDCM, fixed by d75cac366f44) in a one- or two-command program', () => {
    const d = fc.check(vmmAbiProperty({ ...emulated, design: emulatedWith(PRE_PERF_CAPS_PDCM_FIX_OPS) }), {
      numRuns: 1000,
      seed: 1,
    });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(Divergence);
    expect((d.errorInstance as Divergence).observation.target).toBe(null);
    expect((d.errorInstance as Divergence).observation.vmm).toMatchObject({ msr: 0x345 });
  });

  it('finds bug #47 (fixed counters KVM cannot expose are listed, fixed by e33b6d79acac) before any command', () => {
    expect(() => checkMsrIndexList({ ...emulated, design: emulatedWith(PRE_MSR_LIST_FIXED_FIX_OPS) })).toThrow(
      VmmAbiViolation,
    );
    expect(() => checkMsrIndexList({ ...emulated, design: emulatedWith(PRE_MSR_LIST_FIXED_FIX_OPS) })).toThrow(/0x30c/);
    expect(() => checkMsrIndexList(emulated)).not.toThrow();
  });

  it('finds a KVM where only the module decides (before ba7bb663f554): a PMU-off VM with a CPUID PMU reads its MSRs', () => {
    const ops: EmulatedOps = {
      ...EMULATED_OPS,
      kvm_pmu_refresh: (vcpu) => {
        const asked = vcpu.kvm.enable_pmu;
        vcpu.kvm.enable_pmu = vcpu.kvm_pmu_cap.enable_pmu;
        EMULATED_OPS.kvm_pmu_refresh(vcpu);
        vcpu.kvm.enable_pmu = asked;
      },
    };
    expect(() => checkPmuCapDisable({ ...emulated, design: emulatedWith(ops) })).toThrow(
      /KVM_PMU_CAP_DISABLE reads PMU MSR 0x38f/,
    );
    expect(() => checkPmuCapDisable(emulated)).not.toThrow();
    expect(() => checkPmuCapDisable({ ...emulated, design: mediatedWith(MEDIATED_OPS) })).not.toThrow();
  });
});
