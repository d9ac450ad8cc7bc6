/**
 * Property 2 (second half): the guest does not disturb the host. A host user's pinned,
 * exclude_guest, user-only event counts exactly what it counts on the same host with no guest at
 * all (design.md "Properties": host events equal a host-only oracle, with guest work excluded where
 * exclude_guest says so). User-only, because KVM's own exit handling is host kernel work that host
 * events rightly count (decision K3); pinned, because flexible host events may legitimately lose
 * counters to KVM's pinned ones.
 */

import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import { attr } from '../model/host/types.js';
import { mixedProgramArb } from '../scenarios/arbitraries.js';
import { supportedOf } from '../scenarios/supported.js';
import { HostOpen, HostWork, type WorldCommand } from '../scenarios/commands.js';
import { unitArb } from '../scenarios/work.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';

export interface HostUndisturbedRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly hostKernel?: HostKernelFactory | undefined;
}

export class HostDisturbed extends Error {
  override readonly name = 'HostDisturbed';
}

const hostOpenArb: fc.Arbitrary<WorldCommand> = fc
  .record({ cpu: fc.constantFrom(0, 0, 1), config: fc.constantFrom(0xc0n, 0x3cn, 0xc4n, 0x4f2en) })
  .map((r) => new HostOpen(r.cpu, attr({ config: r.config, pinned: true, exclude_guest: true, exclude_kernel: true })));

/** Host user work: CPL 3 units on a pCPU, preempting the vCPU thread if it is there. */
const hostWorkArb: fc.Arbitrary<WorldCommand> = fc
  .tuple(fc.constantFrom(0, 0, 1), fc.array(unitArb, { minLength: 1, maxLength: 4 }))
  .map(
    ([cpu, units]) =>
      new HostWork(
        cpu,
        units.map((u) => ({ ...u, cpl: 3, branches: (u.branches ?? []).map((b) => ({ ...b, cpl: 3 })) })),
      ),
  );

const isHost = (c: WorldCommand) => c instanceof HostOpen || c instanceof HostWork;

function counts(r: HostUndisturbedRun, guests: GuestConfig[], cmds: readonly WorldCommand[]): bigint[] {
  const w = new World({
    host: r.host,
    cpus: 2,
    guests,
    design: r.design,
    compare: false,
    hostKernel: r.hostKernel,
  });
  fc.modelRun(() => ({ model: {}, real: w }), cmds);
  return w.hostEvents.map((e) => w.host.perf_event_read_value(e));
}

export function checkHostUndisturbed(r: HostUndisturbedRun, guest: GuestConfig, cmds: readonly WorldCommand[]): void {
  const withGuest = counts(r, [guest], cmds);
  const hostOnly = counts(r, [], cmds.filter(isHost));
  withGuest.forEach((c, i) => {
    if (c !== hostOnly[i])
      throw new HostDisturbed(
        `host event ${i} (pinned, exclude_guest, user-only) counted ${c} with the guest running, ${hostOnly[i]} on the same host without it`,
      );
  });
}

export function hostUndisturbedProperty(r: HostUndisturbedRun) {
  return fc.property(
    mixedProgramArb(
      r.host,
      supportedOf(r),
      3,
      [
        { arbitrary: hostOpenArb, weight: 1 },
        { arbitrary: hostWorkArb, weight: 2 },
      ],
      30,
    ),
    ([guest, cmds]) => checkHostUndisturbed(r, guest, cmds),
  );
}
