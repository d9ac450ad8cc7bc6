import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { HostKernel } from '../../../model/host/perf.js';
import { attr } from '../../../model/host/types.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { leaf0aEax, leaf0aEdx } from '../../../model/hw/profile.js';

const cpuid = {
  family: SKYLAKE.family,
  model: SKYLAKE.model,
  leaf0a: {
    eax: leaf0aEax(2, 4, SKYLAKE.gpWidth, SKYLAKE.evLen),
    ebx: 0,
    ecx: 0,
    edx: leaf0aEdx(3, SKYLAKE.fixedWidth),
  },
  pdcm: true,
};

// kvm_guest_state / kvm_arch_pmi_in_guest (812d432373f6): perf asks KVM whose a PMI is.
describe("perf_guest_state through KVM's guest-info callbacks", () => {
  it("marks a host sample taken at a PMI that exited the guest as the guest's", () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid });
    const ev = host.perf_event_open(attr({ config: 0xc0n, sample_period: 100n, pinned: true }), { cpu: 0 });
    if ('error' in ev) throw new Error(ev.error);
    v.guestRun([{ cpl: 3, instructions: 150 }]);
    expect(ev.samples.map((s) => s.inGuest)).toEqual([true]);
  });

  it("marks a host sample taken in the host handler of an external-interrupt exit as the host's", () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid });
    const ev = host.perf_event_open(attr({ config: 0xc0n, sample_period: 100n, pinned: true, exclude_guest: true }), {
      cpu: 0,
    });
    if ('error' in ev) throw new Error(ev.error);
    v.externalInterrupt([{ cpl: 0, instructions: 150 }]);
    expect(ev.samples.map((s) => s.inGuest)).toEqual([false]);
  });
});
