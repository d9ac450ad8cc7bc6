/**
 * The mediated vPMU against upstream's semantics (kvm-vpmu.md §2.19; the v6 series "KVM: x86: Add
 * support for mediated vPMUs", merged for 6.20): requirements, perf's exclusivity rules, the
 * load/put world switch, interception decisions, the mediated PMI, emulated-instruction counting,
 * and no LBR/PEBS. Every expectation comes from the upstream code paths, not from the port.
 */
import { describe, expect, it } from 'vitest';
import { defineProfile, leaf0aEax } from '../../../../model/hw/profile.js';
import { ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from '../../../../model/hw/profiles.js';
import { PERF_GUEST_MEDIATED_PMI_VECTOR } from '../../../../model/host/mediated.js';
import { HostKernel } from '../../../../model/host/perf.js';
import { attr, type PerfEvent } from '../../../../model/host/types.js';
import { MediatedPmuBusy, MediatedUnavailable, newMediatedVcpu } from '../../../../model/kvm/mediated/vcpu.js';
import { createMediated, guestCpuid, recordHw, val } from './util.js';
import { PERF_CAP_FW_WRITES, MSR_IA32_PERF_CAPABILITIES } from '../../../../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  ARCH_PERFMON_EVENTSEL_INT,
} from '../../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../../../model/hw/msr/global.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../../../model/hw/msr/debugctl.js';
import { X2APIC_LVTPC, APIC_DM_NMI } from '../../../../model/hw/msr/apic.js';
import { MSR_LBR_NHM_FROM, MSR_LBR_TOS } from '../../../../model/hw/msr/lbr_legacy.js';

const INSNS = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | 0xc0n;
const MASK48 = (1n << 48n) - 1n;

const evOk = (r: PerfEvent | { readonly error: string }): PerfEvent => {
  if ('error' in r) throw new Error(r.error);
  return r;
};
const insnUnits = (n: number, cpl = 0) => Array.from({ length: n }, () => ({ cpl, instructions: 1, cycles: 2 }));

describe('requirements: host PMU v4+ and full-width writes, else the design does not exist', () => {
  it.each([SKYLAKE, ICELAKE, SAPPHIRE_RAPIDS])('is available on %s', (p) => {
    expect(() => createMediated({ profile: p })).not.toThrow();
  });

  it('throws MediatedUnavailable on a v3 host', () => {
    const v3 = defineProfile({
      ...SKYLAKE.spec,
      name: 'v3',
      leaf0a: { ...SKYLAKE.spec.leaf0a, eax: leaf0aEax(3, 4, 48, 7) },
    });
    const host = new HostKernel({ profile: v3, cpus: 1 });
    expect(() => newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(v3) })).toThrow(MediatedUnavailable);
    expect(() => newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(v3) })).toThrow(/version 3.*v4/);
  });

  it('throws MediatedUnavailable without PERF_CAPABILITIES.FW_WRITE', () => {
    const noFw = defineProfile({
      ...SKYLAKE.spec,
      name: 'nofw',
      perfCapabilities: SKYLAKE.perfCapabilities & ~PERF_CAP_FW_WRITES,
    });
    const host = new HostKernel({ profile: noFw, cpus: 1 });
    expect(() => newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(noFw) })).toThrow(/FW_WRITE/);
  });
});

describe("perf's exclusivity rules (perf_create_mediated_pmu, mediated_pmu_account_event)", () => {
  it('a mediated VM cannot be created while the NMI watchdog (an include-guest event) exists', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2, nmiWatchdog: true });
    expect(() => newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(SKYLAKE) })).toThrow(MediatedPmuBusy);
    expect(() => newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(SKYLAKE) })).toThrow(/EBUSY/);
  });

  it('nor while a host user counts the guest; it can once that event is closed', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const ev = evOk(host.perf_event_open(attr({ config: 0xc0n }), { cpu: 1 }));
    expect(() => newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(SKYLAKE) })).toThrow(MediatedPmuBusy);
    host.perf_event_release_kernel(ev);
    expect(() => newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(SKYLAKE) })).not.toThrow();
  });

  it('while a mediated VM exists, perf_event_open without exclude_guest fails cleanly; with it, it works', () => {
    const w = createMediated();
    const r = w.host.perf_event_open(attr({ config: 0xc0n }), { cpu: 1 });
    expect('error' in r && r.error).toMatch(/^EOPNOTSUPP/);
    expect('error' in w.host.perf_event_open(attr({ config: 0xc0n, exclude_guest: true }), { cpu: 1 })).toBe(false);
  });

  it('the last vCPU of the VM releases the mediated PMU (kvm_arch_destroy_vm)', () => {
    const w = createMediated();
    w.vcpu.destroy();
    expect('error' in w.host.perf_event_open(attr({ config: 0xc0n }), { cpu: 1 })).toBe(false);
  });
});

describe('interception: identity-mapped counters pass through; selectors and FIXED_CTR_CTRL never do', () => {
  it('Skylake, guest with all 4 GP and 3 fixed counters at full width: RDPMC and the global MSRs pass through', () => {
    const { vcpu } = createMediated();
    expect(vcpu.s.rdpmcExiting).toBe(false);
    for (const m of [
      MSR_CORE_PERF_GLOBAL_CTRL,
      MSR_CORE_PERF_GLOBAL_STATUS,
      MSR_CORE_PERF_GLOBAL_OVF_CTRL,
      MSR_IA32_PERFCTR0,
      MSR_IA32_PERFCTR0 + 3,
      MSR_IA32_PMC0,
      MSR_CORE_PERF_FIXED_CTR0 + 2,
    ])
      expect(vcpu.s.passthrough.has(m)).toBe(true);
    for (const m of [
      MSR_P6_EVNTSEL0,
      MSR_CORE_PERF_FIXED_CTR_CTRL,
      MSR_CORE_PERF_GLOBAL_STATUS_SET,
      MSR_IA32_DEBUGCTLMSR,
      X2APIC_LVTPC,
    ])
      expect(vcpu.s.passthrough.has(m)).toBe(false);
  });

  it('fewer GP counters than the host: RDPMC and the global MSRs exit; exposed counters still pass through', () => {
    const { vcpu } = createMediated({ nrGp: 2 });
    expect(vcpu.s.rdpmcExiting).toBe(true);
    expect(vcpu.s.passthrough.has(MSR_CORE_PERF_GLOBAL_CTRL)).toBe(false);
    expect(vcpu.s.passthrough.has(MSR_IA32_PERFCTR0 + 1)).toBe(true);
    expect(vcpu.s.passthrough.has(MSR_IA32_PERFCTR0 + 2)).toBe(false);
  });

  it('IA32_PMCx pass through only with guest FW_WRITES', () => {
    expect(createMediated({ perfCaps: 0n }).vcpu.s.passthrough.has(MSR_IA32_PMC0)).toBe(false);
    expect(createMediated({ perfCaps: PERF_CAP_FW_WRITES }).vcpu.s.passthrough.has(MSR_IA32_PMC0)).toBe(true);
  });

  it('a v1 guest with every GP counter: no fixed counters, so RDPMC and GLOBAL_CTRL stay intercepted', () => {
    const { vcpu } = createMediated({ version: 1 });
    expect(vcpu.s.rdpmcExiting).toBe(true); // no fixed counters: not the host's count
    expect(vcpu.s.passthrough.has(MSR_CORE_PERF_GLOBAL_CTRL)).toBe(false);
  });

  it('Ice Lake and Sapphire Rapids have a 4th fixed counter KVM does not expose: RDPMC always exits (K15)', () => {
    for (const profile of [ICELAKE, SAPPHIRE_RAPIDS]) {
      const { vcpu } = createMediated({ profile, nrGp: 8, nrFixed: 3 });
      expect(vcpu.s.rdpmcExiting).toBe(true);
      expect(vcpu.s.passthrough.has(MSR_CORE_PERF_GLOBAL_CTRL)).toBe(false);
    }
  });
});

describe('bugs.md #14: unexposed counters are not zeroed, so RDPMC of them must #GP', () => {
  it('a guest with 2 GP counters cannot read a host counter in PMC3 with RDPMC', () => {
    const w = createMediated({ nrGp: 2 });
    // Four pinned exclude_guest host events fill PMC0..3; PMC3 holds a host count.
    for (let i = 0; i < 4; i++)
      evOk(
        w.host.perf_event_open(attr({ config: 0xc4n + BigInt(i % 2), pinned: true, exclude_guest: true }), { cpu: 0 }),
      );
    w.host.runHost(0, insnUnits(5));
    expect(w.vcpu.guestRdpmc(3, 0).ok).toBe(false);
    expect(w.vcpu.guestRdpmc(2, 0).ok).toBe(false);
    expect(val(w.vcpu.guestRdpmc(1, 0))).toBe(0n);
  });
});

describe('the load/put world switch, in upstream order', () => {
  it('load: perf steps aside, GLOBAL_CTRL=0, LVTPC to the mediated vector, counters and selectors, status toggle, FIXED_CTR_CTRL, then VM-entry', () => {
    const w = createMediated();
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n));
    w.vcpu.s.pmu.global_status = 0b10n; // as if restored by userspace: STATUS_SET must set it
    const log = recordHw(w.host.pcpu(0).hw, () => w.vcpu.guestRun([{ cpl: 0, instructions: 1 }]));
    const writes = log.filter((x) => x.op === 'wrmsr').map((x) => [x.target, x.value]);
    const at = (t: number, v?: bigint) => writes.findIndex(([m, x]) => m === t && (v === undefined || x === v));
    // guest LVTPC is masked at RESET
    const lvtpcGuest = at(X2APIC_LVTPC, BigInt(PERF_GUEST_MEDIATED_PMI_VECTOR) | (1n << 16n));
    expect(at(MSR_CORE_PERF_GLOBAL_CTRL, 0n)).toBeGreaterThanOrEqual(0);
    expect(at(MSR_CORE_PERF_GLOBAL_CTRL, 0n)).toBeLessThan(lvtpcGuest);
    expect(lvtpcGuest).toBeLessThan(at(MSR_P6_EVNTSEL0, INSNS));
    expect(at(MSR_P6_EVNTSEL0, INSNS)).toBeLessThan(at(MSR_CORE_PERF_GLOBAL_STATUS_SET, 0b10n));
    expect(at(MSR_CORE_PERF_GLOBAL_STATUS_SET, 0b10n)).toBeLessThan(at(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n));
    // VM-entry loads the guest GLOBAL_CTRL (RESET value: the GP enables) after the vendor load.
    expect(at(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n)).toBeLessThan(at(MSR_CORE_PERF_GLOBAL_CTRL, 0xfn));
    // PMC0 counted both skipped WRMSRs in software (2 ≠ hardware's 0): written, before its selector.
    expect(at(MSR_IA32_PMC0, 2n)).toBeGreaterThan(lvtpcGuest);
    expect(at(MSR_IA32_PMC0, 2n)).toBeLessThan(at(MSR_P6_EVNTSEL0, INSNS));
    // Counters already equal to hardware (0) are not written.
    expect(at(MSR_IA32_PMC0 + 1)).toBe(-1);
  });

  it('put: status saved and cleared, FIXED_CTR_CTRL zeroed, counters saved and zeroed, selectors zeroed, LVTPC back to NMI', () => {
    const w = createMediated();
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT));
    val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, MASK48 - 1n)); // overflows after 2 instructions
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n));
    const hw = w.host.pcpu(0).hw;
    const log = recordHw(hw, () => w.vcpu.guestRun(insnUnits(5)));
    const afterExit = log.slice(
      log.map((x) => x.op === 'rdmsr' && x.target === MSR_CORE_PERF_GLOBAL_STATUS).lastIndexOf(true),
    );
    expect(
      afterExit.map(
        (x) => `${x.op} ${x.target.toString(16)}${x.value === undefined ? '' : `=${x.value.toString(16)}`}`,
      ),
    ).toEqual([
      'rdmsr 38e',
      'wrmsr 390=1', // the guest's overflow bit, saved then cleared
      'wrmsr 38d=0',
      'rdpmc 0',
      'wrmsr 4c1=0',
      'wrmsr 186=0',
      'rdpmc 1',
      'rdpmc 2',
      'rdpmc 3',
      'rdpmc 40000000', // FC0 is enabled in FIXED_CTR_CTRL but not in GLOBAL_CTRL (RESET: GP bits only): still 0
      'rdpmc 40000001',
      'rdpmc 40000002',
      `wrmsr 834=${APIC_DM_NMI.toString(16)}`,
      'wrmsr 38f=0', // perf_put_guest_context: perf_pmu_disable, then enable with no host events
      'wrmsr 38f=0',
    ]);
    expect(val(w.vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_STATUS)) & 1n).toBe(1n);
    expect(val(hw.rdmsr(MSR_P6_EVNTSEL0))).toBe(0n);
    expect(val(hw.rdmsr(X2APIC_LVTPC))).toBe(APIC_DM_NMI);
  });

  it('host exclude_guest events are scheduled out for guest time and back in at put', () => {
    const w = createMediated();
    const ev = evOk(
      w.host.perf_event_open(attr({ config: 0xc0n, pinned: true, exclude_guest: true, exclude_kernel: true }), {
        cpu: 0,
      }),
    );
    w.host.runHost(0, insnUnits(3, 3));
    const seen: string[] = [];
    const hw = w.host.pcpu(0).hw;
    const step = hw.step.bind(hw);
    hw.step = (u) => {
      if (hw.mode === 'guest') seen.push(ev.state);
      return step(u);
    };
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS));
    w.vcpu.guestRun(insnUnits(10, 3));
    delete (hw as { step?: unknown }).step;
    expect(seen.length).toBe(10);
    expect(seen.every((s) => s === 'INACTIVE')).toBe(true);
    expect(ev.state).toBe('ACTIVE');
    expect(w.host.perf_event_read_value(ev)).toBe(3n);
  });
});

describe('guest counter overflow in guest mode reaches the guest as its own PMI', () => {
  it('the mediated vector exits, KVM_REQ_PMI injects through the virtual LVTPC after the overflowing unit', () => {
    const w = createMediated();
    val(w.vcpu.guestWrmsr(X2APIC_LVTPC, 0xe0n)); // Fixed, vector 0xe0, unmasked
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT));
    val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, MASK48 - 2n)); // −3, and this passed-through WRMSR itself retires: −2
    const before = { ...w.vcpu.cost };
    const pmis = w.vcpu.guestRun(insnUnits(5));
    expect(pmis).toEqual([{ afterUnit: 1, vector: 0xe0 }]);
    expect(w.vcpu.cost.pmiExits - before.pmiExits).toBe(1);
    expect(w.vcpu.cost.injectedPmis - before.injectedPmis).toBe(1);
    expect(w.vcpu.cost.perfCreates).toBe(0);
    // The guest sees its status bit, and its LVTPC masked by delivery.
    expect(val(w.vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_STATUS)) & 1n).toBe(1n);
    expect(val(w.vcpu.guestRdmsr(X2APIC_LVTPC)) & (1n << 16n)).toBe(1n << 16n);
    // 3 units after the wrap, the passed-through RDMSR (hardware) and the intercepted one (software).
    expect(val(w.vcpu.guestRdpmc(0, 0))).toBe(5n);
  });

  it('with the guest LVTPC masked, hardware LVTPC is masked too and no PMI arrives', () => {
    const w = createMediated();
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT));
    val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, MASK48));
    expect(w.vcpu.guestRun(insnUnits(3))).toEqual([]);
    expect(w.vcpu.cost.pmiExits).toBe(0);
  });
});

describe('emulated-instruction counting (kvm_pmu_incr_counter, mediated)', () => {
  it('counts the skipped instruction at its CPL, honouring OS/USR and GLOBAL_CTRL', () => {
    const w = createMediated({ nrGp: 2 });
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_USR | 0xc0n)); // user only
    val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, 0n));
    w.vcpu.guestRdpmc(0, 3); // RDPMC at CPL 3 with CR4.PCE = 0: #GP, not retired
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0 + 1, 0n)); // a CPL 0 instruction: not counted
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_PERFCTR0))).toBe(0n);
    w.vcpu.s.cr4Pce = true;
    val(w.vcpu.guestRdpmc(0, 3)); // retired at CPL 3: counted
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_PERFCTR0))).toBe(1n);
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n));
    val(w.vcpu.guestRdpmc(0, 3));
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_PERFCTR0))).toBe(1n);
  });

  it('a counter at −1 wraps on the skipped instruction: status bit, and the PMI right after it', () => {
    const w = createMediated({ nrGp: 2 });
    val(w.vcpu.guestWrmsr(X2APIC_LVTPC, 0xe1n));
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n));
    val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, MASK48));
    expect(w.vcpu.drainPmis()).toEqual([]);
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n)); // intercepted: counted in software after the write enables PMC0
    expect(w.vcpu.drainPmis()).toEqual([{ afterUnit: 0, vector: 0xe1 }]);
    expect(val(w.vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_STATUS)) & 1n).toBe(1n);
  });
});

describe('no LBR and no PEBS with the mediated vPMU', () => {
  it('PERF_CAPABILITIES offers FW_WRITES only: userspace cannot set an LBR format', () => {
    const w = createMediated();
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_PERF_CAPABILITIES))).toBe(PERF_CAP_FW_WRITES);
    expect(
      w.vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES | (SKYLAKE.perfCapabilities & 0x3fn)).ok,
    ).toBe(false);
  });

  it('DEBUGCTL.LBR is dropped, FREEZE_LBRS_ON_PMI #GPs, and the LBR MSRs do not exist', () => {
    const w = createMediated();
    val(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, 1n));
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_DEBUGCTLMSR))).toBe(0n);
    expect(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, 0x801n).ok).toBe(false);
    expect(w.vcpu.guestRdmsr(MSR_LBR_NHM_FROM).ok).toBe(false);
    expect(w.vcpu.guestRdmsr(MSR_LBR_TOS).ok).toBe(false);
  });
});
