/**
 * Programs and guest configurations to and from JSON, for report.json and `npm run replay`.
 * A command is `{ "cmd": "GuestWrmsr", "args": [0, "0x186", "0x4300c0"] }`: MSR addresses, RDPMC ECX
 * and 64-bit values as "0x…" strings (JSON numbers lose bits above 2^53 and hide the bit layout),
 * vCPU, CPL and pCPU indices as numbers, work units as objects with every count a number and
 * branch addresses as "0x…" strings.
 *
 * Parsing is strict: a file is edited by hand or by other tools, and a program that silently
 * loses a field would replay something else. Any problem is a ProgramFormatError whose message
 * names the place (`program[2].args[1][0].branches[0].from`) on one line.
 */

import { METRICS, type TopdownSlots } from '../model/hw/msr/topdown.js';
import { WorkError } from '../model/hw/errors.js';
import { BRANCH_KINDS } from '../model/hw/state.js';
import { type Branch, type WorkUnit, validateUnit } from '../model/hw/work.js';
import { attr, type PerfEventAttr } from '../model/host/types.js';
import {
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
import type { GuestConfig } from './world.js';

export type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

export interface SerializedCommand {
  readonly cmd: string;
  readonly args: readonly Json[];
}

export interface SerializedGuest {
  readonly cpuid: {
    readonly family: number;
    readonly model: number;
    readonly leaf0a: { readonly eax: string; readonly ebx: string; readonly ecx: string; readonly edx: string };
    readonly pdcm: boolean;
    readonly tsx?: boolean;
  };
  readonly perfCapabilities: string;
}

/** A program or guest configuration that cannot be read back; the message names the place. */
export class ProgramFormatError extends Error {
  override readonly name = 'ProgramFormatError';
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;
const U64_MAX = (1n << 64n) - 1n;

// ---------------------------------------------------------------------------------------------
// Field readers: each takes the value and where it is, and returns it typed or throws.

function fail(at: string, msg: string): never {
  throw new ProgramFormatError(`${at}: ${msg}`);
}

/** A value as it appears in the file, cut short: the message stays one line. */
function show(v: unknown): string {
  const s = v === undefined ? 'nothing' : typeof v === 'bigint' ? `${v}n` : (JSON.stringify(v) ?? typeof v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readObject(
  v: unknown,
  at: string,
  known: readonly string[],
  required: readonly string[],
): Record<string, unknown> {
  if (!isObject(v)) fail(at, `expected an object, got ${show(v)}`);
  for (const k of Object.keys(v)) if (!known.includes(k)) fail(at, `unknown field '${k}' (known: ${known.join(', ')})`);
  for (const k of required) if (!(k in v)) fail(at, `missing field '${k}'`);
  return v;
}

function readInt(v: unknown, at: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max)
    fail(at, `expected an integer 0..${max === Number.MAX_SAFE_INTEGER ? 'max' : max}, got ${show(v)}`);
  return v;
}

function readBool(v: unknown, at: string): boolean {
  if (typeof v !== 'boolean') fail(at, `expected true or false, got ${show(v)}`);
  return v;
}

function readHex(v: unknown, at: string, max: bigint): bigint {
  if (typeof v !== 'string' || !/^0x[0-9a-f]+$/i.test(v)) fail(at, `expected a "0x…" hex string, got ${show(v)}`);
  const n = BigInt(v);
  if (n > max) fail(at, `${v} does not fit in ${max === U64_MAX ? 64 : 32} bits`);
  return n;
}

const readU64 = (v: unknown, at: string) => readHex(v, at, U64_MAX);
const readU32 = (v: unknown, at: string) => Number(readHex(v, at, 0xffff_ffffn));

function readArray(v: unknown, at: string): readonly unknown[] {
  if (!Array.isArray(v)) fail(at, `expected an array, got ${show(v)}`);
  return v as readonly unknown[];
}

// ---------------------------------------------------------------------------------------------
// Work units.

const COUNT_FIELDS = [
  'instructions',
  'cycles',
  'refCycles',
  'tscCycles',
  'llcReferences',
  'llcMisses',
  'untakenBranches',
] as const;
const UNIT_FIELDS = ['cpl', ...COUNT_FIELDS, 'branches', 'slots'] as const;
const BRANCH_FIELDS = ['from', 'to', 'kind', 'cpl', 'mispredict'] as const;
/** The slot breakdown's fields are PERF_METRICS's bytes, in the same order. */
const SLOT_FIELDS = METRICS;

/** A branch as JSON, in its own field order (as units, branches keep one shape). */
function branchToJson(b: Branch): Json {
  const o: Record<string, Json> = {};
  for (const [k, v] of Object.entries(b) as [keyof Branch, unknown][]) {
    if (v === undefined) continue;
    o[k] = typeof v === 'bigint' ? hex(v) : (v as Json);
  }
  return o;
}

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

function branchFromJson(v: unknown, at: string): Branch {
  const o = readObject(v, at, BRANCH_FIELDS, ['from', 'to', 'kind']);
  const b: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    const val = o[k];
    if (k === 'from' || k === 'to') b[k] = readU64(val, `${at}.${k}`);
    else if (k === 'cpl') b[k] = readInt(val, `${at}.cpl`, 3);
    else if (k === 'mispredict') b[k] = readBool(val, `${at}.mispredict`);
    else if (typeof val !== 'string' || !(BRANCH_KINDS as readonly string[]).includes(val))
      fail(`${at}.kind`, `expected one of ${BRANCH_KINDS.join(', ')}, got ${show(val)}`);
    else b[k] = val;
  }
  return b as unknown as Branch;
}

function slotsFromJson(v: unknown, at: string): TopdownSlots {
  const o = readObject(v, at, SLOT_FIELDS, ['retiring', 'badSpeculation', 'frontendBound', 'backendBound']);
  const s: Record<string, number> = {};
  for (const k of SLOT_FIELDS) if (o[k] !== undefined) s[k] = readInt(o[k], `${at}.${k}`);
  return s as unknown as TopdownSlots;
}

/** Reads a unit back in the JSON's field order, then runs the model's own unit validation. */
export function unitFromJson(v: unknown, at: string): WorkUnit {
  const o = readObject(v, at, UNIT_FIELDS, ['cpl']);
  const u: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    const val = o[k];
    if (val === undefined) continue;
    if (k === 'cpl') u[k] = readInt(val, `${at}.cpl`, 3);
    else if (k === 'branches')
      u[k] = readArray(val, `${at}.branches`).map((b, i) => branchFromJson(b, `${at}.branches[${i}]`));
    else if (k === 'slots') u[k] = slotsFromJson(val, `${at}.slots`);
    else u[k] = readInt(val, `${at}.${k}`);
  }
  const unit = u as unknown as WorkUnit;
  try {
    validateUnit(unit);
  } catch (e) {
    if (e instanceof WorkError) fail(at, e.message);
    throw e;
  }
  return unit;
}

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
const ATTR_FIELDS = ['config', 'samplePeriod', ...FLAG_FIELDS.map(([wire]) => wire), 'branchSample'] as const;

function attrToJson(a: PerfEventAttr): Json {
  const o: Record<string, Json> = { config: hex(a.config) };
  if (a.sample_period !== 0n) o.samplePeriod = hex(a.sample_period);
  for (const [wire, field] of FLAG_FIELDS) if (a[field] === true) o[wire] = true;
  if (a.branchSample !== undefined) o.branchSample = { ...a.branchSample };
  return o;
}

function attrFromJson(v: unknown, at: string): PerfEventAttr {
  const o = readObject(v, at, ATTR_FIELDS, ['config']);
  const a: Record<string, unknown> = { config: readU64(o.config, `${at}.config`) };
  if (o.samplePeriod !== undefined) a.sample_period = readU64(o.samplePeriod, `${at}.samplePeriod`);
  for (const [wire, field] of FLAG_FIELDS) if (o[wire] !== undefined) a[field] = readBool(o[wire], `${at}.${wire}`);
  if (o.branchSample !== undefined) {
    const b = readObject(
      o.branchSample,
      `${at}.branchSample`,
      ['user', 'kernel', 'callStack'],
      ['user', 'kernel', 'callStack'],
    );
    a.branchSample = {
      user: readBool(b.user, `${at}.branchSample.user`),
      kernel: readBool(b.kernel, `${at}.branchSample.kernel`),
      callStack: readBool(b.callStack, `${at}.branchSample.callStack`),
    };
  }
  return attr(a as Partial<PerfEventAttr> & { config: bigint });
}

// ---------------------------------------------------------------------------------------------
// Commands. Each entry says how to print a command's arguments and how to read them back; a new
// command class needs an entry here before its programs can be filed.

interface Schema {
  readonly params: readonly string[];
  readonly toJson: (c: WorldCommand) => Json[] | null;
  readonly fromJson: (args: readonly unknown[], at: string) => WorldCommand;
}

const arg = (at: string, i: number, name: string) => `${at}.args[${i}] (${name})`;

const unitsFromJson = (v: unknown, at: string, i: number) =>
  readArray(v, arg(at, i, 'units')).map((u, k) => unitFromJson(u, `${at}.args[${i}][${k}]`));

const HOST_EVENT_OPS: readonly HostEventOp[] = ['enable', 'disable', 'read', 'close'];

const SCHEMAS: Readonly<Record<string, Schema>> = {
  GuestWrmsr: {
    params: ['vcpu', 'msr', 'value'],
    toJson: (c) => (c instanceof GuestWrmsr ? [c.vcpu, hex(c.msr), hex(c.value)] : null),
    fromJson: (a, at) =>
      new GuestWrmsr(
        readInt(a[0], arg(at, 0, 'vcpu')),
        readU32(a[1], arg(at, 1, 'msr')),
        readU64(a[2], arg(at, 2, 'value')),
      ),
  },
  GuestRdmsr: {
    params: ['vcpu', 'msr'],
    toJson: (c) => (c instanceof GuestRdmsr ? [c.vcpu, hex(c.msr)] : null),
    fromJson: (a, at) => new GuestRdmsr(readInt(a[0], arg(at, 0, 'vcpu')), readU32(a[1], arg(at, 1, 'msr'))),
  },
  GuestRdpmc: {
    params: ['vcpu', 'ecx', 'cpl'],
    toJson: (c) => (c instanceof GuestRdpmc ? [c.vcpu, hex(c.ecx), c.cpl] : null),
    fromJson: (a, at) =>
      new GuestRdpmc(
        readInt(a[0], arg(at, 0, 'vcpu')),
        readU32(a[1], arg(at, 1, 'ecx')),
        readInt(a[2], arg(at, 2, 'cpl'), 3),
      ),
  },
  GuestRun: {
    params: ['vcpu', 'units'],
    toJson: (c) => (c instanceof GuestRun ? [c.vcpu, c.units.map(unitToJson)] : null),
    fromJson: (a, at) =>
      new GuestRun(
        readInt(a[0], arg(at, 0, 'vcpu')),
        readArray(a[1], arg(at, 1, 'units')).map((u, i) => unitFromJson(u, `${at}.args[1][${i}]`)),
      ),
  },
  Migrate: {
    params: ['vcpu', 'cpu'],
    toJson: (c) => (c instanceof Migrate ? [c.vcpu, c.cpu] : null),
    fromJson: (a, at) => new Migrate(readInt(a[0], arg(at, 0, 'vcpu')), readInt(a[1], arg(at, 1, 'cpu'))),
  },
  SaveRestore: {
    params: ['vcpu', 'cpu'],
    toJson: (c) => (c instanceof SaveRestore ? [c.vcpu, c.cpu] : null),
    fromJson: (a, at) => new SaveRestore(readInt(a[0], arg(at, 0, 'vcpu')), readInt(a[1], arg(at, 1, 'cpu'))),
  },
  HostOpen: {
    params: ['cpu', 'attr'],
    toJson: (c) => (c instanceof HostOpen ? [c.cpu, attrToJson(c.attr)] : null),
    fromJson: (a, at) => new HostOpen(readInt(a[0], arg(at, 0, 'cpu')), attrFromJson(a[1], `${at}.args[1]`)),
  },
  HostWork: {
    params: ['cpu', 'units'],
    toJson: (c) => (c instanceof HostWork ? [c.cpu, c.units.map(unitToJson)] : null),
    fromJson: (a, at) =>
      new HostWork(
        readInt(a[0], arg(at, 0, 'cpu')),
        readArray(a[1], arg(at, 1, 'units')).map((u, i) => unitFromJson(u, `${at}.args[1][${i}]`)),
      ),
  },
  HostOpenThread: {
    params: ['vcpu', 'attr'],
    toJson: (c) => (c instanceof HostOpenThread ? [c.vcpu, attrToJson(c.attr)] : null),
    fromJson: (a, at) => new HostOpenThread(readInt(a[0], arg(at, 0, 'vcpu')), attrFromJson(a[1], `${at}.args[1]`)),
  },
  GuestXsaves: {
    params: ['vcpu'],
    toJson: (c) => (c instanceof GuestXsaves ? [c.vcpu] : null),
    fromJson: (a, at) => new GuestXsaves(readInt(a[0], arg(at, 0, 'vcpu'))),
  },
  GuestXrstors: {
    params: ['vcpu'],
    toJson: (c) => (c instanceof GuestXrstors ? [c.vcpu] : null),
    fromJson: (a, at) => new GuestXrstors(readInt(a[0], arg(at, 0, 'vcpu'))),
  },
  Preempt: {
    params: ['vcpu', 'units'],
    toJson: (c) => (c instanceof Preempt ? [c.vcpu, c.units.map(unitToJson)] : null),
    fromJson: (a, at) => new Preempt(readInt(a[0], arg(at, 0, 'vcpu')), unitsFromJson(a[1], at, 1)),
  },
  HostEvent: {
    params: ['k', 'op'],
    toJson: (c) => (c instanceof HostEvent ? [c.k, c.op] : null),
    fromJson: (a, at) => {
      const op = a[1];
      if (typeof op !== 'string' || !(HOST_EVENT_OPS as readonly string[]).includes(op))
        fail(arg(at, 1, 'op'), `expected one of ${HOST_EVENT_OPS.join(', ')}, got ${show(op)}`);
      return new HostEvent(readInt(a[0], arg(at, 0, 'k')), op as HostEventOp);
    },
  },
  HostNmi: {
    params: ['cpu'],
    toJson: (c) => (c instanceof HostNmi ? [c.cpu] : null),
    fromJson: (a, at) => new HostNmi(readInt(a[0], arg(at, 0, 'cpu'))),
  },
};

export const COMMAND_NAMES: readonly string[] = Object.keys(SCHEMAS);

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

export function commandFromJson(v: unknown, at: string): WorldCommand {
  const o = readObject(v, at, ['cmd', 'args'], ['cmd', 'args']);
  const name = o.cmd;
  if (typeof name !== 'string') fail(`${at}.cmd`, `expected a command name, got ${show(name)}`);
  const s = Object.hasOwn(SCHEMAS, name) ? SCHEMAS[name] : undefined;
  if (s === undefined) fail(`${at}.cmd`, `unknown command '${name}' (known: ${COMMAND_NAMES.join(', ')})`);
  const args = readArray(o.args, `${at}.args`);
  if (args.length !== s.params.length)
    fail(`${at}.args`, `${name} takes ${s.params.length} arguments (${s.params.join(', ')}), got ${args.length}`);
  return s.fromJson(args, at);
}

/** Reads a program (the parsed JSON array); throws a ProgramFormatError naming the bad place. */
export function programFromJson(v: unknown, at = 'program'): WorldCommand[] {
  return readArray(v, at).map((c, i) => commandFromJson(c, `${at}[${i}]`));
}

// ---------------------------------------------------------------------------------------------
// Guest configurations.

export function guestToJson(g: GuestConfig): SerializedGuest {
  const r = g.cpuid.leaf0a;
  return {
    cpuid: {
      family: g.cpuid.family,
      model: g.cpuid.model,
      leaf0a: { eax: hex(r.eax), ebx: hex(r.ebx), ecx: hex(r.ecx), edx: hex(r.edx) },
      pdcm: g.cpuid.pdcm,
      ...(g.cpuid.tsx !== undefined ? { tsx: g.cpuid.tsx } : {}),
    },
    perfCapabilities: hex(g.perfCapabilities),
  };
}

export function guestFromJson(v: unknown, at = 'guest'): GuestConfig {
  const o = readObject(v, at, ['cpuid', 'perfCapabilities'], ['cpuid', 'perfCapabilities']);
  const c = readObject(
    o.cpuid,
    `${at}.cpuid`,
    ['family', 'model', 'leaf0a', 'pdcm', 'tsx'],
    ['family', 'model', 'leaf0a', 'pdcm'],
  );
  const l = readObject(c.leaf0a, `${at}.cpuid.leaf0a`, ['eax', 'ebx', 'ecx', 'edx'], ['eax', 'ebx', 'ecx', 'edx']);
  const reg = (k: 'eax' | 'ebx' | 'ecx' | 'edx') => readU32(l[k], `${at}.cpuid.leaf0a.${k}`);
  return {
    cpuid: {
      family: readInt(c.family, `${at}.cpuid.family`, 0xfff),
      model: readInt(c.model, `${at}.cpuid.model`, 0xff),
      leaf0a: { eax: reg('eax'), ebx: reg('ebx'), ecx: reg('ecx'), edx: reg('edx') },
      pdcm: readBool(c.pdcm, `${at}.cpuid.pdcm`),
      ...(c.tsx !== undefined ? { tsx: readBool(c.tsx, `${at}.cpuid.tsx`) } : {}),
    },
    perfCapabilities: readU64(o.perfCapabilities, `${at}.perfCapabilities`),
  };
}

/** The guest configuration as TypeScript, for reports and regression files. */
export function guestToCode(g: GuestConfig): string {
  const r = g.cpuid.leaf0a;
  const tsx = g.cpuid.tsx !== undefined ? `, tsx: ${g.cpuid.tsx}` : '';
  return (
    `{ cpuid: { family: ${g.cpuid.family}, model: ${hex(g.cpuid.model)}, ` +
    `leaf0a: { eax: ${hex(r.eax)}, ebx: ${hex(r.ebx)}, ecx: ${hex(r.ecx)}, edx: ${hex(r.edx)} }, ` +
    `pdcm: ${g.cpuid.pdcm}${tsx} }, perfCapabilities: ${hex(g.perfCapabilities)}n }`
  );
}
