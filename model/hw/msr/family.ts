/**
 * One MSR family's defs, shared by every profile that agrees on the fields the family is built
 * from. A family reads only the fields it names (the builder sees a Pick of them, so the compiler
 * holds it to that); its rules read anything else from `s.profile` at access time. Every guest
 * config makes a new oracle profile, and its defs are then mostly found, not built.
 */

import type { Profile } from '../profile.js';
import type { MsrDef } from './types.js';

/** A stable id per object-valued field (an LBR geometry), so equal keys mean the same object. */
const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;
/**
 * Shapes kept per family (and whole MSR files kept by shape in map.ts). A design's 2000 programs meet about 130 guest
 * shapes; the laws' random profiles meet hundreds used once, which 1024 kept at some 60 MB a worker.
 */
export const MAX_SHAPES = 256;

function keyPart(v: unknown): string {
  if (typeof v === 'object' && v !== null) {
    let id = objectIds.get(v);
    if (id === undefined) objectIds.set(v, (id = nextObjectId++));
    return `#${id}`;
  }
  return String(v);
}

/** A family's defs for a profile, and the key that decides them (equal keys, the same defs). */
export type MsrFamily = ((p: Profile) => readonly MsrDef[]) & { readonly key: (p: Profile) => string };

export function msrFamily<K extends keyof Profile>(
  fields: readonly K[],
  build: (p: Pick<Profile, K>) => readonly MsrDef[],
): MsrFamily {
  const built = new Map<string, readonly MsrDef[]>();
  const key = (p: Profile): string => {
    let k = '';
    for (const f of fields) k += `${keyPart(p[f])}|`;
    return k;
  };
  const defsOf = (p: Profile): readonly MsrDef[] => {
    const k = key(p);
    let defs = built.get(k);
    if (defs === undefined) {
      if (built.size >= MAX_SHAPES) built.clear(); // a long random run meets many shapes: bound the memory
      built.set(k, (defs = Object.freeze(build(p))));
    }
    return defs;
  };
  return Object.assign(defsOf, { key });
}
