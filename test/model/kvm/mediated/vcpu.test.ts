/**
 * A vCPU of the mediated vPMU as KVM runs it (x86.c's vcpu_run loop around vmx.c, kvm-vpmu.md §2.19): what each
 * guest instruction costs in exits and entries, when a PMI raised at an exit reaches the guest (at the next entry,
 * which a pending signal defers to the next KVM_RUN), where host work runs while the vCPU thread is preempted,
 * migrated or interrupted, the model's check that a PMI in guest mode arrives on the mediated vector, and the VM's
 * mediated PMU, which lives as long as one of its vCPUs (K13).
 */
import { describe, expect, it } from 'vitest';
import { defineProfile, leaf0aEax } from '../../../../model/hw/profile.js';
import { SKYLAKE } from '../../../../model/hw/profiles.js';
import { ModelError } from '../../../../model/hw/errors.js';
import { DecisionLog, recording } from '../../../../model/hw/relied.js';
import { PERF_GUEST_MEDIATED_PMI_VECTOR } from '../../../../model/host/mediated.js';
import { HostKernel } from '../../../../model/host/perf.js';
import { attr, type PerfEvent } from '../../../../model/host/types.js';
import {
  MediatedPmuBusy,
  MediatedUnavailable,
  MediatedVcpu,
  newMediatedVcpu,
} from '../../../../model/kvm/mediated/vcpu.js';
import { MEDIATED_OPS, type MediatedOps } from '../../../../model/kvm/mediated/ops.js';
import { NO_GUEST_ARCH_LBR } from '../../../../model/kvm/common/vcpu.js';
import { KVM_PMU_CAP_DISABLE } from '../../../../model/kvm/types.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES } from '../../../../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../../model/hw/msr/global.js';
import { APIC_DM_FIXED, APIC_DM_NMI, X2APIC_LVTPC } from '../../../../model/hw/msr/apic.js';
import { createMediated, guestCpuid, type MWorld, val } from './util.js';
import {
  exitsSpent,
  INSTRUCTIONS,
  itCountsAnInterceptedInstruction,
  itInjectsAPmiRaisedAtAnExit,
  onlyExits,
} from '../util.js';
import { thrownBy } from '../../../support/thrown.js';

const INSNS = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTRUCTIONS;
const MASK48 = (1n << 48n) - 1n;
/** The guest's LVTPC: Fixed delivery, this vector, unmasked. */
const GUEST_VECTOR = 0xe1;
const insnUnits = (n: number, cpl = 0) => Array.from({ length: n }, () => ({ cpl, instructions: 1, cycles: 2 }));

/**
 * A guest of 2 GP counters (so RDPMC and GLOBAL_CTRL exit) whose PMC0 counts every instruction with INT and stands at
 * −1: the next instruction KVM retires in software wraps it and asks for a PMI.
 */
function armed(): MWorld {
  const w = createMediated({ nrGp: 2 });
  val(w.vcpu.guestWrmsr(X2APIC_LVTPC, BigInt(GUEST_VECTOR)));
  val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n));
  val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT));
  val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, MASK48 - 1n));
  val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n)); // intercepted: counted once PMC0 is enabled, to −1
  expect(w.vcpu.drainPmis()).toEqual([]);
  expect(w.vcpu.hostGetMsr(MSR_IA32_PERFCTR0)).toEqual({ ok: true, value: MASK48 }); // KVM_GET_MSRS: no guest instruction
  return w;
}

describe('the errors a VMM sees and the design it runs are named', () => {
  it('MediatedUnavailable on a host without PMU v4, MediatedPmuBusy beside an include-guest host event', () => {
    const v3 = defineProfile({
      ...SKYLAKE.spec,
      name: 'v3',
      leaf0a: { ...SKYLAKE.spec.leaf0a, eax: leaf0aEax(3, 4, 48, 7) },
    });
    const unavailable = thrownBy(() =>
      newMediatedVcpu(new HostKernel({ profile: v3, cpus: 1 }), { cpu: 0, cpuid: guestCpuid(v3) }),
    );
    expect(unavailable).toBeInstanceOf(MediatedUnavailable);
    expect((unavailable as Error).name).toBe('MediatedUnavailable');
    const busy = thrownBy(() =>
      newMediatedVcpu(new HostKernel({ profile: SKYLAKE, cpus: 1, nmiWatchdog: true }), {
        cpu: 0,
        cpuid: guestCpuid(SKYLAKE),
      }),
    );
    expect(busy).toBeInstanceOf(MediatedPmuBusy);
    expect((busy as Error).name).toBe('MediatedPmuBusy');
  });

  it('a vCPU says it is of the mediated design', () => {
    expect(createMediated().vcpu.design).toBe('mediated');
  });
});

describe('what each guest instruction costs: exits by kind, and VM-entries', () => {
  const spent = (w: MWorld, f: () => void) => exitsSpent(w.vcpu, f);

  itCountsAnInterceptedInstruction(() => createMediated({ nrGp: 2 }));

  it('a passed-through instruction and a run are one entry each; a PMI in the run is an exit and an entry more', () => {
    const w = createMediated();
    expect(spent(w, () => val(w.vcpu.guestRdmsr(MSR_IA32_PERFCTR0)))).toEqual(onlyExits({ entries: 1 }));
    expect(spent(w, () => val(w.vcpu.guestRdpmc(0, 0)))).toEqual(onlyExits({ entries: 1 }));
    expect(spent(w, () => w.vcpu.guestRun(insnUnits(3)))).toEqual(onlyExits({ entries: 1 }));
    val(w.vcpu.guestWrmsr(X2APIC_LVTPC, BigInt(GUEST_VECTOR)));
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT));
    val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, MASK48 - 2n));
    expect(spent(w, () => w.vcpu.guestRun(insnUnits(3)))).toEqual(onlyExits({ pmiExits: 1, entries: 2 }));
  });
});

describe("a PMI raised at an instruction's exit is injected at the next VM-entry", () => {
  itInjectsAPmiRaisedAtAnExit(armed, GUEST_VECTOR);

  it('a signal at a passed-through instruction: KVM_RUN did not return at an exit of its own', () => {
    const w = createMediated();
    val(w.vcpu.guestRdmsr(MSR_IA32_PERFCTR0, true));
    expect(w.vcpu.returnedAtExit).toBe(false);
  });
});

describe("a guest's #GP names the rule that refused it", () => {
  /** MSR_PKG_C3_RESIDENCY: no PMU MSR, unknown to the vPMU. */
  const UNKNOWN_MSR = 0x3f8;

  it('PERF_CAPABILITIES without PDCM in guest CPUID, and an MSR KVM does not know', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const v = newMediatedVcpu(host, { cpu: 0, cpuid: { ...guestCpuid(SKYLAKE), pdcm: false } });
    expect(v.guestRdmsr(MSR_IA32_PERF_CAPABILITIES)).toEqual({
      ok: false,
      gp: 'IA32_PERF_CAPABILITIES: guest CPUID has no PDCM',
    });
    expect(v.guestRdmsr(UNKNOWN_MSR)).toEqual({ ok: false, gp: 'MSR 0x3f8: unknown to KVM' });
    expect(v.guestWrmsr(UNKNOWN_MSR, 0n)).toEqual({ ok: false, gp: 'MSR 0x3f8: unknown to KVM' });
  });
});

describe('no guest Arch LBR', () => {
  it('XSAVES of the Arch LBR component #GPs: the guest cannot set IA32_XSS.LBR', () => {
    expect(createMediated().vcpu.guestXsaves()).toEqual({ ok: false, gp: NO_GUEST_ARCH_LBR });
  });
});

describe('the vCPU thread and the host', () => {
  const hostInsns = (w: MWorld): PerfEvent => {
    const ev = w.host.perf_event_open(
      attr({ config: INSTRUCTIONS, pinned: true, exclude_guest: true, exclude_user: true }),
      { cpu: 0 },
    );
    if ('error' in ev) throw new Error(ev.error);
    return ev;
  };

  it("an external interrupt's handler runs as host work on the vCPU's pCPU, after the exit", () => {
    const w = createMediated();
    const ev = hostInsns(w);
    const before = w.host.perf_event_read_value(ev);
    w.vcpu.externalInterrupt(insnUnits(5));
    expect(w.host.perf_event_read_value(ev) - before).toBe(5n);
  });

  it('preemption runs the other work with the vCPU thread off its pCPU, then puts it back', () => {
    const w = createMediated();
    let during: number | null | undefined;
    w.vcpu.preempt(() => {
      during = w.host.taskCpu(w.vcpu.s.task);
    });
    expect(during).toBeNull();
    expect(w.host.taskCpu(w.vcpu.s.task)).toBe(0);
  });

  it('migration moves the thread and the vCPU; the guest counter carries over', () => {
    const w = createMediated();
    val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n));
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS)); // intercepted: counted after the write enables PMC0
    w.vcpu.guestRun(insnUnits(3));
    w.vcpu.migrate(1);
    expect(w.vcpu.cpu).toBe(1);
    expect(w.host.taskCpu(w.vcpu.s.task)).toBe(1);
    w.vcpu.guestRun(insnUnits(4));
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_PERFCTR0))).toBe(1n + 3n + 4n);
  });
});

describe('the model checks that a PMI in guest mode comes on the mediated vector', () => {
  /** The hardware LVTPC set to `lvtpc` after the load: as a port that routed the guest's PMIs elsewhere would. */
  const misrouted = (lvtpc: bigint): MediatedOps => ({
    ...MEDIATED_OPS,
    kvm_mediated_pmu_load(v) {
      MEDIATED_OPS.kvm_mediated_pmu_load(v);
      v.host.pcpu(v.cpu).hw.wrmsr(X2APIC_LVTPC, lvtpc);
    },
  });
  const overflowIn = (ops: MediatedOps) => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const v = new MediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(SKYLAKE) }, ops);
    expect(v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES).ok).toBe(true);
    val(v.guestWrmsr(X2APIC_LVTPC, BigInt(GUEST_VECTOR)));
    val(v.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT));
    val(v.guestWrmsr(MSR_IA32_PMC0, MASK48 - 2n));
    return thrownBy(() => v.guestRun(insnUnits(3)));
  };

  it('an NMI, even one naming the mediated vector, is a model error', () => {
    const e = overflowIn(misrouted(APIC_DM_NMI | BigInt(PERF_GUEST_MEDIATED_PMI_VECTOR)));
    expect(e).toBeInstanceOf(ModelError);
    expect((e as Error).message).toBe(
      `mediated: a PMI in guest mode went to vector ${PERF_GUEST_MEDIATED_PMI_VECTOR} (NMI), not the mediated vector`,
    );
  });

  it('so is a Fixed interrupt on another vector', () => {
    const e = overflowIn(misrouted(APIC_DM_FIXED | 0xe0n));
    expect(e).toBeInstanceOf(ModelError);
    expect((e as Error).message).toBe('mediated: a PMI in guest mode went to vector 224, not the mediated vector');
  });

  it('the faithful load raises none', () => {
    expect(overflowIn(MEDIATED_OPS)).toBeUndefined();
  });
});

describe("the VM's mediated PMU lives as long as one of its vCPUs (K13)", () => {
  /** A host user's event that counts the guest too: perf refuses it while a mediated PMU exists. */
  const includeGuestRefused = (host: HostKernel): boolean => {
    const r = host.perf_event_open(attr({ config: INSTRUCTIONS }), { cpu: 1 });
    if ('error' in r) return /^EOPNOTSUPP/.test(r.error);
    host.perf_event_release_kernel(r);
    return false;
  };
  const destroyed = (v: MediatedVcpu) => {
    const log = new DecisionLog();
    recording(log, () => v.destroy());
    return log.ids;
  };

  it('destroying one of two vCPUs keeps it; destroying the last releases it', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    const a = newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(SKYLAKE) });
    const b = newMediatedVcpu(host, { cpu: 1, cpuid: guestCpuid(SKYLAKE), vm: a.s.kvm });
    expect(destroyed(a)).not.toContain('K13');
    expect(includeGuestRefused(host)).toBe(true);
    expect(destroyed(b)).toContain('K13');
    expect(includeGuestRefused(host)).toBe(false);
  });

  it('a VM with its vPMU off has none, so its last vCPU releases nothing of another VM', () => {
    const host = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(SKYLAKE) });
    const off = newMediatedVcpu(host, { cpu: 1, cpuid: guestCpuid(SKYLAKE), pmuCap: KVM_PMU_CAP_DISABLE });
    expect(destroyed(off)).not.toContain('K13');
    expect(includeGuestRefused(host)).toBe(true);
  });
});

describe('the decision a forced-emulation instruction rests on (K16)', () => {
  it('is recorded by an emulated instruction, not by an intercepted RDMSR', () => {
    const w = createMediated();
    const ids = (f: () => void) => {
      const log = new DecisionLog();
      recording(log, f);
      return log.ids;
    };
    expect(ids(() => w.vcpu.guestEmulate('mov', 0))).toContain('K16');
    expect(ids(() => val(w.vcpu.guestRdmsr(MSR_P6_EVNTSEL0)))).not.toContain('K16');
  });
});
