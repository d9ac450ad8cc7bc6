/**
 * Reads the values out of an observation's two sides as the World prints them ('0x1f', '#GP',
 * 'PMI(vector 2) after unit 4', an Arch LBR image), for the reproducers' expectations. Kept in one
 * place so that a change of the World's wording breaks one tested module, not the emitters.
 */

import type { Observation } from '../../scenarios/world.js';

export class ObservedFormatError extends Error {
  override readonly name = 'ObservedFormatError';
}

/** An instruction's result: a #GP, or the value it read (0 for a write that did not fault). */
export type Seen = { readonly gp: true } | { readonly gp: false; readonly value: bigint };

export function accessOf(text: string): Seen {
  if (text === '#GP') return { gp: true };
  if (/^0x[0-9a-f]+$/.test(text)) return { gp: false, value: BigInt(text) };
  throw new ObservedFormatError(`not an access result: '${text}'`);
}

export interface SeenPmi {
  readonly vector: number;
  /** The unit after which it came (-1: before an instruction, 0: after it). */
  readonly afterUnit: number;
}

export function pmisOf(text: string): SeenPmi[] {
  if (text === 'no PMI') return [];
  return text.split(', ').map((p) => {
    const m = /^PMI\(vector (\d+)\) after unit (-?\d+)$/.exec(p);
    if (m === null) throw new ObservedFormatError(`not a PMI list: '${text}'`);
    return { vector: Number(m[1]), afterUnit: Number(m[2]) };
  });
}

/** An Arch LBR image as XSAVES stores it (LER_INFO is not in the World's rendering). */
export interface SeenXsave {
  readonly lbrCtl: bigint;
  readonly lbrDepth: bigint;
  readonly lerFrom: bigint;
  readonly lerTo: bigint;
  readonly entries: readonly { readonly from: bigint; readonly to: bigint; readonly info: bigint }[];
}

export function xsaveOf(text: string): SeenXsave | null {
  if (text === '#GP') return null;
  const m = /^ctl 0x([0-9a-f]+) depth (\d+) ler ([0-9a-f]+)->([0-9a-f]+) \[(.*)\]$/.exec(text);
  if (m === null) throw new ObservedFormatError(`not an XSAVES image: '${text}'`);
  const entries =
    m[5] === ''
      ? []
      : m[5]!.split(' ').map((e) => {
          const r = /^([0-9a-f]+)->([0-9a-f]+)\/([0-9a-f]+)$/.exec(e);
          if (r === null) throw new ObservedFormatError(`not an LBR record: '${e}'`);
          return { from: BigInt(`0x${r[1]}`), to: BigInt(`0x${r[2]}`), info: BigInt(`0x${r[3]}`) };
        });
  return {
    lbrCtl: BigInt(`0x${m[1]}`),
    lbrDepth: BigInt(m[2]!),
    lerFrom: BigInt(`0x${m[3]}`),
    lerTo: BigInt(`0x${m[4]}`),
    entries,
  };
}

/** A host-initiated access's result: 'ok', 'refused', or the value KVM_GET_MSRS read. */
export type SeenVmm =
  { readonly kind: 'ok' } | { readonly kind: 'refused' } | { readonly kind: 'value'; readonly value: bigint };

export function vmmOf(text: string): SeenVmm | null {
  if (text === 'ok') return { kind: 'ok' };
  if (text === 'refused') return { kind: 'refused' };
  if (/^0x[0-9a-f]+$/.test(text)) return { kind: 'value', value: BigInt(text) };
  return null;
}

/** The side of an observation: what the design showed (sut) or what bare metal / the ABI expects (oracle). */
export type Side = 'sut' | 'oracle';
export const side = (o: Observation, s: Side): string => (s === 'sut' ? o.sut : o.oracle);
