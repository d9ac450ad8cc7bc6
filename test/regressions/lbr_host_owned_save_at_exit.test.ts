/**
 * conformance/contended on the emulated vPMU (FC_SEED=124187721, designs.test.ts): a host user holds the LBRs of pCPU 0
 * with a CPU-pinned branch-stack event, and the guest writes LBR_SELECT with a reserved bit; the VMM saves the vCPU at
 * that write's exit and restores it on pCPU 1. KVM dropped the write (no guest LBR event is active: lbr-host-owned),
 * where bare metal faults. The declaration was judged on the whole command's history, whose save had already moved the
 * vCPU to pCPU 1, where no host user competes: judged on the history up to the write, it excuses it.
 */
import { describe, expect, it } from 'vitest';
import type { Access } from '../../model/hw/access.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { attr } from '../../model/host/types.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { MSR_LBR_SELECT } from '../../model/hw/msr/lbr_legacy.js';
import { designById, knownDivergencesMet } from '../../designs/registry.js';
import { runProgram } from '../../properties/conformance.js';
import { GuestWrmsr, HostOpen } from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';

const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300201, ebx: 0x6b, ecx: 0, edx: 0 }, pdcm: true },
  perfCapabilities: 0x2005n,
};
const hostLbrUser = new HostOpen(
  0,
  attr({
    config: 0xc0n,
    sample_period: 0x10n,
    pinned: true,
    branchSample: { user: true, kernel: true, callStack: false },
  }),
);
const reservedWrite = (savedTo?: number) => new GuestWrmsr(0, MSR_LBR_SELECT, 0x400n, savedTo);

/** Today's vPMU, with a guest LBR_SELECT write of reserved bits accepted (not dropped) whoever holds the LBRs. */
const acceptsReserved: VcpuFactory = (h, o) =>
  new (class extends EmulatedVcpu {
    override guestWrmsr(msr: number, value: bigint, atExit?: boolean): Access {
      const r = super.guestWrmsr(msr, value, atExit);
      return msr === MSR_LBR_SELECT && !r.ok ? { ok: true, value: 0n } : r;
    }
  })(h, o);

const d = designById('emulated');
const run = (design: VcpuFactory, program: GuestWrmsr[] | (HostOpen | GuestWrmsr)[]) => () =>
  runProgram({ host: SKYLAKE, design, hostKernel: d.hostKernel, expectations: d.expectations }, guest, program);

describe('lbr-host-owned is judged where the write was made, not where a save at its exit left the vCPU', () => {
  it('the dropped write is declared, with or without the save at its exit', () => {
    for (const savedTo of [undefined, 1, 0])
      expect(knownDivergencesMet('skylake', guest, [hostLbrUser, reservedWrite(savedTo)], 'emulated')).toEqual([
        'lbr-host-owned',
      ]);
  });

  it('with no host user holding the LBRs, the same reserved write taken is reported, saved at its exit or not', () => {
    for (const savedTo of [undefined, 1])
      expect(run(acceptsReserved, [reservedWrite(savedTo)])).toThrow(
        /WRMSR 0x1c8 <- 0x400: guest saw .*bare metal shows #GP/,
      );
  });
});
