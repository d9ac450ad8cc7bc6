/**
 * pmu.c and vmx/pmu_intel.c of the mediated vPMU (series v6, merged for 6.20) held access by access: the MSRs
 * kvm_mediated_pmu_load and kvm_mediated_pmu_put touch and in what order, the writes they elide ("Elide WRMSRs when
 * loading guest PMCs if values already match", and the "if non-zero" guards of intel_mediated_pmu_put), the GLOBAL_STATUS
 * toggle of intel_mediated_pmu_load, the event filter's _hw shadows as hardware gets them, what `npm run compare`
 * prices a world switch at (entryExitMsrAccesses, reprograms), the RDPMC intercept's width terms, and the PMI of a
 * fixed counter KVM bumps in software. Every expectation is read off the upstream functions named beside it.
 */
import { describe, expect, it } from 'vitest';
import { defineProfile, leaf0aEax, leaf0aEdx } from '../../../../model/hw/profile.js';
import { SKYLAKE } from '../../../../model/hw/profiles.js';
import { HostKernel } from '../../../../model/host/perf.js';
import { PERF_GUEST_MEDIATED_PMI_VECTOR } from '../../../../model/host/mediated.js';
import { newMediatedVcpu } from '../../../../model/kvm/mediated/vcpu.js';
import { MEDIATED_OPS } from '../../../../model/kvm/mediated/ops.js';
import type { GuestCpuid } from '../../../../model/kvm/types.js';
import { createMediated, guestCpuid, type HwOp, type MWorld, recordHw, val } from './util.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES } from '../../../../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_P6_EVNTSEL0,
} from '../../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../../../model/hw/msr/global.js';
import { APIC_DM_NMI, X2APIC_LVTPC } from '../../../../model/hw/msr/apic.js';

const INSNS = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | 0xc0n;
const MASK48 = (1n << 48n) - 1n;
/** The guest's LVTPC at RESET: masked, so perf_load_guest_lvtpc writes the mediated vector masked. */
const LVTPC_GUEST_MASKED = (1n << 16n) | BigInt(PERF_GUEST_MEDIATED_PMI_VECTOR);

const hex = (n: bigint | number) => n.toString(16);
const fmt = (x: HwOp) => `${x.op} ${hex(x.target)}${x.value === undefined ? '' : `=${hex(x.value)}`}`;

/** Every RDMSR/WRMSR/RDPMC on the vCPU's pCPU during one guest run of `n` instructions at CPL 0, without PMIs. */
function runLog(w: MWorld, n = 1): string[] {
  const log = recordHw(w.host.pcpu(w.vcpu.cpu).hw, () =>
    expect(w.vcpu.guestRun([{ cpl: 0, instructions: n }])).toEqual([]),
  );
  return log.map(fmt);
}

/** What one guest run costs in KVM's own MSR accesses at entry and exit, and in reprogram_counter runs. */
function runCost(w: MWorld, n = 1) {
  const { entryExitMsrAccesses, reprograms } = w.vcpu.cost;
  expect(w.vcpu.guestRun([{ cpl: 0, instructions: n }])).toEqual([]);
  return {
    msrs: w.vcpu.cost.entryExitMsrAccesses - entryExitMsrAccesses,
    reprograms: w.vcpu.cost.reprograms - reprograms,
  };
}

/** vcpu_enter_guest before the load: the host DEBUGCTL snapshot, then perf_load_guest_context's disable/enable. */
const BEFORE_LOAD = ['rdmsr 1d9', 'wrmsr 38f=0', 'wrmsr 38f=0'];
/** VM-entry (GUEST_IA32_PERF_GLOBAL_CTRL, GUEST_IA32_DEBUGCTL) and VM-exit (save and clear both). */
const vmEntryExit = (globalCtrl: bigint) => [
  `wrmsr 38f=${hex(globalCtrl)}`,
  'wrmsr 1d9=0',
  'rdmsr 38f',
  'wrmsr 38f=0',
  'rdmsr 1d9',
  'wrmsr 1d9=0',
];
/** After kvm_mediated_pmu_put's own accesses: perf_put_guest_context's disable/enable (no host events). */
const AFTER_PUT = ['wrmsr 38f=0', 'wrmsr 38f=0'];

describe('kvm_mediated_pmu_load and kvm_mediated_pmu_put, access by access', () => {
  it('a guest that counts nothing: only selectors and FIXED_CTR_CTRL are written at load, nothing is zeroed at put', () => {
    const w = createMediated(); // Skylake: 4 GP and 3 fixed counters, all exposed; GLOBAL_CTRL at RESET is 0xf
    expect(runLog(w)).toEqual([
      ...BEFORE_LOAD,
      // kvm_mediated_pmu_load
      'wrmsr 38f=0', // PERF_GLOBAL_CTRL cleared while the selectors are in flux
      `wrmsr 834=${hex(LVTPC_GUEST_MASKED)}`, // perf_load_guest_lvtpc
      // kvm_pmu_load_guest_pmcs: each counter equals hardware's 0, so only its selector (eventsel_hw) is written
      'rdpmc 0',
      'wrmsr 186=0',
      'rdpmc 1',
      'wrmsr 187=0',
      'rdpmc 2',
      'wrmsr 188=0',
      'rdpmc 3',
      'wrmsr 189=0',
      'rdpmc 40000000',
      'rdpmc 40000001',
      'rdpmc 40000002',
      // intel_mediated_pmu_load: hardware status equals the guest's (0), nothing to toggle; FIXED_CTR_CTRL always
      'rdmsr 38e',
      'wrmsr 38d=0',
      ...vmEntryExit(0xfn),
      // kvm_mediated_pmu_put → intel_mediated_pmu_put: status 0 and FIXED_CTR_CTRL 0 need no clearing
      'rdmsr 38e',
      // kvm_pmu_put_guest_pmcs: every counter and selector is 0, none is written
      'rdpmc 0',
      'rdpmc 1',
      'rdpmc 2',
      'rdpmc 3',
      'rdpmc 40000000',
      'rdpmc 40000001',
      'rdpmc 40000002',
      `wrmsr 834=${hex(APIC_DM_NMI)}`, // perf_put_guest_lvtpc
      ...AFTER_PUT,
    ]);
  });

  it('a guest counting on PMC0 and fixed counter 0: those are loaded, then saved and zeroed; the others are left', () => {
    const w = createMediated();
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n)); // fixed counter 0 at every CPL, no PMI
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, (1n << 32n) | 0xfn)); // passed through: hardware takes it
    // What KVM holds for the guest now (put at the last exit), and hardware 0 for both: both are written at load.
    const pmc0 = w.vcpu.s.pmu.gp_counters[0]!.counter;
    const fc0 = w.vcpu.s.pmu.fixed_counters[0]!.counter;
    expect(pmc0).not.toBe(0n);
    expect(fc0).not.toBe(0n);
    expect(runLog(w, 5)).toEqual([
      ...BEFORE_LOAD,
      'wrmsr 38f=0',
      `wrmsr 834=${hex(LVTPC_GUEST_MASKED)}`,
      'rdpmc 0',
      `wrmsr 4c1=${hex(pmc0)}`, // full-width alias: GP_COUNTER_BASE is MSR_IA32_PMC0 on Intel
      `wrmsr 186=${hex(INSNS)}`,
      'rdpmc 1',
      'wrmsr 187=0',
      'rdpmc 2',
      'wrmsr 188=0',
      'rdpmc 3',
      'wrmsr 189=0',
      'rdpmc 40000000',
      `wrmsr 309=${hex(fc0)}`,
      'rdpmc 40000001', // equal to hardware's 0: not written
      'rdpmc 40000002',
      'rdmsr 38e',
      'wrmsr 38d=3',
      ...vmEntryExit((1n << 32n) | 0xfn),
      'rdmsr 38e',
      'wrmsr 38d=0', // fixed_ctr_ctrl_hw is non-zero: cleared before perf takes the PMU back
      'rdpmc 0',
      'wrmsr 4c1=0', // counted: saved, then zeroed
      'wrmsr 186=0', // eventsel_hw non-zero: zeroed
      'rdpmc 1',
      'rdpmc 2',
      'rdpmc 3',
      'rdpmc 40000000',
      'wrmsr 309=0', // counted: saved, then zeroed
      'rdpmc 40000001',
      'rdpmc 40000002',
      `wrmsr 834=${hex(APIC_DM_NMI)}`,
      ...AFTER_PUT,
    ]);
    // Saved at put: the five instructions of the run on top of what was loaded.
    expect(w.vcpu.s.pmu.gp_counters[0]!.counter).toBe(pmc0 + 5n);
    expect(w.vcpu.s.pmu.fixed_counters[0]!.counter).toBe(fc0 + 5n);
    expect(val(w.host.pcpu(0).hw.rdmsr(MSR_CORE_PERF_FIXED_CTR0))).toBe(0n);
  });

  it("intel_mediated_pmu_load toggles hardware GLOBAL_STATUS to the guest's: host-only bits cleared, guest-only bits set", () => {
    const w = createMediated();
    expect(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_STATUS, 0b011n).ok).toBe(true); // KVM_SET_MSRS: the guest's status, PMC0 and PMC1
    // Hardware holds PMC0 and PMC2 overflowed when the guest is loaded (a host overflow not yet acknowledged).
    val(w.host.pcpu(0).hw.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 0b101n));
    const log = runLog(w);
    const at = log.indexOf('rdmsr 38e');
    // toggle = 0b011 ^ 0b101: clear PMC2's bit through OVF_CTRL, set PMC1's through STATUS_SET; PMC0's bit stays.
    expect(log.slice(at, at + 4)).toEqual(['rdmsr 38e', 'wrmsr 390=4', 'wrmsr 391=2', 'wrmsr 38d=0']);
    // The guest reads its GLOBAL_STATUS straight from hardware (passed through on a full guest): its own bits only.
    expect(w.vcpu.s.passthrough.has(MSR_CORE_PERF_GLOBAL_STATUS)).toBe(true);
    expect(val(w.vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(0b011n);
  });
});

describe("the event filter's shadows are what hardware runs", () => {
  it('a GP selector whose event the filter denies is loaded with ENABLE clear and its other bits kept', () => {
    const w = createMediated();
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS));
    expect(runLog(w)).toContain(`wrmsr 186=${hex(INSNS)}`);
    // KVM_SET_PMU_EVENT_FILTER after the guest programmed PMC0: every PMC is reprogrammed at the next entry.
    expect(w.vcpu.setPmuEventFilter({ action: 1, flags: 0, fixed_counter_bitmap: 0, events: [0xc0n] }).ok).toBe(true);
    const log = runLog(w, 5);
    expect(log).toContain(`wrmsr 186=${hex(INSNS & ~ARCH_PERFMON_EVENTSEL_ENABLE)}`);
    expect(log).not.toContain(`wrmsr 186=${hex(INSNS)}`);
    // The guest still reads back what it wrote; PMC0 counted nothing of the run.
    expect(val(w.vcpu.guestRdmsr(MSR_P6_EVNTSEL0))).toBe(INSNS);
    const before = w.vcpu.s.pmu.gp_counters[0]!.counter;
    w.vcpu.guestRun([{ cpl: 0, instructions: 7 }]);
    expect(w.vcpu.s.pmu.gp_counters[0]!.counter).toBe(before);
  });
});

describe('what a world switch costs (entryExitMsrAccesses) and how many counters KVM_REQ_PMU reprograms', () => {
  it('a guest that counts nothing: 15 accesses at load and 9 at put', () => {
    // Load: GLOBAL_CTRL, LVTPC, 4 × (RDPMC, selector), 3 RDPMC, GLOBAL_STATUS read, FIXED_CTR_CTRL = 2 + 8 + 3 + 2.
    // Put: GLOBAL_STATUS read, 7 RDPMC, LVTPC = 1 + 7 + 1.
    const w = createMediated();
    expect(runCost(w)).toEqual({ msrs: 24, reprograms: 0 });
    expect(runCost(w)).toEqual({ msrs: 24, reprograms: 0 });
  });

  it('a guest counting on PMC0 and fixed counter 0: the counter writes and zeroings are counted too', () => {
    const w = createMediated();
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3n));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, (1n << 32n) | 0xfn));
    // Load: 15 + PMC0 + FIXED_CTR0 = 17. Put: 9 + FIXED_CTR_CTRL + PMC0 + EVNTSEL0 + FIXED_CTR0 = 13.
    expect(runCost(w, 5)).toEqual({ msrs: 30, reprograms: 0 });
  });

  it('with a status to toggle: the OVF_CTRL and STATUS_SET writes at load, the OVF_CTRL write at put', () => {
    const w = createMediated();
    expect(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_STATUS, 0b011n).ok).toBe(true);
    val(w.host.pcpu(0).hw.wrmsr(MSR_CORE_PERF_GLOBAL_STATUS_SET, 0b101n));
    // Load: 15 + OVF_CTRL + STATUS_SET = 17. Put: 9 + OVF_CTRL (the guest's 0b011 saved, then cleared) = 10.
    expect(runCost(w)).toEqual({ msrs: 27, reprograms: 0 });
  });

  it('reprogram_counter runs once per PMC KVM_REQ_PMU names: changed selectors and fixed fields, every PMC for a filter', () => {
    const w = createMediated();
    expect(runCost(w).reprograms).toBe(0);
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS));
    expect(runCost(w).reprograms).toBe(0); // the exit's own re-entry already handled the request
    expect(w.vcpu.cost.reprograms).toBe(1);
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS)); // the same value: no request (data == pmc->eventsel)
    expect(w.vcpu.cost.reprograms).toBe(1);
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x0b0n)); // only fixed counter 1's field changes
    expect(w.vcpu.cost.reprograms).toBe(2);
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, 0x303n)); // fields 0, 1 and 2 all change
    expect(w.vcpu.cost.reprograms).toBe(5);
    // KVM_SET_PMU_EVENT_FILTER sets every bit of reprogram_pmi: the 4 GP and 3 fixed PMCs the guest has.
    expect(w.vcpu.setPmuEventFilter({ action: 1, flags: 0, fixed_counter_bitmap: 0, events: [0x3cn] }).ok).toBe(true);
    expect(runCost(w).reprograms).toBe(7);
  });
});

describe("kvm_pmu_incr_counter on a fixed counter: a PMI only with the field's PMI bit", () => {
  /** Fixed counter 0 at −1 with `field`, GLOBAL_CTRL intercepted (2 GP counters), LVTPC unmasked on vector 0xe1. */
  const atMinusOne = (field: bigint) => {
    const w = createMediated({ nrGp: 2 });
    val(w.vcpu.guestWrmsr(X2APIC_LVTPC, 0xe1n));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, field));
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR0, MASK48));
    expect(w.vcpu.drainPmis()).toEqual([]);
    // Intercepted: the skipped WRMSR retires after it enabled fixed counter 0, which KVM bumps from −1 to 0.
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n << 32n));
    return w;
  };

  it('OS only, no PMI bit: the overflow bit is set and no PMI is injected', () => {
    const w = atMinusOne(0x1n);
    expect(w.vcpu.drainPmis()).toEqual([]);
    expect(val(w.vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(1n << 32n);
    expect(w.vcpu.cost.injectedPmis).toBe(0);
  });

  it('OS and PMI: the overflow bit and the PMI right after the instruction', () => {
    const w = atMinusOne(0x9n);
    expect(w.vcpu.drainPmis()).toEqual([{ afterUnit: 0, vector: 0xe1 }]);
    expect(val(w.vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_STATUS))).toBe(1n << 32n);
  });
});

describe("kvm_need_rdpmc_intercept compares the guest's counter widths with the host's", () => {
  /** A full Skylake guest (4 GP, 3 fixed) with the given counter widths, created as createMediated does. */
  const withWidths = (gpWidth: number, fixedWidth: number) => {
    const base = guestCpuid(SKYLAKE);
    const cpuid: GuestCpuid = {
      ...base,
      leaf0a: { ...base.leaf0a, eax: leaf0aEax(2, 4, gpWidth, SKYLAKE.evLen), edx: leaf0aEdx(3, fixedWidth) },
    };
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const vcpu = newMediatedVcpu(host, { cpu: 0, cpuid });
    expect(vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES).ok).toBe(true);
    return vcpu;
  };
  /** Whether the guest's RDPMC of PMC0 and of fixed counter 0 exit. */
  const rdpmcExits = (vcpu: ReturnType<typeof withWidths>) => {
    const before = vcpu.cost.rdpmcExits;
    val(vcpu.guestRdpmc(0, 0));
    val(vcpu.guestRdpmc(0x4000_0000, 0));
    return vcpu.cost.rdpmcExits - before;
  };

  it("both at the host's 48 bits: RDPMC runs in the guest", () => {
    expect(rdpmcExits(withWidths(48, 48))).toBe(0);
  });

  it("GP counters narrower than the host's: RDPMC exits", () => {
    const vcpu = withWidths(32, 48);
    expect(vcpu.s.pmu.counter_bitmask_gp).toBe((1n << 32n) - 1n);
    expect(rdpmcExits(vcpu)).toBe(2);
  });

  it("fixed counters narrower than the host's: RDPMC exits", () => {
    const vcpu = withWidths(48, 32);
    expect(vcpu.s.pmu.counter_bitmask_fixed).toBe((1n << 32n) - 1n);
    expect(rdpmcExits(vcpu)).toBe(2);
  });
});

describe('kvm_init_pmu_capability: no mediated vPMU without a vPMU', () => {
  it('a host without an architectural PMU has enable_pmu off, so enable_mediated_pmu is off too', () => {
    // A host perf cannot run on (no PMU: a guest of a hypervisor hiding it), so the capability is asked directly.
    const none = defineProfile({ ...SKYLAKE.spec, name: 'nopmu', leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 } });
    const cap = MEDIATED_OPS.kvm_init_pmu_capability(none, MEDIATED_OPS);
    expect(cap.enable_pmu).toBe(false);
    expect(cap.enableMediatedPmu).toBe(false);
    expect(cap.unavailable).toMatch(/^nopmu has no architectural PMU.*enable_pmu off/);
    expect(MEDIATED_OPS.kvm_init_pmu_capability(SKYLAKE, MEDIATED_OPS).unavailable).toBeNull();
  });
});
