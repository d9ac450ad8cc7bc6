/**
 * The values the reproducers' expectations need, read from an observation's typed outcomes
 * (scenarios/observation.ts): an instruction's #GP or value, the PMIs with the unit each came after,
 * an XSAVES image, a VMM ioctl's answer.
 */

import type { ArchLbrXsave } from '../../model/hw/msr/lbr_arch.js';
import type { Errno, GuestPmi } from '../../model/kvm/types.js';
import { type Outcome, pmisOf as outcomePmis } from '../../scenarios/observation.js';

/** An instruction's result: a #GP, or the value it read (0 for a write that did not fault). */
export type Seen = { readonly gp: true } | { readonly gp: false; readonly value: bigint };

export function accessOf(x: Outcome): Seen {
  if (x.kind === 'gp') return { gp: true };
  if (x.kind === 'value') return { gp: false, value: x.value };
  return { gp: false, value: 0n };
}

/** The PMIs, oldest first (afterUnit -1: before an instruction, 0: after it). */
export const pmisOf = (x: Outcome): readonly GuestPmi[] => outcomePmis(x);

/** An Arch LBR image, or null for a #GP. */
export const xsaveOf = (x: Outcome): ArchLbrXsave | null => (x.kind === 'xsave' ? x.area : null);

/** A VMM ioctl's answer as the C helpers expect it: accepted, refused, a value read, or anything. */
export type SeenVmm =
  | { readonly kind: 'ok' }
  | { readonly kind: 'refused'; readonly errno?: Errno }
  | { readonly kind: 'value'; readonly value: bigint }
  | { readonly kind: 'any' };

export function vmmOf(x: Outcome): SeenVmm {
  if (x.kind === 'ok' || x.kind === 'accepted') return { kind: 'ok' };
  if (x.kind === 'refused') return x.errno === undefined ? { kind: 'refused' } : { kind: 'refused', errno: x.errno };
  if (x.kind === 'value') return { kind: 'value', value: x.value };
  return { kind: 'any' };
}
