/**
 * The parts of arch/x86/kvm/pmu.c both designs share (model/kvm/common/pmu.ts) where the selftests and kvm-unit-tests
 * do not look: what a PMI does for each LVTPC delivery mode (kvm_pmu_deliver_pmi → kvm_apic_local_deliver →
 * __apic_accept_irq in lapic.c), the capabilities of a host without an architectural PMU or GP counters
 * (kvm_init_pmu_capability), an event filter KVM_SET_PMU_EVENT_FILTER refuses or one removed, which CPL a fixed
 * counter counts an emulated instruction at (cpl_is_matched), and the reserved bits a refused KVM_SET_MSRS of a global
 * MSR names.
 * Expectations are upstream's (kvm-vpmu.md §2.10, lapic.c), not the port's output.
 */
import { describe, expect, it } from 'vitest';
import { APIC_LVT_MASKED, X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import { PERF_CAP_FW_WRITES } from '../../../model/hw/msr/capabilities.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../../model/hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../../model/hw/msr/global.js';
import { defineProfile, type Profile } from '../../../model/hw/profile.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { HostKernel } from '../../../model/host/perf.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { kvm_init_pmu_capability } from '../../../model/kvm/common/pmu.js';
import { KVM_PMU_EVENT_DENY } from '../../../model/kvm/common/filter.js';
import {
  createVcpu,
  defaultCpuid,
  fixedGlobalEnable,
  fixedPmcCtrl,
  hostVal,
  INSTRUCTIONS,
  isGp,
  val,
  work,
  type World,
} from './util.js';

const INSNS = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR | INSTRUCTIONS;
const MASK48 = (1n << 48n) - 1n;
const VECTOR = 0xe1n;
const insnUnits = (n: number) => Array.from({ length: n }, () => ({ cpl: 0, instructions: 1, cycles: 2 }));

/** A guest whose LVTPC is `lvtpc` and whose PMC0 counts instructions with INT, wrapping at the 2nd from now. */
function armed(lvtpc: bigint): World {
  const w = createVcpu({ perfCaps: PERF_CAP_FW_WRITES, nrGp: 2 });
  val(w.vcpu.guestWrmsr(X2APIC_LVTPC, lvtpc));
  val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n));
  val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, INSNS | ARCH_PERFMON_EVENTSEL_INT));
  val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, MASK48 - 2n));
  val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n));
  expect(w.vcpu.drainPmis()).toEqual([]);
  return w;
}

describe('a PMI per LVTPC delivery mode (kvm_apic_local_deliver, __apic_accept_irq)', () => {
  /**
   * APIC_DM_* >> 8, and what __apic_accept_irq does with each: Fixed and LowestPrio raise the LVT's vector, NMI an NMI
   * (vector 2), SMI, RemoteRead, INIT (edge-triggered, level 1) and StartUp are accepted without a vector the guest
   * sees; ExtINT falls to the "handled by kvm_apic_accept_pic_intr" case and is not accepted.
   */
  const MODES: readonly [name: string, mode: bigint, injected: number | null, accepted: boolean][] = [
    ['Fixed', 0n, Number(VECTOR), true],
    ['LowestPrio', 1n, Number(VECTOR), true],
    ['SMI', 2n, null, true],
    ['RemoteRead', 3n, null, true],
    ['NMI', 4n, 2, true],
    ['INIT', 5n, null, true],
    ['StartUp', 6n, null, true],
    ['ExtINT', 7n, null, false],
  ];

  for (const [name, mode, injected, accepted] of MODES)
    it(`${name}: ${injected === null ? 'nothing injected' : `vector ${injected} injected`}, LVTPC ${accepted ? 'masked (accepted, Intel-compatible guest)' : 'left unmasked (not accepted)'}`, () => {
      const lvtpc = (mode << 8n) | VECTOR;
      const w = armed(lvtpc);
      const pmis = w.vcpu.guestRun(insnUnits(3));
      expect(pmis).toEqual(injected === null ? [] : [{ afterUnit: 1, vector: injected }]);
      expect(val(w.vcpu.guestRdmsr(X2APIC_LVTPC))).toBe(accepted ? lvtpc | APIC_LVT_MASKED : lvtpc);
    });

  it('a masked LVTPC drops the PMI and stays as it is, whatever its mode', () => {
    for (const [name, mode] of MODES) {
      const lvtpc = APIC_LVT_MASKED | (mode << 8n) | VECTOR;
      const w = armed(lvtpc);
      expect(w.vcpu.guestRun(insnUnits(3)), name).toEqual([]);
      expect(val(w.vcpu.guestRdmsr(X2APIC_LVTPC)), name).toBe(lvtpc);
    }
  });
});

describe('kvm_init_pmu_capability: no vPMU on a host without an architectural PMU or without GP counters', () => {
  const leaf0a = SKYLAKE.spec.leaf0a;
  const HOSTS: readonly [string, Profile][] = [
    [
      'no GP counters',
      defineProfile({ ...SKYLAKE.spec, name: 'skylake-nogp', leaf0a: { ...leaf0a, eax: leaf0a.eax & ~0xff00 } }),
    ],
    [
      'no architectural PMU (CPUID.0AH all zero: a version 0 enumerates no counters)',
      defineProfile({ ...SKYLAKE.spec, name: 'skylake-nopmu', leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 } }),
    ],
  ];
  const NONE = {
    enable_pmu: false,
    version: 0,
    num_counters_gp: 0,
    num_counters_fixed: 0,
    bit_width_gp: 0,
    bit_width_fixed: 0,
    events_mask_len: 0,
    events_mask: 0,
  };

  for (const [what, host] of HOSTS)
    it(`${what}: enable_pmu off, kvm_pmu_cap all zero`, () => {
      expect(kvm_init_pmu_capability(host)).toEqual(NONE);
    });

  it("a VM on a host without GP counters: leaf 0xA all zero, the guest's PMU MSRs and RDPMC #GP", () => {
    // The host perf model drives GLOBAL_CTRL, so takes a v2+ host: the one without GP counters.
    const host = new HostKernel({ profile: HOSTS[0]![1], cpus: 1 });
    const vcpu = new EmulatedVcpu(host, { cpu: 0, cpuid: defaultCpuid(SKYLAKE) });
    expect(vcpu.supportedPmu().leaf0a).toEqual({ eax: 0, ebx: 0, ecx: 0, edx: 0 });
    expect(vcpu.s.pmu.version).toBe(0);
    expect(isGp(vcpu.guestRdmsr(MSR_CORE_PERF_GLOBAL_CTRL))).toBe(true);
    expect(isGp(vcpu.guestRdpmc(0, 0))).toBe(true);
  });

  it('a host with a PMU: its version capped at 2, counters at 8 GP and 3 fixed, widths and events as perf reports them', () => {
    expect(kvm_init_pmu_capability(SKYLAKE)).toEqual({
      enable_pmu: true,
      version: 2,
      num_counters_gp: SKYLAKE.nGP,
      num_counters_fixed: 3,
      bit_width_gp: SKYLAKE.gpWidth,
      bit_width_fixed: SKYLAKE.fixedWidth,
      events_mask_len: SKYLAKE.evLen,
      events_mask: SKYLAKE.eventsUnavailable,
    });
  });
});

describe('KVM_SET_PMU_EVENT_FILTER refused: the errno, the filter in place kept, no counter reprogrammed', () => {
  const EN = ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_USR;
  const denyInstructions = { action: KVM_PMU_EVENT_DENY, flags: 0, fixed_counter_bitmap: 0, events: [INSTRUCTIONS] };

  it('an invalid action is -EINVAL, and the guest still counts under the filter it had', () => {
    const w = createVcpu({ perfCaps: PERF_CAP_FW_WRITES, nrGp: 2 });
    expect(w.vcpu.setPmuEventFilter(denyInstructions)).toEqual({ ok: true, value: 0n });
    val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, 0n));
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, EN | INSTRUCTIONS));
    w.vcpu.guestRun([]);
    const reprograms = w.vcpu.cost.reprograms;
    expect(w.vcpu.setPmuEventFilter({ ...denyInstructions, action: 2 })).toMatchObject({ ok: false, errno: 'EINVAL' });
    expect(w.vcpu.s.requests.has('PMU'), 'no KVM_REQ_PMU').toBe(false);
    w.vcpu.guestRun(work(3, 10));
    expect(w.vcpu.cost.reprograms, 'no counter reprogrammed').toBe(reprograms);
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_PMC0)), 'still denied').toBe(0n);
  });

  it('the filter removed, the VM counts as before any filter: every PMC reprogrammed, the event counted again', () => {
    const w = createVcpu({ perfCaps: PERF_CAP_FW_WRITES, nrGp: 2 });
    expect(w.vcpu.setPmuEventFilter(denyInstructions)).toEqual({ ok: true, value: 0n });
    val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, 0n));
    val(w.vcpu.guestWrmsr(MSR_P6_EVNTSEL0, EN | INSTRUCTIONS));
    w.vcpu.guestRun(work(1, 10));
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_PMC0)), 'denied').toBe(0n);
    expect(w.vcpu.setPmuEventFilter(null)).toEqual({ ok: true, value: 0n });
    expect(w.vcpu.s.requests.has('PMU'), 'KVM_REQ_PMU').toBe(true);
    w.vcpu.guestRun(work(1, 10));
    expect(val(w.vcpu.guestRdmsr(MSR_IA32_PMC0))).toBe(10n);
  });
});

describe('cpl_is_matched: a fixed counter counts an emulated instruction at CPL 0 iff its OS bit, above iff its USR bit', () => {
  const FIELDS = [
    ['OS', 1n],
    ['USR', 2n],
    ['OS and USR', 3n],
  ] as const;
  for (const [name, field] of FIELDS)
    for (const cpl of [0, 3])
      it(`FIXED_CTR0 with ${name}, an instruction emulated at CPL ${cpl}`, () => {
        const w = createVcpu({ perfCaps: PERF_CAP_FW_WRITES });
        val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n));
        val(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(0, field)));
        val(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, fixedGlobalEnable(0)));
        const before = hostVal(w.vcpu.hostGetMsr(MSR_CORE_PERF_FIXED_CTR0));
        w.vcpu.guestEmulate('mov', cpl);
        const counted = (cpl === 0 ? field & 1n : field & 2n) !== 0n;
        expect(hostVal(w.vcpu.hostGetMsr(MSR_CORE_PERF_FIXED_CTR0)) - before).toBe(counted ? 1n : 0n);
      });
});

describe("KVM_SET_MSRS of a global MSR with a reserved bit fails, naming the bits of the vCPU's reserved mask", () => {
  it('GLOBAL_CTRL: a GP counter the guest lacks; GLOBAL_STATUS and GLOBAL_OVF_CTRL: a bit past the fixed counters', () => {
    const w = createVcpu({ perfCaps: PERF_CAP_FW_WRITES, nrGp: 2 });
    expect(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_CTRL, 0b111n)).toMatchObject({ ok: false, reservedBits: 0b100n });
    const past = fixedGlobalEnable(3);
    expect(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_STATUS, past | 1n)).toMatchObject({ ok: false, reservedBits: past });
    expect(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_OVF_CTRL, past)).toMatchObject({ ok: false, reservedBits: past });
    expect(w.vcpu.hostSetMsr(MSR_CORE_PERF_GLOBAL_CTRL, 0b11n)).toEqual({ ok: true, value: 0b11n });
  });
});
