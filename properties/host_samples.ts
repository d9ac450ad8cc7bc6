/**
 * Property 2, host side, for samples: a host sampling event's samples are attributed as on a host
 * without the guest. An exclude_guest event never counts guest work, so on the host-only oracle
 * every one of its samples is the host's; under the design, a sample it takes while the host
 * handles an interrupt that exited the guest must still be the host's, not marked "in guest"
 * (perf_guest_state, kvm_arch_pmi_in_guest: 812d432373f6).
 */

import fc from 'fast-check';
import type { Profile } from '../model/hw/profile.js';
import { attr } from '../model/host/types.js';
import { mixedProgramArb } from '../scenarios/arbitraries.js';
import { supportedOf } from '../scenarios/supported.js';
import { HostOpen, type WorldCommand } from '../scenarios/commands.js';
import { irqExitArb } from '../scenarios/vmm.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';

export interface HostSamplesRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly hostKernel?: HostKernelFactory | undefined;
}

export class HostSampleMisattributed extends Error {
  override readonly name = 'HostSampleMisattributed';
}

/** perf record -a -C cpu: a pinned host-only sampling event counting kernel and user. */
const samplingOpenArb: fc.Arbitrary<WorldCommand> = fc
  .record({
    cpu: fc.constantFrom(0, 0, 1),
    config: fc.constantFrom(0x3cn, 0xc0n),
    period: fc.constantFrom(50n, 200n, 1000n),
  })
  .map(
    (r) => new HostOpen(r.cpu, attr({ config: r.config, sample_period: r.period, pinned: true, exclude_guest: true })),
  );

export function checkHostSamples(r: HostSamplesRun, guest: GuestConfig, cmds: readonly WorldCommand[]): void {
  const w = new World({
    host: r.host,
    cpus: 2,
    guests: [guest],
    design: r.design,
    compare: false,
    hostKernel: r.hostKernel,
  });
  fc.modelRun(() => ({ model: {}, real: w }), cmds);
  const events = [...w.hostEvents, ...w.closed];
  events.forEach((e, i) => {
    if (!e.attr.exclude_guest) return;
    const inGuest = e.samples.filter((s) => s.inGuest).length;
    if (inGuest > 0)
      throw new HostSampleMisattributed(
        `host event ${i} (exclude_guest, sample_period ${e.attr.sample_period}) has ${inGuest} of ${e.samples.length} samples marked "in guest"; on the host without the guest all are the host's`,
      );
  });
}

export function hostSamplesProperty(r: HostSamplesRun) {
  return fc.property(
    mixedProgramArb(
      r.host,
      supportedOf(r),
      2,
      [
        { arbitrary: samplingOpenArb, weight: 1 },
        { arbitrary: irqExitArb, weight: 2 },
      ],
      20,
    ),
    ([guest, cmds]) => checkHostSamples(r, guest, cmds),
  );
}
