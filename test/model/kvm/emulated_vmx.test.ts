/**
 * The VMX side of the perf-based vPMU (model/kvm/emulated/vmx.ts) where no selftest or kvm-unit-test looks: which
 * DEBUGCTL bits vmx_set_msr keeps, drops or refuses for the guest and for KVM_SET_MSRS on each host
 * (vmx_get_supported_debugctl, vmx_is_valid_debugctl), when such a write creates the guest LBR event, the LBR format
 * vmx_get_perf_capabilities offers from what perf reports, and the lazy release of a counter's perf event around a
 * VM-entry that finds the guest LBR event reclaimed (vmx_passthrough_lbr_msrs clears only the LBR's in-use bit).
 * Expectations are upstream's (kvm-vpmu.md §2.13, §2.15), not the port's output.
 */
import { describe, expect, it } from 'vitest';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { HostKernel, type X86PmuLbr } from '../../../model/host/perf.js';
import { attr, type PerfEvent } from '../../../model/host/types.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { PERF_CAP_FW_WRITES } from '../../../model/hw/msr/capabilities.js';
import {
  DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
  DEBUGCTLMSR_LBR,
  DEBUGCTLMSR_RTM_DEBUG,
  MSR_IA32_DEBUGCTLMSR,
} from '../../../model/hw/msr/debugctl.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { MSR_LBR_INFO_0, MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO } from '../../../model/hw/msr/lbr_legacy.js';
import {
  createVcpu,
  CYCLES,
  defaultCpuid,
  hostOk,
  hostVal,
  INSTRUCTIONS,
  kvmSupportedPerfCaps,
  val,
  work,
  type World,
} from './util.js';

const wr = (w: World, msr: number, v: bigint) => val(w.vcpu.guestWrmsr(msr, v), `WRMSR 0x${msr.toString(16)}`);
const rd = (w: World, msr: number) => val(w.vcpu.guestRdmsr(msr), `RDMSR 0x${msr.toString(16)}`);
const hostDebugctl = (w: World, v: bigint) => w.vcpu.hostSetMsr(MSR_IA32_DEBUGCTLMSR, v);

describe('DEBUGCTL.RTM_DEBUG: kept iff the host has RTM and the write is the host’s or the guest’s CPUID has RTM', () => {
  it('on a host with RTM, a guest with RTM in its CPUID sets it', () => {
    const w = createVcpu({ profile: SAPPHIRE_RAPIDS, cpuid: { tsx: true } });
    expect(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG)).toEqual({
      ok: true,
      value: DEBUGCTLMSR_RTM_DEBUG,
    });
    expect(rd(w, MSR_IA32_DEBUGCTLMSR)).toBe(DEBUGCTLMSR_RTM_DEBUG);
  });

  it('on a host with RTM, a guest without RTM in its CPUID takes a #GP for that bit', () => {
    const w = createVcpu({ profile: SAPPHIRE_RAPIDS, cpuid: { tsx: false } });
    expect(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG)).toMatchObject({
      ok: false,
      reservedBits: DEBUGCTLMSR_RTM_DEBUG,
    });
    expect(rd(w, MSR_IA32_DEBUGCTLMSR)).toBe(0n);
  });

  it('on a host with RTM, KVM_SET_MSRS sets it whatever the guest CPUID says (b333b8ebb85d)', () => {
    const w = createVcpu({ profile: SAPPHIRE_RAPIDS, cpuid: { tsx: false } });
    expect(hostVal(hostDebugctl(w, DEBUGCTLMSR_RTM_DEBUG))).toBe(DEBUGCTLMSR_RTM_DEBUG);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_DEBUGCTLMSR))).toBe(DEBUGCTLMSR_RTM_DEBUG);
  });

  it('on a host without RTM, neither the guest (whatever its CPUID) nor KVM_SET_MSRS can set it', () => {
    expect(SKYLAKE.tsx).toBe(false);
    const w = createVcpu({ profile: SKYLAKE, cpuid: { tsx: true } });
    expect(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_RTM_DEBUG)).toMatchObject({
      ok: false,
      reservedBits: DEBUGCTLMSR_RTM_DEBUG,
    });
    expect(hostOk(hostDebugctl(w, DEBUGCTLMSR_RTM_DEBUG))).toBe(false);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_DEBUGCTLMSR))).toBe(0n);
  });
});

describe('DEBUGCTL.LBR and FREEZE_LBRS_ON_PMI from KVM_SET_MSRS: offered iff KVM advertises an LBR format', () => {
  it('on an Arch LBR host (no LBR format advertised) FREEZE_LBRS_ON_PMI is refused and LBR dropped', () => {
    const w = createVcpu({ profile: SAPPHIRE_RAPIDS });
    expect(w.vcpu.supportedPerfCapabilities()).toBe(PERF_CAP_FW_WRITES);
    expect(hostOk(hostDebugctl(w, DEBUGCTLMSR_FREEZE_LBRS_ON_PMI))).toBe(false);
    expect(hostVal(hostDebugctl(w, DEBUGCTLMSR_LBR)), 'an unsupported LBR bit is ignored, not refused').toBe(0n);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_DEBUGCTLMSR))).toBe(0n);
    expect(w.vcpu.s.lbr.event).toBeNull();
  });

  it('on a legacy LBR host both are kept for a vCPU without guest LBR, which gets no guest LBR event', () => {
    // KVM advertises LBR_FMT, but this vCPU's PERF_CAPABILITIES has none: intel_pmu_lbr_is_enabled is false.
    const w = createVcpu({ profile: SKYLAKE, perfCaps: PERF_CAP_FW_WRITES });
    expect(w.vcpu.lbrEnabled).toBe(false);
    const both = DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
    expect(hostVal(hostDebugctl(w, both))).toBe(both);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_DEBUGCTLMSR))).toBe(both);
    expect(w.vcpu.s.lbr.event, 'no LBR event without guest LBR').toBeNull();
    // The guest itself may not set them.
    expect(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_FREEZE_LBRS_ON_PMI)).toMatchObject({
      ok: false,
      reservedBits: DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
    });
  });

  it('with guest LBR, a KVM_SET_MSRS of DEBUGCTL.LBR creates the guest LBR event, as the guest’s own write does', () => {
    const w = createVcpu({ profile: SKYLAKE, perfCaps: kvmSupportedPerfCaps(SKYLAKE) });
    expect(hostVal(hostDebugctl(w, DEBUGCTLMSR_LBR))).toBe(DEBUGCTLMSR_LBR);
    expect(w.vcpu.s.lbr.event).not.toBeNull();
  });
});

describe('vmx_get_perf_capabilities: the LBR format follows what perf reports', () => {
  /** Perf as upstream reports a legacy LBR probe that faulted: lbr_nr cleared, the call-stack map kept. */
  class ProbeFaultedKeepsCallstack extends HostKernel {
    override x86_perf_get_lbr(): X86PmuLbr {
      return { nr: 0, from: MSR_LBR_NHM_FROM, to: MSR_LBR_NHM_TO, info: MSR_LBR_INFO_0, hasCallstack: true };
    }
  }

  it('call-stack support without LBR records offers no LBR format and no records', () => {
    const host = new ProbeFaultedKeepsCallstack({ profile: SKYLAKE, cpus: 1, lbrProbeFaulted: true });
    const v = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE) });
    expect(v.supportedPerfCapabilities()).toBe(PERF_CAP_FW_WRITES);
    expect(v.s.lbrCaps.nr).toBe(0);
  });
});

describe('lazy release around a VM-entry that finds the guest LBR event reclaimed', () => {
  const INSNS = ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTRUCTIONS;
  const pmc0Event = (w: World) => w.vcpu.s.pmu.gp_counters[0]!.perf_event;

  /** `perf record -b -C <cpu>`: a pinned cpu event sampling branches, which takes the LBRs from the guest. */
  function hostLbrUser(w: World, cpu: number): PerfEvent {
    const r = w.host.perf_event_open(
      attr({
        config: CYCLES,
        sample_period: 1000n,
        pinned: true,
        branchSample: { user: true, kernel: true, callStack: false },
      }),
      { cpu },
    );
    if ('error' in r) throw new Error(r.error);
    return r;
  }

  /** A guest with DEBUGCTL.LBR set and PMC0 counted once, then disabled: its perf event is paused, not released. */
  function guestWithDisabledPmc0(): World {
    const w = createVcpu({ profile: SKYLAKE, perfCaps: kvmSupportedPerfCaps(SKYLAKE), cpus: 2, cpu: 0 });
    wr(w, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
    wr(w, MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_ENABLE);
    w.vcpu.guestRun(work(1, 10));
    wr(w, MSR_P6_EVNTSEL0, INSNS);
    expect(pmc0Event(w), 'PMC0 keeps its (paused) perf event').not.toBeNull();
    return w;
  }

  it('a counter the guest wrote since the last reschedule keeps its perf event', () => {
    const w = guestWithDisabledPmc0();
    const ev = pmc0Event(w);
    hostLbrUser(w, 0);
    expect(w.vcpu.s.lbr.event!.state, 'the guest LBR event is reclaimed').not.toBe('ACTIVE');
    w.vcpu.guestRun([]); // vmx_passthrough_lbr_msrs: re-intercept, clear the LBR's in-use bit only
    expect(w.vcpu.s.lbr.msr_passthrough).toBe(false);
    w.vcpu.migrate(1);
    w.vcpu.guestRun([]); // kvm_pmu_cleanup: PMC0 is in use (written since the last cleanup)
    expect(pmc0Event(w)).toBe(ev);
    expect(w.vcpu.s.lbr.event, 'DEBUGCTL.LBR is set: the guest LBR event stays').not.toBeNull();
  });

  it('a disabled counter the guest left alone since the last reschedule loses its perf event at the next one', () => {
    const w = guestWithDisabledPmc0();
    w.vcpu.migrate(1);
    w.vcpu.guestRun([]); // the first cleanup keeps PMC0 (written before it) and empties pmc_in_use
    expect(pmc0Event(w)).not.toBeNull();
    hostLbrUser(w, 1);
    expect(w.vcpu.s.lbr.event!.state, 'the guest LBR event is reclaimed').not.toBe('ACTIVE');
    w.vcpu.guestRun([]); // vmx_passthrough_lbr_msrs marks no counter in use
    w.vcpu.migrate(0);
    const released = w.vcpu.cost.perfReleases;
    w.vcpu.guestRun([]); // kvm_pmu_cleanup: PMC0 unused and not enabled
    expect(pmc0Event(w)).toBeNull();
    expect(w.vcpu.cost.perfReleases - released, "only PMC0's event goes").toBe(1);
    expect(w.vcpu.s.lbr.event).not.toBeNull();
  });
});
