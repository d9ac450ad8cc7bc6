/**
 * A soak find on the faithful emulated vPMU (`npm run soak -- --minutes 20 --seed 4715 --per property`, round 113:
 * `npm start -- --seed -953669638 --only vmm-conformance --profile skylake --design emulated`): the VMM enables
 * counter 0 with KVM_SET_MSRS, the guest counts one instruction and writes 0 to it, and after two more the VMM reads
 * GLOBAL_STATUS. KVM armed the write's period from the base (-1, a period of 1 raised to 2: `write-period-from-base`),
 * so the counter overflows early. The declaration's matcher took a selector only from the guest's WRMSR, so the
 * counter looked disabled; it now takes the VMM's KVM_SET_MSRS too, which goes through the same kvm_set_msr_common.
 */
import { describe, expect, it } from 'vitest';
import { designById } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { ARCH_PERFMON_EVENTSEL_ENABLE, MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import { GuestRun, GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
import { VmmGetMsr, VmmSetMsr } from '../../scenarios/vmm.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { hostGetMsrAs, vmmVerdict } from '../support/vmm.js';

// The soak's guest: version 2, two 48-bit GP counters, one fixed counter, LBR format 5.
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300202, ebx: 0x1b, ecx: 0x0, edx: 0x601 }, pdcm: true },
  perfCapabilities: 0x5n,
};
const INSTRUCTIONS_USR_EN = 0x4100c0n;
const instructions = (n: number) => new GuestRun(0, [{ cpl: 3, instructions: n }]);

const soak: readonly WorldCommand[] = [
  new VmmSetMsr(0, MSR_P6_EVNTSEL0, INSTRUCTIONS_USR_EN),
  instructions(1),
  new GuestWrmsr(0, MSR_IA32_PERFCTR0, 0n),
  instructions(2),
  new VmmGetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
];

const emulated = designById('emulated');
const judged = (host: string, program: readonly WorldCommand[], design: VcpuFactory = emulated.factory, g = guest) =>
  vmmVerdict(
    { host: BUILTIN_PROFILES[host]!, design, hostKernel: emulated.hostKernel, expectations: emulated.expectations },
    g,
    program,
  );

describe('write-period-from-base: a counter the VMM enabled, written by the guest while it runs', () => {
  it("the soak's program: the early overflow is declared", () => {
    expect(judged('skylake', soak)).toEqual({ met: ['write-period-from-base'] });
  });

  it.each(['icelake', 'sapphirerapids'])('on %s, with a guest of no LBRs, alike', (h) => {
    expect(
      judged(h, soak, emulated.factory, { ...guest, cpuid: { ...guest.cpuid, pdcm: false }, perfCapabilities: 0n }),
    ).toEqual({
      met: ['write-period-from-base'],
    });
  });

  it('the same with the selector the guest wrote is declared alike', () => {
    const guestSelector = [new GuestWrmsr(0, MSR_P6_EVNTSEL0, INSTRUCTIONS_USR_EN), ...soak.slice(1)];
    expect(judged('skylake', guestSelector)).toEqual({ met: ['write-period-from-base'] });
  });

  it('a counter the VMM left disabled is not stale: an overflow bit for it is reported', () => {
    const disabled = [
      new VmmSetMsr(0, MSR_P6_EVNTSEL0, INSTRUCTIONS_USR_EN & ~ARCH_PERFMON_EVENTSEL_ENABLE),
      ...soak.slice(1),
    ];
    expect(judged('skylake', disabled)).toEqual({ met: [] });
    const earlyStatus = hostGetMsrAs(EmulatedVcpu, MSR_CORE_PERF_GLOBAL_STATUS, (v) => v | 1n);
    expect(judged('skylake', disabled, earlyStatus)).toHaveProperty('reported');
    expect(judged('skylake', soak, earlyStatus)).toEqual({ met: ['write-period-from-base'] });
  });
});
