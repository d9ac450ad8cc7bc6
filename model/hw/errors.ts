/**
 * Typed errors for programming mistakes: a malformed profile, a negative count, an unknown
 * branch kind or MSR name. Architectural faults (#GP) are never thrown; they are results.
 */

export class ModelError extends Error {
  override readonly name: string = 'ModelError';
}

/** Which contradiction a profile has: what a check decides on, where the message is only for people. */
export type ProfileRule =
  | 'not-u32'
  | 'no-name'
  | 'bad-family'
  | 'bad-model'
  | 'v0-with-counters'
  | 'too-many-gp'
  | 'gp-width'
  | 'event-vector-length'
  | 'fixed-beyond-map'
  | 'fixed-width'
  | 'caps-not-u64'
  | 'caps-without-pdcm'
  | 'metrics-without-slots'
  | 'metrics-clear-without-metrics'
  | 'l2-without-metrics'
  | 'arch-lbr-no-depth'
  | 'arch-lbr-without-fmt-arch'
  | 'arch-lbr-with-legacy'
  | 'fmt-arch-without-leaf1c'
  | 'legacy-geometry-fmt'
  | 'legacy-depth'
  | 'legacy-info'
  | 'legacy-call-stack'
  | 'legacy-without-geometry'
  | 'fmt-undefined';

/** A CPU profile that contradicts itself or that the model cannot represent; names the field and the rule. */
export class ProfileError extends ModelError {
  override readonly name = 'ProfileError';
  constructor(
    readonly profile: string,
    readonly field: string,
    readonly rule: ProfileRule,
    message: string,
  ) {
    super(`profile '${profile}': ${field}: ${message}`);
  }
}

/** A work unit that cannot happen: negative counts, unknown branch kind, bad CPL. */
export class WorkError extends ModelError {
  override readonly name = 'WorkError';
}

/** An MSR name the model does not know, or an argument that is not an MSR address. */
export class MsrNameError extends ModelError {
  override readonly name = 'MsrNameError';
}
