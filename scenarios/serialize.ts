/**
 * Programs and guest configurations to and from JSON, for report.json and `npm run replay`.
 * A command is `{ "cmd": "GuestWrmsr", "args": [0, "0x186", "0x4300c0"] }`: MSR addresses, RDPMC ECX
 * and 64-bit values as "0x…" strings (JSON numbers lose bits above 2^53 and hide the bit layout),
 * vCPU, CPL and pCPU indices as numbers, work units as objects with every count a number and
 * branch addresses as "0x…" strings.
 *
 * The wire format is a zod schema (CommandJson, GuestJson and what they hold): the readers are the
 * schema's parse, then the command's constructor; the JSON Schema of report.json is generated from
 * it. Parsing is strict: a file is edited by hand or by other tools, and a program that silently
 * loses a field would replay something else. Any problem is a ProgramFormatError whose message
 * names the place (`program[2].args[1][0].branches[0].from`) on one line.
 */

import { METRICS, type TopdownSlots } from '../model/hw/msr/topdown.js';
import { z } from 'zod';
import { WorkError } from '../model/hw/errors.js';
import { BRANCH_KINDS } from '../model/hw/state.js';
import { type Branch, type WorkUnit, validateUnit } from '../model/hw/work.js';
import { attr, type PerfEventAttr } from '../model/host/types.js';
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
  type HostEventOp,
  HostNmi,
  HostOpen,
  HostOpenThread,
  HostWork,
  Migrate,
  Preempt,
  SaveRestore,
  type WorldCommand,
} from './commands.js';
import type { CpuidRegs } from '../model/hw/profile.js';
import type { GuestConfig } from './world.js';
import { EMULATED_INSNS, type EmulatedInsn, type KvmPmuEventFilter } from '../model/kvm/types.js';
import {
  IrqExit,
  VmmGetMsr,
  VmmPmuCapability,
  VmmRoundTrip,
  VmmSetCpuid,
  VmmSetMsr,
  VmmSetPmuEventFilter,
} from './vmm.js';
import type { DriverEventSpec, DriverLbrSpec, DriverOverflowSpec, DriverParams } from './driver.js';

export type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

/** A program or guest configuration that cannot be read back; the message names the place. */
export class ProgramFormatError extends Error {
  override readonly name = 'ProgramFormatError';
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

// ---------------------------------------------------------------------------------------------
// Limits: a report is edited by hand or made by other tools, and nothing it holds may make a
// replay run out of memory or print megabytes.

/** Commands in a program (a 64 MB report holds about a million). */
export const MAX_COMMANDS = 1_000_000;
/** Work units in one run of work, and taken branches in one unit. */
export const MAX_UNITS = 10_000;
export const MAX_BRANCHES = 10_000;

// ---------------------------------------------------------------------------------------------
// Field schemas, each with the message a person reads.

/** A value as it appears in the file, cut short: the message stays one line. */
export function show(v: unknown): string {
  const s = v === undefined ? 'nothing' : typeof v === 'bigint' ? `${v}n` : (JSON.stringify(v) ?? typeof v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

const U64_MAX = (1n << 64n) - 1n;

export const natural = (max = Number.MAX_SAFE_INTEGER) => {
  const error = (i: { input?: unknown }) =>
    `expected an integer 0..${max === Number.MAX_SAFE_INTEGER ? 'max' : max}, got ${show(i.input)}`;
  return z.int({ error }).min(0, { error }).max(max, { error });
};

const bool = z.boolean({ error: (i) => `expected true or false, got ${show(i.input)}` });

/** A "0x…" string of at most `bits` bits, read as a bigint (one pass: replay reads a million of them). */
export const hexOf = (bits: 32 | 64) => {
  const error = (i: { input?: unknown }) => `expected a "0x…" hex string, got ${show(i.input)}`;
  const max = bits === 64 ? U64_MAX : 0xffff_ffffn;
  return z
    .string({ error })
    .regex(/^0x[0-9a-fA-F]+$/, { error })
    .transform((v, ctx) => {
      const n = BigInt(v);
      if (n <= max) return n;
      ctx.issues.push({ code: 'custom', message: `${v} does not fit in ${bits} bits`, input: v });
      return z.NEVER;
    });
};
const u64 = hexOf(64);
const u32 = hexOf(32).transform(Number);

const oneOf = <T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: (i) => `expected one of ${values.join(', ')}, got ${show(i.input)}` });

const arrayOf = <T extends z.ZodType>(item: T, max: number, what: string) =>
  z
    .array(item, { error: (i) => `expected an array, got ${show(i.input)}` })
    .max(max, { error: (i) => `${(i.input as unknown[]).length} ${what}, at most ${max}` });

// ---------------------------------------------------------------------------------------------
// Work units. Fields are listed in the order the generators build them: a unit read back has
// the same shape (and prints the same) as the one that ran.

const COUNT_FIELDS = [
  'instructions',
  'cycles',
  'refCycles',
  'tscCycles',
  'llcReferences',
  'llcMisses',
  'untakenBranches',
] as const;

const BranchJson = z.strictObject({
  from: u64,
  to: u64,
  kind: oneOf(BRANCH_KINDS),
  mispredict: bool.optional(),
  cpl: natural(3).optional(),
});

const SlotsJson = z.strictObject(
  Object.fromEntries(METRICS.map((k, i) => [k, i < 4 ? natural() : natural().optional()])) as Record<
    (typeof METRICS)[number],
    ReturnType<typeof natural> | z.ZodOptional<ReturnType<typeof natural>>
  >,
);

const counts = Object.fromEntries(COUNT_FIELDS.map((k) => [k, natural().optional()])) as Record<
  (typeof COUNT_FIELDS)[number],
  z.ZodOptional<ReturnType<typeof natural>>
>;

/** A work unit; the model's own unit validation runs on it (a branch needs an instruction, ...). */
export const UnitJson = z
  .strictObject({
    cpl: natural(3),
    ...counts,
    branches: arrayOf(BranchJson, MAX_BRANCHES, 'branches').optional(),
    slots: SlotsJson.optional(),
  })
  .transform((u, ctx) => {
    const unit = u as WorkUnit;
    try {
      validateUnit(unit);
    } catch (e) {
      if (!(e instanceof WorkError)) throw e;
      ctx.issues.push({ code: 'custom', message: e.message, input: u });
      return z.NEVER;
    }
    return unit;
  });

/** A unit as JSON, its fields in the unit's own order (units keep one shape for the simulator). */
export function unitToJson(u: WorkUnit): Json {
  const o: Record<string, Json> = {};
  for (const [k, v] of Object.entries(u) as [keyof WorkUnit, unknown][]) {
    if (v === undefined) continue;
    if (k === 'branches') o[k] = (v as readonly Branch[]).map(branchToJson);
    else if (k === 'slots') o[k] = { ...(v as TopdownSlots) };
    else o[k] = v as number;
  }
  return o;
}

/** A branch as JSON, in its own field order. */
function branchToJson(b: Branch): Json {
  const o: Record<string, Json> = {};
  for (const [k, v] of Object.entries(b) as [keyof Branch, unknown][]) {
    if (v === undefined) continue;
    o[k] = typeof v === 'bigint' ? hex(v) : (v as Json);
  }
  return o;
}

const UnitsJson = arrayOf(UnitJson, MAX_UNITS, 'work units');

// ---------------------------------------------------------------------------------------------
// Host perf_event_attr: config and sample period as hex, flags as booleans; only what differs from
// attr()'s zero-initialisation is written, as HostOpen.toString() prints it.

/** The wire names of the flags (report@1/@2) and the perf_event_attr fields they hold. */
const FLAG_FIELDS = [
  ['pinned', 'pinned'],
  ['exclusive', 'exclusive'],
  ['excludeUser', 'exclude_user'],
  ['excludeKernel', 'exclude_kernel'],
  ['excludeHost', 'exclude_host'],
  ['excludeGuest', 'exclude_guest'],
  ['vlbr', 'vlbr'],
] as const;

function attrToJson(a: PerfEventAttr): Json {
  const o: Record<string, Json> = { config: hex(a.config) };
  if (a.sample_period !== 0n) o.samplePeriod = hex(a.sample_period);
  for (const [wire, field] of FLAG_FIELDS) if (a[field] === true) o[wire] = true;
  if (a.branchSample !== undefined) o.branchSample = { ...a.branchSample };
  return o;
}

const AttrJson = z
  .strictObject({
    config: u64,
    samplePeriod: u64.optional(),
    ...(Object.fromEntries(FLAG_FIELDS.map(([wire]) => [wire, bool.optional()])) as Record<
      (typeof FLAG_FIELDS)[number][0],
      z.ZodOptional<typeof bool>
    >),
    branchSample: z.strictObject({ user: bool, kernel: bool, callStack: bool }).optional(),
  })
  .transform((o): PerfEventAttr => {
    const a: Record<string, unknown> = { config: o.config };
    if (o.samplePeriod !== undefined) a.sample_period = o.samplePeriod;
    for (const [wire, field] of FLAG_FIELDS) if (o[wire] !== undefined) a[field] = o[wire];
    if (o.branchSample !== undefined) a.branchSample = { ...o.branchSample };
    return attr(a as Partial<PerfEventAttr> & { config: bigint });
  });

// ---------------------------------------------------------------------------------------------
// Commands. Each entry names the arguments, says how to print them and gives their schema and
// the constructor they go to; a new command class needs an entry here before its programs can
// be filed.

const HOST_EVENT_OPS = ['enable', 'disable', 'read', 'close'] as const satisfies readonly HostEventOp[];
const INSNS = EMULATED_INSNS as [EmulatedInsn, ...EmulatedInsn[]];

interface Schema {
  readonly params: readonly string[];
  readonly toJson: (c: WorldCommand) => Json[] | null;
  readonly args: z.ZodTuple;
  readonly make: (args: never) => WorldCommand;
}

/** One command's entry, its constructor typed by its argument schema. */
function entry<A extends [z.ZodType, ...z.ZodType[]]>(
  params: { [K in keyof A]: string },
  toJson: (c: WorldCommand) => Json[] | null,
  args: A,
  make: (a: z.output<z.ZodTuple<A, null>>) => WorldCommand,
): Schema {
  return { params, toJson, args: z.tuple(args), make };
}

const vcpu = natural();
const cpu = natural();
/** A guest instruction's last argument, where the VMM saved and restored the vCPU at its exit: the pCPU it went to. */
const savedAtCpu = natural().optional();
const savedAtJson = (c: { readonly saveRestoreTo?: number | undefined }): Json[] =>
  c.saveRestoreTo === undefined ? [] : [c.saveRestoreTo];

// A guest driver's parameters, events and LBR request: 64-bit values as "0x…", flags as booleans.

const DriverParamsJson = z.strictObject({
  kernel: oneOf(['linux', 'linux-old'] as const),
  ack: oneOf(['early', 'mid', 'late'] as const),
  lvtpc: u64,
}) satisfies z.ZodType<DriverParams>;

const DriverEventJson = z.strictObject({
  event: u64,
  usr: bool,
  os: bool,
  period: u64,
}) satisfies z.ZodType<DriverEventSpec>;

const DriverLbrJson = z.strictObject({ select: u64, callStack: bool }) satisfies z.ZodType<DriverLbrSpec>;
const DriverOverflowJson = z.strictObject({
  counter: natural(32),
  int: bool,
  left: u64,
  fep: natural(256), // the generator gives at most 65 (left up to 64, one more)
}) satisfies z.ZodType<DriverOverflowSpec>;

const driverParamsToJson = (p: DriverParams): Json => ({ kernel: p.kernel, ack: p.ack, lvtpc: hex(p.lvtpc) });
const driverEventToJson = (e: DriverEventSpec): Json => ({
  event: hex(e.event),
  usr: e.usr,
  os: e.os,
  period: hex(e.period),
});

/** struct kvm_pmu_event_filter on the wire: the action, flags and fixed bitmap as numbers, the events in hex. */
const FilterJson = z.strictObject({
  action: natural(0xffff_ffff),
  flags: natural(0xffff_ffff),
  fixed_counter_bitmap: natural(0xffff_ffff),
  events: arrayOf(u64, 1000, 'events'),
}) satisfies z.ZodType<KvmPmuEventFilter, unknown>;

const filterToJson = (f: KvmPmuEventFilter) => ({
  action: f.action,
  flags: f.flags,
  fixed_counter_bitmap: f.fixed_counter_bitmap,
  events: f.events.map(hex),
});

const SCHEMAS: Readonly<Record<string, Schema>> = {
  GuestWrmsr: entry(
    ['vcpu', 'msr', 'value', 'cpu'],
    (c) => (c instanceof GuestWrmsr ? [c.vcpu, hex(c.msr), hex(c.value), ...savedAtJson(c)] : null),
    [vcpu, u32, u64, savedAtCpu],
    ([v, msr, value, to]) => new GuestWrmsr(v, msr, value, to),
  ),
  GuestRdmsr: entry(
    ['vcpu', 'msr', 'cpu'],
    (c) => (c instanceof GuestRdmsr ? [c.vcpu, hex(c.msr), ...savedAtJson(c)] : null),
    [vcpu, u32, savedAtCpu],
    ([v, msr, to]) => new GuestRdmsr(v, msr, to),
  ),
  GuestRdpmc: entry(
    ['vcpu', 'ecx', 'cpl', 'cpu'],
    (c) => (c instanceof GuestRdpmc ? [c.vcpu, hex(c.ecx), c.cpl, ...savedAtJson(c)] : null),
    [vcpu, u32, natural(3), savedAtCpu],
    ([v, ecx, cpl, to]) => new GuestRdpmc(v, ecx, cpl, to),
  ),
  GuestRun: entry(
    ['vcpu', 'units'],
    (c) => (c instanceof GuestRun ? [c.vcpu, c.units.map(unitToJson)] : null),
    [vcpu, UnitsJson],
    ([v, units]) => new GuestRun(v, units),
  ),
  Migrate: entry(
    ['vcpu', 'cpu'],
    (c) => (c instanceof Migrate ? [c.vcpu, c.cpu] : null),
    [vcpu, cpu],
    ([v, p]) => new Migrate(v, p),
  ),
  SaveRestore: entry(
    ['vcpu', 'cpu'],
    (c) => (c instanceof SaveRestore ? [c.vcpu, c.cpu] : null),
    [vcpu, cpu],
    ([v, p]) => new SaveRestore(v, p),
  ),
  HostOpen: entry(
    ['cpu', 'attr'],
    (c) => (c instanceof HostOpen ? [c.cpu, attrToJson(c.attr)] : null),
    [cpu, AttrJson],
    ([p, a]) => new HostOpen(p, a),
  ),
  HostWork: entry(
    ['cpu', 'units'],
    (c) => (c instanceof HostWork ? [c.cpu, c.units.map(unitToJson)] : null),
    [cpu, UnitsJson],
    ([p, units]) => new HostWork(p, units),
  ),
  HostOpenThread: entry(
    ['vcpu', 'attr'],
    (c) => (c instanceof HostOpenThread ? [c.vcpu, attrToJson(c.attr)] : null),
    [vcpu, AttrJson],
    ([v, a]) => new HostOpenThread(v, a),
  ),
  GuestXsaves: entry(
    ['vcpu'],
    (c) => (c instanceof GuestXsaves ? [c.vcpu] : null),
    [vcpu],
    ([v]) => new GuestXsaves(v),
  ),
  GuestXrstors: entry(
    ['vcpu'],
    (c) => (c instanceof GuestXrstors ? [c.vcpu] : null),
    [vcpu],
    ([v]) => new GuestXrstors(v),
  ),
  Preempt: entry(
    ['vcpu', 'units'],
    (c) => (c instanceof Preempt ? [c.vcpu, c.units.map(unitToJson)] : null),
    [vcpu, UnitsJson],
    ([v, units]) => new Preempt(v, units),
  ),
  HostEvent: entry(
    ['k', 'op'],
    (c) => (c instanceof HostEvent ? [c.k, c.op] : null),
    [natural(), oneOf(HOST_EVENT_OPS)],
    ([k, op]) => new HostEvent(k, op),
  ),
  HostNmi: entry(
    ['cpu'],
    (c) => (c instanceof HostNmi ? [c.cpu] : null),
    [cpu],
    ([p]) => new HostNmi(p),
  ),
  GuestEmulate: entry(
    ['vcpu', 'insn', 'cpl', 'taken', 'cpu'],
    (c) => (c instanceof GuestEmulate ? [c.vcpu, c.insn, c.cpl, c.taken, ...savedAtJson(c)] : null),
    [vcpu, oneOf(INSNS), natural(3), bool, savedAtCpu],
    ([v, insn, cpl, taken, to]) => new GuestEmulate(v, insn, cpl, taken, to),
  ),
  DriverBoot: entry(
    ['vcpu', 'params'],
    (c) => (c instanceof DriverBoot ? [c.vcpu, driverParamsToJson(c.params)] : null),
    [vcpu, DriverParamsJson],
    ([v, p]) => new DriverBoot(v, p),
  ),
  DriverOpen: entry(
    ['vcpu', 'events'],
    (c) => (c instanceof DriverOpen ? [c.vcpu, c.events.map(driverEventToJson)] : null),
    [vcpu, arrayOf(DriverEventJson, 64, 'events')],
    ([v, evs]) => new DriverOpen(v, evs),
  ),
  DriverClose: entry(
    ['vcpu', 'k'],
    (c) => (c instanceof DriverClose ? [c.vcpu, c.k] : null),
    [vcpu, natural()],
    ([v, k]) => new DriverClose(v, k),
  ),
  DriverRun: entry(
    ['vcpu', 'units'],
    (c) => (c instanceof DriverRun ? [c.vcpu, c.units.map(unitToJson)] : null),
    [vcpu, UnitsJson],
    ([v, units]) => new DriverRun(v, units),
  ),
  DriverSwitch: entry(
    ['vcpu', 'units'],
    (c) => (c instanceof DriverSwitch ? [c.vcpu, c.units.map(unitToJson)] : null),
    [vcpu, UnitsJson],
    ([v, units]) => new DriverSwitch(v, units),
  ),
  DriverNmi: entry(
    ['vcpu'],
    (c) => (c instanceof DriverNmi ? [c.vcpu] : null),
    [vcpu],
    ([v]) => new DriverNmi(v),
  ),
  DriverCheckOverflow: entry(
    ['vcpu', 'spec', 'units'],
    (c) =>
      c instanceof DriverCheckOverflow
        ? [c.vcpu, { ...c.spec, left: hex(c.spec.left) }, c.units.map(unitToJson)]
        : null,
    [vcpu, DriverOverflowJson, UnitsJson],
    ([v, spec, units]) => new DriverCheckOverflow(v, spec, units),
  ),
  DriverLbr: entry(
    ['vcpu', 'lbr'],
    (c) => (c instanceof DriverLbr ? [c.vcpu, { select: hex(c.lbr.select), callStack: c.lbr.callStack }] : null),
    [vcpu, DriverLbrJson],
    ([v, l]) => new DriverLbr(v, l),
  ),
  // The VMM's ioctls (property 1 with a VMM), each as its command prints it.
  VmmSetMsr: entry(
    ['vcpu', 'msr', 'value'],
    (c) => (c instanceof VmmSetMsr ? [c.vcpu, hex(c.msr), hex(c.value)] : null),
    [vcpu, u32, u64],
    ([v, msr, value]) => new VmmSetMsr(v, msr, value),
  ),
  VmmGetMsr: entry(
    ['vcpu', 'msr'],
    (c) => (c instanceof VmmGetMsr ? [c.vcpu, hex(c.msr)] : null),
    [vcpu, u32],
    ([v, msr]) => new VmmGetMsr(v, msr),
  ),
  VmmRoundTrip: entry(
    ['vcpu'],
    (c) => (c instanceof VmmRoundTrip ? [c.vcpu] : null),
    [vcpu],
    ([v]) => new VmmRoundTrip(v),
  ),
  VmmSetPmuEventFilter: entry(
    ['filter'],
    (c) => (c instanceof VmmSetPmuEventFilter ? [c.filter === null ? null : filterToJson(c.filter)] : null),
    [FilterJson.nullable()],
    ([f]) => new VmmSetPmuEventFilter(f),
  ),
  VmmPmuCapability: entry(
    ['vcpu', 'args0'],
    (c) => (c instanceof VmmPmuCapability ? [c.vcpu, hex(c.args0)] : null),
    [vcpu, u64],
    ([v, a]) => new VmmPmuCapability(v, a),
  ),
  VmmSetCpuid: entry(
    ['vcpu', 'config'],
    (c) => (c instanceof VmmSetCpuid ? [c.vcpu, guestToJson(c.config) as Json] : null),
    [vcpu, z.lazy(() => GuestJson)],
    ([v, g]) => new VmmSetCpuid(v, g),
  ),
  IrqExit: entry(
    ['vcpu', 'units'],
    (c) => (c instanceof IrqExit ? [c.vcpu, c.units.map(unitToJson)] : null),
    [vcpu, UnitsJson],
    ([v, units]) => new IrqExit(v, units),
  ),
};

export const COMMAND_NAMES: readonly string[] = Object.keys(SCHEMAS);

/** A command on the wire, `{ cmd, args }`, read into the command it names. */
export const CommandJson = z
  .discriminatedUnion(
    'cmd',
    Object.entries(SCHEMAS).map(([name, s]) => z.strictObject({ cmd: z.literal(name), args: s.args })) as unknown as [
      z.ZodObject<{ cmd: z.ZodLiteral<string>; args: z.ZodTuple }>,
      ...z.ZodObject<{ cmd: z.ZodLiteral<string>; args: z.ZodTuple }>[],
    ],
  )
  .transform((c) => SCHEMAS[c.cmd]!.make(c.args as never))
  .meta({
    description:
      'A command: { "cmd": <name>, "args": [...] }, args as the command class takes them (MSR addresses and 64-bit values as "0x…" strings)',
  });

export const ProgramJson = arrayOf(CommandJson, MAX_COMMANDS, 'commands');

/** The wire form of a command (what commandToJson writes and CommandJson reads). */
export type SerializedCommand = z.input<typeof CommandJson>;

export function commandToJson(c: WorldCommand): SerializedCommand {
  for (const [cmd, s] of Object.entries(SCHEMAS)) {
    const args = s.toJson(c);
    if (args !== null) return { cmd, args };
  }
  throw new ProgramFormatError(`cannot serialize ${String(c)}: no schema for its class in scenarios/serialize.ts`);
}

export function programToJson(cmds: Iterable<WorldCommand>): SerializedCommand[] {
  return [...cmds].map(commandToJson);
}

// ---------------------------------------------------------------------------------------------
// Problems, as one line naming the place.

/** `program[2].args[1][0].branches[0].from`, with the command's argument named: `program[0].args[1] (msr)`. */
export function placeOf(root: string, path: readonly PropertyKey[], input: unknown): string {
  let at = root;
  const nodes: unknown[] = [input];
  path.forEach((k, n) => {
    const node = nodes[n];
    at += typeof k === 'number' ? `[${k}]` : at === '' ? String(k) : `.${String(k)}`;
    nodes.push(typeof node === 'object' && node !== null ? (node as Record<PropertyKey, unknown>)[k] : undefined);
    // A command's argument itself ({ cmd, args: [...] }): name it as the command's constructor does.
    const cmd =
      n >= 1 && n === path.length - 1 && path[n - 1] === 'args'
        ? (nodes[n - 1] as { cmd?: unknown } | undefined)?.cmd
        : undefined;
    if (typeof k === 'number' && typeof cmd === 'string' && Object.hasOwn(SCHEMAS, cmd)) {
      const name = SCHEMAS[cmd]!.params[k];
      if (name !== undefined) at += ` (${name})`;
    }
  });
  return at;
}

/** The value at `path` in `input`. */
function at(input: unknown, path: readonly PropertyKey[]): unknown {
  let node = input;
  for (const k of path)
    node = typeof node === 'object' && node !== null ? (node as Record<PropertyKey, unknown>)[k] : undefined;
  return node;
}

/** The first problem zod found, as one line: the place, then what is wrong there. */
export function describeIssue(root: string, issue: z.core.$ZodIssue, input: unknown): string {
  const where = (path: readonly PropertyKey[]) => placeOf(root, path, input) || root;
  const last = issue.path.at(-1);
  if (issue.code === 'unrecognized_keys')
    return `${where(issue.path)}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
  // A command's name: the union of commands found none by it.
  if (issue.code === 'invalid_union' && last === 'cmd') {
    const name = at(input, issue.path);
    return typeof name === 'string'
      ? `${where(issue.path)}: unknown command '${name.slice(0, 40)}' (known: ${COMMAND_NAMES.join(', ')})`
      : `${where(issue.path)}: expected a command name, got ${show(name)}`;
  }
  // The arguments of a known command, too many or too few.
  const cmd = last === 'args' ? (at(input, issue.path.slice(0, -1)) as { cmd?: unknown } | undefined)?.cmd : undefined;
  if (
    (issue.code === 'too_big' || issue.code === 'too_small') &&
    typeof cmd === 'string' &&
    Object.hasOwn(SCHEMAS, cmd)
  ) {
    const { params, args: tuple } = SCHEMAS[cmd]!;
    // Trailing optional arguments (a guest instruction's save/restore pCPU) may be left out.
    const required = tuple.def.items.filter((a) => !z.safeParse(a, undefined).success).length;
    const args = at(input, issue.path);
    const takes =
      required === params.length
        ? `${params.length} arguments (${params.join(', ')})`
        : `${required} to ${params.length} arguments (${params.slice(0, required).join(', ')}[, ${params.slice(required).join(', ')}])`;
    return `${where(issue.path)}: ${cmd} takes ${takes}, got ${Array.isArray(args) ? args.length : show(args)}`;
  }
  // A required field that is not there: name the object that lacks it.
  if (issue.code === 'invalid_type' && at(input, issue.path) === undefined && typeof last === 'string')
    return `${where(issue.path.slice(0, -1))}: missing field '${last}'`;
  const place = placeOf(root, issue.path, input);
  return place === '' ? issue.message : `${place}: ${issue.message}`;
}

/** Parses `v` with `schema`, or throws a ProgramFormatError naming the first problem. */
export function parseWith<T extends z.ZodType>(schema: T, v: unknown, root: string): z.output<T> {
  const r = schema.safeParse(v);
  if (r.success) return r.data;
  throw new ProgramFormatError(describeIssue(root, r.error.issues[0]!, v));
}

export function commandFromJson(v: unknown, at: string): WorldCommand {
  return parseWith(CommandJson, v, at);
}

/** Reads a program (the parsed JSON array); throws a ProgramFormatError naming the bad place. */
export function programFromJson(v: unknown, at = 'program'): WorldCommand[] {
  return parseWith(ProgramJson, v, at);
}

/** How many vCPUs and pCPUs a program's world has: it reduces any index modulo these. */
export interface IndexLimits {
  readonly vcpus: number;
  readonly cpus: number;
}

const INDEX_PARAMS = { vcpu: 'vcpus', cpu: 'cpus' } as const;
const noun = (param: string) => (param === 'vcpu' ? 'vCPU' : 'pCPU');

/**
 * The program with every vCPU and pCPU index reduced as the world reduces it (generators draw
 * indices past the world's size on purpose), so a report names only vCPUs and pCPUs that exist.
 * The program runs the same.
 */
export function reduceIndices(program: readonly WorldCommand[], l: IndexLimits): WorldCommand[] {
  return program.map((c) => {
    const j = commandToJson(c);
    const params = SCHEMAS[j.cmd]!.params;
    let changed = false;
    const args = j.args.map((a, i) => {
      const limit = (INDEX_PARAMS as Record<string, keyof IndexLimits | undefined>)[params[i]!];
      if (limit === undefined || typeof a !== 'number' || a < l[limit]) return a;
      changed = true;
      return a % l[limit];
    });
    return changed ? commandFromJson({ cmd: j.cmd, args }, 'program') : c;
  });
}

/** Throws a ProgramFormatError naming the first vCPU or pCPU index the world does not have. */
export function checkIndices(program: readonly SerializedCommand[], l: IndexLimits, at = 'program'): void {
  program.forEach((c, k) => {
    const params = SCHEMAS[c.cmd]?.params ?? [];
    c.args.forEach((a, i) => {
      const name = params[i]!;
      const limit = (INDEX_PARAMS as Record<string, keyof IndexLimits | undefined>)[name];
      if (limit !== undefined && typeof a === 'number' && a >= l[limit])
        throw new ProgramFormatError(
          `${at}[${k}].args[${i}] (${name}): ${noun(name)} ${a} does not exist: the world has ${l[limit]} ${noun(name)}${l[limit] === 1 ? '' : 's'} (${l[limit] === 1 ? 'index 0' : `0..${l[limit] - 1}`})`,
        );
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Guest configurations.

const u32Hex = hexOf(32);

const regsOf = (r: { eax: bigint | number; ebx: bigint | number; ecx: bigint | number; edx: bigint | number }) => ({
  eax: Number(r.eax),
  ebx: Number(r.ebx),
  ecx: Number(r.ecx),
  edx: Number(r.edx),
});

const regsHex = (r: CpuidRegs) => ({ eax: hex(r.eax), ebx: hex(r.ebx), ecx: hex(r.ecx), edx: hex(r.edx) });

export const GuestJson = z
  .strictObject({
    cpuid: z.strictObject({
      family: natural(0xfff),
      model: natural(0xff),
      leaf0a: z.strictObject({ eax: u32Hex, ebx: u32Hex, ecx: u32Hex, edx: u32Hex }),
      pdcm: bool,
      tsx: bool.optional(),
      archLbr: bool.optional(),
      leaf1c: z.strictObject({ eax: u32Hex, ebx: u32Hex, ecx: u32Hex, edx: u32Hex }).optional(),
    }),
    perfCapabilities: u64,
    pmuCap: u64.optional(),
  })
  .transform((g): GuestConfig => ({
    cpuid: {
      family: g.cpuid.family,
      model: g.cpuid.model,
      leaf0a: regsOf(g.cpuid.leaf0a),
      pdcm: g.cpuid.pdcm,
      ...(g.cpuid.tsx !== undefined ? { tsx: g.cpuid.tsx } : {}),
      ...(g.cpuid.archLbr !== undefined ? { archLbr: g.cpuid.archLbr } : {}),
      ...(g.cpuid.leaf1c !== undefined ? { leaf1c: regsOf(g.cpuid.leaf1c) } : {}),
    },
    perfCapabilities: g.perfCapabilities,
    ...(g.pmuCap !== undefined ? { pmuCap: g.pmuCap } : {}),
  }));

/** The wire form of a guest configuration. */
export type SerializedGuest = z.input<typeof GuestJson>;

export function guestToJson(g: GuestConfig): SerializedGuest {
  const r = g.cpuid.leaf0a;
  return {
    cpuid: {
      family: g.cpuid.family,
      model: g.cpuid.model,
      leaf0a: regsHex(r),
      pdcm: g.cpuid.pdcm,
      ...(g.cpuid.tsx !== undefined ? { tsx: g.cpuid.tsx } : {}),
      ...(g.cpuid.archLbr !== undefined ? { archLbr: g.cpuid.archLbr } : {}),
      ...(g.cpuid.leaf1c !== undefined ? { leaf1c: regsHex(g.cpuid.leaf1c) } : {}),
    },
    perfCapabilities: hex(g.perfCapabilities),
    ...(g.pmuCap !== undefined ? { pmuCap: hex(g.pmuCap) } : {}),
  };
}

export function guestFromJson(v: unknown, at = 'guest'): GuestConfig {
  return parseWith(GuestJson, v, at);
}

export { guestToCode } from './guest_code.js';
