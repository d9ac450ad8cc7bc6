/**
 * A soak find on the faithful emulated vPMU (`npm run soak -- --minutes 60 --seed 4711 --per property`, round 22:
 * `npm start -- --seed 1209696386 --runs 333 --only vmm-conformance --profile icelake --design emulated`, and on
 * Sapphire Rapids): the guest enables a counter, writes -1 to it while it runs, and one event later the VMM reads
 * GLOBAL_STATUS with KVM_GET_MSRS. KVM armed the counter's event with a period of 1, which perf raises to 2
 * (`perf-min-period`), so the status bit bare metal sets is not there yet. Bare metal cannot tell how perf armed a
 * write to a running counter, so the declaration judges it: it took the guest's RDMSR of GLOBAL_STATUS, and now, as its
 * matcher was written to, the VMM's read too.
 */
import { describe, expect, it } from 'vitest';
import { designById } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { MSR_IA32_PMC0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
import { VmmGetMsr, VmmSetCpuid } from '../../scenarios/vmm.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import { vmmVerdict } from '../support/vmm.js';

// The soak's guest, then the model its VMM set: version 2, one 48-bit GP counter, no fixed counters, FW_WRITES.
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x6a, leaf0a: { eax: 0x8300302, ebx: 0x30, ecx: 0x0, edx: 0x600 }, pdcm: true },
  perfCapabilities: 0x0n,
};
const oneCounter = {
  cpuid: { family: 6, model: 0x6a, leaf0a: { eax: 0x8300102, ebx: 0x0, ecx: 0x0, edx: 0x600 }, pdcm: true },
  perfCapabilities: 0x2000n,
};
const BRANCHES_OS_EN = 0x4200c4n;
/** One instruction at CPL 0 with one taken branch: one event for counter 0. */
const oneBranch = new GuestRun(0, [
  {
    cpl: 0,
    instructions: 1,
    branches: [{ from: 0xffffffff81000000n, to: 0xffffffff81000000n, kind: 'COND', mispredict: false, cpl: 0 }],
  },
]);

const soak: readonly WorldCommand[] = [
  new VmmSetCpuid(0, oneCounter),
  new GuestWrmsr(0, MSR_P6_EVNTSEL0, BRANCHES_OS_EN),
  new GuestWrmsr(0, MSR_IA32_PMC0, (1n << 48n) - 1n),
  oneBranch,
  new VmmGetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
];

const emulated = designById('emulated');
const judged = (
  host: string,
  program: readonly WorldCommand[],
  expectations = emulated.expectations,
  design: VcpuFactory = emulated.factory,
) =>
  vmmVerdict({ host: BUILTIN_PROFILES[host]!, design, hostKernel: emulated.hostKernel, expectations }, guest, program);

describe("perf-min-period: the VMM's KVM_GET_MSRS of GLOBAL_STATUS after a guest's write of -1 to a running counter", () => {
  it.each(['skylake', 'icelake', 'sapphirerapids'])(
    "the soak's program on %s: the late overflow is the declaration's",
    (h) => {
      expect(judged(h, soak)).toEqual({ met: ['perf-min-period'] });
    },
  );

  it("the guest's RDMSR of GLOBAL_STATUS there was the declaration's already", () => {
    const guestReads = [...soak.slice(0, 4), new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS), soak[4]!];
    expect(judged('icelake', guestReads)).toEqual({ met: ['perf-min-period'] });
  });

  it('undeclared, KVM_GET_MSRS of GLOBAL_STATUS diverges', () => {
    expect(judged('icelake', soak, []).reported).toContain('KVM_GET_MSRS 0x38e: guest saw 0x0, expected 0x1');
  });

  it('two events: the overflow comes on both sides', () => {
    const two = [...soak.slice(0, 4), oneBranch, soak[4]!];
    expect(judged('icelake', two).reported).toBeUndefined();
  });

  it('a GLOBAL_STATUS that KVM_GET_MSRS gives with another bit set is still reported', () => {
    const skewed: VcpuFactory = (h, o) => {
      const v = emulated.factory(h, o);
      const get = v.hostGetMsr.bind(v);
      v.hostGetMsr = (msr) => {
        const r = get(msr);
        return msr === MSR_CORE_PERF_GLOBAL_STATUS && r.ok ? { ok: true as const, value: r.value | (1n << 32n) } : r;
      };
      return v;
    };
    expect(judged('icelake', soak, emulated.expectations, skewed).reported).toContain(
      'KVM_GET_MSRS 0x38e: guest saw 0x100000000, expected 0x1',
    );
  });
});
