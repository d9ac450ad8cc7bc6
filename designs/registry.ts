/**
 * The vPMU designs a report can name, by id: report.json stores the id, and `npm run replay`
 * and the main job's `--design` look it up here. A ported historical bug is a design of its own
 * (the faithful port with one patch reverted) and shares the faithful design's declared
 * divergences, so only the bug itself can fail the property.
 */

import fc from 'fast-check';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { HostKernel, type HostPerfOps } from '../model/host/perf.js';
import {
  FIXED_BY as GLOBAL_CTRL_MASK_FIX,
  PRE_GLOBAL_CTRL_MASK_FIX_OPS,
} from '../model/host/bugs/971079464001_global_ctrl_mask.js';
import { FIXED_BY as FAST_RDPMC_FIX, PRE_FAST_RDPMC_FIX_OPS } from '../model/kvm/bugs/5728a4a0ea79_fast_rdpmc.js';
import {
  FIXED_BY as V1_GLOBAL_CTRL_FIX,
  PRE_V1_GLOBAL_CTRL_FIX_OPS,
} from '../model/kvm/bugs/32c070a46533_v1_global_ctrl.js';
import { FIXED_BY as RDPMC_TYPE_FIX, PRE_RDPMC_TYPE_FIX_OPS } from '../model/kvm/bugs/7a0fc734c20d_rdpmc_type_flags.js';
import {
  FIXED_BY as UNAVAILABLE_EVENTS_FIX,
  PRE_UNAVAILABLE_ARCH_EVENTS_FIX_OPS,
} from '../model/kvm/bugs/cbbd1aa89139_unavailable_arch_events.js';
import {
  FIXED_BY as LBR_PROXIED_WRITE_FIX,
  PRE_LBR_PROXIED_WRITE_FIX_OPS,
} from '../model/kvm/bugs/ca674df13b19_lbr_proxied_write.js';
import {
  FIXED_BY as REFRESH_RESET_FIX,
  PRE_REFRESH_RESET_FIX_OPS,
} from '../model/kvm/bugs/1647b52757d5_refresh_without_reset.js';
import { FIXED_BY as PMI_IN_GUEST_FIX, PRE_PMI_IN_GUEST_FIX_OPS } from '../model/kvm/bugs/812d432373f6_pmi_in_guest.js';
import {
  FIXED_BY as PERF_CAPS_PDCM_FIX,
  PRE_PERF_CAPS_PDCM_FIX_OPS,
} from '../model/kvm/bugs/d75cac366f44_perf_caps_without_pdcm.js';
import {
  FIXED_BY as FILTER_EMULATED_FIX,
  FIXES as FILTER_EMULATED_INTRODUCED,
  PRE_FILTER_EMULATED_EVENTS_FIX_OPS,
} from '../model/kvm/bugs/dfdeda67ea2d_filter_emulated_events.js';
import { WRITE_PERIOD_FROM_VALUE_OPS } from '../model/kvm/fixes/0001_write_period_from_value.js';
import {
  FIXED_BY as MSR_LIST_FIXED_FIX,
  PRE_MSR_LIST_FIXED_FIX_OPS,
} from '../model/kvm/bugs/e33b6d79acac_msr_list_fixed.js';
import {
  FIXED_BY as LBR_IFF_PERF_FIX,
  PRE_LBR_IFF_PERF_FIX_OPS,
} from '../model/kvm/bugs/145dfad998ea_lbr_without_perf.js';
import {
  FIXED_BY as LEGACY_LBR_ON_ARCH_FIX,
  PRE_NO_LEGACY_LBR_ON_ARCH_LBR_FIX_OPS,
} from '../model/kvm/bugs/098f4c061ea1_legacy_lbr_on_arch_lbr.js';
import { RDPMC_PASSTHROUGH_UNEXPOSED_OPS } from '../model/kvm/bugs/mediated_rdpmc_passthrough.js';
import { EmulatedVcpu } from '../model/kvm/emulated/vcpu.js';
import { EMULATED_OPS, type EmulatedOps } from '../model/kvm/emulated/ops.js';
import { MediatedVcpu } from '../model/kvm/mediated/vcpu.js';
import { MEDIATED_OPS, type MediatedOps } from '../model/kvm/mediated/ops.js';
import { PRE_REUSE_OPS } from '../model/kvm/variants/pre_reuse.js';
import { HW_ASSIGNED_HOST_OPS, HW_ASSIGNED_OPS } from '../model/kvm/series/hw_assigned.js';
import { TOPDOWN_RAW_HOST_OPS, TOPDOWN_RAW_OPS } from '../model/kvm/series/topdown_raw.js';
import { TOPDOWN_REBUILT_OPS } from '../model/kvm/series/topdown_rebuilt.js';
import { ARCH_LBR_OPS } from '../model/kvm/series/arch_lbr.js';
import { Divergence, type WorldCommand } from '../scenarios/commands.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';
import type { Observation } from '../scenarios/observation.js';
import { CONFORMANCE_CPUS, runProgram } from '../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../properties/expectations/emulated.js';
import { EMULATED_INVISIBILITY_EXPECTATIONS } from '../properties/expectations/emulated_invisibility.js';
import { MEDIATED_EXPECTATIONS, MEDIATED_INVISIBILITY_EXPECTATIONS } from '../properties/expectations/mediated.js';
import { adoptionOf } from '../properties/expectations/types.js';
import {
  HW_ASSIGNED_ALL_EXPECTATIONS,
  HW_ASSIGNED_INVISIBILITY_EXPECTATIONS,
  HW_ASSIGNED_LEAKS,
} from '../properties/expectations/hw_assigned.js';
import {
  TOPDOWN_RAW_EXPECTATIONS,
  TOPDOWN_RAW_INVISIBILITY_EXPECTATIONS,
} from '../properties/expectations/topdown_raw.js';
import {
  TOPDOWN_REBUILT_EXPECTATIONS,
  TOPDOWN_REBUILT_INVISIBILITY_EXPECTATIONS,
} from '../properties/expectations/topdown_rebuilt.js';
import {
  ARCH_LBR_EXPECTATIONS,
  ARCH_LBR_INVISIBILITY_EXPECTATIONS,
  ARCH_LBR_DISTURBANCES,
  ARCH_LBR_LEAKS,
} from '../properties/expectations/arch_lbr.js';
import { checkDesign, type Design } from '../properties/design.js';
import { probeSupportedPmu } from '../scenarios/supported.js';
import { KVM_PORT_BASE } from '../model/kvm/base.js';
import { HOST_PERF_BASE } from '../model/host/base.js';
import type { Profile } from '../model/hw/profile.js';

/** A perf-based design: vCPUs that run the kernel functions of `ops` (EMULATED_OPS with a series' replacements). */
export function emulatedWith(ops: EmulatedOps): VcpuFactory {
  return (h, o) => new EmulatedVcpu(h, o, ops);
}

/** A mediated design: vCPUs that run the kernel functions of `ops`. */
export function mediatedWith(ops: MediatedOps): VcpuFactory {
  return (h, o) => new MediatedVcpu(h, o, ops);
}

/** A host kernel that runs the perf functions of `ops` (HOST_PERF_OPS with a perf patch's replacements). */
export function hostWith(ops: HostPerfOps): HostKernelFactory {
  return (o) => new HostKernel({ ...o, ops });
}

/** What a design built on today's perf-based vPMU declares: its divergences. */
const EMULATED_DECLARED = { expectations: EMULATED_EXPECTATIONS, invisibility: EMULATED_INVISIBILITY_EXPECTATIONS };

/** What a design built on the mediated vPMU declares, and where it cannot run. */
const MEDIATED_DECLARED = {
  expectations: MEDIATED_EXPECTATIONS,
  invisibility: MEDIATED_INVISIBILITY_EXPECTATIONS,
  unavailableOn: (host: Profile) => MEDIATED_OPS.kvm_init_pmu_capability(host, MEDIATED_OPS).unavailable,
  guestLbr: false,
  vpmu: 'mediated' as const,
};

/** The designs as written here; each then states its supported configuration and base (stated()). */
const DECLARED: readonly Declared[] = [
  {
    id: 'emulated',
    title: "upstream's perf-based vPMU",
    source: 'model/kvm/emulated',
    factory: emulatedWith(EMULATED_OPS),
    ...EMULATED_DECLARED,
  },
  {
    id: 'mediated',
    title: "upstream's mediated (pass-through) vPMU",
    source: 'model/kvm/mediated',
    factory: mediatedWith(MEDIATED_OPS),
    ...MEDIATED_DECLARED,
  },
  {
    id: 'bug/mediated-rdpmc-passthrough',
    title: 'bugs.md #14: the mediated vPMU passing RDPMC through to a guest with fewer counters than the host',
    source: 'model/kvm/bugs/mediated_rdpmc_passthrough.ts',
    factory: mediatedWith(RDPMC_PASSTHROUGH_UNEXPOSED_OPS),
    base: 'the port of Linux v7.0-rc1 with kvm_need_rdpmc_intercept ignoring unexposed counters',
    ...MEDIATED_DECLARED,
  },
  {
    id: 'pre-reuse',
    title: 'the perf-based vPMU before event reuse and lazy release (Linux 5.4; what seed 003 measured)',
    source: 'model/kvm/variants/pre_reuse.ts',
    factory: emulatedWith(PRE_REUSE_OPS),
    base: 'the port of Linux v7.0-rc1 with event reuse and lazy release taken out, as the perf-based vPMU was in Linux 5.4',
    ...EMULATED_DECLARED,
  },
  {
    id: 'hw-assigned',
    title:
      "seed 003: host perf allocates the counter, KVM drives it (Like Xu, 'Intel Virtual PMU Optimization' v2, 2019)",
    source: 'model/kvm/series/hw_assigned.ts',
    factory: emulatedWith(HW_ASSIGNED_OPS),
    hostKernel: hostWith(HW_ASSIGNED_HOST_OPS),
    expectations: HW_ASSIGNED_ALL_EXPECTATIONS,
    invisibility: HW_ASSIGNED_INVISIBILITY_EXPECTATIONS,
    leaks: HW_ASSIGNED_LEAKS,
    base: "Like Xu's 'Intel Virtual PMU Optimization' v2 (2019, on Linux 5.0) applied to pre-reuse, the port of Linux v7.0-rc1 with event reuse and lazy release taken out",
  },
  {
    id: 'topdown-raw',
    title:
      "seed 002: guest topdown, a slots event leading a virtual metrics event, PERF_METRICS handed over raw (Dapeng Mi, 'Enable topdown metrics feature for KVM vPMU' v4, 2023)",
    source: 'model/kvm/series/topdown_raw.ts',
    factory: emulatedWith(TOPDOWN_RAW_OPS),
    hostKernel: hostWith(TOPDOWN_RAW_HOST_OPS),
    expectations: TOPDOWN_RAW_EXPECTATIONS,
    invisibility: TOPDOWN_RAW_INVISIBILITY_EXPECTATIONS,
    base: "Dapeng Mi's 'Enable topdown metrics feature for KVM vPMU' v4 (2023) applied to the port of Linux v7.0-rc1",
  },
  {
    id: 'topdown-rebuilt',
    title:
      "Like Xu's topdown proposal: a metric event per PERF_METRICS byte, PERF_METRICS rebuilt from their counts ('Enable Fixed Counter3 and Topdown Perf Metrics' RFC, 2022)",
    source: 'model/kvm/series/topdown_rebuilt.ts',
    factory: emulatedWith(TOPDOWN_REBUILT_OPS),
    expectations: TOPDOWN_REBUILT_EXPECTATIONS,
    invisibility: TOPDOWN_REBUILT_INVISIBILITY_EXPECTATIONS,
    base: "Like Xu's 'Enable Fixed Counter3 and Topdown Perf Metrics' RFC (2022) applied to the port of Linux v7.0-rc1 (its host perf patch 3/8, bit 48 with FIXED_CTR3 in intel_set_masks, not ported)",
  },
  {
    id: 'arch-lbr',
    title:
      "seed 004's subject: guest Arch LBR with the host's depth, LBR_CTL in the VMCS, XSAVES of component 15 (Yang Weijiang, 'Introduce Architectural LBR for vPMU' v2, 2022)",
    source: 'model/kvm/series/arch_lbr.ts',
    factory: emulatedWith(ARCH_LBR_OPS),
    expectations: ARCH_LBR_EXPECTATIONS,
    invisibility: ARCH_LBR_INVISIBILITY_EXPECTATIONS,
    leaks: ARCH_LBR_LEAKS,
    disturbances: ARCH_LBR_DISTURBANCES,
    base: "Yang Weijiang's 'Introduce Architectural LBR for vPMU' v2 (2022) applied to the port of Linux v7.0-rc1 (#DB, INIT, SMM and nested VMX not ported)",
  },
  {
    id: `bug/${FAST_RDPMC_FIX}`,
    title: 'bug #41: "fast" RDPMC honoured on architectural PMUs (before 5728a4a0ea79)',
    source: 'model/kvm/bugs/5728a4a0ea79_fast_rdpmc.ts',
    factory: emulatedWith(PRE_FAST_RDPMC_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: FAST_RDPMC_FIX,
  },
  {
    id: `bug/${GLOBAL_CTRL_MASK_FIX}`,
    title: 'bug #1: host-only counters left enabled while the guest runs (before 971079464001)',
    source: 'model/host/bugs/971079464001_global_ctrl_mask.ts',
    factory: emulatedWith(EMULATED_OPS),
    hostKernel: hostWith(PRE_GLOBAL_CTRL_MASK_FIX_OPS),
    layer: 'perf',
    ...EMULATED_DECLARED,
    fixedBy: GLOBAL_CTRL_MASK_FIX,
  },
  {
    id: `bug/${LBR_PROXIED_WRITE_FIX}`,
    title:
      'bug #13: a proxied guest LBR write the hardware refuses faults in the host and succeeds for the guest (before ca674df13b19)',
    source: 'model/kvm/bugs/ca674df13b19_lbr_proxied_write.ts',
    factory: emulatedWith(PRE_LBR_PROXIED_WRITE_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: LBR_PROXIED_WRITE_FIX,
  },
  {
    id: `bug/${UNAVAILABLE_EVENTS_FIX}`,
    title:
      'bug #35: events CPUID.0AH.EBX marks unavailable never count, on GP and fixed counters (before cbbd1aa89139)',
    source: 'model/kvm/bugs/cbbd1aa89139_unavailable_arch_events.ts',
    factory: emulatedWith(PRE_UNAVAILABLE_ARCH_EVENTS_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: UNAVAILABLE_EVENTS_FIX,
  },
  {
    id: `bug/${V1_GLOBAL_CTRL_FIX}`,
    title:
      'bug #36: a PMU version 1 guest never counts, global_ctrl is checked without GLOBAL_CTRL (before 32c070a46533)',
    source: 'model/kvm/bugs/32c070a46533_v1_global_ctrl.ts',
    factory: emulatedWith(PRE_V1_GLOBAL_CTRL_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: V1_GLOBAL_CTRL_FIX,
  },
  {
    id: `bug/${RDPMC_TYPE_FIX}`,
    title: 'bug #42: RDPMC ECX[31:30] read as flags, types 0x8000 and 0xC000 accepted (before 7a0fc734c20d)',
    source: 'model/kvm/bugs/7a0fc734c20d_rdpmc_type_flags.ts',
    factory: emulatedWith(PRE_RDPMC_TYPE_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: RDPMC_TYPE_FIX,
  },
  {
    id: `bug/${PMI_IN_GUEST_FIX}`,
    title: "bug #9: a host PMI during an IRQ VM-exit is reported to perf as the guest's (before 812d432373f6)",
    source: 'model/kvm/bugs/812d432373f6_pmi_in_guest.ts',
    factory: emulatedWith(PRE_PMI_IN_GUEST_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: PMI_IN_GUEST_FIX,
  },
  {
    id: `bug/${REFRESH_RESET_FIX}`,
    title: 'bug #34: a new vCPU model (KVM_SET_CPUID2) keeps the old PMU state and events (before 1647b52757d5)',
    source: 'model/kvm/bugs/1647b52757d5_refresh_without_reset.ts',
    factory: emulatedWith(PRE_REFRESH_RESET_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: REFRESH_RESET_FIX,
  },
  {
    id: `bug/${PERF_CAPS_PDCM_FIX}`,
    title: 'bug #45: KVM_GET/SET_MSRS of PERF_CAPABILITIES work without CPUID.PDCM (before d75cac366f44)',
    source: 'model/kvm/bugs/d75cac366f44_perf_caps_without_pdcm.ts',
    factory: emulatedWith(PRE_PERF_CAPS_PDCM_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: PERF_CAPS_PDCM_FIX,
  },
  {
    id: `bug/${MSR_LIST_FIXED_FIX}`,
    title: 'bug #47: KVM_GET_MSR_INDEX_LIST lists fixed counters KVM cannot give a vCPU (before e33b6d79acac)',
    source: 'model/kvm/bugs/e33b6d79acac_msr_list_fixed.ts',
    factory: emulatedWith(PRE_MSR_LIST_FIXED_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: MSR_LIST_FIXED_FIX,
  },
  {
    id: `bug/${LEGACY_LBR_ON_ARCH_FIX}`,
    title:
      'bug #10: Arch LBR hosts offer the legacy-LBR guest LBR_FMT 0x3f and its non-existent LBR_SELECT/TOS (before 098f4c061ea1)',
    source: 'model/kvm/bugs/098f4c061ea1_legacy_lbr_on_arch_lbr.ts',
    factory: emulatedWith(PRE_NO_LEGACY_LBR_ON_ARCH_LBR_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: LEGACY_LBR_ON_ARCH_FIX,
  },
  {
    id: `bug/${LBR_IFF_PERF_FIX}`,
    title: 'bug #11: LBR_FMT offered on a host whose perf disabled the LBRs (before 145dfad998ea)',
    source: 'model/kvm/bugs/145dfad998ea_lbr_without_perf.ts',
    factory: emulatedWith(PRE_LBR_IFF_PERF_FIX_OPS),
    // The environment, not the patch: a host whose perf probe of the LBR MSRs faulted (H17).
    hostKernel: (o) => new HostKernel({ ...o, lbrProbeFaulted: true }),
    ...EMULATED_DECLARED,
    fixedBy: LBR_IFF_PERF_FIX,
  },
  {
    id: `bug/${FILTER_EMULATED_FIX}`,
    title: 'bug #49: instructions KVM emulates count on counters whose event the filter denies (before dfdeda67ea2d)',
    source: 'model/kvm/bugs/dfdeda67ea2d_filter_emulated_events.ts',
    factory: emulatedWith(PRE_FILTER_EMULATED_EVENTS_FIX_OPS),
    ...EMULATED_DECLARED,
    fixedBy: FILTER_EMULATED_FIX,
    fixes: FILTER_EMULATED_INTRODUCED,
  },
  {
    id: 'fix/0001-write-period-from-value',
    title: "reports/filed/0001's suggested fix: pmc_write_counter re-arms perf's period from the value written",
    source: 'model/kvm/fixes/0001_write_period_from_value.ts',
    factory: emulatedWith(WRITE_PERIOD_FROM_VALUE_OPS),
    expectations: EMULATED_EXPECTATIONS.filter((e) => e.id !== 'write-period-from-base'),
    invisibility: EMULATED_INVISIBILITY_EXPECTATIONS.filter((e) => e.id !== 'write-period-from-base'),
    base: 'the port of Linux v7.0-rc1 with the fix reports/filed/0001 suggests (not upstream)',
  },
];

type Declared = Omit<Design, 'supported'>;

/**
 * A design states what a VMM can get from it on a host, asked of its own kernel functions as a VMM asks /dev/kvm
 * (KVM_GET_SUPPORTED_CPUID, the feature MSRs), and the upstream tree it models: the port's base, with a ported bug's
 * fix reverted.
 */
function stated(d: Declared): Design {
  return {
    ...d,
    supported: (host) => probeSupportedPmu(host, d.factory, d.hostKernel),
    base:
      d.base ??
      (d.fixedBy === undefined
        ? KVM_PORT_BASE
        : `${d.layer === 'perf' ? HOST_PERF_BASE : KVM_PORT_BASE}, with ${d.fixedBy} reverted`),
  };
}

export const DESIGNS: readonly Design[] = DECLARED.map(stated);

export const DESIGN_IDS: readonly string[] = DESIGNS.map((d) => d.id);

export class UnknownDesignError extends Error {
  override readonly name = 'UnknownDesignError';
}

export function designById(id: string): Design {
  const d = DESIGNS.find((x) => x.id === id);
  if (d === undefined) throw new UnknownDesignError(`unknown design '${id}' (known: ${DESIGN_IDS.join(', ')})`);
  return checkDesign(d);
}

/**
 * Runs a plain program under design `id` on a built-in host with fc.modelRun: the first
 * observation where the guest and bare metal differ, or null. What committed regressions assert on.
 */
export function firstDivergence(
  host: string,
  guest: GuestConfig,
  program: readonly WorldCommand[],
  id: string,
  cpus = CONFORMANCE_CPUS,
): Observation | null {
  const profile = BUILTIN_PROFILES[host];
  if (profile === undefined) throw new Error(`unknown host profile '${host}'`);
  const d = designById(id);
  const adopt = adoptionOf(d.expectations, profile);
  const setup = () => ({
    model: {},
    real: new World({ host: profile, cpus, guests: [guest], design: d.factory, hostKernel: d.hostKernel, adopt }),
  });
  try {
    fc.modelRun(setup, program);
    return null;
  } catch (e) {
    if (e instanceof Divergence) return e.observation;
    throw e;
  }
}

/**
 * Runs a plain program as the conformance property does under design `id` on a built-in host: the
 * ids of the declared divergences it met, in order. What regressions of declared findings pin.
 */
export function knownDivergencesMet(
  host: string,
  guest: GuestConfig,
  program: readonly WorldCommand[],
  id: string,
): string[] {
  const profile = BUILTIN_PROFILES[host];
  if (profile === undefined) throw new Error(`unknown host profile '${host}'`);
  const d = designById(id);
  const known = new Map<string, number>();
  runProgram(
    { host: profile, design: d.factory, hostKernel: d.hostKernel, expectations: d.expectations, known },
    guest,
    program,
  );
  return [...known.keys()];
}
