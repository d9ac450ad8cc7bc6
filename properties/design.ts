/**
 * What a property needs of a vPMU design: how to build its vCPUs and what it declares. The
 * registry of designs (designs/registry.ts) sits above the properties and fills these in.
 */

import type { Profile } from '../model/hw/profile.js';
import type { SupportedPmu } from '../model/kvm/types.js';
import type { HostKernelFactory, VcpuFactory } from '../scenarios/world.js';
import type { KnownDisturbance, KnownDivergence } from './expectations/types.js';

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
   * leaks: only a design that hands host counters or host LBRs to the guest has any.
   */
  readonly leaks?: readonly KnownDivergence[];
  /**
   * Declared disturbances of host perf's LBRs by the guest (property 2, host-undisturbed), each with its mechanism:
   * only a design that hands the pCPU's LBRs to the guest has any.
   */
  readonly disturbances?: readonly KnownDisturbance[];
  /** False for a design that gives guests no LBRs (property 3 has nothing to check). */
  readonly guestLbr?: boolean;
  /** Why the design cannot run on `host` (e.g. the mediated vPMU needs PMU v4 and full-width writes), or null. */
  readonly unavailableOn?: (host: Profile) => string | null;
  /** For a ported bug, the upstream commit that fixed it. */
  readonly fixedBy?: string;
  /**
   * The upstream commit that introduced what the design's findings are about, where the port knows it: the `Fixes:`
   * tag a patch for such a finding carries (for a ported bug, the one its upstream fix carries).
   */
  readonly fixes?: { readonly commit: string; readonly subject: string };
  /**
   * What a VMM can get from the design on a host: KVM_GET_SUPPORTED_CPUID leaf 0xA and the feature MSR
   * PERF_CAPABILITIES (the PMU version KVM advertises, its counters and widths, an LBR format only for the host's own
   * family/model). Generation keeps to it by default; a design that does not state it is refused.
   */
  readonly supported: (host: Profile) => SupportedPmu;
  /** The upstream tree the design models, as a report names it; a design without one files no report. */
  readonly base?: string;
  /** The layer its own changes are in: KVM (default) or host perf, which decides a report's subject prefix. */
  readonly layer?: 'kvm' | 'perf';
  /** The vPMU the design is built on, where the host must load kvm for it: the mediated one needs enable_mediated_pmu=1. */
  readonly vpmu?: 'mediated';
}

export class DesignError extends Error {
  override readonly name = 'DesignError';
}

/** A design as the properties accept it: one that states its supported configuration; anything else is refused. */
export function checkDesign(d: Design): Design {
  const s = (d as Partial<Design>).supported;
  if (typeof s !== 'function')
    throw new DesignError(
      `design '${d.id}' does not state its supported configuration: give it 'supported', what KVM_GET_SUPPORTED_CPUID and the feature MSRs report on a host`,
    );
  return d;
}
