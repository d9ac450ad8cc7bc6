/**
 * Planted faults: single-point changes of the kind a kernel patch could make (a wrong mask, an
 * off-by-one, a missed request, a step in the wrong order, state not cleared, a bit not restored at
 * VM-exit, a missed check), each a design of its own that replaces one kernel function of the seam
 * (model/kvm/faults/, model/host/faults/). Unlike the catalogue they are no historical bug: they
 * measure the search. `npm run bugs` reports them beside the catalogue; test/catalogue/faults.test.ts
 * holds each to being found within its budget on fixed seeds.
 */

import { designById, emulatedWith, hostWith, mediatedWith } from '../designs/registry.js';
import type { HostPerfOps } from '../model/host/perf.js';
import type { EmulatedOps } from '../model/kvm/emulated/ops.js';
import type { MediatedOps } from '../model/kvm/mediated/ops.js';
import type { CheckId } from '../properties/checks.js';
import type { Design } from '../properties/design.js';
import type { GenerationProfile } from '../scenarios/generation.js';
import * as HOST_PERF from '../model/host/faults/perf.js';
import * as C_FILTER from '../model/kvm/faults/common_filter.js';
import * as C_PMU from '../model/kvm/faults/common_pmu.js';
import * as C_PMU_H from '../model/kvm/faults/common_pmu_h.js';
import * as C_PMU_INTEL from '../model/kvm/faults/common_pmu_intel.js';
import * as C_VCPU from '../model/kvm/faults/common_vcpu.js';
import * as E_PMU from '../model/kvm/faults/emulated_pmu.js';
import * as E_PMU_INTEL from '../model/kvm/faults/emulated_pmu_intel.js';
import * as E_VMX from '../model/kvm/faults/emulated_vmx.js';
import * as E_X86 from '../model/kvm/faults/emulated_x86.js';
import * as M_PMU from '../model/kvm/faults/mediated_pmu.js';
import * as M_PMU_INTEL from '../model/kvm/faults/mediated_pmu_intel.js';
import * as M_VMX from '../model/kvm/faults/mediated_vmx.js';

/** The kind of change (issue 12's classes). */
export type FaultClass = 'MASK' | 'OBO' | 'REQ' | 'ORD' | 'CLR' | 'EXIT' | 'CHK' | 'UPD' | 'COND';

export interface PlantedFault {
  /** kebab-case name; the design is `fault/<id>`. */
  readonly id: string;
  /** The ported file the change is in, and the kernel function. */
  readonly file: string;
  readonly fn: string;
  readonly cls: FaultClass;
  /** What the patch changes, in one line. */
  readonly change: string;
  readonly design: Design;
  /** The faithful design the fault patches: its detection counts only where this one passes the same programs. */
  readonly base: Design;
  /** The check that must find it, its generation profile where it has one, and the built-in host. */
  readonly check: CheckId;
  readonly gen?: GenerationProfile;
  readonly host: string;
}

/** A fault no property can see, with the one-line argument; it is kept out of the count. */
export interface EquivalentFault {
  readonly id: string;
  readonly file: string;
  readonly fn: string;
  readonly change: string;
  readonly why: string;
}

const emulated = designById('emulated');
const mediated = designById('mediated');

type Where = Pick<PlantedFault, 'check' | 'gen' | 'host'>;
const quiet: Where = { check: 'conformance', gen: 'quiet', host: 'skylake' };
const driver: Where = { check: 'conformance', gen: 'driver', host: 'skylake' };
const lbrHeavy: Where = { check: 'conformance', gen: 'lbr-heavy', host: 'skylake' };
const srHeavy: Where = { check: 'conformance', gen: 'save-restore-heavy', host: 'skylake' };
const vmm: Where = { check: 'vmm-conformance', host: 'skylake' };
const abi: Where = { check: 'vmm-abi', host: 'skylake' };

type Base = Omit<PlantedFault, 'design' | 'base' | keyof Where>;

function onEmulated(b: Base, ops: EmulatedOps, w: Where): PlantedFault {
  return {
    ...b,
    ...w,
    base: emulated,
    design: { ...emulated, id: `fault/${b.id}`, title: b.change, factory: emulatedWith(ops) },
  };
}

function onMediated(b: Base, ops: MediatedOps, w: Where): PlantedFault {
  return {
    ...b,
    ...w,
    base: mediated,
    design: { ...mediated, id: `fault/${b.id}`, title: b.change, factory: mediatedWith(ops) },
  };
}

function onHost(b: Base, ops: HostPerfOps, w: Where): PlantedFault {
  return {
    ...b,
    ...w,
    base: emulated,
    design: { ...emulated, id: `fault/${b.id}`, title: b.change, hostKernel: hostWith(ops) },
  };
}

const C = 'model/kvm/common';
const E = 'model/kvm/emulated';
const M = 'model/kvm/mediated';

export const FAULTS: readonly PlantedFault[] = [
  // ---- common/pmu.ts ----
  onEmulated(
    {
      id: 'ovf-ctrl-no-clear',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_set_msr',
      cls: 'UPD',
      change: 'OVF_CTRL no longer clears GLOBAL_STATUS (`global_status &= ~data` deleted)',
    },
    C_PMU.OVF_CTRL_NO_CLEAR,
    driver,
  ),
  onEmulated(
    {
      id: 'ovf-ctrl-keeps-fixed-bits',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_set_msr',
      cls: 'MASK',
      change: 'OVF_CTRL clears only GP bits (`~data` became `~(data & 0xffffffff)`)',
    },
    C_PMU.OVF_CTRL_KEEPS_FIXED_BITS,
    driver,
  ),
  onEmulated(
    {
      id: 'ovf-ctrl-rsvd-unchecked',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_set_msr',
      cls: 'CHK',
      change: "OVF_CTRL's reserved-bit #GP deleted",
    },
    C_PMU.OVF_CTRL_RSVD_UNCHECKED,
    quiet,
  ),
  onEmulated(
    {
      id: 'status-writable-by-guest',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_set_msr',
      cls: 'CHK',
      change: 'GLOBAL_STATUS writable by the guest (`!host_initiated` #GP deleted)',
    },
    C_PMU.STATUS_WRITABLE_BY_GUEST,
    quiet,
  ),
  onEmulated(
    {
      id: 'host-status-rsvd-unchecked',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_set_msr',
      cls: 'CHK',
      change: "a VMM's GLOBAL_STATUS write takes any value (its `global_status_rsvd` check deleted)",
    },
    C_PMU.HOST_STATUS_RSVD_UNCHECKED,
    vmm,
  ),
  onEmulated(
    {
      id: 'global-ctrl-diff-one-way',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_set_msr',
      cls: 'MASK',
      change: 'GLOBAL_CTRL reprograms only what it enables (`ctrl ^ data` became `data & ~ctrl`)',
    },
    C_PMU.GLOBAL_CTRL_DIFF_ONE_WAY,
    driver,
  ),
  onEmulated(
    {
      id: 'global-ctrl-no-request',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_set_msr',
      cls: 'REQ',
      change: "GLOBAL_CTRL's change marks the counters but requests no KVM_REQ_PMU",
    },
    C_PMU.GLOBAL_CTRL_NO_REQUEST,
    driver,
  ),
  onEmulated(
    {
      id: 'ovf-ctrl-reads-status',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_get_msr',
      cls: 'MASK',
      change: 'RDMSR OVF_CTRL returns global_status instead of 0',
    },
    C_PMU.OVF_CTRL_READS_STATUS,
    quiet,
  ),
  onEmulated(
    {
      id: 'trigger-ignores-global-ctrl',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_trigger_event',
      cls: 'CHK',
      change: '`mask &= pmu->global_ctrl` deleted: emulated instructions count while GLOBAL_CTRL is 0',
    },
    C_PMU.TRIGGER_IGNORES_GLOBAL_CTRL,
    driver,
  ),
  onEmulated(
    {
      id: 'fixed-cpl-bits-swapped',
      file: `${C}/pmu.ts`,
      fn: 'cpl_is_matched',
      cls: 'MASK',
      change: "a fixed counter's OS and USR bits read swapped (`f & 2` ↔ `f & 1`)",
    },
    C_PMU.FIXED_CPL_BITS_SWAPPED,
    driver,
  ),
  onEmulated(
    {
      id: 'rdpmc-pce-ignored',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_rdpmc',
      cls: 'CHK',
      change: 'the CR4.PCE #GP at CPL > 0 deleted',
    },
    C_PMU.RDPMC_PCE_IGNORED,
    quiet,
  ),
  onEmulated(
    {
      id: 'global-msrs-on-v1',
      file: `${C}/pmu.ts`,
      fn: 'kvm_pmu_is_valid_msr',
      cls: 'OBO',
      change: 'the global MSRs valid from version 1 (`version > 1` became `> 0`)',
    },
    C_PMU.GLOBAL_MSRS_ON_V1,
    quiet,
  ),
  onEmulated(
    {
      id: 'lvtpc-not-masked-on-pmi',
      file: `${C}/pmu.ts`,
      fn: 'kvm_apic_local_deliver_lvtpc',
      cls: 'UPD',
      change: 'a delivered PMI leaves LVTPC unmasked (`reg | APIC_LVT_MASKED` store deleted)',
    },
    C_PMU.LVTPC_NOT_MASKED_ON_PMI,
    driver,
  ),
  onEmulated(
    {
      id: 'pmi-while-masked',
      file: `${C}/pmu.ts`,
      fn: 'kvm_apic_local_deliver_lvtpc',
      cls: 'CHK',
      change: 'the masked-LVTPC drop deleted: PMIs delivered while masked',
    },
    C_PMU.PMI_WHILE_MASKED,
    quiet,
  ),
  // ---- common/pmu.h.ts ----
  onEmulated(
    {
      id: 'globally-enabled-on-v1',
      file: `${C}/pmu.h.ts`,
      fn: 'pmc_is_globally_enabled',
      cls: 'COND',
      change: '`!kvm_pmu_has_perf_global_ctrl(pmu) ||` deleted: a v1 guest never counts',
    },
    C_PMU_H.GLOBALLY_ENABLED_ON_V1,
    driver,
  ),
  onEmulated(
    {
      id: 'recalc-ignores-enable',
      file: `${C}/pmu.h.ts`,
      fn: 'kvm_pmu_recalc_pmc_emulation',
      cls: 'CHK',
      change: '`if (!pmc_is_locally_enabled) return` deleted: disabled counters count emulated instructions',
    },
    C_PMU_H.RECALC_IGNORES_ENABLE,
    quiet,
  ),
  // ---- common/pmu_intel.ts ----
  onEmulated(
    {
      id: 'fixed-rsvd-pmi-bit',
      file: `${C}/pmu_intel.ts`,
      fn: 'intel_pmu_refresh',
      cls: 'MASK',
      change: "the fixed counters' PMI bit left reserved (`0xb << 4i` became `0x3 << 4i`)",
    },
    C_PMU_INTEL.FIXED_RSVD_PMI_BIT,
    driver,
  ),
  onEmulated(
    {
      id: 'gp-width-off-by-one',
      file: `${C}/pmu_intel.ts`,
      fn: 'intel_pmu_refresh',
      cls: 'OBO',
      change: 'GP counter width one bit short (`min(width, cap)` became `- 1`)',
    },
    C_PMU_INTEL.GP_WIDTH_OFF_BY_ONE,
    quiet,
  ),
  onEmulated(
    {
      id: 'legacy-write-zero-extended',
      file: `${C}/pmu_intel.ts`,
      fn: 'intel_pmu_set_msr',
      cls: 'MASK',
      change: 'legacy counter writes zero-extended (`(s64)(s32)data` became `(u32)data`)',
    },
    C_PMU_INTEL.LEGACY_WRITE_ZERO_EXTENDED,
    driver,
  ),
  onEmulated(
    {
      id: 'host-counter-write-sign-extended',
      file: `${C}/pmu_intel.ts`,
      fn: 'intel_pmu_set_msr',
      cls: 'COND',
      change:
        "a VMM's write of a counter's legacy alias is sign-extended from bit 31 as a guest's is (`!host_initiated &&` dropped)",
    },
    C_PMU_INTEL.HOST_COUNTER_WRITE_SIGN_EXTENDED,
    vmm,
  ),
  onEmulated(
    {
      id: 'fw-write-width-unchecked',
      file: `${C}/pmu_intel.ts`,
      fn: 'intel_pmu_set_msr',
      cls: 'CHK',
      change: 'the #GP of a full-width write above the width deleted',
    },
    C_PMU_INTEL.FW_WRITE_WIDTH_UNCHECKED,
    quiet,
  ),
  onEmulated(
    {
      id: 'eventsel-reprogram-before-store',
      file: `${C}/pmu_intel.ts`,
      fn: 'intel_pmu_set_msr',
      cls: 'ORD',
      change: 'a selector write requests its reprogram before storing the value',
    },
    C_PMU_INTEL.EVENTSEL_REPROGRAM_BEFORE_STORE,
    quiet,
  ),
  onEmulated(
    {
      id: 'selector-rsvd-unchecked',
      file: `${C}/pmu_intel.ts`,
      fn: 'intel_pmu_set_msr',
      cls: 'CHK',
      change: "the selectors' reserved-bit #GP deleted",
    },
    C_PMU_INTEL.SELECTOR_RSVD_UNCHECKED,
    quiet,
  ),
  onEmulated(
    {
      id: 'fixed-ctrl-rsvd-unchecked',
      file: `${C}/pmu_intel.ts`,
      fn: 'intel_pmu_set_msr',
      cls: 'CHK',
      change: "FIXED_CTR_CTRL's reserved-bit #GP deleted",
    },
    C_PMU_INTEL.FIXED_CTRL_RSVD_UNCHECKED,
    quiet,
  ),
  onEmulated(
    {
      id: 'fixed-reprogram-skips-last',
      file: `${C}/pmu_intel.ts`,
      fn: 'reprogram_fixed_counters',
      cls: 'OBO',
      change: 'the loop stops one counter short (`i < nr - 1`)',
    },
    C_PMU_INTEL.FIXED_REPROGRAM_SKIPS_LAST,
    driver,
  ),
  onEmulated(
    {
      id: 'fixed-snapshot-after-store',
      file: `${C}/pmu_intel.ts`,
      fn: 'reprogram_fixed_counters',
      cls: 'ORD',
      change: 'the old value is read after the store: no field looks changed',
    },
    C_PMU_INTEL.FIXED_SNAPSHOT_AFTER_STORE,
    driver,
  ),
  // ---- common/filter.ts ----
  onEmulated(
    {
      id: 'filter-allow-all-fixed',
      file: `${C}/filter.ts`,
      fn: 'is_fixed_event_allowed',
      cls: 'CHK',
      change: 'the ALLOW-and-not-in-bitmap return deleted',
    },
    C_FILTER.FILTER_ALLOW_ALL_FIXED,
    vmm,
  ),
  onEmulated(
    {
      id: 'filter-excludes-ignored',
      file: `${C}/filter.ts`,
      fn: 'is_gp_event_allowed',
      cls: 'CHK',
      change: '`&& !filter_contains_match(excludes)` deleted',
    },
    C_FILTER.FILTER_EXCLUDES_IGNORED,
    vmm,
  ),
  // ---- common/vcpu.ts ----
  onEmulated(
    {
      id: 'lvtpc-mask-not-writable',
      file: `${C}/vcpu.ts`,
      fn: 'kvm_set_msr_common',
      cls: 'MASK',
      change: 'LVTPC keeps only bits 10:0 (`data & LVTPC_WRITABLE` became `data & 0x7ff`)',
    },
    C_VCPU.LVTPC_MASK_NOT_WRITABLE,
    quiet,
  ),
  onEmulated(
    {
      id: 'perf-caps-guest-write-dropped',
      file: `${C}/vcpu.ts`,
      fn: 'kvm_set_msr_common',
      cls: 'CHK',
      change: 'a guest write of PERF_CAPABILITIES dropped without the read-only #GP',
    },
    C_VCPU.PERF_CAPS_GUEST_WRITE_DROPPED,
    quiet,
  ),
  onEmulated(
    {
      id: 'msr-list-globals-v3',
      file: `${C}/vcpu.ts`,
      fn: 'kvm_probe_msr_to_save',
      cls: 'OBO',
      change: 'FIXED_CTR_CTRL and the global MSRs listed from version 3 (`>= 2` became `>= 3`)',
    },
    C_VCPU.MSR_LIST_GLOBALS_V3,
    srHeavy,
  ),
  onEmulated(
    {
      id: 'set-cpuid-after-run-accepted',
      file: `${C}/vcpu.ts`,
      fn: 'kvm_set_cpuid',
      cls: 'CHK',
      change: 'a different CPUID after KVM_RUN accepted (the -EINVAL deleted)',
    },
    C_VCPU.SET_CPUID_AFTER_RUN_ACCEPTED,
    abi,
  ),
  onEmulated(
    {
      id: 'set-cpuid-entries-unchecked',
      file: `${C}/vcpu.ts`,
      fn: 'kvm_set_cpuid',
      cls: 'CHK',
      change: "after KVM_RUN only the number of CPUID entries is compared (each entry's compare deleted)",
    },
    C_VCPU.SET_CPUID_ENTRIES_UNCHECKED,
    abi,
  ),
  onEmulated(
    {
      id: 'set-cpuid-clears-debugctl',
      file: `${C}/vcpu.ts`,
      fn: 'kvm_set_cpuid',
      cls: 'CLR',
      change: 'KVM_SET_CPUID2 before KVM_RUN also clears the guest DEBUGCTL (a VMCS field only vmx_vcpu_reset clears)',
    },
    C_VCPU.SET_CPUID_CLEARS_DEBUGCTL,
    vmm,
  ),
  // ---- emulated/pmu.ts ----
  onEmulated(
    {
      id: 'write-counter-ignores-perf-count',
      file: `${E}/pmu.ts`,
      fn: 'pmc_write_counter',
      cls: 'UPD',
      change: '`counter += val - pmc_read_counter()` became `counter = val`',
    },
    E_PMU.WRITE_COUNTER_IGNORES_PERF_COUNT,
    driver,
  ),
  onEmulated(
    {
      id: 'pause-overflow-off-by-one',
      file: `${E}/pmu.ts`,
      fn: 'pmc_pause_counter',
      cls: 'OBO',
      change: '`counter < prev` became `<=`',
    },
    E_PMU.PAUSE_OVERFLOW_OFF_BY_ONE,
    driver,
  ),
  onEmulated(
    {
      id: 'resume-keeps-old-period',
      file: `${E}/pmu.ts`,
      fn: 'pmc_resume_counter',
      cls: 'UPD',
      change: 'the `perf_event_period(get_sample_period(pmc->counter))` step before perf_event_enable deleted',
    },
    E_PMU.RESUME_KEEPS_OLD_PERIOD,
    driver,
  ),
  onEmulated(
    {
      id: 'reprogram-ignores-global',
      file: `${E}/pmu.ts`,
      fn: 'reprogram_counter',
      cls: 'CHK',
      change: '`!pmc_is_globally_enabled ||` deleted',
    },
    E_PMU.REPROGRAM_IGNORES_GLOBAL,
    driver,
  ),
  onEmulated(
    {
      id: 'overflow-ignores-int',
      file: `${E}/pmu.ts`,
      fn: '__kvm_perf_overflow',
      cls: 'CHK',
      change: '`if (pmc->intr)` deleted: every overflow requests a PMI',
    },
    E_PMU.OVERFLOW_IGNORES_INT,
    driver,
  ),
  onEmulated(
    {
      id: 'overflow-no-reprogram',
      file: `${E}/pmu.ts`,
      fn: 'kvm_perf_overflow',
      cls: 'REQ',
      change: '`reprogram_pmi |= b` deleted',
    },
    E_PMU.OVERFLOW_NO_REPROGRAM,
    driver,
  ),
  onEmulated(
    {
      id: 'incr-counter-no-request',
      file: `${E}/pmu.ts`,
      fn: 'kvm_pmu_incr_counter',
      cls: 'REQ',
      change: 'kvm_pmu_request_counter_reprogram deleted',
    },
    E_PMU.INCR_COUNTER_NO_REQUEST,
    driver,
  ),
  onEmulated(
    {
      id: 'reset-keeps-status',
      file: `${E}/pmu.ts`,
      fn: 'kvm_pmu_reset',
      cls: 'CLR',
      change: '`pmu->global_status = 0` deleted',
    },
    E_PMU.RESET_KEEPS_STATUS,
    vmm,
  ),
  onEmulated(
    {
      id: 'refresh-no-global-ctrl-reset',
      file: `${E}/pmu.ts`,
      fn: 'kvm_pmu_refresh',
      cls: 'CLR',
      change: "de120e1d692d's RESET value of GLOBAL_CTRL dropped",
    },
    E_PMU.REFRESH_NO_GLOBAL_CTRL_RESET,
    quiet,
  ),
  onEmulated(
    {
      id: 'cleanup-releases-enabled',
      file: `${E}/pmu.ts`,
      fn: 'kvm_pmu_cleanup',
      cls: 'COND',
      change: '`&& !pmc_is_locally_enabled` deleted',
    },
    E_PMU.CLEANUP_RELEASES_ENABLED,
    srHeavy,
  ),
  // ---- emulated/pmu_intel.ts ----
  onEmulated(
    {
      id: 'legacy-freeze-on-v4',
      file: `${E}/pmu_intel.ts`,
      fn: 'intel_pmu_deliver_pmi',
      cls: 'OBO',
      change: '`v > 1 && v < 4` became `v > 1`',
    },
    E_PMU_INTEL.LEGACY_FREEZE_ON_V4,
    // Only a v4+ guest tells the two conditions apart, and KVM reports version 2: beyond-supported makes such guests.
    { check: 'lbr-freeze', gen: 'beyond-supported', host: 'skylake' },
  ),
  onEmulated(
    {
      id: 'freeze-without-frz',
      file: `${E}/pmu_intel.ts`,
      fn: 'intel_pmu_legacy_freezing_lbrs_on_pmi',
      cls: 'CHK',
      change: 'the FREEZE_LBRS_ON_PMI test deleted',
    },
    E_PMU_INTEL.FREEZE_WITHOUT_FRZ,
    { check: 'lbr-freeze', host: 'skylake' },
  ),
  onEmulated(
    {
      id: 'no-legacy-freeze',
      file: `${E}/pmu_intel.ts`,
      fn: 'intel_pmu_deliver_pmi',
      cls: 'REQ',
      change: 'the call of intel_pmu_legacy_freezing_lbrs_on_pmi deleted',
    },
    E_PMU_INTEL.NO_LEGACY_FREEZE,
    { check: 'lbr-freeze', host: 'skylake' },
  ),
  // ---- emulated/vmx.ts ----
  onEmulated(
    {
      id: 'debugctl-no-frz',
      file: `${E}/vmx.ts`,
      fn: 'vmx_get_supported_debugctl',
      cls: 'MASK',
      change: '`LBR | FREEZE_LBRS_ON_PMI` became `LBR`',
    },
    E_VMX.DEBUGCTL_NO_FRZ,
    lbrHeavy,
  ),
  onEmulated(
    {
      id: 'exit-keeps-guest-global-ctrl',
      file: `${E}/vmx.ts`,
      fn: 'vmx_vcpu_exit',
      cls: 'EXIT',
      change: "VM-exit's load of the host GLOBAL_CTRL dropped",
    },
    E_VMX.EXIT_KEEPS_GUEST_GLOBAL_CTRL,
    { check: 'host-undisturbed', host: 'skylake' },
  ),
  // ---- emulated/x86.ts ----
  onEmulated(
    {
      id: 'pmi-before-pmu-request',
      file: `${E}/x86.ts`,
      fn: 'vcpu_enter_guest',
      cls: 'ORD',
      change: 'KVM_REQ_PMI handled before KVM_REQ_PMU',
    },
    E_X86.PMI_BEFORE_PMU_REQUEST,
    driver,
  ),
  // ---- mediated/pmu.ts ----
  onMediated(
    {
      id: 'med-emul-overflow-no-status',
      file: `${M}/pmu.ts`,
      fn: 'kvm_pmu_incr_counter',
      cls: 'UPD',
      change: '`global_status |= BIT(pmc->idx)` deleted',
    },
    M_PMU.MED_EMUL_OVERFLOW_NO_STATUS,
    driver,
  ),
  onMediated(
    {
      id: 'med-emul-pmi-ignores-int',
      file: `${M}/pmu.ts`,
      fn: 'kvm_pmu_incr_counter',
      cls: 'CHK',
      change: '`if (pmc_pmi_enabled(pmc))` deleted: every wrap by an emulated event requests a PMI',
    },
    M_PMU.MED_EMUL_PMI_IGNORES_INT,
    driver,
  ),
  onMediated(
    {
      id: 'med-refresh-no-vmcs-ctrl',
      file: `${M}/pmu.ts`,
      fn: 'kvm_pmu_refresh',
      cls: 'UPD',
      change: 'intel_pmu_write_global_ctrl of the RESET value deleted',
    },
    M_PMU.MED_REFRESH_NO_VMCS_CTRL,
    driver,
  ),
  onMediated(
    {
      id: 'med-global-passthrough-partial',
      file: `${M}/pmu.ts`,
      fn: 'kvm_need_perf_global_ctrl_intercept',
      cls: 'COND',
      change: '`kvm_need_any_pmc_intercept(vcpu) ||` deleted',
    },
    M_PMU.MED_GLOBAL_PASSTHROUGH_PARTIAL,
    quiet,
  ),
  onMediated(
    {
      id: 'med-reset-keeps-status',
      file: `${M}/pmu.ts`,
      fn: 'kvm_pmu_reset',
      cls: 'CLR',
      change: '`pmu->global_status = 0` deleted',
    },
    M_PMU.MED_RESET_KEEPS_STATUS,
    vmm,
  ),
  onMediated(
    {
      id: 'med-filter-skips-gp',
      file: `${M}/pmu.ts`,
      fn: 'kvm_mediated_pmu_refresh_event_filter',
      cls: 'CHK',
      change: "the `pmc_is_gp(pmc)` branch deleted: a GP selector's ENABLE is never cleared for a denied event",
    },
    M_PMU.MED_FILTER_SKIPS_GP,
    vmm,
  ),
  // ---- mediated/pmu_intel.ts ----
  onMediated(
    {
      id: 'med-put-status-or',
      file: `${M}/pmu_intel.ts`,
      fn: 'intel_mediated_pmu_put',
      cls: 'CLR',
      change: '`global_status = rdmsr(STATUS)` became `|=`',
    },
    M_PMU_INTEL.MED_PUT_STATUS_OR,
    driver,
  ),
  onMediated(
    {
      id: 'med-status-set-gp-only',
      file: `${M}/pmu_intel.ts`,
      fn: 'intel_mediated_pmu_load',
      cls: 'MASK',
      change: 'STATUS_SET takes `& 0xffffffff`: fixed bits never restored',
    },
    M_PMU_INTEL.MED_STATUS_SET_GP_ONLY,
    driver,
  ),
  onMediated(
    {
      id: 'med-load-fixed-ctrl-unfiltered',
      file: `${M}/pmu_intel.ts`,
      fn: 'intel_mediated_pmu_load',
      cls: 'MASK',
      change: '`fixed_ctr_ctrl_hw` became `fixed_ctr_ctrl`: the filter is bypassed',
    },
    M_PMU_INTEL.MED_LOAD_FIXED_CTRL_UNFILTERED,
    vmm,
  ),
  // ---- mediated/vmx.ts ----
  onMediated(
    {
      id: 'med-global-ctrl-not-read-back',
      file: `${M}/vmx.ts`,
      fn: 'vmx_vcpu_exit',
      cls: 'EXIT',
      change: "VM-exit's read-back of a passed-through GLOBAL_CTRL deleted",
    },
    M_VMX.MED_GLOBAL_CTRL_NOT_READ_BACK,
    driver,
  ),
  onMediated(
    {
      id: 'med-pmcx-without-fw',
      file: `${M}/vmx.ts`,
      fn: 'vmx_recalc_pmu_msr_intercepts',
      cls: 'COND',
      change: '`!fw_writes_is_enabled(vcpu)` became `false`',
    },
    M_VMX.MED_PMCX_WITHOUT_FW,
    quiet,
  ),
  // ---- model/host/perf.ts ----
  onHost(
    {
      id: 'host-guest-ctrl-drops-fixed',
      file: 'model/host/perf.ts',
      fn: 'intel_guest_get_msrs',
      cls: 'MASK',
      change: "the guest's GLOBAL_CTRL takes `& 0xffffffff`",
    },
    HOST_PERF.GUEST_CTRL_DROPS_FIXED,
    driver,
  ),
  onHost(
    {
      id: 'host-preset-off-by-one',
      file: 'model/host/perf.ts',
      fn: 'x86_perf_event_set_period',
      cls: 'OBO',
      change: '`-left` became `-left + 1`',
    },
    HOST_PERF.PRESET_OFF_BY_ONE,
    driver,
  ),
  onHost(
    {
      id: 'host-config-drops-int',
      file: 'model/host/perf.ts',
      fn: 'x86_pmu_enable_event',
      cls: 'MASK',
      change: 'the GP select written without ARCH_PERFMON_EVENTSEL_INT',
    },
    HOST_PERF.CONFIG_DROPS_INT,
    driver,
  ),
];

export const EQUIVALENT_FAULTS: readonly EquivalentFault[] = [
  {
    id: 'vcpu-load-no-cleanup',
    file: `${E}/x86.ts`,
    fn: 'kvm_arch_vcpu_load',
    change: 'the lazy-cleanup request (`need_cleanup = true`, KVM_REQ_PMU) deleted',
    why: 'kvm_pmu_cleanup releases only the events of counters the guest disabled, which are paused (holding no counter) and are resumed or created afresh alike when re-enabled, so no guest, host or VMM observation can differ; only the cost of idle perf events does',
  },
];
