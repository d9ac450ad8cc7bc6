/**
 * Known divergences of seed 002's proposal (model/kvm/series/topdown_raw.ts: Dapeng Mi, "Enable topdown metrics
 * feature for KVM vPMU" v4, 2023) from bare metal, each with the mechanism in the posted patches ("patch N/13")
 * that causes it. They come on top of what its base, today's perf-based vPMU, declares. A program whose first
 * divergence matches none is a finding against the series.
 */

import { isGp, type Observation, pmisOf } from '../../scenarios/observation.js';
import { bit } from '../../model/hw/bits.js';
import type { DivergenceContext, KnownDivergence } from './types.js';
import { EMULATED_EXPECTATIONS } from './emulated.js';
import { EMULATED_INVISIBILITY_EXPECTATIONS } from './emulated_invisibility.js';
import { INTEL_PMC_FIXED_RDPMC_METRICS, MSR_CORE_PERF_FIXED_CTR0 } from '../../model/hw/msr/counters.js';
import { MSR_PERF_METRICS } from '../../model/hw/msr/topdown.js';
import {
  GLOBAL_STATUS_PERF_METRICS_OVF_BIT,
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../model/hw/msr/global.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_PERF_METRICS } from '../../model/hw/msr/capabilities.js';

const MSR_CORE_PERF_FIXED_CTR3 = MSR_CORE_PERF_FIXED_CTR0 + 3;

/** Does the guest have PERF_METRICS (PERF_CAPABILITIES bit 15 behind PDCM)? */
export const hasMetrics = (c: DivergenceContext) =>
  c.guest.cpuid.pdcm && (c.guest.perfCapabilities & PERF_CAP_PERF_METRICS) !== 0n;

/** A read of PERF_METRICS by RDMSR or by RDPMC's metrics type. */
export const readsMetrics = (o: Observation) =>
  (o.kind === 'rdmsr' && o.target === MSR_PERF_METRICS) ||
  (o.kind === 'rdpmc' && o.target !== null && (o.target & INTEL_PMC_FIXED_RDPMC_METRICS) !== 0);

/**
 * Was PERF_METRICS written before (the write that arms FC3's slots+metrics group): by the guest, or by the VMM
 * restoring it (KVM_SET_MSRS of a save/restore, or a VMM's own write)?
 */
export const wroteMetrics = (c: DivergenceContext) =>
  c.history.some(
    (h) =>
      (h.kind === 'wrmsr' && h.target === MSR_PERF_METRICS && h.sut.kind === 'accepted') ||
      h.vmm?.op === 'save-restore' ||
      (h.vmm?.op === 'set-msr' && h.vmm.msr === MSR_PERF_METRICS),
  );

/** The guest's GLOBAL_CTRL as it last wrote it (its RESET value, the GP counters' bits, before any write). */
function lastGlobalCtrl(c: DivergenceContext): bigint | null {
  let v: bigint | null = null;
  for (const h of c.history)
    if (h.kind === 'wrmsr' && h.target === MSR_CORE_PERF_GLOBAL_CTRL && h.sut.kind === 'accepted') v = h.value;
  return v;
}

/** A guest preset of FIXED_CTR3 close enough to overflow (above 2^47) that a test's slots can wrap it. */
const slotsPreset = (c: DivergenceContext) =>
  c.history.some(
    (h) =>
      h.kind === 'wrmsr' &&
      h.target === MSR_CORE_PERF_FIXED_CTR3 &&
      h.sut.kind === 'accepted' &&
      h.value !== null &&
      h.value >= 1n << 47n,
  );

const SLOTS_OVF = bit(32 + 3) | bit(GLOBAL_STATUS_PERF_METRICS_OVF_BIT);

/** A GLOBAL_STATUS read that differs from bare metal only in bit 48 (PERF_METRICS overflow), which bare metal has. */
const lacksMetricsOvfOnly = (o: Observation) =>
  o.kind === 'rdmsr' &&
  o.target === MSR_CORE_PERF_GLOBAL_STATUS &&
  o.sut.kind === 'value' &&
  o.oracle.kind === 'value' &&
  (o.oracle.value ^ o.sut.value) === bit(GLOBAL_STATUS_PERF_METRICS_OVF_BIT) &&
  (o.oracle.value & bit(GLOBAL_STATUS_PERF_METRICS_OVF_BIT)) !== 0n;

/** A VMM's PERF_CAPABILITIES with PERF_METRICS that KVM took for a vCPU no CPU would have (no FIXED_CTR3: W4). */
export const metricsWithoutSlots = (o: Observation) => {
  const v = o.vmm;
  if (o.kind !== 'vmm' || v === undefined || o.sut.kind !== 'ok' || o.oracle.kind !== 'refused') return false;
  if (v.op !== 'set-msr' && v.op !== 'set-cpuid') return false;
  if (v.impossible?.rule !== 'metrics-without-slots') return false;
  return v.op === 'set-cpuid' || v.msr === MSR_IA32_PERF_CAPABILITIES;
};

/** The last PERF_METRICS value written by the guest or a VMM, or null. */
export function lastMetricsWrite(c: DivergenceContext): bigint | null {
  let v: bigint | null = null;
  for (const h of c.history) {
    if (h.kind === 'wrmsr' && h.target === MSR_PERF_METRICS && h.sut.kind === 'accepted') v = h.value;
    if (h.vmm?.op === 'set-msr' && h.vmm.msr === MSR_PERF_METRICS && h.sut.kind === 'ok') v = h.vmm.value;
  }
  return v;
}

const byteOf = (v: bigint, k: number) => Number((v >> BigInt(8 * k)) & 0xffn);

/**
 * Could `v` be the PERF_METRICS of one window of counted slots: level-1 bytes floor(255·s_k/S) summing to 252..255,
 * each level-2 byte at most its parent's (heavy ≤ retiring, mispredicts ≤ bad speculation, fetch latency ≤ frontend,
 * memory ≤ backend)?
 */
export function isWindowImage(v: bigint, l2: boolean): boolean {
  const l1 = [0, 1, 2, 3].map((k) => byteOf(v, k));
  const sum = l1.reduce((a, b) => a + b, 0);
  if (sum < 252 || sum > 255) return false;
  if (!l2) return v >> 32n === 0n;
  return [4, 5, 6, 7].every((k) => byteOf(v, k) <= l1[k - 4]!);
}

/** What the series hands the guest as PERF_METRICS: 0 (an empty or released window), the value last written, or one window's image. */
const heldOrWindow = (o: Observation, c: DivergenceContext) =>
  o.sut.kind === 'value' &&
  (o.sut.value === 0n ||
    o.sut.value === lastMetricsWrite(c) ||
    isWindowImage(o.sut.value, c.host.topdownL2 && c.guest.cpuid.model === c.host.model));

export const TOPDOWN_RAW_DECLARED: readonly KnownDivergence[] = [
  {
    id: 'perf-metrics-without-slots',
    title:
      'KVM_SET_MSRS takes PERF_CAPABILITIES.PERF_METRICS for a vCPU whose CPUID.0AH has no FIXED_CTR3 (SLOTS), a model no CPU has; PERF_METRICS then #GPs for want of FIXED_CTR3',
    kernelRef:
      'seed 002 patch 13/13, vmx_get_perf_capabilities: kvm_caps.supported_perf_cap |= host PERF_METRICS with no other gate, so vmx_set_msr(MSR_IA32_PERF_CAPABILITIES) checks it against nothing of the vCPU',
    vmm: true,
    matches: metricsWithoutSlots,
  },
  {
    id: 'rdpmc-metrics-unchecked',
    title:
      'RDPMC with ECX bit 29 reads the stored PERF_METRICS whenever the vCPU has FIXED_CTR3: without PERF_CAPABILITIES.PERF_METRICS, and for any index or other type bits, where bare metal #GPs',
    kernelRef:
      'seed 002 patch 11/13, kvm_pmu_rdpmc: `if (idx & INTEL_PMC_FIXED_RDPMC_METRICS)` returns kvm_pmu_read_perf_metrics() before intel_rdpmc_ecx_to_pmc and any capability check',
    matches: (o) =>
      o.kind === 'rdpmc' &&
      o.target !== null &&
      (o.target & INTEL_PMC_FIXED_RDPMC_METRICS) !== 0 &&
      o.sut.kind === 'value' &&
      isGp(o.oracle),
  },
  {
    id: 'slots-leader-counting',
    title:
      'in topdown mode FIXED_CTR3 overflows silently: its slots event leads the group as a counting event, so a wrap raises no PMI and sets no GLOBAL_STATUS bit 48, nor bit 35 unless KVM finds the wrap itself',
    kernelRef:
      'seed 002 patch 10/13, pmc_setup_td_metrics_events_attr: the group leader gets sample_period = 0, so perf never calls kvm_perf_overflow for it',
    matches: (o, c) =>
      hasMetrics(c) &&
      wroteMetrics(c) &&
      slotsPreset(c) &&
      ((o.kind === 'rdmsr' &&
        o.target === MSR_CORE_PERF_GLOBAL_STATUS &&
        o.sut.kind === 'value' &&
        o.oracle.kind === 'value' &&
        (o.sut.value & ~o.oracle.value) === 0n &&
        ((o.oracle.value ^ o.sut.value) & ~SLOTS_OVF) === 0n) ||
        ((o.kind === 'run' || o.kind === 'pmi') && pmisOf(o.sut).length < pmisOf(o.oracle).length)),
  },
  {
    id: 'metrics-without-en-perf-metrics',
    title:
      "PERF_METRICS accumulates in topdown mode whatever the guest's GLOBAL_CTRL bit 48 (EN_PERF_METRICS) says: host perf enables bit 48 for the vmetrics event, where bare metal keeps PERF_METRICS still",
    kernelRef:
      'seed 002 patches 10/13–13/13: KVM never reads guest GLOBAL_CTRL bit 48; the vmetrics event on index 48 puts bit 48 in the guest-entry GLOBAL_CTRL (intel_guest_get_msrs) whenever the group runs',
    matches: (o, c) =>
      readsMetrics(o) &&
      hasMetrics(c) &&
      wroteMetrics(c) &&
      ((lastGlobalCtrl(c) ?? 0n) & bit(GLOBAL_STATUS_PERF_METRICS_OVF_BIT)) === 0n &&
      heldOrWindow(o, c) &&
      o.oracle.kind === 'value',
  },
  {
    id: 'metrics-need-write',
    title:
      'until PERF_METRICS is written, FIXED_CTR3 counts alone (no metrics event): PERF_METRICS reads 0, and a FIXED_CTR3 wrap sets GLOBAL_STATUS bit 35 without bit 48, whatever GLOBAL_CTRL bit 48 says',
    kernelRef:
      'seed 002 patch 11/13: a PERF_METRICS write is what sets max_nr_events = 2 ("KVM cannot tell a lone slots user from a topdown user"); before it, pmc_reprogram_counter creates the slots event alone',
    // With no metrics event nothing sets the PERF_METRICS overflow bit: a status read lacking that bit alone.
    matches: (o, c) =>
      hasMetrics(c) &&
      !wroteMetrics(c) &&
      ((readsMetrics(o) && o.sut.kind === 'value' && o.sut.value === 0n) || lacksMetricsOvfOnly(o)),
  },
  {
    id: 'metrics-frozen-window',
    title:
      'PERF_METRICS reads the bytes host perf last saw of the slots+metrics group: frozen between pauses of the group, and covering only the slots since the group last started or host perf last read it (a read of FIXED_CTR3 while it runs restarts both registers from 0), not the whole period bare metal weights',
    kernelRef:
      'seed 002 patches 09/13 (__icl_update_vmetrics_event overwrites the count with the raw PERF_METRICS; icl_set_topdown_event_period zeroes FIXED_CTR3 and PERF_METRICS at a counting event start) and 11/13 (pmc_pause_counter stores the member count in extra_config; RDMSR/RDPMC return extra_config)',
    matches: (o, c) =>
      readsMetrics(o) && hasMetrics(c) && wroteMetrics(c) && heldOrWindow(o, c) && o.oracle.kind === 'value',
  },
];

/** Every declared divergence of the design: its base's, then the series' own. */
export const TOPDOWN_RAW_EXPECTATIONS: readonly KnownDivergence[] = [...EMULATED_EXPECTATIONS, ...TOPDOWN_RAW_DECLARED];

export const TOPDOWN_RAW_INVISIBILITY_EXPECTATIONS: readonly KnownDivergence[] = EMULATED_INVISIBILITY_EXPECTATIONS;
