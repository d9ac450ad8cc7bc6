/**
 * Property 4: save/restore and migration are invisible. A program and the same program with a
 * migration or a save/restore inserted at any point give the guest the same observations
 * (design.md "Properties"). Both runs use the same design, so no oracle is involved and the
 * design's conformance divergences do not matter; what it loses across a save/restore does.
 */

import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import { focusArb, quietHostCommands, shapeOf } from '../scenarios/arbitraries.js';
import { Divergence, Migrate, SaveRestore, type WorldCommand } from '../scenarios/commands.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';
import { historyTo, type Observation, sameOutcome } from '../scenarios/observation.js';
import type { KnownDivergence } from './expectations/types.js';
import { supportedGuestArb, supportedOf } from '../scenarios/supported.js';

export interface InvisibilityRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly hostKernel?: HostKernelFactory | undefined;
  /** What the design loses across a migration or save/restore on purpose or by known limitation. */
  readonly expectations: readonly KnownDivergence[];
  readonly known?: Map<string, number>;
}

function record(r: InvisibilityRun, guest: GuestConfig, cmds: readonly WorldCommand[]): Observation[] {
  const w = new World({
    host: r.host,
    cpus: 2,
    guests: [guest],
    design: r.design,
    compare: false,
    hostKernel: r.hostKernel,
  });
  fc.modelRun(() => ({ model: {}, real: w }), cmds);
  return w.observations.filter((o) => o.kind !== 'vmm');
}

/** Runs the program with and without `inserted` at `at`; the guest must not tell them apart. */
export function checkInvisible(
  r: InvisibilityRun,
  guest: GuestConfig,
  cmds: readonly WorldCommand[],
  at: number,
  inserted: WorldCommand,
): void {
  const plain = record(r, guest, cmds);
  const k = Math.min(at, cmds.length);
  const withCmd = [...cmds.slice(0, k), inserted, ...cmds.slice(k)];
  const w = new World({
    host: r.host,
    cpus: 2,
    guests: [guest],
    design: r.design,
    compare: false,
    hostKernel: r.hostKernel,
  });
  fc.modelRun(() => ({ model: {}, real: w }), withCmd);
  const seen = w.observations.filter((o) => o.kind !== 'vmm');
  for (let i = 0; i < plain.length; i++) {
    const a = plain[i]!;
    const b = seen[i]!;
    if (sameOutcome(a.sut, b.sut)) continue;
    // Reported as: what the guest saw with the insertion, against what it saw without.
    const o: Observation = { ...b, note: { kind: 'insertion', command: String(inserted), at: k }, oracle: a.sut };
    // Judged on the history up to the divergent read: what the program does after it cannot excuse it.
    const history = historyTo(w.observations, b);
    const known = r.expectations.find((x) => x.matches(o, { host: r.host, guest, history }));
    if (known !== undefined) {
      r.known?.set(known.id, (r.known.get(known.id) ?? 0) + 1);
      return;
    }
    throw new Divergence(o, 'without it the guest saw');
  }
}

export function invisibilityProperty(r: InvisibilityRun) {
  return fc.property(
    supportedGuestArb(r.host, supportedOf(r)).chain((guest) =>
      fc.tuple(
        fc.constant(guest),
        focusArb.chain((focus) =>
          fc.array(fc.oneof(...quietHostCommands(focus, shapeOf(guest))), { maxLength: 30, size: '+1' }),
        ),
      ),
    ),
    fc.nat(30),
    fc.oneof(
      fc.nat(3).map((c): WorldCommand => new Migrate(0, c)),
      fc.nat(3).map((c): WorldCommand => new SaveRestore(0, c)),
    ),
    ([guest, cmds], at, inserted) => checkInvisible(r, guest, cmds, at, inserted),
  );
}
