/**
 * Regression: [lbr-vs-host] KVM: x86/pmu: a guest's first LBR_TOS read counts the branches the
 * host's LBR user recorded before KVM created the guest LBR event (reports/filed/0003). Upstream
 * behaviour, not a model bug: intel_pmu_lbr_reset() (from intel_pmu_lbr_add) zeroes FROM/TO/INFO
 * but never writes MSR_LASTBRANCH_TOS, and KVM passes TOS through without initialising it. Found by
 * `npm run compare`'s 'lbr-vs-host' workload on the emulated design; shrunk by hand to 4 commands.
 * Pins: the divergence (TOS ahead by KVM's exit-handler branches), that it is declared, that the
 * host branch addresses themselves are wiped, and that without a host LBR user nothing diverges.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { attr } from '../../model/host/types.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { KVM_EXIT_HANDLER_WORK } from '../../model/kvm/common/vcpu.js';
import { firstDivergence } from '../../designs/registry.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, HostOpen, type WorldCommand } from '../../scenarios/commands.js';
import { type GuestConfig, World } from '../../scenarios/world.js';
import { diverges, readValue } from '../../scenarios/observation.js';

// Skylake host, guest with the host's CPUID.0AH, FMS and LBR format 5 (QEMU -cpu host,pmu=on).
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300404, ebx: 0x0, ecx: 0x0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x2005n,
};
const hostLbrUser = new HostOpen(
  0,
  attr({
    config: 0xc4n,
    sample_period: 0xc8n,
    exclude_guest: true,
    branchSample: { user: true, kernel: true, callStack: false },
  }),
);
const program: WorldCommand[] = [
  hostLbrUser,
  new GuestWrmsr(0, 0x1d9, 0x1n), // DEBUGCTL.LBR: exits; KVM's handler runs while the host event still holds the LBRs
  new GuestRun(0, [
    { cpl: 3, instructions: 2, cycles: 4, branches: [{ from: 0x401000n, to: 0x401040n, kind: 'COND' }] },
  ]),
  new GuestRdmsr(0, 0x1c9), // LBR_TOS, passed through
];

const hostBranches = KVM_EXIT_HANDLER_WORK.branches!.length;

describe("lbr-tos-not-reset: the guest LBR event inherits the host LBR user's TOS", () => {
  it("the guest reads LBR_TOS ahead of bare metal by the branches KVM's exit handler recorded for the host event", () => {
    const o = firstDivergence('skylake', guest, program, 'emulated');
    expect(o).toMatchObject({
      kind: 'rdmsr',
      target: 0x1c9,
      sut: { kind: 'value', value: BigInt(1 + hostBranches) },
      oracle: { kind: 'value', value: 1n },
    });
  });

  it('is the declared divergence lbr-tos-not-reset', () => {
    const w = new World({
      host: SKYLAKE,
      cpus: 2,
      guests: [guest],
      design: (h, o) => new EmulatedVcpu(h, o),
      compare: false,
    });
    for (const c of program) c.run({}, w);
    const obs = w.observations;
    const i = obs.findIndex(diverges);
    const k = EMULATED_EXPECTATIONS.filter((x) =>
      x.matches(obs[i]!, { host: SKYLAKE, guest, history: obs.slice(0, i + 1) }),
    );
    expect(k.map((x) => x.id)).toEqual(['lbr-tos-not-reset']);
  });

  it("the host branch addresses themselves are wiped: the records below the guest's read 0", () => {
    const reads = [0, 1, 2].map((i) => new GuestRdmsr(0, 0x680 + 1 + i)); // the guest's record, then the two host slots
    const w = new World({
      host: SKYLAKE,
      cpus: 2,
      guests: [guest],
      design: (h, o) => new EmulatedVcpu(h, o),
      compare: false,
    });
    for (const c of [...program, ...reads]) c.run({}, w);
    const got = w.observations
      .filter((x) => x.kind === 'rdmsr' && x.target !== null && x.target >= 0x680 && x.target < 0x6a0)
      .map((x) => [x.target, readValue(x.sut)]);
    // TOS = 3: slot 3 holds the guest's branch, slots 1 and 2 held KVM's exit-handler branches and were zeroed.
    expect(got).toEqual([
      [0x681, 0n],
      [0x682, 0n],
      [0x683, 0x401000n],
    ]);
  });

  it("without a host LBR user the guest's TOS matches bare metal", () => {
    expect(firstDivergence('skylake', guest, program.slice(1), 'emulated')).toBeNull();
  });
});
