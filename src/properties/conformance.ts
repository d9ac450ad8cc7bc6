/**
 * Property 1, conformance: with a quiet host, everything the guest observes under the design
 * equals what bare metal shows it, #GP included (design.md "Properties"). A program whose first
 * divergence is declared in the design's expectations ends there as a known divergence.
 */

import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import { focusArb, guestConfigArb, quietHostCommands, shapeOf } from '../scenarios/arbitraries.js';
import { Divergence } from '../scenarios/commands.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';
import type { KnownDivergence } from './expectations/types.js';

/** pCPUs of the host in every conformance world; replay rebuilds the same world. */
export const CONFORMANCE_CPUS = 2;

export interface ConformanceRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly expectations: readonly KnownDivergence[];
  /** The host's perf (default: upstream's); a ported host-side bug patches it. */
  readonly hostKernel?: HostKernelFactory | undefined;
  /** Counts of known divergences met, by id (for the summary). */
  readonly known?: Map<string, number>;
}

/** Runs `cmds` in a fresh world; a declared divergence ends the program quietly. */
export function runProgram(r: ConformanceRun, guest: GuestConfig, cmds: Iterable<fc.Command<Record<string, never>, World>>): void {
  try {
    fc.modelRun(() => ({ model: {}, real: new World({ host: r.host, cpus: CONFORMANCE_CPUS, guests: [guest], design: r.design, hostKernel: r.hostKernel }) }), cmds);
  } catch (e) {
    if (!(e instanceof Divergence)) throw e;
    const history = e.world?.observations ?? [e.observation];
    const k = r.expectations.find((x) => x.matches(e.observation, { host: r.host, guest, history }));
    if (k === undefined) throw e;
    r.known?.set(k.id, (r.known.get(k.id) ?? 0) + 1);
  }
}

export function conformanceProperty(r: ConformanceRun) {
  return fc.property(
    guestConfigArb(r.host).chain((guest) =>
      fc.tuple(
        fc.constant(guest),
        focusArb.chain((focus) => fc.commands(quietHostCommands(focus, shapeOf(guest)), { size: '+1' })),
      ),
    ),
    ([guest, cmds]) => runProgram(r, guest, cmds),
  );
}
