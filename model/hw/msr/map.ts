/**
 * The MSR file of a part: every family's defs for one profile, and the address↔name table used
 * in messages and reports (pmu-semantics.md §2.1).
 */

import { MsrNameError } from '../errors.js';
import { MAX_FIXED, MAX_GP, type Profile } from '../profile.js';
import { apicMsrs } from './apic.js';
import { capabilityMsrs } from './capabilities.js';
import { counterMsrs } from './counters.js';
import { debugctlMsrs } from './debugctl.js';
import { globalMsrs } from './global.js';
import { archLbrMsrs } from './lbr_arch.js';
import { legacyLbrMsrs } from './lbr_legacy.js';
import { topdownMsrs } from './topdown.js';
import { MAX_SHAPES, type MsrFamily } from './family.js';
import type { MsrDef } from './types.js';

const files = new WeakMap<Profile, ReadonlyMap<number, MsrDef>>();

/** The MSRs that exist on `p`, by address (built once per profile: defs are pure). Anything else #GPs. */
export function buildMsrFile(p: Profile): ReadonlyMap<number, MsrDef> {
  const cached = files.get(p);
  if (cached !== undefined) return cached;
  const f = makeMsrFile(p);
  files.set(p, f);
  return f;
}

const FAMILIES: readonly MsrFamily[] = [
  counterMsrs,
  globalMsrs,
  capabilityMsrs,
  topdownMsrs,
  debugctlMsrs,
  legacyLbrMsrs,
  archLbrMsrs,
  apicMsrs,
];

/** Whole files by the families' keys: profiles of one shape share one file, so a new guest builds none. */
const byShape = new Map<string, ReadonlyMap<number, MsrDef>>();

function makeMsrFile(p: Profile): ReadonlyMap<number, MsrDef> {
  let shape = '';
  for (const family of FAMILIES) shape += `${family.key(p)}/`;
  let f = byShape.get(shape);
  if (f === undefined) {
    if (byShape.size >= MAX_SHAPES) byShape.clear();
    byShape.set(shape, (f = assemble(p)));
  }
  return f;
}

function assemble(p: Profile): ReadonlyMap<number, MsrDef> {
  const m = new Map<number, MsrDef>();
  for (const family of FAMILIES)
    for (const d of family(p)) {
      const prev = m.get(d.address);
      if (prev !== undefined)
        throw new Error(`MSR 0x${d.address.toString(16)} defined twice (${prev.name}, ${d.name})`);
      m.set(d.address, d);
    }
  return m;
}

/** Architectural names of every MSR the model knows on any part, for names in messages and input. */
function knownNames(): Map<string, number> {
  const t = new Map<string, number>();
  const add = (name: string, a: number) => t.set(name, a);
  for (let i = 0; i < MAX_GP; i++) {
    add(`IA32_PMC${i}`, 0xc1 + i);
    add(`IA32_A_PMC${i}`, 0x4c1 + i);
    add(`IA32_PERFEVTSEL${i}`, 0x186 + i);
  }
  for (let i = 0; i < MAX_FIXED; i++) add(`IA32_FIXED_CTR${i}`, 0x309 + i);
  add('MSR_PERF_METRICS', 0x329);
  add('IA32_PERF_CAPABILITIES', 0x345);
  add('IA32_FIXED_CTR_CTRL', 0x38d);
  add('IA32_PERF_GLOBAL_STATUS', 0x38e);
  add('IA32_PERF_GLOBAL_CTRL', 0x38f);
  add('IA32_PERF_GLOBAL_OVF_CTRL', 0x390);
  add('IA32_PERF_GLOBAL_STATUS_RESET', 0x390);
  add('IA32_PERF_GLOBAL_STATUS_SET', 0x391);
  add('IA32_PERF_GLOBAL_INUSE', 0x392);
  add('IA32_DEBUGCTL', 0x1d9);
  add('MSR_LBR_SELECT', 0x1c8);
  add('MSR_LASTBRANCH_TOS', 0x1c9);
  for (let i = 0; i < 32; i++) {
    add(`MSR_LBR_FROM_${i}`, 0x680 + i);
    add(`MSR_LBR_TO_${i}`, 0x6c0 + i);
    add(`MSR_LBR_INFO_${i}`, 0xdc0 + i);
  }
  add('IA32_LBR_CTL', 0x14ce);
  add('IA32_LBR_DEPTH', 0x14cf);
  for (let i = 0; i < 64; i++) {
    add(`IA32_LBR_${i}_FROM_IP`, 0x1500 + i);
    add(`IA32_LBR_${i}_TO_IP`, 0x1600 + i);
    add(`IA32_LBR_${i}_INFO`, 0x1200 + i);
  }
  add('IA32_PEBS_ENABLE', 0x3f1);
  add('IA32_DS_AREA', 0x600);
  add('X2APIC_LVTPC', 0x834);
  return t;
}

const BY_NAME = knownNames();
const BY_ADDRESS = new Map<number, string>();
for (const [n, a] of BY_NAME) if (!BY_ADDRESS.has(a)) BY_ADDRESS.set(a, n);

/** The architectural name of an address, or `MSR_0x…` for one the model does not know. */
export function msrName(address: number, p?: Profile): string {
  const local = p !== undefined ? profileName(p, address) : undefined;
  return local ?? BY_ADDRESS.get(address) ?? `MSR_0x${address.toString(16)}`;
}

function profileName(p: Profile, address: number): string | undefined {
  return buildMsrFile(p).get(address)?.name;
}

/** Resolves an MSR name (any case) or a hex/decimal address; an unknown name is a clear error. */
export function msrAddress(nameOrAddress: string): number {
  const s = nameOrAddress.trim();
  if (/^0x[0-9a-f]+$/i.test(s)) return Number.parseInt(s, 16);
  if (/^[0-9]+$/.test(s)) return Number.parseInt(s, 10);
  const a = BY_NAME.get(s.toUpperCase());
  if (a !== undefined) return a;
  const near = [...BY_NAME.keys()].filter((k) => k.includes(s.toUpperCase().replace(/[0-9]+$/, ''))).slice(0, 4);
  throw new MsrNameError(
    `unknown MSR name '${nameOrAddress}'${near.length > 0 ? `; did you mean ${near.join(', ')}?` : ''}`,
  );
}
