/** Guests as a VMM configures them from what a design reports on a host (KVM_GET_SUPPORTED_CPUID, the feature MSRs). */
import { leaf0aEax, leaf0aEdx, perfCaps, type Profile } from '../../model/hw/profile.js';
import type { Design } from '../../properties/design.js';
import { guestWithLbr } from '../../scenarios/generation.js';
import type { GuestConfig } from '../../scenarios/world.js';

/**
 * The design's reported PMU with full-width writes; with `lbr`, the LBRs it offers (Arch LBR with KVM's leaf 0x1C and
 * LBR_FMT 0x3f where it offers Arch LBR).
 */
export function reportedGuest(design: Design, host: Profile, lbr: boolean): GuestConfig {
  const s = design.supported(host);
  const g: GuestConfig = {
    cpuid: { family: host.family, model: host.model, leaf0a: s.leaf0a, pdcm: true },
    perfCapabilities: perfCaps({ fwWrite: true }),
  };
  return lbr ? guestWithLbr(host, s)(g) : g;
}

/** A v2 guest with 8 GP counters, FIXED_CTR0-3 and PERF_METRICS on `h`, as the topdown series give it. */
export function topdownGuest(h: Profile): GuestConfig {
  return {
    cpuid: {
      family: h.family,
      model: h.model,
      leaf0a: { eax: leaf0aEax(2, 8, h.gpWidth, h.evLen), ebx: 0, ecx: 0, edx: leaf0aEdx(4, h.fixedWidth) },
      pdcm: true,
    },
    perfCapabilities: perfCaps({ fwWrite: true, lbrFmt: 0, perfMetrics: true }),
  };
}

/** Version 2 on a Skylake model: 4 GP and 3 fixed counters of 48 bits, full-width writes, no LBRs. */
export const SKYLAKE_V2: GuestConfig = {
  cpuid: {
    family: 6,
    model: 0x55,
    leaf0a: { eax: leaf0aEax(2, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
    pdcm: true,
  },
  perfCapabilities: perfCaps({ fwWrite: true }),
};
