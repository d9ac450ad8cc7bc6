/** IA32_PERF_CAPABILITIES (0x345): read-only, present with CPUID.01H:ECX.PDCM (pmu-semantics.md §2.10). */

import { gp, ok } from '../access.js';
import type { Profile } from '../profile.js';
import type { MsrDef } from './types.js';

export const PERF_CAPABILITIES = 0x345;

export function capabilityMsrs(p: Profile): MsrDef[] {
  if (!p.pdcm) return [];
  return [
    {
      address: PERF_CAPABILITIES,
      name: 'IA32_PERF_CAPABILITIES',
      read: (s) => ok(s.profile.perfCapabilities),
      write: () => gp('IA32_PERF_CAPABILITIES is read-only'),
    },
  ];
}
