/**
 * The pmu-semantics.md section that decides an observation, from the MSR family (or RDPMC, or
 * PMI delivery), and domain words for a title. A table, not a derivation: the report points the
 * reader at the rule; the oracle already applied it.
 */

import { msrName } from '../model/hw/msr/map.js';
import type { Observation } from '../scenarios/world.js';
import { gpShape, parsePmis, pmiShape } from './signature.js';

interface Family {
  readonly test: (msr: number) => boolean;
  readonly section: string;
}

const range = (lo: number, n: number) => (m: number) => m >= lo && m < lo + n;

const FAMILIES: readonly Family[] = [
  { test: (m) => range(0xc1, 8)(m) || range(0x4c1, 8)(m), section: '§2.2 IA32_PMCi / IA32_A_PMCi; §4.8 counter writes' },
  { test: range(0x186, 8), section: '§2.3 IA32_PERFEVTSELi' },
  { test: (m) => range(0x309, 3)(m) || m === 0x38d, section: '§2.4 IA32_FIXED_CTRi and IA32_FIXED_CTR_CTRL' },
  { test: (m) => m === 0x30c || m === 0x329, section: '§2.11 MSR_PERF_METRICS and fixed counter 3 (SLOTS)' },
  { test: (m) => m === 0x38f, section: '§2.5 IA32_PERF_GLOBAL_CTRL' },
  { test: (m) => m === 0x38e, section: '§2.6 IA32_PERF_GLOBAL_STATUS' },
  { test: (m) => m === 0x390, section: '§2.7 IA32_PERF_GLOBAL_OVF_CTRL / STATUS_RESET' },
  { test: (m) => m === 0x391, section: '§2.8 IA32_PERF_GLOBAL_STATUS_SET' },
  { test: (m) => m === 0x392, section: '§2.9 IA32_PERF_GLOBAL_INUSE' },
  { test: (m) => m === 0x345, section: '§2.10 IA32_PERF_CAPABILITIES' },
  { test: (m) => m === 0x1d9, section: '§2.12 IA32_DEBUGCTL' },
  {
    test: (m) => m === 0x1c8 || m === 0x1c9 || range(0x680, 0x80)(m) || range(0xdc0, 0x20)(m),
    section: '§2.13 legacy LBR',
  },
  { test: (m) => m === 0x14ce || m === 0x14cf, section: '§3.2–3.3 IA32_LBR_CTL / IA32_LBR_DEPTH' },
  { test: (m) => range(0x1200, 0x40)(m) || range(0x1500, 0x40)(m) || range(0x1600, 0x40)(m), section: '§3.4 arch LBR records' },
  { test: (m) => m === 0x834, section: '§4.4 PMI request and LAPIC LVTPC' },
];

const PMI_RULE = '§4.3 event delivery, increment, wrap, overflow; §4.4 PMI request and LAPIC LVTPC';

/** Why bare metal #GPs on this RDPMC ECX (pmu-semantics.md §4.9), in the words of the rule. */
function rdpmcGpReason(ecx: number): string {
  if ((ecx & 0x8000_0000) !== 0) return 'ECX[31] (the "fast" flag) #GPs on an architectural PMU';
  const type = (ecx >>> 16) & 0x7fff;
  if (type !== 0 && type !== 0x4000 && type !== 0x2000) return `ECX[31:16] = 0x${type.toString(16)} is not a counter type (0, 0x4000, 0x2000)`;
  return 'the counter this ECX names does not exist in the guest enumeration';
}

/** The section(s) of pmu-semantics.md that decide the observation, with a reason where one is known. */
export function ruleFor(o: Observation): string {
  const gp = gpShape(o) !== 'value' ? '; §5 #GP master table' : '';
  if (o.kind === 'rdpmc') {
    const why = o.oracle === '#GP' ? `: ${rdpmcGpReason(o.target ?? 0)}` : '';
    return `pmu-semantics.md §4.9 RDPMC${gp}${why}`;
  }
  if (o.kind === 'pmi' || o.kind === 'run') return `pmu-semantics.md ${PMI_RULE}`;
  const f = o.target === null ? undefined : FAMILIES.find((x) => x.test(o.target!));
  return f === undefined ? `pmu-semantics.md §2.1 address map${gp}` : `pmu-semantics.md ${f.section}${gp}`;
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** `RDMSR IA32_PERF_GLOBAL_INUSE (0x392)`, `RDPMC 0x80000000 at CPL 0`: the instruction in words. */
export function instructionWords(o: Observation): string {
  if (o.kind === 'rdpmc') return o.what;
  const op = o.kind === 'wrmsr' ? 'WRMSR' : 'RDMSR';
  return o.target === null ? op : `${op} ${msrName(o.target)} (${hex(o.target)})`;
}

/** What one side did, as a verb phrase. */
function outcome(o: Observation, side: string): string {
  if (side === '#GP') return 'raises #GP';
  if (o.kind === 'wrmsr') return 'is accepted';
  return o.kind === 'rdpmc' ? `returns ${side}` : `reads ${side}`;
}

function pmiWords(o: Observation): string {
  const where = o.kind === 'run' ? 'during guest work' : `around ${o.what.replace(/: PMIs$/, '')}`;
  switch (pmiShape(o.sut, o.oracle)) {
    case 'missing-pmi':
      return parsePmis(o.sut).length === 0 ? `guest gets no PMI ${where} where bare metal delivers one` : `guest misses a PMI ${where}`;
    case 'extra-pmi':
      return `guest gets a PMI ${where} that bare metal does not deliver`;
    case 'pmi-vector':
      return `guest's PMI ${where} arrives on the wrong vector`;
    default:
      return `guest's PMI ${where} arrives at the wrong time`;
  }
}

/** A kernel-style subject line for the divergence. */
export function titleFor(o: Observation): string {
  const subject =
    o.kind === 'pmi' || o.kind === 'run'
      ? pmiWords(o)
      : `guest ${instructionWords(o)} ${outcome(o, o.sut)} where bare metal ${outcome(o, o.oracle).replace(/^is accepted$/, 'accepts it')}`;
  return `[conformance] KVM: x86/pmu: ${subject}`;
}
