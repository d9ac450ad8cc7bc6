/**
 * KVM_SET_PMU_EVENT_FILTER: a port of the filter half of arch/x86/kvm/pmu.c
 * (kvm_vm_ioctl_set_pmu_event_filter, prepare_filter_lists, is_gp_event_allowed,
 * is_fixed_event_allowed). kvm-vpmu.md §2.17.
 */

import type { Errno, KvmPmuEventFilter } from '../types.js';

export const KVM_PMU_EVENT_ALLOW = 0;
export const KVM_PMU_EVENT_DENY = 1;
export const KVM_PMU_EVENT_FLAG_MASKED_EVENTS = 1;
export const KVM_PMU_EVENT_FILTER_MAX_EVENTS = 300;

/** One filter entry in KVM's internal masked form. */
interface MaskedEntry {
  readonly eventSelect: number;
  readonly mask: number;
  readonly match: number;
  readonly exclude: boolean;
}

/** struct kvm_x86_pmu_event_filter: the sorted include and exclude lists. */
export interface KvmX86PmuEventFilter {
  readonly action: number;
  readonly fixed_counter_bitmap: number;
  readonly includes: readonly MaskedEntry[];
  readonly excludes: readonly MaskedEntry[];
}

/** KVM_PMU_ENCODE_MASKED_ENTRY (Intel: the event select is bits 7:0). */
export function KVM_PMU_ENCODE_MASKED_ENTRY(
  eventSelect: number,
  mask: number,
  match: number,
  exclude: boolean,
): bigint {
  return (
    BigInt(eventSelect & 0xff) |
    (BigInt(match & 0xff) << 8n) |
    (exclude ? 1n << 55n : 0n) |
    (BigInt(mask & 0xff) << 56n)
  );
}

/** Bits a masked entry may use on Intel: event select 7:0, match 15:8, exclude 55, mask 63:56. */
const MASKED_ENTRY_VALID = 0xff80_0000_0000_ffffn;

function decodeMasked(e: bigint): MaskedEntry {
  return {
    eventSelect: Number(e & 0xffn),
    match: Number((e >> 8n) & 0xffn),
    exclude: ((e >> 55n) & 1n) === 1n,
    mask: Number((e >> 56n) & 0xffn),
  };
}

/**
 * kvm_vm_ioctl_set_pmu_event_filter + prepare_filter_lists: validates and converts. Legacy entries
 * with bits outside event select and umask are dropped (they could never match); invalid masked
 * entries fail the ioctl (-EINVAL).
 */
export function kvm_vm_ioctl_set_pmu_event_filter(
  f: KvmPmuEventFilter,
): KvmX86PmuEventFilter | { error: string; errno: Errno } {
  if (f.action !== KVM_PMU_EVENT_ALLOW && f.action !== KVM_PMU_EVENT_DENY)
    return { error: 'invalid action', errno: 'EINVAL' };
  if ((f.flags & ~KVM_PMU_EVENT_FLAG_MASKED_EVENTS) !== 0) return { error: 'invalid flags', errno: 'EINVAL' };
  if (f.events.length > KVM_PMU_EVENT_FILTER_MAX_EVENTS) return { error: 'too many events', errno: 'E2BIG' };
  const masked = (f.flags & KVM_PMU_EVENT_FLAG_MASKED_EVENTS) !== 0;
  const entries: MaskedEntry[] = [];
  for (const e of f.events) {
    if (masked) {
      if ((e & ~MASKED_ENTRY_VALID) !== 0n)
        return { error: `masked entry 0x${e.toString(16)} has invalid bits`, errno: 'EINVAL' };
      entries.push(decodeMasked(e));
    } else {
      if ((e & ~0xffffn) !== 0n) continue; // can never match an event select + umask
      entries.push({ eventSelect: Number(e & 0xffn), match: Number((e >> 8n) & 0xffn), mask: 0xff, exclude: false });
    }
  }
  const byKey = (a: MaskedEntry, b: MaskedEntry) => a.eventSelect - b.eventSelect;
  return {
    action: f.action,
    fixed_counter_bitmap: f.fixed_counter_bitmap,
    includes: entries.filter((e) => !e.exclude).sort(byKey),
    excludes: entries.filter((e) => e.exclude).sort(byKey),
  };
}

/** filter_contains_match: an entry for this event select whose mask/match accepts the umask. */
function filter_contains_match(list: readonly MaskedEntry[], eventsel: bigint): boolean {
  const event = Number(eventsel & 0xffn);
  const umask = Number((eventsel >> 8n) & 0xffn);
  return list.some((e) => e.eventSelect === event && (umask & e.mask) === e.match);
}

/** is_gp_event_allowed. */
export function is_gp_event_allowed(f: KvmX86PmuEventFilter, eventsel: bigint): boolean {
  if (filter_contains_match(f.includes, eventsel) && !filter_contains_match(f.excludes, eventsel))
    return f.action === KVM_PMU_EVENT_ALLOW;
  return f.action === KVM_PMU_EVENT_DENY;
}

/** is_fixed_event_allowed: the bitmap alone decides for fixed counters. */
export function is_fixed_event_allowed(f: KvmX86PmuEventFilter, fixedIdx: number): boolean {
  const set = ((f.fixed_counter_bitmap >>> fixedIdx) & 1) === 1;
  if (f.action === KVM_PMU_EVENT_DENY && set) return false;
  if (f.action === KVM_PMU_EVENT_ALLOW && !set) return false;
  return true;
}
