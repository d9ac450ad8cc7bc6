import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SAPPHIRE_RAPIDS } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { EMULATED_OPS, type EmulatedOps } from '../../model/kvm/emulated/ops.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { type ConformanceRun, conformanceProperty } from '../../properties/conformance.js';
import { Divergence } from '../../scenarios/commands.js';

// Sapphire Rapids has RTM, so its guests have HLE/RTM: EVTSEL IN_TX (every GP counter) and IN_TX_CP (PMC2 only)
// are theirs to set, and a counter with IN_TX counts nothing outside a transaction (decision D38).
const run = (ops: EmulatedOps): ConformanceRun => ({
  host: SAPPHIRE_RAPIDS,
  design: (h, o) => new EmulatedVcpu(h, o, ops),
  expectations: EMULATED_EXPECTATIONS,
});

/** A KVM whose refresh never makes IN_TX / IN_TX_CP legal (its RTM/HLE check lost): the guest's write #GPs. */
const IN_TX_RESERVED: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_refresh(vcpu) {
    const cpuid = vcpu.cpuid;
    vcpu.cpuid = { ...cpuid, tsx: false };
    EMULATED_OPS.intel_pmu_refresh(vcpu);
    vcpu.cpuid = cpuid;
  },
};

describe('a guest with RTM on a host with RTM', () => {
  it('the search finds a KVM that keeps IN_TX reserved for it, on two seeds', () => {
    for (const seed of [1, 2]) {
      const d = fc.check(conformanceProperty(run(IN_TX_RESERVED)), { numRuns: 1000, seed });
      expect(d.failed).toBe(true);
      expect(d.errorInstance).toBeInstanceOf(Divergence);
      expect((d.errorInstance as Divergence).message).toMatch(/#GP/);
    }
  });

  it('the faithful emulated vPMU passes the same programs', () => {
    for (const seed of [1, 2])
      expect(fc.check(conformanceProperty(run(EMULATED_OPS)), { numRuns: 300, seed }).failed).toBe(false);
  });
});
