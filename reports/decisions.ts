/** Every unverified decision by id, whichever layer made it, for a report to name what its verdict rests on. */

import { DECISIONS, type Decision } from '../model/hw/decisions.js';
import { HOST_DECISIONS } from '../model/host/decisions.js';
import { KVM_DECISIONS } from '../model/kvm/decisions.js';
import { WORLD_DECISIONS } from '../scenarios/decisions.js';

const ALL: ReadonlyMap<string, Decision> = new Map(
  [...DECISIONS, ...HOST_DECISIONS, ...KVM_DECISIONS, ...WORLD_DECISIONS].map((d) => [d.id, d]),
);

/** The decision `id` (D…, H…, K…, W…), or undefined for an id no list has. */
export function unverifiedDecision(id: string): Decision | undefined {
  return ALL.get(id);
}
