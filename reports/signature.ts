/**
 * The root-cause signature of a divergence: two failures with the same signature are one
 * report. It keeps what tells bugs apart (the design, the kind of observation, the MSR or ECX,
 * which side raised #GP, how the PMIs differ) and drops what shrinking and generation vary
 * (values, unit counts, the vCPU, the step).
 */

import { isGp, type Observation, type Outcome, pmisOf } from '../scenarios/observation.js';
import type { Case, ReportObservation } from './replay.js';

/** How two sides' PMIs differ. */
export function pmiShape(sut: Outcome, oracle: Outcome): string {
  const a = pmisOf(sut);
  const b = pmisOf(oracle);
  if (a.length < b.length) return 'missing-pmi';
  if (a.length > b.length) return 'extra-pmi';
  if (a.some((p, i) => p.vector !== b[i]!.vector)) return 'pmi-vector';
  return 'pmi-timing';
}

/** Which side faulted, for an instruction: the guest only, bare metal only, or neither (values). */
export function gpShape(o: Pick<Observation, 'sut' | 'oracle'>): string {
  if (isGp(o.sut)) return 'guest-gp';
  if (isGp(o.oracle)) return 'bare-metal-gp';
  return 'value';
}

const isInstruction = (o: Pick<ReportObservation, 'kind'>) =>
  o.kind === 'rdmsr' || o.kind === 'wrmsr' || o.kind === 'rdpmc';

/**
 * `design|kind|target|shape`. A PMI observation keeps no target: the PMI belongs to the counter
 * that overflowed, not to the MSR the instruction happened to touch.
 */
export function signatureOf(design: string, o: Pick<ReportObservation, 'kind' | 'target' | 'sut' | 'oracle'>): string {
  const pmi = o.kind === 'pmi' || o.kind === 'run';
  const target = (isInstruction(o) || o.kind === 'vmm') && o.target !== null ? `0x${o.target.toString(16)}` : '-';
  // PMIs differ in number, vector or timing; anything else (a VMM ioctl, an XSAVES image) in its value or a #GP.
  const shape = pmi ? pmiShape(o.sut, o.oracle) : gpShape(o);
  return [design, o.kind, target, shape].join('|');
}

/** Whether the host event counted more with the guest than without it (it counted guest work) or less. */
export function countShape(o: Pick<ReportObservation, 'sut' | 'oracle'>): string {
  const n = (x: Outcome) => (x.kind === 'count' ? x.count : null);
  const [a, b] = [n(o.sut), n(o.oracle)];
  return a === null || b === null ? 'missing' : a > b ? 'over-count' : 'under-count';
}

/**
 * The signature of a failing case. Conformance keeps the bare `design|kind|target|shape` (reports
 * filed before other properties had any keep their ids); every other property leads with its id.
 * A host event keeps no config (the generator picks one of a few at random, the cause is the
 * same), and an insertion keeps its kind: a migration and a save/restore lose state differently.
 */
export function caseSignature(design: string, c: Case, o: ReportObservation): string {
  switch (c.property) {
    case 'conformance':
      return signatureOf(design, o);
    case 'host-undisturbed':
      return [c.property, design, o.kind, '-', countShape(o)].join('|');
    case 'invisible':
      return [c.property, signatureOf(design, o), /^new (\w+)/.exec(String(c.insertion.command))?.[1] ?? '-'].join('|');
    default:
      return [c.property, signatureOf(design, o)].join('|');
  }
}

/** A directory name for a signature: `bug-5728a4a0ea79-rdpmc-0x80000000-bare-metal-gp`. */
export function reportId(signature: string): string {
  return signature
    .split('|')
    .filter((p) => p !== '-')
    .join('-')
    .replace(/[^a-zA-Z0-9.-]+/g, '-')
    .toLowerCase();
}
