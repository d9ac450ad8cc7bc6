/**
 * Property 1 (conformance, quiet host) for the mediated vPMU on the built-in hosts: guest
 * observations equal bare metal up to MEDIATED_EXPECTATIONS. A host without what the design needs
 * must refuse it with MediatedUnavailable instead.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../../model/hw/profiles.js';
import { HostKernel } from '../../../../model/host/perf.js';
import { intel_pmu_is_mediated_pmu_supported } from '../../../../model/kvm/mediated/pmu_intel.js';
import { MediatedUnavailable, newMediatedVcpu } from '../../../../model/kvm/mediated/vcpu.js';
import { conformanceProperty } from '../../../../properties/conformance.js';
import { MEDIATED_EXPECTATIONS } from '../../../../properties/expectations/mediated.js';
import { guestCpuid, mediatedAsVmm } from './util.js';

describe.each([SKYLAKE, ICELAKE, SAPPHIRE_RAPIDS])('property 1, conformance of the mediated vPMU on %s', (host) => {
  it('holds up to the declared divergences (1000 programs), or the host refuses the design', () => {
    if (intel_pmu_is_mediated_pmu_supported(host) !== null) {
      const k = new HostKernel({ profile: host, cpus: 1 });
      expect(() => newMediatedVcpu(k, { cpu: 0, cpuid: guestCpuid(host) })).toThrow(MediatedUnavailable);
      return;
    }
    const known = new Map<string, number>();
    fc.assert(conformanceProperty({ host, design: mediatedAsVmm, expectations: MEDIATED_EXPECTATIONS, known }), {
      numRuns: 1000,
      maxSkipsPerRun: 1000,
    });
    expect(known.size).toBeGreaterThan(0);
  });
});
