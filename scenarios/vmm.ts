/**
 * The VMM's side of a program: the vCPU ioctls a VMM issues around the guest (KVM_SET_CPUID2,
 * KVM_SET_MSRS / KVM_GET_MSRS on PMU MSRs, the save round trip through KVM_GET_MSR_INDEX_LIST,
 * KVM_SET_PMU_EVENT_FILTER) and an external interrupt that exits the guest, as immutable
 * fast-check commands whose toString() pastes into a regression test. Their arbitraries follow.
 */

import fc from 'fast-check';
import {
  EVTSEL,
  MSR_IA32_PERFCTR0,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
} from '../model/hw/msr/counters.js';
import { type Profile, perfCaps } from '../model/hw/profile.js';
import type { WorkUnit } from '../model/hw/work.js';
import { KVM_PMU_CAP_DISABLE, type KvmPmuEventFilter, type SupportedPmu } from '../model/kvm/types.js';
import { KVM_PMU_ENCODE_MASKED_ENTRY } from '../model/kvm/common/filter.js';
import { evtselArb, type GuestShape } from './arbitraries.js';
import { supportedGuestArb } from './supported.js';
import {
  AlwaysRuns,
  assertSame,
  GuestRdmsr,
  GuestWrmsr,
  type NoModel,
  unitToCode,
  type WorldCommand,
} from './commands.js';
import { guestToCode } from './guest_code.js';
import { encode, u64 } from './values.js';
import type { GuestConfig, World } from './world.js';
import type { Observation } from './observation.js';
import {
  type CpuidChange,
  FILTER_MAX_EVENTS,
  irqExit,
  vmmGetMsr,
  vmmPmuCapability,
  vmmRoundTrip,
  vmmSetCpuid,
  vmmSetCpuidAgain,
  vmmSetMsr,
  vmmSetPmuEventFilter,
} from './vmm_ioctls.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../model/hw/msr/capabilities.js';
import { MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL } from '../model/hw/msr/global.js';
import {
  DEBUGCTL_FIELDS,
  DEBUGCTLMSR_BTF,
  DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
  DEBUGCTLMSR_LBR,
  MSR_IA32_DEBUGCTLMSR,
} from '../model/hw/msr/debugctl.js';

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

/** A VMM observation's other side is what KVM's ABI says to expect. */
const assertSameVmm = (obs: readonly Observation[], w: World) => assertSame(obs, w, 'expected');

/** KVM_SET_CPUID2 (and, with PDCM, PERF_CAPABILITIES): a new vCPU model, refused after KVM_RUN. */
export class VmmSetCpuid extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly config: GuestConfig,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSameVmm(vmmSetCpuid(w, this.vcpu, this.config), w);
  }
  toString(): string {
    return `new VmmSetCpuid(${this.vcpu}, ${guestToCode(this.config)})`;
  }
}

/** KVM_SET_CPUID2 after KVM_RUN of the vCPU's model, identical or with one change (nothing before KVM_RUN). */
export class VmmSetCpuidAgain extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly change: CpuidChange,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSameVmm(vmmSetCpuidAgain(w, this.vcpu, this.change), w);
  }
  toString(): string {
    const c = this.change;
    const rest = 'reg' in c ? `, reg: '${c.reg}', bit: ${c.bit}` : 'bit' in c ? `, bit: ${c.bit}` : '';
    return `new VmmSetCpuidAgain(${this.vcpu}, { field: '${c.field}'${rest} })`;
  }
}

/** KVM_SET_MSRS of one PMU MSR. */
export class VmmSetMsr extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly msr: number,
    readonly value: bigint,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSameVmm(vmmSetMsr(w, this.vcpu, this.msr, this.value), w);
  }
  toString(): string {
    return `new VmmSetMsr(${this.vcpu}, ${hex(this.msr)}, ${hex(this.value)}n)`;
  }
}

/** KVM_GET_MSRS of one PMU MSR. */
export class VmmGetMsr extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly msr: number,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSameVmm(vmmGetMsr(w, this.vcpu, this.msr), w);
  }
  toString(): string {
    return `new VmmGetMsr(${this.vcpu}, ${hex(this.msr)})`;
  }
}

/** KVM_GET_MSR_INDEX_LIST, then KVM_GET_MSRS and KVM_SET_MSRS of every listed MSR (a save). */
export class VmmRoundTrip extends AlwaysRuns {
  constructor(readonly vcpu: number) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSameVmm(vmmRoundTrip(w, this.vcpu), w);
  }
  toString(): string {
    return `new VmmRoundTrip(${this.vcpu})`;
  }
}

/** KVM_SET_PMU_EVENT_FILTER on the VM (null removes the filter). */
export class VmmSetPmuEventFilter extends AlwaysRuns {
  constructor(readonly filter: KvmPmuEventFilter | null) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSameVmm(vmmSetPmuEventFilter(w, this.filter), w);
  }
  toString(): string {
    const f = this.filter;
    if (f === null) return 'new VmmSetPmuEventFilter(null)';
    const ev =
      f.events.length > 8 && f.events.every((e) => e === f.events[0])
        ? `...Array<bigint>(${f.events.length}).fill(${hex(f.events[0]!)}n)`
        : f.events.map((e) => `${hex(e)}n`).join(', ');
    return `new VmmSetPmuEventFilter({ action: ${f.action}, flags: ${f.flags}, fixed_counter_bitmap: ${hex(f.fixed_counter_bitmap)}, events: [${ev}] })`;
  }
}

/**
 * KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY, args0) on the vCPU's VM after KVM_CREATE_VCPU: the per-VM PMU switch, which
 * KVM takes only before the VM's first vCPU (a VM set up with it is a guest's `pmuCap`).
 */
export class VmmPmuCapability extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly args0: bigint,
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    assertSameVmm(vmmPmuCapability(w, this.vcpu, this.args0), w);
  }
  toString(): string {
    return `new VmmPmuCapability(${this.vcpu}, ${hex(this.args0)}n)`;
  }
}

/** An external interrupt exits the guest; the host's IRQ handler runs `units` on its pCPU. */
export class IrqExit extends AlwaysRuns {
  constructor(
    readonly vcpu: number,
    readonly units: readonly WorkUnit[],
  ) {
    super();
  }
  run(_m: NoModel, w: World): void {
    irqExit(w, this.vcpu, this.units);
  }
  toString(): string {
    return `new IrqExit(${this.vcpu}, [${this.units.map(unitToCode).join(', ')}])`;
  }
}

// ---- arbitraries ----

/**
 * The PMU MSRs a VMM saves and restores: KVM_GET_MSR_INDEX_LIST's PMU part (counters, selectors, fixed and global
 * controls; the P6 counters beyond the guest's too), PERF_CAPABILITIES, and DEBUGCTL (which QEMU restores, and KVM lists
 * from 3700f0788da6 on).
 */
export const vmmMsrArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 8 }).map((i) => MSR_IA32_PERFCTR0 + i), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 8 }).map((i) => MSR_P6_EVNTSEL0 + i), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 3 }).map((i) => MSR_CORE_PERF_FIXED_CTR0 + i), weight: 2 },
  {
    arbitrary: fc.constantFrom(MSR_CORE_PERF_FIXED_CTR_CTRL, MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL),
    weight: 3,
  },
  { arbitrary: fc.constant(MSR_IA32_DEBUGCTLMSR), weight: 2 },
  { arbitrary: fc.constant(MSR_IA32_PERF_CAPABILITIES), weight: 1 },
);

/** A value with one bit of `bits` set, or none: what a restore of a register carrying a reserved bit looks like. */
const oneOf = (bits: readonly number[]) => fc.constantFrom(0n, ...bits.map((b) => 1n << BigInt(b)));

/** A counter value: near the overflow at 48 and 32 bits, small, or an edge (all ones, above any width). */
const counterValueArb: fc.Arbitrary<bigint> = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 40 }).map((k) => (1n << 48n) - BigInt(k)), weight: 3 },
  { arbitrary: fc.nat(1000).map(BigInt), weight: 3 },
  { arbitrary: fc.integer({ min: 1, max: 40 }).map((k) => 0x1_0000_0000n - BigInt(k)), weight: 1 },
  { arbitrary: fc.constantFrom(0n, 1n << 48n, (1n << 64n) - 1n, 1n << 63n), weight: 1 },
);

/**
 * GLOBAL_CTRL and GLOBAL_STATUS bits: mostly the counters a guest has (four GP, three fixed), sometimes any of eight
 * and four, and the architectural status bits (48, 55, 58..63) or one no counter has (40).
 */
const globalValueArb: fc.Arbitrary<bigint> = fc
  .tuple(
    fc.oneof({ arbitrary: fc.nat(0xf), weight: 3 }, { arbitrary: fc.nat(0xff), weight: 1 }),
    fc.oneof({ arbitrary: fc.nat(0x7), weight: 3 }, { arbitrary: fc.nat(0xf), weight: 1 }),
    fc.oneof(
      { arbitrary: fc.constant(0n), weight: 3 },
      { arbitrary: oneOf([48, 55, 58, 59, 61, 62, 63, 40]), weight: 2 },
    ),
  )
  .map(([gp, fixed, edge]) => BigInt(gp) | (BigInt(fixed) << 32n) | edge);

/** FIXED_CTR_CTRL: a field per fixed counter (EN_OS, EN_USR, PMI, sometimes AnyThread), sometimes a bit above them. */
const fixedCtrlValueArb: fc.Arbitrary<bigint> = fc
  .tuple(
    fc.array(fc.constantFrom<bigint>(0n, 0x3n, 0xbn, 0x1n, 0x2n, 0x9n, 0x4n, 0xfn), { minLength: 4, maxLength: 4 }),
    fc.oneof({ arbitrary: fc.constant(0n), weight: 4 }, { arbitrary: oneOf([16, 32, 63]), weight: 1 }),
  )
  .map(([n, edge]) => n.reduce((a: bigint, x: bigint, i: number) => a | (x << BigInt(4 * i)), 0n) | edge);

/** DEBUGCTL: the LBR, BTF and freeze bits most often, any architectural field, and now and then a reserved bit. */
const debugctlValueArb: fc.Arbitrary<bigint> = fc.oneof(
  {
    arbitrary: fc
      .subarray([DEBUGCTLMSR_LBR, DEBUGCTLMSR_BTF, DEBUGCTLMSR_FREEZE_LBRS_ON_PMI])
      .map((b) => b.reduce((a, x) => a | x, 0n)),
    weight: 4,
  },
  {
    arbitrary: fc
      .subarray(Object.values(DEBUGCTL_FIELDS).map((f) => 1n << BigInt(f.lo)))
      .map((b) => b.reduce((a, x) => a | x, 0n)),
    weight: 2,
  },
  { arbitrary: oneOf([3, 4, 5, 16, 63]), weight: 1 },
);

/** A value a VMM restores into `msr`: built from the register's fields, edge values weighted in. */
export function vmmValueArb(msr: number, host: Profile): fc.Arbitrary<bigint> {
  if (msr >= MSR_P6_EVNTSEL0 && msr < 0x18f)
    return fc.oneof(
      { arbitrary: evtselArb, weight: 4 },
      { arbitrary: fc.constant(0n), weight: 1 },
      { arbitrary: fc.tuple(evtselArb, oneOf([21, 32, 33, 34, 35, 63])).map(([e, b]) => e | b), weight: 1 },
    );
  if ((msr >= MSR_IA32_PERFCTR0 && msr < 0xca) || (msr >= MSR_CORE_PERF_FIXED_CTR0 && msr < 0x30d))
    return counterValueArb;
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) return fixedCtrlValueArb;
  if (msr === MSR_CORE_PERF_GLOBAL_STATUS || msr === MSR_CORE_PERF_GLOBAL_CTRL) return globalValueArb;
  if (msr === MSR_IA32_DEBUGCTLMSR) return debugctlValueArb;
  if (msr === MSR_IA32_PERF_CAPABILITIES)
    return fc.oneof(
      {
        arbitrary: fc.constantFrom(0n, perfCaps({ fwWrite: true, lbrFmt: 0 }), host.perfCapabilities & 0x203fn),
        weight: 4,
      },
      { arbitrary: u64, weight: 1 },
    );
  return u64;
}

/** A PMU MSR a VMM saves, mostly one of the program's focus (what its guest commands touch too). */
function vmmFocusMsrArb(focus: readonly number[]): fc.Arbitrary<number> {
  const mine = focus.filter(isVmmMsr);
  return mine.length === 0
    ? vmmMsrArb
    : fc.oneof({ arbitrary: fc.constantFrom(...mine), weight: 2 }, { arbitrary: vmmMsrArb, weight: 1 });
}

/** KVM_SET_MSRS of a PMU MSR, mostly one of the program's focus. */
export function vmmSetMsrArb(host: Profile, focus: readonly number[] = []): fc.Arbitrary<WorldCommand> {
  return vmmFocusMsrArb(focus).chain((m) => vmmValueArb(m, host).map((v): WorldCommand => new VmmSetMsr(0, m, v)));
}

/**
 * A VMM's save of the vCPU (QEMU's kvm_get_msrs at migration): KVM_GET_MSRS of the global controls and status, and of
 * every counter and control of the guest's shape, each judged on its own.
 */
export function vmmSaveCommands(shape: GuestShape): WorldCommand[] {
  const msrs = [
    MSR_CORE_PERF_FIXED_CTR_CTRL,
    MSR_CORE_PERF_GLOBAL_CTRL,
    MSR_CORE_PERF_GLOBAL_STATUS,
    ...Array.from({ length: shape.nFixed }, (_, i) => MSR_CORE_PERF_FIXED_CTR0 + i),
    ...Array.from({ length: shape.nGP }, (_, i) => MSR_IA32_PERFCTR0 + i),
    ...Array.from({ length: shape.nGP }, (_, i) => MSR_P6_EVNTSEL0 + i),
  ];
  return msrs.map((m) => new VmmGetMsr(0, m));
}

/** KVM_GET_MSRS of a PMU MSR a VMM saves, mostly one of the program's focus. */
export const vmmGetMsrArb = (focus: readonly number[] = []): fc.Arbitrary<WorldCommand> =>
  vmmFocusMsrArb(focus).map((m) => new VmmGetMsr(0, m));

function isVmmMsr(m: number): boolean {
  return (
    m === MSR_IA32_DEBUGCTLMSR ||
    (m >= MSR_IA32_PERFCTR0 && m < 0xca) ||
    (m >= MSR_P6_EVNTSEL0 && m < 0x18f) ||
    (m >= MSR_CORE_PERF_FIXED_CTR0 && m < 0x30d) ||
    (m >= MSR_CORE_PERF_FIXED_CTR_CTRL && m <= MSR_CORE_PERF_GLOBAL_CTRL) ||
    m === MSR_IA32_PERF_CAPABILITIES
  );
}

/**
 * A vCPU model without an architectural PMU (CPUID.0AH all zero), in a VM whose vPMU is on: KVM's vPMU has version 0,
 * as a CPU without one; with PDCM now and then, whose PERF_CAPABILITIES KVM then holds at 0.
 */
export const noPmuGuestArb = (host: Profile): fc.Arbitrary<GuestConfig> =>
  fc.boolean().map((pdcm) => ({
    cpuid: { family: host.family, model: host.model, leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 }, pdcm },
    perfCapabilities: 0n,
  }));

/** KVM_SET_CPUID2 of a model KVM supports, or of one without a PMU. */
export const vmmSetCpuidArb = (host: Profile, supported: SupportedPmu): fc.Arbitrary<WorldCommand> =>
  fc
    .oneof({ arbitrary: supportedGuestArb(host, supported), weight: 5 }, { arbitrary: noPmuGuestArb(host), weight: 1 })
    .map((g) => new VmmSetCpuid(0, g));

/**
 * The vCPU's model set again after KVM_RUN: mostly unchanged (vCPU hot-plug), else one field or one bit of the payload
 * changed, which KVM must refuse.
 */
export const vmmSetCpuidAgainArb: fc.Arbitrary<WorldCommand> = fc
  .oneof(
    { weight: 3, arbitrary: fc.constant<CpuidChange>({ field: 'none' }) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<CpuidChange>(
        { field: 'family' },
        { field: 'model' },
        { field: 'pdcm' },
        { field: 'tsx' },
        { field: 'archLbr' },
      ),
    },
    {
      weight: 3,
      arbitrary: fc
        .record({
          field: fc.constantFrom('leaf0a' as const, 'leaf1c' as const),
          reg: fc.constantFrom('eax' as const, 'ebx' as const, 'ecx' as const, 'edx' as const),
          bit: fc.nat(31),
        })
        .map((c): CpuidChange => c),
    },
    { weight: 1, arbitrary: fc.nat(63).map((bit): CpuidChange => ({ field: 'perfCapabilities', bit })) },
  )
  .map((c) => new VmmSetCpuidAgain(0, c));

/**
 * A filter at the edges of what KVM_SET_PMU_EVENT_FILTER accepts. Refused, as the selftest builds them: an action past
 * DENY, a flag past MASKED_EVENTS, one event more than the maximum, a masked entry with a bit outside its fields.
 * Accepted: the maximum number of events, a masked entry with every field bit set.
 */
export const filterEdgeArb: fc.Arbitrary<KvmPmuEventFilter> = fc.oneof(
  fc.constantFrom(0, 1).map((flags) => ({
    action: 1,
    flags,
    fixed_counter_bitmap: 0,
    events: Array<bigint>(FILTER_MAX_EVENTS).fill(0xc0n),
  })),
  fc.constant({ action: 1, flags: 1, fixed_counter_bitmap: 0, events: [0xff80_0000_0000_ffffn] }),
  fc.integer({ min: 2, max: 3 }).map((action) => ({ action, flags: 0, fixed_counter_bitmap: 0, events: [0xc0n] })),
  fc.constantFrom(2, 3, 0x80).map((flags) => ({ action: 1, flags, fixed_counter_bitmap: 0, events: [0xc0n] })),
  fc.constantFrom(0, 1).map((flags) => ({
    action: 0,
    flags,
    fixed_counter_bitmap: 0,
    events: Array<bigint>(FILTER_MAX_EVENTS + 1).fill(0xc0n),
  })),
  // Bits 16-54 are no masked entry's field (on AMD bits 35:32 would be event select).
  fc.integer({ min: 16, max: 54 }).map((b) => ({
    action: 0,
    flags: 1,
    fixed_counter_bitmap: 0,
    events: [0xc0n | (1n << BigInt(b))],
  })),
);

/** The architectural events drivers program, as filter entries: (umask << 8) | event select. */
const FILTER_EVENTS = [0xc0n, 0x3cn, 0xc4n, 0xc5n, 0x2en, 0x13cn, 0x4f2en];

/**
 * The events a VMM program's guest counts, as filter entries: the architectural events drivers program, with the unit
 * mask siblings a masked filter tells apart (core and reference cycles, LLC references and misses).
 */
const COUNTED_EVENTS = [0xc0n, 0x3cn, 0x13cn, 0xc4n, 0x4f2en, 0x412en];

/**
 * What a VMM program's guest counts: GP events and fixed counters. A VMM filters the events its guests use, so the
 * filter mostly names these, allowed or denied, and the guest programs and reads them under it.
 */
export interface Counted {
  readonly events: readonly bigint[];
  readonly fixed: readonly number[];
}

export const countedArb = (shape: GuestShape): fc.Arbitrary<Counted> =>
  fc.record({
    events: fc.oneof(
      { arbitrary: fc.constant([0xc0n]), weight: 2 },
      { arbitrary: fc.subarray(COUNTED_EVENTS, { minLength: 1, maxLength: 2 }), weight: 3 },
    ),
    fixed:
      shape.nFixed === 0
        ? fc.constant([])
        : fc.subarray(
            Array.from({ length: Math.min(shape.nFixed, 3) }, (_, j) => j),
            { minLength: 1 },
          ),
  });

/** A masked filter entry as userspace encodes it. */
const maskedEntry = (event: bigint, mask: bigint, match: bigint, exclude: boolean) =>
  KVM_PMU_ENCODE_MASKED_ENTRY(Number(event & 0xffn), Number(mask), Number(match), exclude);

/**
 * A filter as userspace writes one: a deny or allow list of events, mostly the guest's own, sometimes masked, and a
 * fixed-counter bitmap; with masked events, now and then every unit mask of one of the guest's events but one (the
 * use api.rst gives masked events), the excluded one sometimes the guest's.
 */
export function filterArb(c: Counted): fc.Arbitrary<KvmPmuEventFilter> {
  const events = fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .tuple(
          fc.subarray([...c.events], { minLength: 1 }),
          fc.subarray(FILTER_EVENTS),
          fc.option(fc.integer({ min: 32, max: 35 }), { freq: 6 }),
        )
        // Now and then the guest's first event with a bit of 35:32 (AMD's event select), which on Intel can never
        // match: KVM drops the entry (convert_to_masked_filter), so the filter is as if it did not name that event.
        .map(([mine, other, amd]) => [
          ...new Set([...(amd === null ? mine : [mine[0]! | (1n << BigInt(amd)), ...mine.slice(1)]), ...other]),
        ]),
    },
    { weight: 1, arbitrary: fc.subarray(FILTER_EVENTS, { minLength: 1 }) },
  );
  const randomMasked = fc.array(
    fc
      .record({
        event: fc.constantFrom(0xc0n, 0x3cn, 0xc4n, 0x2en),
        mask: fc.constantFrom(0n, 0xffn, 0x01n),
        match: fc.constantFrom(0n, 1n),
        exclude: fc.boolean(),
      })
      .map((e) => maskedEntry(e.event, e.mask, e.match, e.exclude)),
    { minLength: 1, maxLength: 3 },
  );
  // All unit masks of the event (mask 0), less one: the guest's own unit mask or another one's of COUNTED_EVENTS.
  const allButOne = fc
    .tuple(fc.constantFrom(...c.events), fc.constantFrom(...c.events, ...COUNTED_EVENTS))
    .map(([e, x]) => [maskedEntry(e, 0n, 0n, false), maskedEntry(e, 0xffn, (x >> 8n) & 0xffn, true)]);
  // Any fixed counters, none (an event list whose author left the bitmap at 0), or exactly the guest's.
  const bitmap = fc.oneof(
    { weight: 2, arbitrary: fc.nat(7) },
    { weight: 1, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.constant(c.fixed.reduce((a, j) => a | (1 << j), 0)) },
  );
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        action: fc.constantFrom(0, 1),
        flags: fc.constant(0),
        fixed_counter_bitmap: bitmap,
        events,
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        action: fc.constantFrom(0, 1),
        flags: fc.constant(1),
        fixed_counter_bitmap: bitmap,
        events: fc.oneof({ weight: 1, arbitrary: randomMasked }, { weight: 2, arbitrary: allButOne }),
      }),
    },
  );
}

export const vmmSetFilterArb = (c: Counted): fc.Arbitrary<WorldCommand> =>
  filterArb(c).map((f) => new VmmSetPmuEventFilter(f));

/** The per-VM PMU switch a VMM may try too late: KVM_PMU_CAP_DISABLE, 0 (enable), or a flag KVM does not know. */
export const vmmPmuCapabilityArb: fc.Arbitrary<WorldCommand> = fc
  .constantFrom(1n, 0n, 2n)
  .map((a) => new VmmPmuCapability(0, a));

/**
 * A guest of a VM the VMM created with KVM_PMU_CAP_DISABLE, as QEMU's `pmu=off` does: CPUID leaf 0xA zero and no
 * PDCM, which is all a VMM can give a vCPU without a vPMU.
 */
export const pmuOffGuestArb = (host: Profile): fc.Arbitrary<GuestConfig> =>
  fc.constant({
    cpuid: { family: host.family, model: host.model, leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 }, pdcm: false },
    perfCapabilities: 0n,
    pmuCap: KVM_PMU_CAP_DISABLE,
  });

/** An enabled selector for one of the guest's events, counting the kernel: what a guest under a filter programs. */
export const countingEvtselArb = (c: Counted): fc.Arbitrary<bigint> =>
  fc
    .record({ event: fc.constantFrom(...c.events), usr: fc.constantFrom(0n, 1n) })
    .map(({ event, usr }) =>
      encode(EVTSEL, { event: event & 0xffn, umask: (event >> 8n) & 0xffn, os: 1n, usr, int: 0n, en: 1n }),
    );

/**
 * The guest programs one of its GP counters with one of its events (what a filter then has to stop) or reads one back;
 * where it has fixed counters, it enables its fixed ones (FIXED_CTR_CTRL, then GLOBAL_CTRL with its GP counters, as a
 * driver's enable-all writes it) or reads one back.
 */
export function guestCountingArbs(shape: GuestShape, c: Counted): fc.Arbitrary<WorldCommand | WorldCommand[]>[] {
  const i = fc.nat(Math.max(shape.nGP - 1, 0));
  const gp = [
    fc.tuple(i, countingEvtselArb(c)).map(([k, v]): WorldCommand => new GuestWrmsr(0, MSR_P6_EVNTSEL0 + k, v)),
    i.map((k): WorldCommand => new GuestRdmsr(0, MSR_IA32_PERFCTR0 + k)),
  ];
  if (c.fixed.length === 0) return gp;
  const gpBits = (1n << BigInt(shape.nGP)) - 1n;
  // Each of its fixed counters at CPL 0 and 3, with a PMI now and then.
  const enable = fc
    .array(fc.constantFrom(0x3n, 0x3n, 0xbn), { minLength: c.fixed.length, maxLength: c.fixed.length })
    .map((fields): WorldCommand[] => [
      new GuestWrmsr(
        0,
        MSR_CORE_PERF_FIXED_CTR_CTRL,
        c.fixed.reduce((a, j, k) => a | (fields[k]! << BigInt(4 * j)), 0n),
      ),
      new GuestWrmsr(
        0,
        MSR_CORE_PERF_GLOBAL_CTRL,
        c.fixed.reduce((a, j) => a | (1n << BigInt(32 + j)), gpBits),
      ),
    ]);
  const read = fc.constantFrom(...c.fixed).map((j): WorldCommand => new GuestRdmsr(0, MSR_CORE_PERF_FIXED_CTR0 + j));
  return [...gp, enable, read];
}

/** The guest reads back PMU state a VMM sets (counters, selectors, controls, DEBUGCTL, PERF_CAPABILITIES), mostly the focus. */
export const guestReadbackArb = (focus: readonly number[] = []): fc.Arbitrary<WorldCommand> =>
  vmmFocusMsrArb(focus).map((m): WorldCommand => new GuestRdmsr(0, m));

/** Host IRQ handler work: kernel code, long enough for a host sampling period to elapse in it. */
export const irqHandlerArb: fc.Arbitrary<WorkUnit[]> = fc.array(
  fc.integer({ min: 10, max: 400 }).map((n): WorkUnit => ({ cpl: 0, instructions: n, cycles: 3 * n })),
  { minLength: 1, maxLength: 3 },
);

export const irqExitArb: fc.Arbitrary<WorldCommand> = irqHandlerArb.map((u) => new IrqExit(0, u));
