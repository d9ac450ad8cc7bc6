/**
 * The LAPIC LVT Performance Monitoring Counters entry through its x2APIC MSR (0x834)
 * (pmu-semantics.md §4.4; decision D32).
 */

import { type Access, gp, ok } from '../access.js';
import { describeBits, fieldMask, fields, maskOf } from '../bits.js';
import { msrFamily } from './family.js';
import { relied } from '../relied.js';

export const X2APIC_LVTPC = 0x834;

export const LVTPC = fields({ vector: [7, 0], deliveryMode: [10, 8], deliveryStatus: 12, mask: 16 });
/** The entry's bits by the kernel's names (apicdef.h). */
export const APIC_LVT_MASKED = fieldMask(LVTPC.mask);
export const APIC_VECTOR_MASK = fieldMask(LVTPC.vector);
export const APIC_MODE_MASK = fieldMask(LVTPC.deliveryMode);
/** Delivery modes, as the field holds them (APIC_DM_* >> 8). */
export const APIC_DM = { FIXED: 0, LOWEST: 1, SMI: 2, NMI: 4, INIT: 5, EXTINT: 7 } as const;
export const APIC_DM_FIXED = BigInt(APIC_DM.FIXED) << BigInt(LVTPC.deliveryMode.lo);
export const APIC_DM_NMI = BigInt(APIC_DM.NMI) << BigInt(LVTPC.deliveryMode.lo);

const WRITABLE = maskOf(LVTPC, ['vector', 'deliveryMode', 'mask']);
/** The read-only delivery status (bit 12): a write of it is ignored (D32). */
export const APIC_SEND_PENDING = fieldMask(LVTPC.deliveryStatus);
/** Every other bit of the 64 is reserved: a WRMSR setting one #GPs (SDM Vol. 3A, x2APIC "Reserved Bit Checking"). */
export const LVTPC_RESERVED = ((1n << 64n) - 1n) & ~WRITABLE & ~APIC_SEND_PENDING;

export function legalizeLvtpc(v: bigint): Access {
  const bad = v & LVTPC_RESERVED;
  if ((v & ~WRITABLE) !== 0n) relied('D32'); // a reserved bit, or the read-only delivery status
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
