/**
 * The VMM ABI of the vPMU, which bare metal cannot be the oracle of (kvm-vpmu.md §2.15, §2.18):
 * - KVM_GET_MSR_INDEX_LIST lists only MSRs a vCPU of this host can hold: on a vCPU given the
 *   host's whole PMU (KVM clamps it), every listed counter and control MSR keeps a value the VMM
 *   restores, so a saved VM restores (e33b6d79acac);
 * - every listed MSR survives KVM_GET_MSRS then KVM_SET_MSRS of what was read, at any time;
 * - without CPUID.PDCM, PERF_CAPABILITIES reads 0 and only 0 can be written (d75cac366f44);
 * - KVM_SET_CPUID2 is accepted before KVM_RUN and refused after it unless nothing changes (the same model set again,
 *   or one field or bit of it changed);
 * - KVM_SET_PMU_EVENT_FILTER refuses a bad action, an unknown flag, more than 300 events and a masked entry with bits
 *   outside its fields, and takes the edges that are valid;
 * - a VM created with KVM_PMU_CAP_DISABLE gives its vCPUs no vPMU whatever their CPUID (ba7bb663f554).
 */

import fc from 'fast-check';
import { type CpuidRegs, LBR_FMT_ARCH, leaf0aEax, leaf0aEdx, type Profile, perfCaps } from '../model/hw/profile.js';
import { bit } from '../model/hw/bits.js';
import { MSR_IA32_XSS, XFEATURE_LBR } from '../model/hw/msr/system.js';
import { MSR_ARCH_LBR_DEPTH } from '../model/hw/msr/lbr_arch.js';
import { Divergence, GuestRun, type WorldCommand } from '../scenarios/commands.js';
import { historyTo } from '../scenarios/observation.js';
import { adoptionOf, declaredFor, type KnownDivergence } from './expectations/types.js';
import {
  filterEdgeArb,
  VmmGetMsr,
  VmmRoundTrip,
  VmmSetPmuEventFilter,
  vmmMsrArb,
  vmmSetCpuidAgainArb,
  vmmSetCpuidArb,
  vmmSetMsrArb,
} from '../scenarios/vmm.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_PERF_METRICS } from '../model/hw/msr/capabilities.js';
import {
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../model/hw/msr/global.js';
import { KVM_PMU_CAP_DISABLE, type VpmuVcpu } from '../model/kvm/types.js';
import { probeSupportedPmu, supportedGuestArb, supportedOf } from '../scenarios/supported.js';

export interface VmmAbiRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly hostKernel?: HostKernelFactory | undefined;
  /** The design's declarations: those that opt in to ioctl results (vmm) may end a program. */
  readonly expectations?: readonly KnownDivergence[];
  readonly known?: Map<string, number>;
}

export class VmmAbiViolation extends Error {
  override readonly name = 'VmmAbiViolation';
}

/**
 * The guest a VMM gives the host's whole PMU (architectural v2, every counter, PDCM, full-width writes, and PERF_METRICS
 * where the design offers it).
 */
export function fullestGuest(host: Profile, perfMetrics = false, archLbr?: CpuidRegs): GuestConfig {
  const g = fullestPmuGuest(host, perfMetrics);
  if (archLbr === undefined) return g;
  // Arch LBR as KVM reports it, with the format an Arch LBR part enumerates.
  return {
    cpuid: { ...g.cpuid, archLbr: true, leaf1c: archLbr },
    perfCapabilities: g.perfCapabilities | BigInt(LBR_FMT_ARCH),
  };
}

function fullestPmuGuest(host: Profile, perfMetrics: boolean): GuestConfig {
  return {
    cpuid: {
      family: host.family,
      model: host.model,
      leaf0a: {
        eax: leaf0aEax(2, host.nGP, host.gpWidth, host.evLen),
        ebx: 0,
        ecx: 0,
        edx: leaf0aEdx(host.nFixedContig, host.fixedWidth),
      },
      pdcm: true,
    },
    perfCapabilities: perfCaps({ fwWrite: true, lbrFmt: 0, perfMetrics }),
  };
}

/**
 * A non-zero value MSR `m` of the fullest vCPU holds on hardware: 1 for a counter or control (LBR_CTL: LBREn), the
 * Arch LBR component for IA32_XSS (bit 0, x87, is no supervisor state), and for IA32_LBR_DEPTH the depth it reads.
 */
function holdable(x: VpmuVcpu, m: number): bigint {
  if (m === MSR_IA32_XSS) return bit(XFEATURE_LBR);
  if (m === MSR_ARCH_LBR_DEPTH) {
    const d = x.hostGetMsr(m);
    return d.ok && d.value !== 0n ? d.value : 1n;
  }
  return 1n;
}

/** Every listed counter and control MSR holds a non-zero restored value on the fullest vCPU. */
export function checkMsrIndexList(r: VmmAbiRun): void {
  const s = probeSupportedPmu(r.host, r.design, r.hostKernel);
  const w = new World({
    host: r.host,
    cpus: 1,
    guests: [fullestGuest(r.host, (s.perfCapabilities & PERF_CAP_PERF_METRICS) !== 0n, s.archLbr)],
    design: r.design,
    hostKernel: r.hostKernel,
  });
  const x = w.vcpus[0]!;
  for (const m of x.msrIndexList()) {
    if (m === MSR_IA32_PERF_CAPABILITIES) continue; // a feature MSR: its value is the model, not state
    const v = holdable(x, m);
    const set = x.hostSetMsr(m, v);
    const got = set.ok ? x.hostGetMsr(m) : set;
    if (!got.ok || got.value !== v)
      throw new VmmAbiViolation(
        `KVM_GET_MSR_INDEX_LIST lists MSR 0x${m.toString(16)}, but a vCPU with all of ${r.host.name}'s PMU cannot hold it: ` +
          `KVM_SET_MSRS 0x${m.toString(16)} <- 0x${v.toString(16)} ${set.ok ? `then KVM_GET_MSRS reads ${got.ok ? `0x${got.value.toString(16)}` : 'an error'}` : `fails (${set.error})`}`,
      );
  }
}

/**
 * The PMU MSRs test_pmu_config_disable's guest checks (check_msr: GLOBAL_CTRL, IA32_PMC0; EVNTSEL0 is one of the
 * P6 MSRs kvm_get_msr_common reads as 0 without a vPMU, K1), and more counters and controls.
 */
const PMU_PROBE = [
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0 + 2,
  MSR_IA32_PERFCTR0 + 2,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
];

/**
 * A VM created with KVM_PMU_CAP_DISABLE gives its vCPUs no vPMU, whatever CPUID the VMM sets (pmu_event_filter_test
 * test_pmu_config_disable: the guest's check_msr must #GP although its CPUID is KVM_GET_SUPPORTED_CPUID's): every
 * guest RDMSR of the probed PMU MSRs #GPs. Bare metal cannot judge a CPUID with a PMU that is not there; KVM's ABI
 * can. (RDPMC's #GP, which the selftest does not check, is in test/model/kvm/pmu_capability.test.ts.)
 */
export function checkPmuCapDisable(r: VmmAbiRun): void {
  const g = fullestGuest(r.host);
  const guest: GuestConfig = { ...g, cpuid: { ...g.cpuid, pdcm: false }, pmuCap: KVM_PMU_CAP_DISABLE };
  const w = new World({ host: r.host, cpus: 1, guests: [guest], design: r.design, hostKernel: r.hostKernel });
  const x = w.vcpus[0]!;
  for (const m of PMU_PROBE) {
    const got = x.guestRdmsr(m);
    if (got.ok)
      throw new VmmAbiViolation(
        `a vCPU of a VM created with KVM_PMU_CAP_DISABLE reads PMU MSR 0x${m.toString(16)} (0x${got.value.toString(16)}) where it must #GP: the VM's vPMU is off whatever CPUID says`,
      );
  }
}

export function checkVmmAbi(r: VmmAbiRun, guest: GuestConfig, cmds: readonly WorldCommand[]): void {
  checkMsrIndexList(r);
  checkPmuCapDisable(r);
  // Bare metal takes on what a declaration names for a host-initiated write, as for a guest WRMSR (W6).
  const adopt = adoptionOf(r.expectations ?? [], r.host);
  const w = new World({ host: r.host, cpus: 2, guests: [guest], design: r.design, hostKernel: r.hostKernel, adopt });
  try {
    fc.modelRun(() => ({ model: {}, real: w }), cmds);
  } catch (e) {
    // Only a declaration that opts in to ioctl results (a series' ABI change, named with its patch) ends the program.
    if (!(e instanceof Divergence) || e.observation.kind !== 'vmm') throw e;
    const now = w.guestConfig(e.observation.vcpu);
    const k = declaredFor(r.expectations ?? [], e.observation, {
      host: r.host,
      guest: now,
      history: historyTo(w.observations, e.observation),
      facts: w,
    });
    if (k === undefined) throw e;
    r.known?.set(k.id, (r.known.get(k.id) ?? 0) + 1);
  }
}

const getMsrArb: fc.Arbitrary<WorldCommand> = fc
  .oneof({ arbitrary: fc.constant(MSR_IA32_PERF_CAPABILITIES), weight: 2 }, { arbitrary: vmmMsrArb, weight: 1 })
  .map((m) => new VmmGetMsr(0, m));

export function vmmAbiProperty(r: VmmAbiRun) {
  return fc.property(
    // No chain: nothing below depends on the first guest, so the shrinker may shrink both.
    // Guests without a PMU come through KVM_SET_CPUID2 (vmmSetCpuidArb).
    fc.tuple(
      supportedGuestArb(r.host, supportedOf(r)),
      fc.array(
        fc.oneof(
          { arbitrary: vmmSetCpuidArb(r.host, supportedOf(r)), weight: 2 },
          { arbitrary: getMsrArb, weight: 2 },
          { arbitrary: vmmSetMsrArb(r.host, [MSR_IA32_PERF_CAPABILITIES]), weight: 2 },
          { arbitrary: fc.constant(new VmmRoundTrip(0)), weight: 1 },
          { arbitrary: fc.constant(new GuestRun(0, [])), weight: 2 }, // KVM_RUN: the model is frozen from here
          { arbitrary: vmmSetCpuidAgainArb, weight: 2 },
          { arbitrary: filterEdgeArb.map((f) => new VmmSetPmuEventFilter(f)), weight: 1 },
        ),
        { maxLength: 12, size: '+1' },
      ),
    ),
    ([guest, cmds]) => checkVmmAbi(r, guest, cmds),
  );
}
