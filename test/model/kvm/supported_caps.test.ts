import { describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../../model/hw/profiles.js';
import { HostKernel } from '../../../model/host/perf.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { MediatedVcpu } from '../../../model/kvm/mediated/vcpu.js';

const FW_WRITES = 1n << 13n;
const LBR_FMT = 0x3fn;

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
      expect(caps & FW_WRITES).toBe(host.perfCapabilities & FW_WRITES);
      expect(caps & LBR_FMT).toBe(host.legacyLbr !== undefined ? host.perfCapabilities & LBR_FMT : 0n);
    });

    it(`${name}, mediated vPMU: full-width writes and no LBR format`, () => {
      const v = new MediatedVcpu(new HostKernel({ profile: host, cpus: 1 }), { cpu: 0, cpuid });
      const caps = v.supportedPerfCapabilities();
      expect(caps & ~host.perfCapabilities).toBe(0n);
      expect(caps & FW_WRITES).toBe(FW_WRITES);
      expect(caps & LBR_FMT).toBe(0n);
    });
  }
});
