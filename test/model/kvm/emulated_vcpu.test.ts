/**
 * A vCPU of the perf-based vPMU as KVM runs it (x86.c's vcpu_run loop around vmx.c): what each guest instruction costs
 * in exits and entries, when a PMI raised at an exit reaches the guest (at the next VM-entry, which a pending signal
 * defers to the next KVM_RUN), a PMI raised by a passed-through instruction, the #GP texts a guest sees, whose a host
 * PMI is while KVM handles an interrupt that exited a guest (kvm_guest_state), and the VM's vCPU list.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { DecisionLog, recording } from '../../../model/hw/relied.js';
import { HostKernel } from '../../../model/host/perf.js';
import { attr, type PerfEvent } from '../../../model/host/types.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { PRE_PMI_IN_GUEST_FIX_OPS } from '../../../model/kvm/bugs/812d432373f6_pmi_in_guest.js';
import { NO_GUEST_ARCH_LBR } from '../../../model/kvm/common/vcpu.js';
import {
  MSR_IA32_PERF_CAPABILITIES,
  PERF_CAP_FW_WRITES,
  PERF_CAP_LBR_FMT,
} from '../../../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import { DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import { MSR_LBR_TOS } from '../../../model/hw/msr/lbr_legacy.js';
import {
  createVcpu,
  defaultCpuid,
  exitsSpent,
  itCountsAnInterceptedInstruction,
  itInjectsAPmiRaisedAtAnExit,
  hostVal,
  INSTRUCTIONS,
  kvmSupportedPerfCaps,
  onlyExits,
  val,
  type World,
} from './util.js';

const INSNS = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTRUCTIONS;
const MASK48 = (1n << 48n) - 1n;
/** The guest's LVTPC: Fixed delivery, this vector, unmasked. */
const GUEST_VECTOR = 0xe1;
const insnUnits = (n: number, cpl = 0) => Array.from({ length: n }, () => ({ cpl, instructions: 1, cycles: 2 }));

/**
 * A guest whose PMC0 counts every instruction with INT and wraps at the `toGo`-th instruction it counts from now
 * (full-width writes), with guest LBR on when `lbr`: DEBUGCTL.LBR creates the guest LBR event, and each VM-entry passes
 * the LBR MSRs through while it runs.
 */
function armed(toGo: bigint, lbr = false): World {
  const w = createVcpu({ perfCaps: lbr ? kvmSupportedPerfCaps(SKYLAKE) : PERF_CAP_FW_WRITES, nrGp: 2 });
  val(w.vcpu.guestWrmsr(X2APIC_LVTPC, BigInt(GUEST_VECTOR)));
  if (lbr) val(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR));
  val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n));
  val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT));
  val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, MASK48 - toGo));
  val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n)); // intercepted: its skip is counted once it enables PMC0
  expect(w.vcpu.drainPmis()).toEqual([]);
  return w;
}

describe('the design a vCPU runs is named', () => {
  it('a vCPU says it is of the perf-based design', () => {
    expect(createVcpu().vcpu.design).toBe('emulated');
  });
});

describe('what each guest instruction costs: exits by kind, and VM-entries', () => {
  const spent = (w: World, f: () => void) => exitsSpent(w.vcpu, f);

  itCountsAnInterceptedInstruction(() => createVcpu({ nrGp: 2 }));

  it('a run is one entry; a PMI in it is an exit and an entry more', () => {
    const w = armed(4n);
    expect(spent(w, () => w.vcpu.guestRun(insnUnits(2)))).toEqual(onlyExits({ entries: 1 }));
    expect(spent(w, () => w.vcpu.guestRun(insnUnits(3)))).toEqual(onlyExits({ pmiExits: 1, entries: 2 }));
  });
});

describe("a PMI raised at an instruction's exit is injected at the next VM-entry", () => {
  itInjectsAPmiRaisedAtAnExit(() => armed(1n), GUEST_VECTOR);

  it('the VMM resuming KVM_RUN after the signal enters the guest, where the PMI is injected', () => {
    const w = armed(1n);
    val(w.vcpu.guestRdmsr(MSR_P6_EVNTSEL0, true));
    w.vcpu.resume();
    expect(w.vcpu.returnedAtExit).toBe(false);
    expect(w.vcpu.drainPmis()).toEqual([{ afterUnit: 0, vector: GUEST_VECTOR }]);
  });

  it('a vCPU that has not run, or ran without an exit of its own, did not return at one', () => {
    const w = createVcpu();
    expect(w.vcpu.returnedAtExit).toBe(false);
    w.vcpu.guestRun(insnUnits(2));
    expect(w.vcpu.returnedAtExit).toBe(false);
  });
});

describe('a PMI raised by a passed-through instruction', () => {
  it('exits the guest; the host NMI handler runs and KVM injects it at the entry back, after the instruction', () => {
    // Two to go, as perf arms no period shorter than 2 (x86_perf_event_set_period).
    const w = armed(2n, true);
    const { msrExits, pmiExits } = w.vcpu.cost;
    // The LBR MSRs are passed through while the guest LBR event runs: each RDMSR retires in guest mode.
    val(w.vcpu.guestRdmsr(MSR_LBR_TOS));
    expect(w.vcpu.drainPmis()).toEqual([]);
    val(w.vcpu.guestRdmsr(MSR_LBR_TOS));
    expect({ msrExits: w.vcpu.cost.msrExits - msrExits, pmiExits: w.vcpu.cost.pmiExits - pmiExits }).toEqual({
      msrExits: 0,
      pmiExits: 1,
    });
    expect(w.vcpu.drainPmis()).toEqual([{ afterUnit: 0, vector: GUEST_VECTOR }]);
  });
});

describe("a guest's #GP names the rule that refused it", () => {
  /** MSR_PKG_C3_RESIDENCY: no PMU MSR, unknown to the vPMU. */
  const UNKNOWN_MSR = 0x3f8;

  it('PERF_CAPABILITIES without PDCM in guest CPUID (a guest access, not KVM_GET_MSRS), and an MSR KVM does not know', () => {
    const w = createVcpu({ cpuid: { pdcm: false } });
    expect(w.vcpu.guestRdmsr(MSR_IA32_PERF_CAPABILITIES)).toEqual({
      ok: false,
      gp: 'IA32_PERF_CAPABILITIES: guest CPUID has no PDCM',
    });
    expect(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES).ok).toBe(true);
    expect(w.vcpu.guestRdmsr(UNKNOWN_MSR)).toEqual({ ok: false, gp: 'MSR 0x3f8: unknown to KVM' });
    expect(w.vcpu.guestWrmsr(UNKNOWN_MSR, 0n)).toEqual({ ok: false, gp: 'MSR 0x3f8: unknown to KVM' });
  });

  it('XSAVES and XRSTORS of the Arch LBR component #GP: the guest cannot set IA32_XSS.LBR', () => {
    const w = createVcpu();
    expect(w.vcpu.guestXsaves()).toEqual({ ok: false, gp: NO_GUEST_ARCH_LBR });
    const area = { lbrCtl: 0n, lbrDepth: 0n, lerFrom: 0n, lerTo: 0n, lerInfo: 0n, entries: [] };
    expect(w.vcpu.guestXrstors(area)).toEqual({ ok: false, gp: NO_GUEST_ARCH_LBR });
  });
});

describe('the decision a forced-emulation instruction rests on (K16)', () => {
  it('is recorded by an emulated instruction, not by an intercepted RDMSR', () => {
    const w = createVcpu();
    const ids = (f: () => void) => {
      const log = new DecisionLog();
      recording(log, f);
      return log.ids;
    };
    expect(ids(() => w.vcpu.guestEmulate('mov', 0))).toContain('K16');
    expect(ids(() => val(w.vcpu.guestRdmsr(MSR_P6_EVNTSEL0)))).not.toContain('K16');
  });
});

// kvm_guest_state: perf asks KVM, from its NMI handler, whether the PMI it handles on a pCPU is a guest's.
describe("whose a host PMI is: the guest's only while KVM handles the NMI that exited it, on that pCPU", () => {
  /** A host event on `cpu` sampling every 100 instructions, guest and host alike. */
  const sampling = (host: HostKernel, cpu: number): PerfEvent => {
    const ev = host.perf_event_open(attr({ config: INSTRUCTIONS, sample_period: 100n, pinned: true }), { cpu });
    if ('error' in ev) throw new Error(ev.error);
    return ev;
  };

  it("a second vCPU on the host keeps the first one's PMIs the guest's (one registration per host)", () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const a = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE) });
    new EmulatedVcpu(host, { cpu: 1, cpuid: defaultCpuid(SKYLAKE) });
    const ev = sampling(host, 0);
    a.guestRun([{ cpl: 3, instructions: 150 }]);
    expect(ev.samples.map((s) => s.inGuest)).toEqual([true]);
  });

  it('a PMI on another pCPU, while a vCPU handles its own NMI, is the host’s', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const a = new EmulatedVcpu(host, { cpu: 1, cpuid: defaultCpuid(SKYLAKE) });
    const ev = sampling(host, 0);
    // As on another pCPU at the same moment: vCPU a between kvm_before_interrupt(NMI) and kvm_after_interrupt.
    a.s.handling_intr_from_guest = 'nmi';
    host.runHost(0, [{ cpl: 0, instructions: 150 }]);
    a.s.handling_intr_from_guest = 'none';
    expect(ev.samples.map((s) => s.inGuest)).toEqual([false]);
  });

  it('before 812d432373f6 too, a PMI in host work after the NMI handler is the host’s (kvm_after_interrupt)', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const a = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE) }, PRE_PMI_IN_GUEST_FIX_OPS);
    const ev = sampling(host, 0);
    a.guestRun([{ cpl: 3, instructions: 150 }]);
    host.runHost(0, [{ cpl: 0, instructions: 100 }]);
    expect(ev.samples.map((s) => s.inGuest)).toEqual([true, false]);
  });
});

describe("the VM's vCPU list (kvm_for_each_vcpu)", () => {
  it('a destroyed vCPU leaves it and the others stay; destroying it again changes nothing', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const a = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE) });
    const b = new EmulatedVcpu(host, { cpu: 1, cpuid: defaultCpuid(SKYLAKE), vm: a.s.kvm });
    expect(a.s.kvm.vcpus).toEqual([a.s, b.s]);
    a.destroy();
    expect(a.s.kvm.vcpus).toEqual([b.s]);
    a.destroy();
    expect(a.s.kvm.vcpus).toEqual([b.s]);
  });
});

describe('lbrEnabled: guest LBR is on', () => {
  it('with the host LBR format, and off once a KVM_SET_CPUID2 of another model takes the LBRs away', () => {
    const w = createVcpu({ perfCaps: kvmSupportedPerfCaps(SKYLAKE) });
    expect(w.vcpu.lbrEnabled).toBe(true);
    // intel_pmu_refresh: no LBR records for a guest of another model, though PERF_CAPABILITIES keeps LBR_FMT.
    expect(w.vcpu.setCpuid({ ...defaultCpuid(SKYLAKE), model: SKYLAKE.model + 1 }).ok).toBe(true);
    expect(hostVal(w.vcpu.hostGetMsr(MSR_IA32_PERF_CAPABILITIES)) & PERF_CAP_LBR_FMT).not.toBe(0n);
    expect(w.vcpu.lbrEnabled).toBe(false);
  });
});
