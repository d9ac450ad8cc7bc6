import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../../model/hw/profiles.js';
import { HostKernel } from '../../../model/host/perf.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { MediatedVcpu } from '../../../model/kvm/mediated/vcpu.js';
import { PERF_CAP_FW_WRITES, PERF_CAP_LBR_FMT } from '../../../model/hw/msr/capabilities.js';

/**
 * KVM's feature MSR PERF_CAPABILITIES (kvm_caps.supported_perf_cap) is what the World limits a
 * guest's request to, as QEMU does; nothing else would notice a design that drops or invents bits.
 */
describe('the PERF_CAPABILITIES KVM offers, per host (vmx_get_perf_capabilities)', () => {
  for (const [name, host] of Object.entries(BUILTIN_PROFILES)) {
    const cpuid = { family: host.family, model: host.model, leaf0a: host.spec.leaf0a, pdcm: true };

    it(`${name}, perf-based vPMU: a subset of the host's, with full-width writes, and the legacy LBR format iff the host has legacy LBRs`, () => {
      const v = new EmulatedVcpu(new HostKernel({ profile: host, cpus: 1 }), { cpu: 0, cpuid });
      const caps = v.supportedPerfCapabilities();
      expect(caps & ~host.perfCapabilities).toBe(0n);
      expect(caps & PERF_CAP_FW_WRITES).toBe(host.perfCapabilities & PERF_CAP_FW_WRITES);
      expect(caps & PERF_CAP_LBR_FMT).toBe(
        host.legacyLbr !== undefined ? host.perfCapabilities & PERF_CAP_LBR_FMT : 0n,
      );
    });

    it(`${name}, mediated vPMU: full-width writes and no LBR format`, () => {
      const v = new MediatedVcpu(new HostKernel({ profile: host, cpus: 1 }), { cpu: 0, cpuid });
      const caps = v.supportedPerfCapabilities();
      expect(caps & ~host.perfCapabilities).toBe(0n);
      expect(caps & PERF_CAP_FW_WRITES).toBe(PERF_CAP_FW_WRITES);
      expect(caps & PERF_CAP_LBR_FMT).toBe(0n);
    });
  }
});
