/**
 * The corpus of programs that meet each declared divergence (`npm run declarations` writes it, the test of the same
 * name replays it): which designs and declarations it covers, and the shape of an entry.
 */

import { readFileSync } from 'node:fs';
import type { Design } from '../../properties/design.js';
import type { SerializedCommand, SerializedGuest } from '../../scenarios/serialize.js';

export const CORPUS_PATH = 'test/properties/declarations_met.json';

/** The checks whose programs the search runs: each counts the declarations it meets, on the design's own list. */
export const SEARCHED_CHECKS: readonly string[] = ['conformance', 'lbr-freeze', 'vmm-conformance'];

/** The designs built straight on a vPMU: every declaration of theirs is their own. */
const BASES = ['emulated', 'mediated'];

/** Every faithful design and series; not the ported bugs, which share their base's declarations. */
export const corpusDesigns = (all: readonly Design[]): Design[] =>
  all.filter((d) => d.fixedBy === undefined && !d.id.startsWith('bug/'));

/** A design's own declarations: all of a base's, the rest of a series' (its base's are the base's to meet). */
export function ownDeclarations(d: Design, all: readonly Design[]): string[] {
  const ids = d.expectations.map((k) => k.id);
  if (BASES.includes(d.id)) return ids;
  const inherited = new Set(all.filter((b) => BASES.includes(b.id)).flatMap((b) => b.expectations.map((k) => k.id)));
  return ids.filter((id) => !inherited.has(id));
}

export interface MetEntry {
  readonly design: string;
  readonly host: string;
  readonly check: string;
  readonly gen?: string;
  /** The declaration the program meets. */
  readonly id: string;
  readonly guest: SerializedGuest;
  readonly program: readonly SerializedCommand[];
}

export const readCorpus = (): MetEntry[] => JSON.parse(readFileSync(CORPUS_PATH, 'utf8')) as MetEntry[];

/**
 * Declarations the search's checks do not meet, by design, each with where it is met instead (a hand-written test,
 * another property): the test holds the corpus to covering every other one.
 */
export const UNMET: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  emulated: {
    // Generated guests leave TSX off: a checkpointed region needs the guest's HLE/RTM.
    'emulated-insn-skips-in-txcp': 'test/properties/tsx_guest.test.ts',
    // The contended profile meets it (npm test at seed 70006545), too seldom for the search's seeds.
    'lbr-error-behind-counter': 'test/properties/narrow_declarations.test.ts',
  },
  mediated: {
    'emulated-insn-skips-in-txcp': 'test/properties/tsx_guest.test.ts',
    'fixed-filter-unchanged-field': 'test/properties/vmm_conformance.test.ts',
    'ovf-ctrl-passthrough': 'test/regressions/mediated_ovf_ctrl_passthrough.test.ts',
  },
  'hw-assigned': {
    'filter-created-event-not-loaded': 'test/regressions/hw_assigned_filter_created.test.ts',
  },
  // A VMM's PERF_CAPABILITIES for a model no CPU has: the VMM ABI's impossible-model enumeration.
  'topdown-raw': { 'perf-metrics-without-slots': 'test/properties/impossible_enumeration.test.ts' },
  'topdown-rebuilt': { 'perf-metrics-without-slots': 'test/properties/impossible_enumeration.test.ts' },
  'arch-lbr': {
    'vmm-debugctl-lbr-kept-across-cpuid': 'test/regressions/arch_lbr_debugctl_kept_across_cpuid.test.ts',
  },
};
