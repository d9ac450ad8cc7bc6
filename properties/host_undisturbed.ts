/**
 * Property 2 (second half): the guest does not disturb the host. A host user's pinned,
 * exclude_guest, user-only event counts exactly what it counts on the same host with no guest at
 * all (design.md "Properties": host events equal a host-only oracle, with guest work excluded where
 * exclude_guest says so). User-only, because KVM's own exit handling is host kernel work that host
 * events rightly count (decision K3); pinned, because flexible host events may legitimately lose
 * counters to KVM's pinned ones.
 *
 * Host perf's LBR state too: with a host LBR user (perf record -b -a, pinned) on a pCPU, after every command its
 * IA32_LBR_CTL, IA32_LBR_DEPTH and records (on a legacy LBR host DEBUGCTL's LBR bits, MSR_LBR_SELECT and the records
 * newest first from the TOS) are what the same host without the guest has, but for
 * branches the guest's presence adds to the stack (the guest's own, recorded under the host's LBR_CTL, and KVM's exit
 * handler's: whether perf may trace the guest is what seed 004 asks and no kernel decides), which only push the host's
 * older records out. The vCPU thread runs on its pCPU from the start and these programs move it nowhere, so perf's own
 * LBR resets (at a context switch, at a new LBR user) fall alike in both runs.
 */

import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import type { WorkUnit } from '../model/hw/work.js';
import { attr } from '../model/host/types.js';
import {
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../model/hw/msr/lbr_arch.js';
import { LBR_INFO_CYC_CNT, MSR_LBR_SELECT, MSR_LBR_TOS } from '../model/hw/msr/lbr_legacy.js';
import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI, DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { mixedProgramArb } from '../scenarios/arbitraries.js';
import { guestWithLbr, hostLbrCommands } from '../scenarios/generation.js';
import { supportedGuestArb, supportedOf } from '../scenarios/supported.js';
import { HostOpen, HostWork, type WorldCommand } from '../scenarios/commands.js';
import { unitArb } from '../scenarios/work.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';
import type { SupportedPmu } from '../model/kvm/types.js';
import type { HostLbrDifference, KnownDisturbance, LbrRecord } from './expectations/types.js';

export interface HostUndisturbedRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly hostKernel?: HostKernelFactory | undefined;
  /** What the design reports on the host (probed from the design when not given). */
  readonly supported?: SupportedPmu | undefined;
  /** The design's declared disturbances of host perf's LBRs: a program whose first difference they all explain ends as known. */
  readonly disturbances?: readonly KnownDisturbance[];
  /** Counts the declared disturbances met, by id. */
  readonly known?: Map<string, number>;
}

export class HostDisturbed extends Error {
  override readonly name = 'HostDisturbed';
}

/** Host perf's LBR state differs with the guest from the host's without it: no count, so no report of its own yet. */
export class HostLbrDisturbed extends Error {
  override readonly name = 'HostLbrDisturbed';
}

/** Host user text: host work branches from and to here, where no guest work branches, so its records are told apart. */
const HOST_TEXT = 0x7f00_0000_0000n;
const HOST_TEXT_MASK = 0xff_ffffn;
const inHostText = (a: bigint) => a - HOST_TEXT >= 0n && a - HOST_TEXT <= HOST_TEXT_MASK;

const hostOpenArb: fc.Arbitrary<WorldCommand> = fc
  .record({ cpu: fc.constantFrom(0, 0, 1), config: fc.constantFrom(0xc0n, 0x3cn, 0xc4n, 0x4f2en) })
  .map((r) => new HostOpen(r.cpu, attr({ config: r.config, pinned: true, exclude_guest: true, exclude_kernel: true })));

/** Host user work: CPL 3 units on a pCPU, branching in host user text (World.hostWork: beside the vCPU thread, no preemption). */
const hostWorkArb: fc.Arbitrary<WorldCommand> = fc
  .tuple(fc.constantFrom(0, 0, 1), fc.array(unitArb, { minLength: 1, maxLength: 4 }))
  .map(
    ([cpu, units]) =>
      new HostWork(
        cpu,
        units.map((u): WorkUnit => ({
          ...u,
          cpl: 3,
          branches: (u.branches ?? []).map((b) => ({
            ...b,
            cpl: 3,
            from: HOST_TEXT + (b.from & HOST_TEXT_MASK),
            to: HOST_TEXT + (b.to & HOST_TEXT_MASK),
          })),
        })),
      ),
  );

/**
 * A host LBR user: perf record -b -a on a pCPU, pinned, counting the host's user work alone (as hostOpenArb's events,
 * so its PMIs fall alike with the guest and without it), its branch stack of user or user and kernel branches.
 */
const hostLbrUserArb: fc.Arbitrary<WorldCommand> = fc
  .record({
    cpu: fc.constantFrom(0, 0, 1),
    config: fc.constantFrom(0xc4n, 0xc0n, 0x3cn),
    period: fc.constantFrom(20n, 50n, 200n),
    kernel: fc.boolean(),
  })
  .map(
    (r) =>
      new HostOpen(
        r.cpu,
        attr({
          config: r.config,
          pinned: true,
          exclude_guest: true,
          exclude_kernel: true,
          sample_period: r.period,
          branchSample: { user: true, kernel: r.kernel, callStack: false },
        }),
      ),
  );

const isHost = (c: WorldCommand) => c instanceof HostOpen || c instanceof HostWork;

function world(r: HostUndisturbedRun, guests: GuestConfig[]): World {
  return new World({ host: r.host, cpus: 2, guests, design: r.design, compare: false, hostKernel: r.hostKernel });
}

const run = (c: WorldCommand, w: World) => {
  if (c.check({})) c.run({}, w);
};

/** Host perf's LBR state on `cpu` in host mode, where a host user's event holds the LBRs; else null. */
function hostLbrState(w: World, cpu: number): HostLbrState | null {
  const owner = w.host.lbrOwner(cpu);
  const hw = w.host.pcpu(cpu).hw;
  if (owner === null || owner.attr.vlbr === true || hw.mode !== 'host') return null;
  const rd = (m: number) => {
    const a = hw.rdmsr(m);
    return a.ok ? a.value : -1n;
  };
  // The elapsed-cycles field is a timer the guest's exits run too (lbr-cycles-include-exits): not the host's state.
  const info = (m: number | undefined) => (m === undefined ? 0n : rd(m) & ~LBR_INFO_CYC_CNT);
  const legacy = w.host.profile.legacyLbr;
  if (legacy !== undefined) {
    // Newest first from the TOS; the ring's position itself moves with every branch the guest adds.
    const tos = Number(rd(MSR_LBR_TOS) & BigInt(legacy.depth - 1));
    const records = Array.from({ length: legacy.depth }, (_, k) => {
      const i = (tos - k + legacy.depth) % legacy.depth;
      const infoMsr = legacy.infoBase === undefined ? undefined : legacy.infoBase + i;
      return { from: rd(legacy.fromBase + i), to: rd(legacy.toBase + i), info: info(infoMsr) };
    });
    const ctl = rd(MSR_IA32_DEBUGCTLMSR) & (DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
    return { ctl: { field: 'DEBUGCTL', value: ctl }, select: rd(MSR_LBR_SELECT), depth: null, records };
  }
  const depth = rd(MSR_ARCH_LBR_DEPTH);
  const records = Array.from({ length: Number(depth < 0n ? 0n : depth) }, (_, k) => ({
    from: rd(MSR_ARCH_LBR_FROM_0 + k),
    to: rd(MSR_ARCH_LBR_TO_0 + k),
    info: info(MSR_ARCH_LBR_INFO_0 + k),
  }));
  return { ctl: { field: 'LBR_CTL', value: rd(MSR_ARCH_LBR_CTL) }, select: null, depth, records };
}

/** What host perf's LBR state holds: its control (LBR_CTL, or DEBUGCTL's LBR bits), LBR_SELECT, DEPTH, the records. */
interface HostLbrState {
  readonly ctl: { readonly field: 'LBR_CTL' | 'DEBUGCTL'; readonly value: bigint };
  readonly select: bigint | null;
  readonly depth: bigint | null;
  readonly records: LbrRecord[];
}

/** A record the guest's presence adds: the guest's branches, KVM's exit handler's; never the host work's. */
const added = (x: LbrRecord) => x.from !== 0n && !inHostText(x.from);
const show = (rs: readonly LbrRecord[]) =>
  rs
    .filter((x) => x.from !== 0n)
    .map((x) => `${x.from.toString(16)}->${x.to.toString(16)}`)
    .join(' ');

const sameRecord = (x: LbrRecord, y: LbrRecord) => x.from === y.from && x.to === y.to && x.info === y.info;

/**
 * The least n such that the host's records with the guest (`kept`, the guest's set aside) are those without it after
 * its n newest, empty slots where those run out; null if there is none.
 */
function popped(kept: readonly LbrRecord[], hostOnly: readonly LbrRecord[]): number | null {
  for (let n = 0; n <= hostOnly.length; n++)
    if (kept.every((x, i) => (i + n < hostOnly.length ? sameRecord(x, hostOnly[i + n]!) : x.from === 0n))) return n;
  return null;
}

/** What differs on `cpu` between the host with the guest and without it, field by field (none: []). */
function lbrDifferences(withGuest: World, hostOnly: World, cpu: number, after: WorldCommand): HostLbrDifference[] {
  const a = hostLbrState(withGuest, cpu);
  const b = hostLbrState(hostOnly, cpu);
  if (a === null || b === null) return [];
  const out: HostLbrDifference[] = [];
  const hex = (v: bigint) => `0x${v.toString(16)}`;
  // Newest first: the host's own records, those the guest added set aside, are the newest of the host's without it.
  const kept = a.records.filter((x) => !added(x));
  const facts = {
    after,
    guestHistory: withGuest.observations,
    hostRecordsPopped: popped(kept, b.records),
  };
  if (a.ctl.value !== b.ctl.value)
    out.push({ cpu, field: a.ctl.field, withGuest: hex(a.ctl.value), hostOnly: hex(b.ctl.value), ...facts });
  if (a.select !== b.select)
    out.push({ cpu, field: 'LBR_SELECT', withGuest: hex(a.select ?? 0n), hostOnly: hex(b.select ?? 0n), ...facts });
  if (a.depth !== b.depth)
    out.push({ cpu, field: 'DEPTH', withGuest: hex(a.depth ?? 0n), hostOnly: hex(b.depth ?? 0n), ...facts });
  if (facts.hostRecordsPopped !== 0)
    out.push({ cpu, field: 'records', withGuest: show(a.records), hostOnly: show(b.records), ...facts });
  return out;
}

/**
 * Runs the program with the guest and, its host commands alone, without it, command by command: host perf's Arch LBR
 * state must agree after each; then every host event's count must.
 */
export function checkHostUndisturbed(r: HostUndisturbedRun, guest: GuestConfig, cmds: readonly WorldCommand[]): void {
  const withGuest = world(r, [guest]);
  const hostOnly = world(r, []);
  const lbrs = r.host.archLbr !== undefined || r.host.legacyLbr !== undefined;
  for (let i = 0; i < cmds.length; i++) {
    const c = cmds[i]!;
    run(c, withGuest);
    if (isHost(c)) run(c, hostOnly);
    if (!lbrs) continue;
    const diffs = [0, 1].flatMap((cpu) => lbrDifferences(withGuest, hostOnly, cpu, c));
    if (diffs.length === 0) continue;
    // The first difference ends the program: known if a declared mechanism explains each field of it.
    const why = diffs.map((d) => r.disturbances?.find((k) => k.matches(d)));
    if (why.every((k) => k !== undefined)) {
      for (const k of why) r.known?.set(k.id, (r.known.get(k.id) ?? 0) + 1);
      return;
    }
    const d = diffs[why.findIndex((k) => k === undefined)]!;
    throw new HostLbrDisturbed(
      `pCPU ${d.cpu}: host perf's ${d.field} after step ${i + 1} (${String(c)}) is ${d.withGuest || '(none)'} with the guest running, ${d.hostOnly || '(none)'} on the same host without it`,
    );
  }
  const counted = (w: World) => w.hostEvents.map((e) => w.host.perf_event_read_value(e));
  const a = counted(withGuest);
  const b = counted(hostOnly);
  a.forEach((c, i) => {
    if (c !== b[i])
      throw new HostDisturbed(
        `host event ${i} (pinned, exclude_guest, user-only) counted ${c} with the guest running, ${b[i]} on the same host without it`,
      );
  });
}

/**
 * On a host with LBRs a quarter of the programs hold a host LBR user: the guest (with the LBRs the design offers) runs
 * the lbr-heavy profile's LBR traffic beside host user work, and nothing moves the vCPU thread.
 */
function lbrProgramArb(host: Profile, supported: SupportedPmu) {
  return supportedGuestArb(host, supported).chain((g) =>
    fc.tuple(
      fc.constant(guestWithLbr(host, supported)(g)),
      fc.array(
        fc.oneof(
          { arbitrary: hostLbrUserArb, weight: 1 },
          { arbitrary: hostWorkArb, weight: 2 },
          { arbitrary: fc.oneof(...hostLbrCommands(host)), weight: 3 },
        ),
        { maxLength: 30, size: '+1' },
      ),
    ),
  );
}

export function hostUndisturbedProperty(r: HostUndisturbedRun) {
  const supported = supportedOf(r);
  const counting = mixedProgramArb(
    r.host,
    supported,
    3,
    [
      { arbitrary: hostOpenArb, weight: 1 },
      { arbitrary: hostWorkArb, weight: 2 },
    ],
    30,
  );
  const programs =
    r.host.archLbr === undefined && r.host.legacyLbr === undefined
      ? counting
      : fc.oneof({ arbitrary: counting, weight: 3 }, { arbitrary: lbrProgramArb(r.host, supported), weight: 1 });
  return fc.property(programs, ([guest, cmds]) => checkHostUndisturbed(r, guest, cmds));
}
