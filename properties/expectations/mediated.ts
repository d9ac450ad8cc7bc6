/**
 * Known divergences of the mediated vPMU (model/kvm/mediated) from bare metal, each observed by the
 * conformance property and traced to the upstream code it comes from. A program whose first
 * divergence matches one of these is a known divergence, not a failure.
 */

import {
  ANYTHREAD_RESERVED,
  DEBUGCTL_SUBSET,
  FIXED_CTR_WIDTH,
  LVTPC_RESERVED_DROPPED,
  LVTPC_STATUS_KEPT,
  P6_PERFCTR_QUIRK,
  aheadModulo,
  counterOfMsr,
  lastWritten,
  EMULATED_INSN_SKIPS_IN_TXCP,
  PMI_LOST_AT_SAVE,
  STATUS_BITS_V2,
  VERSION_NOT_CLAMPED,
  version,
  readsGlobalStatus,
} from './common.js';
import type { KnownDivergence } from './types.js';
import { DEBUGCTL_NOT_SAVED } from './emulated_invisibility.js';
import { isGp, type Observation, pmisOf } from '../../scenarios/observation.js';
import { fixedCounterAllowed } from '../../scenarios/oracle_filter.js';
import { fields } from '../../scenarios/supported.js';
import type { KvmPmuEventFilter } from '../../model/kvm/types.js';
import {
  INTEL_PMC_FIXED_RDPMC_BASE,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
} from '../../model/hw/msr/counters.js';
import type { Profile } from '../../model/hw/profile.js';
import type { GuestConfig } from '../../scenarios/world.js';
import {
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  GLOBAL_STATUS_LBRS_FROZEN,
  GLOBAL_STATUS_COUNTERS_FROZEN,
  GLOBAL_STATUS_UNC_OVF,
} from '../../model/hw/msr/global.js';

/** The fixed counter a read names (RDMSR or KVM_GET_MSRS of FIXED_CTRj, RDPMC of fixed j), or null. */
function fixedCounterRead(o: Observation): number | null {
  const msr = o.kind === 'rdmsr' ? o.target : o.kind === 'vmm' && o.vmm?.op === 'get-msr' ? o.vmm.msr : null;
  if (msr !== null && msr >= MSR_CORE_PERF_FIXED_CTR0 && msr < MSR_CORE_PERF_FIXED_CTR0 + 4)
    return msr - MSR_CORE_PERF_FIXED_CTR0;
  if (o.kind === 'rdpmc' && o.target !== null && (o.target & ~3) === INTEL_PMC_FIXED_RDPMC_BASE) return o.target & 3;
  return null;
}

/**
 * The fixed counters whose field fixed_ctr_ctrl_hw holds enabled against the filter after `history`: set by a
 * FIXED_CTR_CTRL write (guest or KVM_SET_MSRS) that changed other fields but left theirs, enabled, as it was; cleared
 * by a write that changes their field (reprogrammed, filter applied), a new filter, a new vCPU model. With the filter,
 * and `counted`: the counters held so against a filter that denies them while the guest ran (its work, or an
 * instruction) since their value was last written: what they counted then stays after the field is filtered again.
 */
function fixedFieldsPastFilter(history: readonly Observation[]): {
  leaked: number;
  filter: KvmPmuEventFilter | null;
  counted: number;
} {
  let ctrl = 0n;
  let leaked = 0;
  let counted = 0;
  let filter: KvmPmuEventFilter | null = null;
  const written = (msr: number) => {
    if (msr >= MSR_CORE_PERF_FIXED_CTR0 && msr < MSR_CORE_PERF_FIXED_CTR0 + 4)
      counted &= ~(1 << (msr - MSR_CORE_PERF_FIXED_CTR0));
  };
  const write = (data: bigint) => {
    if (data === ctrl) return; // reprogram_fixed_counters only runs on a change
    for (let j = 0; j < 4; j++) {
      const field = (v: bigint) => (v >> BigInt(4 * j)) & 0xfn;
      if (field(data) !== field(ctrl)) leaked &= ~(1 << j);
      else if ((field(data) & 3n) !== 0n) leaked |= 1 << j;
    }
    ctrl = data;
  };
  for (const o of history) {
    const ran = o.kind === 'run' || o.kind === 'rdmsr' || o.kind === 'wrmsr' || o.kind === 'rdpmc';
    const accepted = o.kind === 'wrmsr' && o.sut.kind === 'accepted' && o.target !== null && o.value !== null;
    // A WRMSR of the counter itself takes effect before it retires: a leaked counter counts it on the value written.
    if (accepted) written(o.target);
    for (let j = 0; j < 4 && ran; j++)
      if ((leaked & (1 << j)) !== 0 && filter !== null && !fixedCounterAllowed(filter, j)) counted |= 1 << j;
    if (accepted && o.target === MSR_CORE_PERF_FIXED_CTR_CTRL) write(o.value);
    if (o.kind === 'vmm' && o.vmm !== undefined && o.sut.kind === 'ok') {
      const op = o.vmm;
      if (op.op === 'set-msr' && op.msr === MSR_CORE_PERF_FIXED_CTR_CTRL) write(op.value);
      if (op.op === 'set-msr') written(op.msr);
      if (op.op === 'set-filter') {
        filter = op.filter;
        leaked = 0; // every counter is reprogrammed, fields filtered afresh
      }
      if (op.op === 'set-cpuid') [ctrl, leaked, counted] = [0n, 0, 0];
    }
  }
  return { leaked, filter, counted };
}

/**
 * A fixed counter the filter denies that counts on in hardware: reprogram_fixed_counters copies the whole guest value
 * into fixed_ctr_ctrl_hw and reprograms (filters) only the fields that changed, so a write that changes another
 * field re-enables a denied counter's unchanged, enabled field until its own field changes or a filter comes.
 */
export const FIXED_FILTER_UNCHANGED_FIELD: KnownDivergence = {
  id: 'fixed-filter-unchanged-field',
  title:
    "a fixed counter the event filter denies counts again once the guest rewrites FIXED_CTR_CTRL changing only other counters' fields: its own field is copied to the hardware value unfiltered",
  kernelRef:
    'arch/x86/kvm/vmx/pmu_intel.c reprogram_fixed_counters: fixed_ctr_ctrl_hw = data, a reprogram requested only for the fields that changed; pmu.c kvm_mediated_pmu_refresh_event_filter filters only the counters reprogrammed',
  vmm: true,
  filed: '0006-kvm-mediated-filter-fixed-counter-reenabled',
  // A read of that counter, ahead of bare metal (modulo its width: it may have wrapped); the overflow bit it then
  // sets in GLOBAL_STATUS, alone; a PMI bare metal does not take, with that counter's PMI bit set.
  matches: (o, c) => {
    const { leaked, filter, counted } = fixedFieldsPastFilter(c.history);
    const past = (j: number) => filter !== null && (leaked & (1 << j)) !== 0 && !fixedCounterAllowed(filter, j);
    // What it counted while denied stays: its value, and the overflow bit it set, once its field is filtered again.
    const hasCounted = (j: number) => (counted & (1 << j)) !== 0;
    const j = fixedCounterRead(o);
    if (j !== null)
      return (
        o.sut.kind === 'value' &&
        o.oracle.kind === 'value' &&
        hasCounted(j) &&
        aheadModulo(o.sut.value, o.oracle.value, (c.guest.cpuid.leaf0a.edx >> 5) & 0xff)
      );
    // The guest's read, or the VMM's: KVM_GET_MSRS reads the status the mediated vPMU saved at the last exit.
    if (readsGlobalStatus(o)) {
      if (o.sut.kind !== 'value' || o.oracle.kind !== 'value') return false;
      const seen = o.sut.value;
      const extra = seen ^ o.oracle.value;
      return [0, 1, 2, 3].some((k) => extra === 1n << BigInt(32 + k) && (seen & extra) !== 0n && hasCounted(k));
    }
    if (o.kind === 'pmi' && o.sut.kind === 'pmis' && o.oracle.kind === 'pmis')
      return (
        o.sut.pmis.length > o.oracle.pmis.length &&
        [0, 1, 2, 3].some(
          (k) => past(k) && ((lastWritten(c.history, MSR_CORE_PERF_FIXED_CTR_CTRL) >> BigInt(4 * k + 3)) & 1n) === 1n,
        )
      );
    return false;
  },
};

/**
 * The counters the mediated vPMU passes through to this guest at a width narrower than the hardware's, as overflow
 * bits (GP i, fixed 32 + j): every counter the guest has is passed through, whatever its width.
 */
function narrowPassedThrough(g: GuestConfig, host: Profile): bigint {
  const f = fields(g.cpuid.leaf0a.eax, g.cpuid.leaf0a.edx);
  if (f.version === 0) return 0n; // kvm_vcpu_has_mediated_pmu: no vPMU, nothing passed through
  let bits = 0n;
  if (f.gpWidth < host.gpWidth) bits |= (1n << BigInt(f.nGP)) - 1n;
  if (f.nFixed > 0 && f.fixedWidth < host.fixedWidth) bits |= ((1n << BigInt(f.nFixed)) - 1n) << 32n;
  return bits;
}

/** The counter (as its overflow bit) a counter MSR names: PERFCTRi, PMCi, FIXED_CTRj; 0n for any other MSR. */
function counterBitOf(msr: number | null): bigint {
  const idx = msr === null ? null : counterOfMsr(msr);
  return idx === null ? 0n : 1n << BigInt(idx);
}

/** At the first PMI the two sides differ on, bare metal has one the design has not (none, or only a later one). */
function missesAPmi(o: Observation): boolean {
  const sut = pmisOf(o.sut);
  const oracle = pmisOf(o.oracle);
  let i = 0;
  const same = (k: number) => sut[k]!.afterUnit === oracle[k]!.afterUnit && sut[k]!.vector === oracle[k]!.vector;
  while (i < sut.length && i < oracle.length && same(i)) i++;
  return i < oracle.length && (i === sut.length || sut[i]!.afterUnit > oracle[i]!.afterUnit);
}

const COUNTER_WIDTH_PASSTHROUGH: KnownDivergence = {
  id: 'counter-width-passthrough',
  title:
    "counters the guest's CPUID gives a narrower width than the hardware's are passed through all the same: they take writes, count and wrap at the hardware's width (bits above the guest's width kept, not #GP; an overflow at the guest's width never comes)",
  kernelRef:
    "arch/x86/kvm/vmx/vmx.c vmx_recalc_pmu_msr_intercepts: PERFCTRn, PMCn (with FW_WRITES) and FIXED_CTRn of every counter the guest has pass through whenever the vCPU has the mediated PMU, whatever counter_bitmask; only kvm_need_rdpmc_intercept (arch/x86/kvm/pmu.c) compares the widths with the host's; intel_pmu_refresh takes min(guest, host) widths without refusing them",
  // Only a guest with such counters, and only what a counter's width shows first: a write to one taken where bare metal
  // faults, a read of one differing above the guest's width, its overflow missing (a PMI, or its GLOBAL_STATUS bit).
  matches: (o, c) => {
    const narrow = narrowPassedThrough(c.guest, c.host);
    if (narrow === 0n) return false;
    if (o.kind === 'wrmsr')
      return (counterBitOf(o.target) & narrow) !== 0n && o.sut.kind === 'accepted' && isGp(o.oracle);
    if (o.kind === 'rdmsr' && o.target === MSR_CORE_PERF_GLOBAL_STATUS) {
      if (o.sut.kind !== 'value' || o.oracle.kind !== 'value') return false;
      const missing = o.oracle.value & ~o.sut.value;
      return missing !== 0n && (missing & ~narrow) === 0n && (o.sut.value & ~o.oracle.value) === 0n;
    }
    // A read passed through shows the hardware's bits above the guest's width; the counts below it agree (RDPMC
    // exits for such a guest and KVM masks it, so it is not excused).
    if (o.kind === 'rdmsr') {
      const b = counterBitOf(o.target);
      if ((b & narrow) === 0n || o.sut.kind !== 'value' || o.oracle.kind !== 'value') return false;
      const f = fields(c.guest.cpuid.leaf0a.eax, c.guest.cpuid.leaf0a.edx);
      const width = b >= 1n << 32n ? f.fixedWidth : f.gpWidth;
      return ((o.sut.value ^ o.oracle.value) & ((1n << BigInt(width)) - 1n)) === 0n;
    }
    // A PMI missing where one of them wrapped on bare metal since the guest wrote it (counters only count up); a later
    // PMI of the design's in its place is one the missing PMI's LVTPC mask dropped on bare metal (its delivery sets
    // LVTPC.MASK and a masked LVTPC latches nothing: pmu-semantics.md §4.4, decision D7).
    if (!missesAPmi(o) || c.facts === undefined) return false;
    for (let idx = 0; idx < 64; idx++) {
      if (((narrow >> BigInt(idx)) & 1n) === 0n) continue;
      const x = c.facts.oracleCounter(o.vcpu, idx);
      if (x !== null && x.written !== null && x.value < x.written) return true;
    }
    return false;
  },
};

// The shared entries (common.ts), with the mediated path to the same upstream code in the title and reference.
export const MEDIATED_EXPECTATIONS: readonly KnownDivergence[] = [
  FIXED_FILTER_UNCHANGED_FIELD,
  PMI_LOST_AT_SAVE,
  COUNTER_WIDTH_PASSTHROUGH,
  EMULATED_INSN_SKIPS_IN_TXCP,
  LVTPC_RESERVED_DROPPED,
  LVTPC_STATUS_KEPT,
  {
    ...P6_PERFCTR_QUIRK,
    title:
      'absent MSR_P6_PERFCTR0/1 and MSR_P6_EVNTSEL0/1 read 0 and drop writes instead of #GP (intercepted, as with the emulated vPMU)',
  },
  {
    ...VERSION_NOT_CLAMPED,
    title:
      'a guest whose CPUID says PMU version 4 or 5 gets no GLOBAL_STATUS_SET and no GLOBAL_INUSE: KVM intercepts them and knows only the v2 MSRs (decision K10)',
    kernelRef:
      'arch/x86/kvm/pmu.c kvm_init_pmu_capability caps the version at 2 even with the mediated PMU; kvm_pmu_is_valid_msr has no 0x391/0x392; vmx.c vmx_recalc_pmu_msr_intercepts never passes them through',
  },
  {
    ...FIXED_CTR_WIDTH,
    title:
      "a VMM's KVM_SET_MSRS of a fixed counter with bits above the counter width is masked, not refused (a guest's own write reaches the counter)",
    kernelRef:
      'arch/x86/kvm/pmu.c pmc_write_counter (mediated: counter = val & pmc_bitmask); vmx/pmu_intel.c intel_pmu_set_msr: get_fixed_pmc, no width check',
    matches: () => false,
    // Only a host-initiated write: bare metal is written what the counter keeps (W6).
    adoptValue: (a, host) => (a.hostInitiated === undefined ? null : FIXED_CTR_WIDTH.adoptValue!(a, host)),
  },
  {
    ...DEBUGCTL_SUBSET,
    title:
      'DEBUGCTL is not virtualized beyond RTM_DEBUG: LBR and BTF are dropped, FREEZE_LBRS_ON_PMI, FREEZE_PERFMON_ON_PMI and other bits #GP',
    kernelRef:
      'arch/x86/kvm/vmx/vmx.c vmx_get_supported_debugctl: LBR|FREEZE_LBRS_ON_PMI only when LBR_FMT is advertised, which vmx_get_perf_capabilities never does with enable_mediated_pmu',
  },
  {
    ...ANYTHREAD_RESERVED,
    title:
      'AnyThread (EVTSEL bit 21, FIXED_CTR_CTRL bit 2 of each field) is reserved whatever the PMU version; selectors and FIXED_CTR_CTRL are intercepted so KVM can refuse it',
    kernelRef:
      'arch/x86/kvm/pmu.c kvm_pmu_refresh reserved_bits 0xffffffff00200000; pmu_intel.c fixed_ctr_ctrl_rsvd keeps bit 2 of each field; vmx.c vmx_recalc_pmu_msr_intercepts: "Do NOT passthrough event selector or fixed counter control MSRs ... to prevent use of AnyThread events"',
  },
  {
    ...STATUS_BITS_V2,
    title:
      'an intercepted GLOBAL_OVF_CTRL/STATUS_RESET takes only the counter bits and 62/63: the v3+ Ovf_Uncore and v4 LBR_FRZ/CTR_FRZ bits #GP (decision K10)',
    kernelRef:
      'arch/x86/kvm/vmx/pmu_intel.c intel_pmu_refresh: global_status_rsvd = global_ctrl_rsvd & ~(OVF_BUF | COND_CHGD); pmu.c kvm_need_perf_global_ctrl_intercept',
  },
  {
    id: 'ovf-ctrl-passthrough',
    title:
      "with every host counter the guest's, GLOBAL_OVF_CTRL passes through: a v2/v3 guest can clear the host PMU's v4 status bits (LBR_FRZ, CTR_FRZ, Ovf_Uncore) that its own version reserves",
    kernelRef:
      "arch/x86/kvm/vmx/vmx.c vmx_recalc_pmu_msr_intercepts: GLOBAL_CTRL/STATUS/OVF_CTRL intercepted only if kvm_need_perf_global_ctrl_intercept (counter counts, v2+), not by the guest's version",
    matches: (o, c) =>
      o.kind === 'wrmsr' &&
      o.target === MSR_CORE_PERF_GLOBAL_OVF_CTRL &&
      o.sut.kind === 'accepted' &&
      isGp(o.oracle) &&
      o.value !== null &&
      c.host.version >= 4 &&
      version(c) >= 2 &&
      version(c) < 4 &&
      // Passed through only when the guest has every host counter (kvm_need_perf_global_ctrl_intercept).
      ((c.guest.cpuid.leaf0a.eax >>> 8) & 0xff) === c.host.nGP &&
      (c.guest.cpuid.leaf0a.edx & 0x1f) === c.host.nFixedContig &&
      (o.value & (GLOBAL_STATUS_LBRS_FROZEN | GLOBAL_STATUS_COUNTERS_FROZEN | GLOBAL_STATUS_UNC_OVF)) !== 0n,
  },
];

/** What the mediated vPMU loses across a migration or a save/restore: DEBUGCTL (RTM_DEBUG, with RTM), as upstream. */
export const MEDIATED_INVISIBILITY_EXPECTATIONS: readonly KnownDivergence[] = [DEBUGCTL_NOT_SAVED];
