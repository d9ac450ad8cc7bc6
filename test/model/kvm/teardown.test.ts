import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { HostKernel } from '../../../model/host/perf.js';
import { attr } from '../../../model/host/types.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { lbrGuest } from '../../../properties/lbr_freeze.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../../model/hw/msr/capabilities.js';
import { MSR_P6_EVNTSEL0 } from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';

// What kvm_arch_vcpu_destroy → kvm_pmu_destroy → kvm_pmu_reset / intel_pmu_reset must give back to perf.
describe('a destroyed vCPU leaves no perf events behind', () => {
  const branchy = [
    { cpl: 3, instructions: 4, branches: [{ from: 0x40_0000n, to: 0x40_0040n, kind: 'COND' as const }] },
  ];

  function busyVcpu(host: HostKernel): EmulatedVcpu {
    const g = lbrGuest(SKYLAKE, 2);
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid: g.cpuid });
    expect(v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, g.perfCapabilities).ok).toBe(true);
    for (let i = 0; i < 4; i++) expect(v.guestWrmsr(MSR_P6_EVNTSEL0 + i, 0x4300c4n).ok).toBe(true); // BR_INST_RETIRED, OS|USR|EN
    expect(v.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0xfn).ok).toBe(true);
    expect(v.guestWrmsr(MSR_IA32_DEBUGCTLMSR, 0x1n).ok).toBe(true); // DEBUGCTL.LBR: the guest LBR event
    v.guestRun(branchy);
    return v;
  }

  it('the guest LBR event goes (intel_pmu_reset → intel_pmu_release_guest_lbr_event), so a host LBR user gets the LBRs', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const v = busyVcpu(host);
    const vlbr = host.lbrOwner(0);
    expect(vlbr?.attr.vlbr).toBe(true);
    v.destroy();
    // Released, not merely scheduled out with the exiting thread: KVM drops its reference.
    expect(() => host.perf_event_read_value(vlbr!)).toThrow(/was released/);
    expect(host.lbrOwner(0)).toBeNull();
    const ev = host.perf_event_open(
      attr({
        config: 0xc4n,
        sample_period: 100n,
        pinned: true,
        branchSample: { user: true, kernel: true, callStack: false },
      }),
      { cpu: 0 },
    );
    expect('error' in ev ? ev.error : ev.state).toBe('ACTIVE');
    expect(host.lbrOwner(0)).toBe(ev);
  });

  it("the counters' events go (pmc_stop_counter), so host pinned events get every GP counter", () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    busyVcpu(host).destroy();
    const evs = Array.from({ length: SKYLAKE.nGP }, () =>
      host.perf_event_open(attr({ config: 0xc4n, pinned: true }), { cpu: 0 }),
    );
    expect(evs.map((e) => ('error' in e ? e.error : e.state))).toEqual(
      Array.from({ length: SKYLAKE.nGP }, () => 'ACTIVE'),
    );
  });
});
