/** IA32_PERF_CAPABILITIES (0x345): read-only, present with CPUID.01H:ECX.PDCM (pmu-semantics.md §2.10). */

import { gp, ok } from '../access.js';
import { fieldMask, fields } from '../bits.js';
import { msrFamily } from './family.js';

export const MSR_IA32_PERF_CAPABILITIES = 0x345;

/** PERF_CAPABILITIES fields the model reads (pmu-semantics.md §2.10). */
export const PERF_CAPABILITIES_FIELDS = fields({
  lbrFmt: [5, 0],
  smmFrz: 12,
  fwWrite: 13,
  pebsBaseline: 14,
  perfMetrics: 15,
  rdpmcMetricsClear: 19,
});

/** The fields by the kernel's names (msr-index.h). */
export const PERF_CAP_LBR_FMT = fieldMask(PERF_CAPABILITIES_FIELDS.lbrFmt);
export const PERF_CAP_FREEZE_WHILE_SMM = fieldMask(PERF_CAPABILITIES_FIELDS.smmFrz);
export const PERF_CAP_FW_WRITES = fieldMask(PERF_CAPABILITIES_FIELDS.fwWrite);
export const PERF_CAP_PEBS_BASELINE = fieldMask(PERF_CAPABILITIES_FIELDS.pebsBaseline);
export const PERF_CAP_PERF_METRICS = fieldMask(PERF_CAPABILITIES_FIELDS.perfMetrics);
export const PERF_CAP_RDPMC_METRICS_CLEAR = fieldMask(PERF_CAPABILITIES_FIELDS.rdpmcMetricsClear);

export const capabilityMsrs = msrFamily(['pdcm'], (p) => {
  if (!p.pdcm) return [];
  return [
    {
      address: MSR_IA32_PERF_CAPABILITIES,
      name: 'IA32_PERF_CAPABILITIES',
      read: (s) => ok(s.profile.perfCapabilities),
      write: () => gp('IA32_PERF_CAPABILITIES is read-only'),
    },
  ];
});
