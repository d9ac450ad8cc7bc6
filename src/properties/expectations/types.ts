import type { Profile } from '../../model/hw/profile.js';
import type { GuestConfig, Observation } from '../../scenarios/world.js';

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
}
