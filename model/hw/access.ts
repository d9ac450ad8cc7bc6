/**
 * The result of an architectural access (RDMSR, WRMSR, RDPMC, XRSTORS): a value, or a #GP with
 * the rule that raised it. A fault is data, not an exception, because the oracle reports it.
 */

export type Access =
  | { readonly ok: true; readonly value: bigint }
  /** `reservedBits`: for a write refused for its value, the bits of it the rule reserves (what a declaration names). */
  | { readonly ok: false; readonly gp: string; readonly reservedBits?: bigint };

/** Zero is most registers' value: one shared (immutable) result serves every read and write of it. */
const OK_ZERO: Access = Object.freeze({ ok: true, value: 0n });

export function ok(value: bigint): Access {
  return value === 0n ? OK_ZERO : { ok: true, value };
}

export function gp(why: string, reservedBits?: bigint): Access {
  return reservedBits === undefined ? { ok: false, gp: why } : { ok: false, gp: why, reservedBits };
}
