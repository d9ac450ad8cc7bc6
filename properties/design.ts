/**
 * What a property needs of a vPMU design: how to build its vCPUs and what it declares. The
 * registry of designs (designs/registry.ts) sits above the properties and fills these in.
 */

import type { Profile } from '../model/hw/profile.js';
import type { HostKernelFactory, VcpuFactory } from '../scenarios/world.js';
import type { KnownDivergence } from './expectations/types.js';

export interface Design {
  readonly id: string;
  readonly title: string;
  /** Where the design's code lives. */
  readonly source: string;
  readonly factory: VcpuFactory;
  /** The host's perf, where the design patches it (default: upstream's). */
  readonly hostKernel?: HostKernelFactory;
  /** Declared divergences from bare metal (properties 1 and 3). */
  readonly expectations: readonly KnownDivergence[];
  /** Declared losses across migration and save/restore (property 4). */
  readonly invisibility: readonly KnownDivergence[];
  /**
   * Declared leaks of host-private values to the guest (property 2, no-leak), each with the mechanism that
   * leaks: only a design that hands host counters to the guest has any.
   */
  readonly leaks?: readonly KnownDivergence[];
  /** False for a design that gives guests no LBRs (property 3 has nothing to check). */
  readonly guestLbr?: boolean;
  /** Why the design cannot run on `host` (e.g. the mediated vPMU needs PMU v4 and full-width writes), or null. */
  readonly unavailableOn?: (host: Profile) => string | null;
  /** For a ported bug, the upstream commit that fixed it. */
  readonly fixedBy?: string;
}
