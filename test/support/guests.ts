/** Guests as a VMM configures them from what a design reports on a host (KVM_GET_SUPPORTED_CPUID, the feature MSRs). */
import { perfCaps, type Profile } from '../../model/hw/profile.js';
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
