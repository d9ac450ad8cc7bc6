/**
 * The LAPIC LVT Performance Monitoring Counters entry through its x2APIC MSR (0x834)
 * (pmu-semantics.md §4.4; decision D32).
 */

import { type Access, gp, ok } from '../access.js';
import { describeBits, fields, maskOf } from '../bits.js';
import { msrFamily } from './family.js';

export const X2APIC_LVTPC = 0x834;

export const LVTPC = fields({ vector: [7, 0], deliveryMode: [10, 8], deliveryStatus: 12, mask: 16 });
export const LVT_MASK = 1n << 16n;
export const DELIVERY_NMI = 4;

const WRITABLE = maskOf(LVTPC, ['vector', 'deliveryMode', 'mask']);

export function legalizeLvtpc(v: bigint): Access {
  const bad = v & ~WRITABLE & ~maskOf(LVTPC, ['deliveryStatus']);
  return bad === 0n ? ok(v & WRITABLE) : gp(`x2APIC LVTPC: reserved ${describeBits(bad)} set`);
}

export const apicMsrs = msrFamily([], () => [
  {
    address: X2APIC_LVTPC,
    name: 'X2APIC_LVTPC',
    read: (s) => ok(s.lvtpc),
    write: (s, v) => {
      const r = legalizeLvtpc(v);
      if (r.ok) s.lvtpc = r.value;
      return r;
    },
  },
]);
