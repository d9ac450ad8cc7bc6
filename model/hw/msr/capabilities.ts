/** IA32_PERF_CAPABILITIES (0x345): read-only, present with CPUID.01H:ECX.PDCM (pmu-semantics.md §2.10). */

import { gp, ok } from '../access.js';
import { msrFamily } from './family.js';

export const PERF_CAPABILITIES = 0x345;

export const capabilityMsrs = msrFamily(['pdcm'], (p) => {
  if (!p.pdcm) return [];
  return [
    {
      address: PERF_CAPABILITIES,
      name: 'IA32_PERF_CAPABILITIES',
      read: (s) => ok(s.profile.perfCapabilities),
      write: () => gp('IA32_PERF_CAPABILITIES is read-only'),
    },
  ];
});
