/**
 * lbr-cycles-include-exits adopted (W6): an LBR_INFO read that differs from bare metal only in its elapsed-cycles field
 * (CYC_CNT), by more cycles (the VM-exits KVM handled between two guest branches count too), takes the design's value
 * on bare metal, so a guest that writes the record back (perf's call-stack restore) leaves the same record on both
 * sides and the program runs on compared exactly. Any other difference in the record is still reported.
 */
import { describe, expect, it } from 'vitest';
import { ok } from '../../model/hw/access.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../model/hw/msr/global.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import { LBR_INFO_CYC_CNT, MSR_LBR_INFO_0, MSR_LBR_TOS } from '../../model/hw/msr/lbr_legacy.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { runProgram } from '../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { GuestRdmsr, GuestRun, GuestWrmsr } from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import { condBranch } from '../support/work.js';

// Skylake-like v2 guest with the host's LBR format (5: LBR_INFO records).
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0x0, ecx: 0x0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x5n,
};
const branchy = { cpl: 0, instructions: 2, cycles: 10, branches: [condBranch(0)] };

// Two branches with an intercepted WRMSR between them: the exit's cycles land in the second record's CYC_CNT on KVM.
const program = [
  new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, 0x1n),
  new GuestRun(0, [branchy]),
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x0n),
  new GuestRun(0, [branchy]),
  new GuestRdmsr(0, MSR_LBR_TOS),
  new GuestRdmsr(0, MSR_LBR_INFO_0 + 1),
  new GuestRdmsr(0, MSR_LBR_INFO_0 + 2),
];

/** A planted vPMU whose LBR_INFO reads are changed by `f`. */
function infoReads(f: (v: bigint) => bigint): VcpuFactory {
  return (h, o) =>
    new (class extends EmulatedVcpu {
      override guestRdmsr(msr: number) {
        const r = super.guestRdmsr(msr);
        return r.ok && msr >= MSR_LBR_INFO_0 && msr < MSR_LBR_INFO_0 + 32 ? ok(f(r.value)) : r;
      }
    })(h, o);
}

const run = { host: BUILTIN_PROFILES['skylake']!, expectations: EMULATED_EXPECTATIONS };

describe('lbr-cycles-include-exits adopted: bare metal reads the design’s LBR_INFO where only its cycles differ', () => {
  it('the records differ in CYC_CNT alone, by more: the reads take KVM’s value and nothing diverges', () => {
    expect(firstDivergence('skylake', guest, program, 'emulated')).toBeNull();
    expect(knownDivergencesMet('skylake', guest, program, 'emulated')).toEqual(['lbr-cycles-include-exits']);
  });

  it('fewer cycles than bare metal counted, with no reschedule: reported', () => {
    expect(() => runProgram({ ...run, design: infoReads((v) => v & ~LBR_INFO_CYC_CNT) }, guest, program)).toThrow(
      /RDMSR 0xdc1: guest saw 0x0, bare metal shows 0xa/,
    );
  });

  it('a record whose mispredict bit differs besides its cycles: reported', () => {
    expect(() => runProgram({ ...run, design: infoReads((v) => v | (1n << 63n)) }, guest, program)).toThrow(
      /RDMSR 0xdc1: guest saw 0x8000000000000082, bare metal shows 0xa/,
    );
  });
});
