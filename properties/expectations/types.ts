import type { Profile } from '../../model/hw/profile.js';
import type { Access } from '../../model/hw/access.js';
import type { Adoption, GuestConfig, MsrAttempt } from '../../scenarios/world.js';
import type { Observation } from '../../scenarios/observation.js';

/** What a known divergence is judged against. */
export interface DivergenceContext {
  readonly host: Profile;
  readonly guest: GuestConfig;
  /** Every observation of the program so far, the divergent one last. */
  readonly history: readonly Observation[];
}

/**
 * A divergence of a design from bare metal that upstream has on purpose or by known limitation.
 * When the first divergence of a program matches one, the program ends as a known divergence.
 */
export interface KnownDivergence {
  readonly id: string;
  readonly title: string;
  /** Where in the kernel the behaviour comes from. */
  readonly kernelRef: string;
  readonly matches: (o: Observation, ctx: DivergenceContext) => boolean;
  /**
   * The weaker contract that still holds after this divergence, checked on every later
   * observation of the program: null where it holds, else what is wrong. Without one, the
   * program simply ends at the known divergence.
   */
  readonly contract?: (o: Observation, ctx: DivergenceContext) => string | null;
  /**
   * Where bare metal can take this divergence on for one guest MSR access (decision W6): the
   * result the oracle takes instead of its #GP, or null where this divergence is not the cause.
   * Such a program does not end: it goes on and is compared exactly.
   */
  readonly adopt?: (a: MsrAttempt & { readonly oracle: Access }, host: Profile) => Access | null;
  /** Likewise where the design #GPs: true if this divergence is why, and bare metal faults too (W6). */
  readonly adoptFault?: (a: MsrAttempt, host: Profile) => boolean;
}

/** The World's adoption hooks for a design's declared divergences on a host, if any adopts. */
export function adoptionOf(ks: readonly KnownDivergence[], host: Profile): Adoption | undefined {
  const results = ks.filter((k) => k.adopt !== undefined);
  const faults = ks.filter((k) => k.adoptFault !== undefined);
  if (results.length === 0 && faults.length === 0) return undefined;
  return {
    result: (a) => {
      for (const k of results) {
        const result = k.adopt!(a, host);
        if (result !== null) return { id: k.id, result };
      }
      return null;
    },
    fault: (a) => faults.find((k) => k.adoptFault!(a, host))?.id ?? null,
  };
}
