/**
 * Planted faults in common/pmu.ts (arch/x86/kvm/pmu.c), each a one-point change of the kind a patch
 * could make, planted on the perf-based design by replacing the kernel function it sits in. They
 * measure the search (catalogue/faults.ts, `npm run bugs`); none is a bug upstream has.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit } from '../../hw/bits.js';
import { APIC_LVT_MASKED } from '../../hw/msr/apic.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../hw/msr/global.js';
import { cpl_is_matched, kvm_apic_local_deliver_lvtpc, NMI_VECTOR } from '../common/pmu.js';
import { fixed_ctrl_field, validPmcs } from '../common/pmu.h.js';
import { KVM_FIXED_PMC_BASE_IDX, type PmcBase, type VcpuBase } from '../common/state.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';

/** OVF_CTRL no longer clears GLOBAL_STATUS (`pmu->global_status &= ~data` deleted): a driver can never ack. */
export const OVF_CTRL_NO_CLEAR: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    if (msr !== MSR_CORE_PERF_GLOBAL_OVF_CTRL) return EMULATED_OPS.kvm_pmu_set_msr(vcpu, msr, data, hostInitiated);
    if ((data & vcpu.pmu.global_status_rsvd) !== 0n) return gp('IA32_PERF_GLOBAL_OVF_CTRL: reserved bits');
    return ok(data);
  },
};

/** OVF_CTRL clears only the GP counters' bits (`&= ~(data & 0xffffffff)`): fixed counters' overflows stay. */
export const OVF_CTRL_KEEPS_FIXED_BITS: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    if (msr !== MSR_CORE_PERF_GLOBAL_OVF_CTRL) return EMULATED_OPS.kvm_pmu_set_msr(vcpu, msr, data, hostInitiated);
    if ((data & vcpu.pmu.global_status_rsvd) !== 0n) return gp('IA32_PERF_GLOBAL_OVF_CTRL: reserved bits');
    if (!hostInitiated) vcpu.pmu.global_status &= ~(data & 0xffff_ffffn);
    return ok(data);
  },
};

/** OVF_CTRL's reserved-bit check deleted: any value is accepted. */
export const OVF_CTRL_RSVD_UNCHECKED: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    if (msr !== MSR_CORE_PERF_GLOBAL_OVF_CTRL) return EMULATED_OPS.kvm_pmu_set_msr(vcpu, msr, data, hostInitiated);
    if (!hostInitiated) vcpu.pmu.global_status &= ~data;
    return ok(data);
  },
};

/** GLOBAL_STATUS writable by the guest (the `!host_initiated` #GP deleted). */
export const STATUS_WRITABLE_BY_GUEST: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    return EMULATED_OPS.kvm_pmu_set_msr(vcpu, msr, data, msr === MSR_CORE_PERF_GLOBAL_STATUS ? true : hostInitiated);
  },
};

/** A host write of GLOBAL_STATUS takes any value (its `global_status_rsvd` check deleted): a VMM restores bits no status has. */
export const HOST_STATUS_RSVD_UNCHECKED: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    if (msr !== MSR_CORE_PERF_GLOBAL_STATUS || !hostInitiated)
      return EMULATED_OPS.kvm_pmu_set_msr(vcpu, msr, data, hostInitiated);
    vcpu.pmu.global_status = data;
    return ok(data);
  },
};

/** GLOBAL_CTRL reprograms only counters it enables (`diff = data & ~global_ctrl`, not the XOR). */
export const GLOBAL_CTRL_DIFF_ONE_WAY: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    const pmu = vcpu.pmu;
    if (msr !== MSR_CORE_PERF_GLOBAL_CTRL || (data & pmu.global_ctrl_rsvd) !== 0n)
      return EMULATED_OPS.kvm_pmu_set_msr(vcpu, msr, data, hostInitiated);
    if (pmu.global_ctrl !== data) {
      const diff = data & ~pmu.global_ctrl;
      pmu.global_ctrl = data;
      if (diff !== 0n) {
        pmu.reprogram_pmi |= diff;
        vcpu.requests.add('PMU');
      }
    }
    return ok(data);
  },
};

/** A GLOBAL_CTRL write stores the value but requests no reprogram (reprogram_counters' KVM_REQ_PMU dropped). */
export const GLOBAL_CTRL_NO_REQUEST: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    const pmu = vcpu.pmu;
    if (msr !== MSR_CORE_PERF_GLOBAL_CTRL || (data & pmu.global_ctrl_rsvd) !== 0n)
      return EMULATED_OPS.kvm_pmu_set_msr(vcpu, msr, data, hostInitiated);
    if (pmu.global_ctrl !== data) {
      pmu.reprogram_pmi |= pmu.global_ctrl ^ data;
      pmu.global_ctrl = data;
    }
    return ok(data);
  },
};

/** OVF_CTRL reads back GLOBAL_STATUS instead of 0 (kvm_pmu_get_msr's case returns the wrong field). */
export const OVF_CTRL_READS_STATUS: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_get_msr(vcpu: KvmVcpuState, msr: number, hostInitiated: boolean): Access {
    if (msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL) return ok(vcpu.pmu.global_status);
    return EMULATED_OPS.kvm_pmu_get_msr(vcpu, msr, hostInitiated);
  },
};

/** kvm_pmu_trigger_event without `mask &= pmu->global_ctrl`: emulated instructions count while GLOBAL_CTRL is 0. */
export const TRIGGER_IGNORES_GLOBAL_CTRL: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_trigger_event(vcpu: KvmVcpuState, counting: bigint, cpl: number): void {
    if (counting === 0n) return;
    for (const pmc of validPmcs(vcpu.pmu)) {
      if ((counting & bit(pmc.idx)) === 0n) continue;
      if (!vcpu.ops.pmc_is_event_allowed(vcpu, pmc) || !cpl_is_matched(vcpu, pmc, cpl)) continue;
      vcpu.ops.kvm_pmu_incr_counter(vcpu, pmc);
    }
  },
};

/** cpl_is_matched (inlined in kvm_pmu_trigger_event) reads a fixed counter's OS and USR bits swapped. */
function cpl_is_matched_swapped(vcpu: VcpuBase, pmc: PmcBase, cpl: number): boolean {
  if (pmc.type === 'gp') return cpl_is_matched(vcpu, pmc, cpl);
  const f = fixed_ctrl_field(vcpu.pmu.fixed_ctr_ctrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
  return cpl === 0 ? (f & 2) !== 0 : (f & 1) !== 0;
}

export const FIXED_CPL_BITS_SWAPPED: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_trigger_event(vcpu: KvmVcpuState, counting: bigint, cpl: number): void {
    let mask = counting;
    if (vcpu.pmu.version > 1) mask &= vcpu.pmu.global_ctrl;
    if (mask === 0n) return;
    for (const pmc of validPmcs(vcpu.pmu)) {
      if ((mask & bit(pmc.idx)) === 0n) continue;
      if (!vcpu.ops.pmc_is_event_allowed(vcpu, pmc) || !cpl_is_matched_swapped(vcpu, pmc, cpl)) continue;
      vcpu.ops.kvm_pmu_incr_counter(vcpu, pmc);
    }
  },
};

/** kvm_pmu_rdpmc without the CR4.PCE check: RDPMC at CPL 3 reads instead of #GP. */
export const RDPMC_PCE_IGNORED: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_rdpmc(vcpu: KvmVcpuState, ecx: number, cpl: number): Access {
    return EMULATED_OPS.kvm_pmu_rdpmc(vcpu, ecx, vcpu.cr4Pce ? cpl : 0);
  },
};

/** kvm_pmu_is_valid_msr tests `version > 0` for the global MSRs: a v1 guest reaches them. */
export const GLOBAL_MSRS_ON_V1: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_is_valid_msr(vcpu: KvmVcpuState, msr: number): boolean {
    if (
      msr === MSR_CORE_PERF_GLOBAL_STATUS ||
      msr === MSR_CORE_PERF_GLOBAL_CTRL ||
      msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL
    )
      return vcpu.pmu.version > 0;
    return EMULATED_OPS.kvm_pmu_is_valid_msr(vcpu, msr);
  },
};

/** kvm_apic_local_deliver_lvtpc no longer masks LVTPC on delivery (`reg | APIC_LVT_MASKED` store deleted). */
export const LVTPC_NOT_MASKED_ON_PMI: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_deliver_pmi(vcpu: KvmVcpuState): number | null {
    vcpu.ops.intel_pmu_deliver_pmi(vcpu);
    const reg = vcpu.lvtpc;
    const vector = kvm_apic_local_deliver_lvtpc(vcpu);
    vcpu.lvtpc = reg;
    return vector;
  },
};

/** kvm_apic_local_deliver_lvtpc delivers while LVTPC is masked (the masked check deleted). */
export const PMI_WHILE_MASKED: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_deliver_pmi(vcpu: KvmVcpuState): number | null {
    vcpu.ops.intel_pmu_deliver_pmi(vcpu);
    if ((vcpu.lvtpc & APIC_LVT_MASKED) === 0n) return kvm_apic_local_deliver_lvtpc(vcpu);
    const mode = Number((vcpu.lvtpc >> 8n) & 7n);
    if (mode === 0 || mode === 1) return Number(vcpu.lvtpc & 0xffn);
    return mode === 4 ? NMI_VECTOR : null;
  },
};
