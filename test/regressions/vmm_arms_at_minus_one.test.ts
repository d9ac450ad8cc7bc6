/**
 * A soak find on the faithful emulated vPMU (`npm run soak -- --minutes 110 --seed 3303 --per property`, round 322:
 * `npm start -- --seed 1946222038 --only vmm-conformance --design emulated`, on each host): the VMM sets a counter to
 * -1 and enables its selector with KVM_SET_MSRS before the guest runs. KVM reprograms the counter at the next VM-entry,
 * and perf raises the period of 1 to 2 (`perf-min-period`), so the guest's one event does not overflow it. Bare metal
 * took that floor on for a guest's control write, but dropped the reprogram a VMM's write requests: it overflowed.
 * Bare metal now makes that reprogram at the vCPU's next entry, with the counts then, whichever order the VMM wrote in.
 */
import { describe, expect, it } from 'vitest';
import { designById } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import { GuestRun, type WorldCommand } from '../../scenarios/commands.js';
import { VmmGetMsr, VmmSetMsr } from '../../scenarios/vmm.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import { vmmVerdict } from '../support/vmm.js';

// The soak's guest: version 2, one 48-bit GP counter, no fixed counters, no full-width writes.
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300102, ebx: 0x2, ecx: 0x0, edx: 0x600 }, pdcm: true },
  perfCapabilities: 0x0n,
};
const BRANCH_MISSES_OS_EN = 0x4200c5n;
/** One instruction at CPL 0 with one mispredicted branch: one event for counter 0. */
const oneMiss = new GuestRun(0, [
  {
    cpl: 0,
    instructions: 1,
    branches: [{ from: 0xffffffff81000000n, to: 0xffffffff81000000n, kind: 'COND', mispredict: true, cpl: 0 }],
  },
]);

const soak: readonly WorldCommand[] = [
  new VmmSetMsr(0, MSR_IA32_PERFCTR0, (1n << 64n) - 1n),
  new VmmSetMsr(0, MSR_P6_EVNTSEL0, BRANCH_MISSES_OS_EN),
  oneMiss,
  new VmmGetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
  new VmmGetMsr(0, MSR_IA32_PERFCTR0),
];

const emulated = designById('emulated');

/** vmm-conformance's verdict on `host`: the declarations met, or the divergence it reports. */
const judged = (
  host: string,
  program: readonly WorldCommand[],
  design: VcpuFactory = emulated.factory,
  expectations = emulated.expectations,
) =>
  vmmVerdict({ host: BUILTIN_PROFILES[host]!, design, hostKernel: emulated.hostKernel, expectations }, guest, program);

describe("perf-min-period: a counter the VMM arms at -1 is floored at the vCPU's next entry", () => {
  it.each(['skylake', 'icelake', 'sapphirerapids'])(
    "the soak's program on %s: KVM's late overflow is the declaration's",
    (host) => {
      expect(judged(host, soak)).toEqual({ met: ['perf-min-period'] });
    },
  );

  it('undeclared, KVM_GET_MSRS of GLOBAL_STATUS diverges', () => {
    expect(judged('skylake', soak, emulated.factory, []).reported).toContain(
      'KVM_GET_MSRS 0x38e: guest saw 0x0, expected 0x1',
    );
  });

  it('the selector first and the counter after: KVM arms the event at entry, with the counter at -1', () => {
    const swapped = [soak[1]!, soak[0]!, ...soak.slice(2)];
    expect(judged('skylake', swapped)).toEqual({ met: ['perf-min-period'] });
  });

  it('two events: the overflow comes on both sides, and the counter reads 1', () => {
    const two = [...soak.slice(0, 2), oneMiss, oneMiss, ...soak.slice(3)];
    expect(judged('skylake', two).reported).toBeUndefined();
  });

  it('a counter KVM_GET_MSRS gives off by one is still reported', () => {
    const skewed: VcpuFactory = (h, o) => {
      const v = emulated.factory(h, o);
      const get = v.hostGetMsr.bind(v);
      v.hostGetMsr = (msr) => {
        const r = get(msr);
        return msr === MSR_IA32_PERFCTR0 && r.ok
          ? { ok: true as const, value: (r.value + 1n) & ((1n << 48n) - 1n) }
          : r;
      };
      return v;
    };
    expect(judged('skylake', soak, skewed).reported).toContain('KVM_GET_MSRS 0xc1: guest saw 0x1, expected 0x0');
  });
});
