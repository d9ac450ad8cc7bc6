/**
 * The per-command table of the reproducer emitters: for every command class of the vocabulary
 * (scenarios/commands.ts, scenarios/vmm.ts), what the guest program does for it (code and the
 * steps the model runs) or what the host does at a sync point (a C statement on the helpers both
 * harnesses define, given what the model observed), and what the host must offer (exit 77).
 * test/reports/emit/table.test.ts fails when a command class has no entry: a new command kind
 * needs one here before its reports get reproducers.
 */

import { msrName } from '../../model/hw/msr/map.js';
import { MSR_IA32_XSS, XFEATURE_LBR } from '../../model/hw/msr/system.js';
import type { KvmPmuEventFilter } from '../../model/kvm/types.js';
import type { WorkUnit } from '../../model/hw/work.js';
import type { PerfEventAttr } from '../../model/host/types.js';
import {
  GuestEmulate,
  DriverBoot,
  DriverCheckOverflow,
  DriverClose,
  DriverLbr,
  DriverNmi,
  DriverOpen,
  DriverRun,
  DriverSwitch,
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
  GuestXrstors,
  GuestXsaves,
  HostEvent,
  HostNmi,
  HostOpen,
  HostOpenThread,
  HostWork,
  Migrate,
  Preempt,
  SaveRestore,
  type WorldCommand,
} from '../../scenarios/commands.js';
import {
  IrqExit,
  VmmGetMsr,
  VmmPmuCapability,
  VmmRoundTrip,
  VmmSetCpuid,
  VmmSetCpuidAgain,
  VmmSetMsr,
  VmmSetPmuEventFilter,
} from '../../scenarios/vmm.js';
import type { Observation } from '../../scenarios/observation.js';
import type { GuestConfig } from '../../scenarios/world.js';
import { addr, emitUnit, enterCpl, LAYOUT, leaveCpl, type Piece } from './guest.js';
import { type SeenVmm, vmmOf } from './observed.js';
import { type OpBuilder, slotValue, slotVector } from './plan.js';
import * as x86 from './x86.js';

/** What a program needs of the host; the reproducer exits 77 without it. */
export type Need =
  | { readonly kind: 'cpus'; readonly n: number }
  | { readonly kind: 'perf' }
  | { readonly kind: 'hostPmu' }
  | { readonly kind: 'xsaves' }
  | { readonly kind: 'filter' }
  | { readonly kind: 'maskedFilter' }
  | { readonly kind: 'timer' }
  /** A finding of the mediated vPMU: shown only where kvm runs it (enable_mediated_pmu=1). */
  | { readonly kind: 'mediatedPmu' };

/** What a host entry knows when it writes its C statement. */
export interface HostContext {
  /** The model's observations of this command (the VMM's results, host events). */
  readonly observations: readonly Observation[];
  /** The open-order number of the host event a HostEvent acts on, or null if none is open. */
  readonly hostEvent: number | null;
  /** Whether the model opened the event a HostOpen/HostOpenThread asked for. */
  readonly opened: boolean;
  /** The guest model a VmmSetCpuid or VmmSetCpuidAgain passes to KVM_SET_CPUID2. */
  readonly guest: GuestConfig;
}

export interface CommandEmitter<C extends WorldCommand = WorldCommand> {
  readonly name: string;
  /** Whether the command is this entry's. */
  readonly is: (c: WorldCommand) => c is C;
  /** One line naming the command for comments and divergence messages. */
  readonly label: (c: C) => string;
  /** Guest side: appends the op's code and model steps. */
  readonly guest?: (c: C, b: OpBuilder) => void;
  /** Host side: the C statement(s) run at the sync point. */
  readonly host?: (c: C, h: HostContext) => string;
  /** Host side: guest code that runs right after the sync point, for the host action to meet. */
  readonly guestAfter?: (c: C, b: OpBuilder) => void;
  /**
   * Not reproducible from user space: why. The reproducer leaves it out, the prediction is made
   * without it, and the report says so.
   */
  readonly dropped?: (c: C) => string;
  /** For a command the guest or host side emits: why this one is left out as `dropped` is, or null. */
  readonly leftOutIf?: (c: C) => string | null;
  readonly needs?: (c: C) => readonly Need[];
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;
const u64 = (v: bigint) => `0x${v.toString(16)}ull`;
const str = (s: string) => JSON.stringify(s);

/** The MSR by its architectural name and address. */
export const msrLabel = (m: number) => `${msrName(m)} (${hex(m)})`;

/** The EDX:EAX halves of a value. */
const halves = (v: bigint): [number, number] => [Number(v & 0xffff_ffffn), Number((v >> 32n) & 0xffff_ffffn)];

/** RDMSR / RDPMC: result folded into RAX and stored with the vector (R14) into the slot. */
function readOp(b: OpBuilder, cpl: number, command: WorldCommand, ecx: number, i: x86.Insn): void {
  const slot = b.plan.slot();
  if (cpl !== 0) b.add(enterCpl(b.asm, cpl));
  b.pieces(cpl, [x86.xorSelf('r14d'), x86.movImm32('ecx', ecx)]);
  b.main(command, i, cpl, slot);
  b.pieces(cpl, [
    x86.shlRdx32(),
    x86.orRdxRax(),
    x86.storeAbs('rax', slotValue(slot)),
    x86.storeAbs('r14', slotVector(slot)),
  ]);
  if (cpl !== 0) b.add(leaveCpl(b.asm, cpl));
}

/** XSAVES/XRSTORS of the Arch LBR component: IA32_XSS.LBR first (its #GP is the model's), then the instruction. */
function xsavesOp(b: OpBuilder, command: WorldCommand, restore: boolean): void {
  const xss = b.plan.slot();
  const own = b.plan.slot();
  const lbr = 1 << XFEATURE_LBR;
  b.pieces(0, [x86.xorSelf('r14d'), x86.movImm32('ecx', MSR_IA32_XSS), x86.movImm32('eax', lbr), x86.xorSelf('edx')]);
  b.main(command, x86.wrmsr(), 0, xss);
  b.pieces(0, [
    x86.storeAbs('r14', slotVector(xss)),
    x86.xorSelf('r14d'),
    x86.movImm32('edi', addr(LAYOUT.xsave)),
    x86.movImm32('eax', lbr),
    x86.xorSelf('edx'),
    // The model retired the pair as one instruction at the main step; this is the other one.
    restore ? x86.xrstors64Rdi() : x86.xsaves64Rdi(),
    x86.storeAbs('r14', slotVector(own)),
  ]);
}

/** The units of a run, each at its CPL, with the ring crossings between them and back to CPL 0 at the end. */
function runOp(b: OpBuilder, units: readonly WorkUnit[]): void {
  let cpl = 0;
  const pieces: Piece[] = [];
  for (const u of units) {
    if (u.cpl !== cpl) {
      if (cpl !== 0) pieces.push(...leaveCpl(b.asm, cpl));
      if (u.cpl !== 0) pieces.push(...enterCpl(b.asm, u.cpl));
      cpl = u.cpl;
    }
    pieces.push(emitUnit(b.asm, u, b.plan.far));
  }
  if (cpl !== 0) pieces.push(...leaveCpl(b.asm, cpl));
  b.add(pieces);
}

/** Iterations and body of the spin an external interrupt lands in: about two million instructions. */
export const SPIN = { iterations: 2000, body: 1000 } as const;
/** A hundred million instructions (host-undisturbed reproducers, after each guest run). */
export const AMPLIFIER = { iterations: 10000, body: 10000 } as const;

/**
 * `mov $K,%ecx; 1: nop x J; dec %ecx; jnz 1b` at `cpl`: K(J+2)+1 instructions, K-1 taken branches and
 * one not taken (plus the ring crossings there and back).
 */
export function loopOp(b: OpBuilder, shape: { readonly iterations: number; readonly body: number }, cpl = 0): void {
  const { iterations: k, body: j } = shape;
  if (cpl !== 0) b.add(enterCpl(b.asm, cpl));
  const start = b.asm.at;
  b.asm.put(x86.movImm32('ecx', k));
  const top = b.asm.at;
  for (let i = 0; i < j; i++) b.asm.put(x86.nop());
  b.asm.put(x86.decEcx());
  const jnz = b.asm.at;
  b.asm.put(x86.jnzRel32(top - (jnz + 6)));
  const branches = Array.from({ length: k - 1 }, () => ({ from: jnz, to: top, kind: 'COND' as const }));
  b.add([{ cpl, instructions: 1 + k * (j + 2), untaken: 1, branches, start, resume: b.asm.at }]);
  if (cpl !== 0) b.add(leaveCpl(b.asm, cpl));
}

/** Host work as the C helpers run it: instructions and taken branches of user-mode loops, syscalls for CPL 0. */
function workArgs(units: readonly WorkUnit[]): string {
  const user = units.filter((u) => u.cpl !== 0).reduce((n, u) => n + (u.instructions ?? 0), 0);
  const kernel = units.filter((u) => u.cpl === 0).reduce((n, u) => n + (u.instructions ?? 0), 0);
  return `${user}, ${kernel}`;
}

const workLabel = (units: readonly WorkUnit[]) =>
  `${units.length} unit${units.length === 1 ? '' : 's'}, ${units.reduce((n, u) => n + (u.instructions ?? 0), 0)} instructions`;

/** A perf_event_attr as the C initialiser of the helpers' struct host_attr. */
export function attrC(a: PerfEventAttr): string {
  const f = [
    `.config = ${u64(a.config)}`,
    a.sample_period !== 0n ? `.sample_period = ${u64(a.sample_period)}` : '',
    a.pinned ? '.pinned = 1' : '',
    a.exclusive ? '.exclusive = 1' : '',
    a.exclude_user ? '.exclude_user = 1' : '',
    a.exclude_kernel ? '.exclude_kernel = 1' : '',
    a.exclude_host ? '.exclude_host = 1' : '',
    a.exclude_guest ? '.exclude_guest = 1' : '',
    a.branchSample !== undefined
      ? `.branch_stack = 1, .branch_user = ${Number(a.branchSample.user)}, .branch_kernel = ${Number(a.branchSample.kernel)}, .branch_call_stack = ${Number(a.branchSample.callStack)}`
      : '',
  ].filter((s) => s !== '');
  return `{ ${f.join(', ')} }`;
}

const attrLabel = (a: PerfEventAttr) =>
  [
    `config ${hex(a.config)}`,
    a.sample_period !== 0n ? `period ${a.sample_period}` : 'counting',
    a.pinned ? 'pinned' : '',
    a.exclusive ? 'exclusive' : '',
    a.exclude_user ? 'exclude_user' : '',
    a.exclude_kernel ? 'exclude_kernel' : '',
    a.exclude_host ? 'exclude_host' : '',
    a.exclude_guest ? 'exclude_guest' : '',
    a.branchSample !== undefined ? 'branch stack' : '',
  ]
    .filter((s) => s !== '')
    .join(', ');

/** The C initialiser of a guest model (struct guest_model). */
export function guestC(g: GuestConfig): string {
  const l = g.cpuid.leaf0a;
  return (
    `{ .family = ${g.cpuid.family}, .model = ${hex(g.cpuid.model)}, .eax = ${hex(l.eax)}, .ebx = ${hex(l.ebx)}, ` +
    `.ecx = ${hex(l.ecx)}, .edx = ${hex(l.edx)}, .pdcm = ${Number(g.cpuid.pdcm)}, .tsx = ${Number(g.cpuid.tsx === true)}, ` +
    `.perf_capabilities = ${u64(g.perfCapabilities)} }`
  );
}

/** The model's expected result of a VMM observation: 'ok', 'refused' or a value. */
function expected(h: HostContext): SeenVmm {
  const o = h.observations.find((x) => x.kind === 'vmm');
  if (o === undefined) throw new Error('a VMM command without its observation');
  return vmmOf(o.oracle);
}

const okC = (e: SeenVmm) => (e.kind === 'ok' ? 'EXPECT_OK' : e.kind === 'refused' ? 'EXPECT_REFUSED' : 'EXPECT_ANY');
/** The errno KVM's ABI refuses with (<errno.h>'s name), or 0 where it names none. */
const errnoC = (e: SeenVmm) => (e.kind === 'refused' && e.errno !== undefined ? e.errno : '0');

/**
 * How many of a filter's events to list: the rest are a run of its last value (at least 4 long; a shorter run reads
 * better listed), which a label counts and struct filter_spec holds as its fill.
 */
function listedEvents(ev: readonly bigint[]): number {
  let listed = ev.length;
  while (listed > 0 && ev[listed - 1] === ev[ev.length - 1]) listed--;
  return ev.length - listed < 4 ? ev.length : listed;
}

/** A filter's events for a label: a run of one value at the end is counted, not repeated. */
function eventsLabel(ev: readonly bigint[]): string {
  const listed = listedEvents(ev);
  const run = listed < ev.length ? [`${hex(ev[ev.length - 1]!)} x${ev.length - listed}`] : [];
  return [...ev.slice(0, listed).map((e) => hex(e)), ...run].join(' ');
}

/** A filter's events as struct filter_spec holds them: those listed, then the run to the end as its fill. */
function filterSpecC(f: KvmPmuEventFilter): string {
  const ev = f.events;
  const listed = listedEvents(ev);
  const fill = listed < ev.length ? ev[ev.length - 1]! : 0n;
  const events = listed === 0 ? 'NULL' : `(const uint64_t[]){ ${ev.slice(0, listed).map(u64).join(', ')} }`;
  return `&(struct filter_spec){ .action = ${f.action}, .flags = ${f.flags}, .fixed_counter_bitmap = ${hex(f.fixed_counter_bitmap)}, .nevents = ${ev.length}, .nlisted = ${listed}, .fill = ${u64(fill)}, .events = ${events} }`;
}

function entry<C extends WorldCommand>(
  k: abstract new (...args: never[]) => C,
  e: Omit<CommandEmitter<C>, 'is' | 'name'>,
): CommandEmitter {
  return { name: k.name, is: (c: WorldCommand): c is C => c instanceof k, ...e } as unknown as CommandEmitter;
}

/** Why a guest driver routine (scenarios/driver.ts) is not in a reproducer yet. */
const DRIVER_NOT_EMITTED =
  'a guest driver routine branches on what the guest reads, and the emitters write straight-line guest code: not emitted yet, so a reproducer of a program with one is incomplete';

/** Why a guest instruction the VMM saves and restores at its exit is not in a reproducer yet. */
const savedAtExit = (c: { readonly saveRestoreTo?: number | undefined }) =>
  c.saveRestoreTo === undefined
    ? null
    : "the harness cannot yet make KVM_RUN return at this instruction's exit, before KVM re-enters the guest (a signal, or immediate_exit after a userspace exit), and save there";

export const COMMAND_EMITTERS: readonly CommandEmitter[] = [
  entry(GuestWrmsr, {
    leftOutIf: savedAtExit,
    label: (c) => `WRMSR ${msrLabel(c.msr)} <- ${hex(c.value)}`,
    guest: (c, b) => {
      const slot = b.plan.slot();
      const [lo, hi] = halves(c.value);
      b.pieces(0, [x86.xorSelf('r14d'), x86.movImm32('ecx', c.msr), x86.movImm32('eax', lo), x86.movImm32('edx', hi)]);
      b.main(c, x86.wrmsr(), 0, slot);
      b.pieces(0, [x86.storeAbs('r14', slotVector(slot))]);
    },
  }),
  entry(GuestRdmsr, {
    leftOutIf: savedAtExit,
    label: (c) => `RDMSR ${msrLabel(c.msr)}`,
    guest: (c, b) => readOp(b, 0, c, c.msr, x86.rdmsr()),
  }),
  entry(GuestRdpmc, {
    leftOutIf: savedAtExit,
    label: (c) => `RDPMC ${hex(c.ecx)} at CPL ${c.cpl}`,
    guest: (c, b) => readOp(b, c.cpl, c, c.ecx, x86.rdpmc()),
  }),
  entry(GuestRun, {
    label: (c) => `run ${workLabel(c.units)}`,
    guest: (c, b) => runOp(b, c.units),
  }),
  entry(GuestXsaves, {
    label: () => 'XSAVES of the Arch LBR component (IA32_XSS.LBR set first)',
    guest: (c, b) => xsavesOp(b, c, false),
    needs: () => [{ kind: 'xsaves' }],
  }),
  entry(GuestXrstors, {
    label: () => 'XRSTORS of the Arch LBR image saved last (IA32_XSS.LBR set first)',
    guest: (c, b) => xsavesOp(b, c, true),
    needs: () => [{ kind: 'xsaves' }],
  }),
  entry(GuestEmulate, {
    label: (c) => `KVM_FEP ${c.insn}${c.taken ? ' (taken)' : ''} at CPL ${c.cpl}`,
    dropped: () =>
      "the reproducers' guest code has no forced-emulation step (it needs kvm.force_emulation_prefix and the emulator's count in the plan); the prediction is made without it",
  }),
  entry(Migrate, {
    label: (c) => `the host moves the vCPU thread to pCPU ${c.cpu}`,
    host: (c) => `host_migrate(${c.cpu});`,
    needs: () => [{ kind: 'cpus', n: 2 }],
  }),
  entry(SaveRestore, {
    label: (c) => `save the vCPU and restore it into a fresh VM on pCPU ${c.cpu}`,
    host: (c) => `save_restore(${c.cpu});`,
    needs: () => [{ kind: 'cpus', n: 2 }],
  }),
  entry(HostOpen, {
    label: (c) => `a host user opens ${attrLabel(c.attr)} on pCPU ${c.cpu}`,
    host: (c, h) =>
      h.opened
        ? `host_open(&(struct host_attr)${attrC(c.attr)}, ${c.cpu});`
        : '/* the model refuses this event (perf_event_open fails there): not opened */',
    needs: () => [{ kind: 'perf' }, { kind: 'hostPmu' }, { kind: 'cpus', n: 2 }],
  }),
  entry(HostOpenThread, {
    label: (c) => `a host user opens ${attrLabel(c.attr)} on the vCPU thread`,
    host: (c, h) =>
      h.opened
        ? `host_open(&(struct host_attr)${attrC(c.attr)}, ON_VCPU_THREAD);`
        : '/* the model refuses this event (or the vCPU runs no task): not opened */',
    needs: () => [{ kind: 'perf' }, { kind: 'hostPmu' }],
  }),
  entry(HostWork, {
    label: (c) => `host work on pCPU ${c.cpu}: ${workLabel(c.units)}`,
    host: (c) => `host_work(${c.cpu}, ${workArgs(c.units)});`,
    needs: () => [{ kind: 'cpus', n: 2 }],
  }),
  entry(Preempt, {
    label: (c) => `a host task preempts the vCPU thread: ${workLabel(c.units)}`,
    host: (c) => `host_preempt(${workArgs(c.units)});`,
  }),
  entry(HostEvent, {
    label: (c) => `the host user's ${c.op} of its event ${c.k}`,
    host: (c, h) =>
      h.hostEvent === null
        ? `/* ${c.op} of event ${c.k}: the host user has no open event */`
        : `host_event_${c.op}(${h.hostEvent});`,
  }),
  entry(HostNmi, {
    label: (c) => `an NMI on pCPU ${c.cpu} while the host runs`,
    dropped: () =>
      'user space cannot send an NMI to one CPU; the prediction is made without it, and the reproducer checks the report still diverges so',
  }),
  entry(VmmSetCpuid, {
    label: (c) =>
      `KVM_SET_CPUID2 (CPUID.0AH eax ${hex(c.config.cpuid.leaf0a.eax)}, PERF_CAPABILITIES ${hex(c.config.perfCapabilities)})`,
    host: (_c, h) => `vmm_set_cpuid(&(struct guest_model)${guestC(h.guest)}, ${okC(expected(h))});`,
  }),
  entry(VmmSetCpuidAgain, {
    label: (c) => `KVM_SET_CPUID2 after KVM_RUN: ${String(c)}`,
    host: (_c, h) =>
      h.observations.length === 0
        ? '/* the vCPU has not run: the model is not set again */'
        : `vmm_set_cpuid(&(struct guest_model)${guestC(h.guest)}, ${okC(expected(h))});`,
  }),
  entry(VmmSetMsr, {
    label: (c) => `KVM_SET_MSRS ${msrLabel(c.msr)} <- ${hex(c.value)}`,
    host: (c, h) => `vmm_set_msr(${hex(c.msr)}, ${u64(c.value)}, ${okC(expected(h))});`,
  }),
  entry(VmmGetMsr, {
    label: (c) => `KVM_GET_MSRS ${msrLabel(c.msr)}`,
    host: (c, h) => {
      const e = expected(h);
      return e.kind === 'value'
        ? `vmm_get_msr(${hex(c.msr)}, 1, ${u64(e.value)});`
        : `vmm_get_msr(${hex(c.msr)}, 0, 0);`;
    },
  }),
  entry(VmmRoundTrip, {
    label: () => 'KVM_GET_MSR_INDEX_LIST, then KVM_GET_MSRS and KVM_SET_MSRS of every listed PMU MSR',
    host: () => 'vmm_round_trip();',
  }),
  entry(VmmSetPmuEventFilter, {
    label: (c) =>
      c.filter === null
        ? 'KVM_SET_PMU_EVENT_FILTER: none'
        : `KVM_SET_PMU_EVENT_FILTER ${c.filter.action === 0 ? 'ALLOW' : c.filter.action === 1 ? 'DENY' : `action ${c.filter.action}`} ${eventsLabel(c.filter.events)}${c.filter.flags === 1 ? ' (masked)' : c.filter.flags !== 0 ? ` (flags ${hex(c.filter.flags)})` : ''}, fixed bitmap ${hex(c.filter.fixed_counter_bitmap)}`,
    host: (c, h) =>
      c.filter === null
        ? `vmm_set_filter(NULL, 0, ${okC(expected(h))}, ${errnoC(expected(h))});`
        : `vmm_set_filter(${filterSpecC(c.filter)}, 1, ${okC(expected(h))}, ${errnoC(expected(h))});`,
    needs: (c) => [
      { kind: 'filter' },
      ...(c.filter !== null && c.filter.flags !== 0 ? [{ kind: 'maskedFilter' } as const] : []),
    ],
  }),
  entry(VmmPmuCapability, {
    label: (c) => `KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY, ${hex(c.args0)}) after KVM_CREATE_VCPU`,
    dropped: () =>
      'the harness has no KVM_ENABLE_CAP helper yet; KVM refuses the ioctl once the VM has a vCPU (-EINVAL), so nothing the guest sees depends on it',
  }),
  entry(DriverBoot, {
    label: (c) => String(c),
    dropped: () => DRIVER_NOT_EMITTED,
  }),
  entry(DriverOpen, {
    label: (c) => String(c),
    dropped: () => DRIVER_NOT_EMITTED,
  }),
  entry(DriverClose, {
    label: (c) => String(c),
    dropped: () => DRIVER_NOT_EMITTED,
  }),
  entry(DriverRun, {
    label: (c) => String(c),
    dropped: () => DRIVER_NOT_EMITTED,
  }),
  entry(DriverSwitch, {
    label: (c) => String(c),
    dropped: () => DRIVER_NOT_EMITTED,
  }),
  entry(DriverNmi, {
    label: (c) => String(c),
    dropped: () => DRIVER_NOT_EMITTED,
  }),
  entry(DriverCheckOverflow, {
    label: (c) => String(c),
    dropped: () => DRIVER_NOT_EMITTED,
  }),
  entry(DriverLbr, {
    label: (c) => String(c),
    dropped: () => DRIVER_NOT_EMITTED,
  }),
  entry(IrqExit, {
    label: (c) => `an external interrupt exits the guest; the host handler runs ${workLabel(c.units)}`,
    // A timer signal kicks the vCPU thread out of the guest while the guest spins; the harness
    // stops the timer at the next sync point.
    host: () => 'irq_timer_start();',
    guestAfter: (_c, b) => loopOp(b, SPIN),
    needs: () => [{ kind: 'timer' }],
  }),
];

export class NoEmitterError extends Error {
  override readonly name = 'NoEmitterError';
}

export function emitterOf(c: WorldCommand): CommandEmitter {
  const e = COMMAND_EMITTERS.find((x) => x.is(c));
  if (e === undefined)
    throw new NoEmitterError(
      `no reproducer entry for ${c.constructor.name} (${String(c)}): add one to reports/emit/table.ts`,
    );
  return e;
}

/** The C string literal of a label. */
export const cString = str;
