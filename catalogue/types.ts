/**
 * A row of docs/bugs.md as the suite ports it: the historical bug as a design (the faithful
 * port with the fix reverted), the check that must find it, and how short its trigger can be.
 */

import type { CheckId } from '../properties/checks.js';
import type { Design } from '../properties/design.js';
import type { GenerationProfile } from '../scenarios/generation.js';

export interface BugEntry {
  /** The row number in bugs.md. */
  readonly row: number;
  readonly subject: string;
  /** The upstream commit that fixed it, or null where upstream has no fix (a design hole). */
  readonly fixedBy: string | null;
  /** The kernel version of the fix (or where the behaviour stands today). */
  readonly kernel: string;
  /** bugs.md property classes: HL, FZ, SR, AC, OV, GP, EF, CC. */
  readonly classes: readonly string[];
  /** The design with the bug in it. */
  readonly design: Design;
  /** The check that finds it, and on which built-in host. */
  readonly check: CheckId;
  /** The check's generation profile where it has several (default: the first, which keeps to supported guests). */
  readonly gen?: GenerationProfile;
  readonly host: string;
  /** Commands in the shortest program that shows the bug (bugs.md's "minimal trigger", counted). */
  readonly minimalTrigger: number;
  /** That shortest program in words. */
  readonly trigger: string;
  /** A report filed under reports/ for it, if any. */
  readonly report?: string;
}

/** A row the model cannot carry, with the reason. */
export interface OutOfScope {
  readonly row: number;
  readonly subject: string;
  readonly reason: string;
}
