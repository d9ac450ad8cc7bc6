/**
 * Typed errors for programming mistakes: a malformed profile, a negative count, an unknown
 * branch kind or MSR name. Architectural faults (#GP) are never thrown; they are results.
 */

export class ModelError extends Error {
  override readonly name: string = 'ModelError';
}

/** A CPU profile that contradicts itself or that the model cannot represent; names the field. */
export class ProfileError extends ModelError {
  override readonly name = 'ProfileError';
  constructor(
    readonly profile: string,
    readonly field: string,
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
