import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { EMULATED_OPS, type EmulatedOps } from '../../model/kvm/emulated/ops.js';
import type { GuestCpuid, HostAccess, KvmPmuEventFilter } from '../../model/kvm/types.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { checkVmmAbi, type VmmAbiRun, vmmAbiProperty } from '../../properties/vmm_abi.js';
import { Divergence, GuestRun } from '../../scenarios/commands.js';
import { VmmSetCpuidAgain, VmmSetPmuEventFilter } from '../../scenarios/vmm.js';
import type { GuestConfig } from '../../scenarios/world.js';

const emulated: VmmAbiRun = {
  host: SKYLAKE,
  design: (h, o) => new EmulatedVcpu(h, o),
  expectations: EMULATED_EXPECTATIONS,
};

// Skylake-like v2 guest, 4 GP and 3 fixed counters, with PDCM.
const guest: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0, ecx: 0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x2000n,
};

/** A KVM whose check after KVM_RUN compares CPUID.0AH's EAX alone (the rest of the payload unchecked). */
const EAX_ONLY: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_set_cpuid(vcpu, cpuid: GuestCpuid): HostAccess {
    if (vcpu.hasRun && cpuid.leaf0a.eax === vcpu.cpuid.leaf0a.eax) return { ok: true, value: 0n };
    return EMULATED_OPS.kvm_set_cpuid(vcpu, cpuid);
  },
};

/** A KVM_SET_PMU_EVENT_FILTER that reports success where its checks refuse (their -EINVAL/-E2BIG lost). */
class FilterErrorsLost extends EmulatedVcpu {
  override setPmuEventFilter(filter: KvmPmuEventFilter | null): HostAccess {
    const r = super.setPmuEventFilter(filter);
    return r.ok ? r : { ok: true, value: 0n };
  }
}

/** A KVM_SET_PMU_EVENT_FILTER that counts the events before it checks the action and flags: -E2BIG first. */
class FilterSizeFirst extends EmulatedVcpu {
  override setPmuEventFilter(filter: KvmPmuEventFilter | null): HostAccess {
    if (filter !== null && filter.events.length > 300) return { ok: false, error: 'too many events', errno: 'E2BIG' };
    return super.setPmuEventFilter(filter);
  }
}

const verdict = (r: VmmAbiRun, cmds: Parameters<typeof checkVmmAbi>[2]) => {
  try {
    checkVmmAbi(r, guest, cmds);
    return 'passed';
  } catch (e) {
    if (e instanceof Divergence) return e.message.split('\n')[0];
    throw e;
  }
};

describe('KVM_SET_CPUID2 after KVM_RUN: the same model again is taken, any one change refused', () => {
  const run = new GuestRun(0, []);

  it('the same model set again after KVM_RUN is accepted (vCPU hot-plug), and before it does nothing', () => {
    expect(verdict(emulated, [new VmmSetCpuidAgain(0, { field: 'none' }), run])).toBe('passed');
    expect(verdict(emulated, [run, new VmmSetCpuidAgain(0, { field: 'none' })])).toBe('passed');
  });

  it('one bit of CPUID.0AH EBX changed after KVM_RUN is refused by KVM and judged so without its comparison', () => {
    const change = new VmmSetCpuidAgain(0, { field: 'leaf0a', reg: 'ebx', bit: 3 });
    expect(verdict(emulated, [run, change])).toBe('passed');
    expect(verdict({ ...emulated, design: (h, o) => new EmulatedVcpu(h, o, EAX_ONLY) }, [run, change])).toMatch(
      /KVM_SET_CPUID2/,
    );
  });

  it('the search finds a KVM that compares only EAX of leaf 0xA after KVM_RUN, on two seeds', () => {
    for (const seed of [1, 2]) {
      const d = fc.check(vmmAbiProperty({ ...emulated, design: (h, o) => new EmulatedVcpu(h, o, EAX_ONLY) }), {
        numRuns: 1000,
        seed,
      });
      expect(d.failed).toBe(true);
      const [[, cmds]] = d.counterexample!;
      expect(cmds.map(String)).toEqual(['new GuestRun(0, [])', expect.stringMatching(/^new VmmSetCpuidAgain\(0, /)]);
    }
  });
});

describe('KVM_SET_PMU_EVENT_FILTER at the edges of its ABI', () => {
  const filterErrorsLost: VmmAbiRun = { ...emulated, design: (h, o) => new FilterErrorsLost(h, o) };
  const refused: readonly KvmPmuEventFilter[] = [
    { action: 2, flags: 0, fixed_counter_bitmap: 0, events: [0xc0n] },
    { action: 1, flags: 2, fixed_counter_bitmap: 0, events: [0xc0n] },
    { action: 0, flags: 0, fixed_counter_bitmap: 0, events: Array<bigint>(301).fill(0xc0n) },
    { action: 0, flags: 1, fixed_counter_bitmap: 0, events: [0xc0n | (1n << 32n)] },
  ];

  it('refuses a bad action, an unknown flag, 301 events, a masked entry with a bit outside its fields', () => {
    for (const f of refused) {
      expect(verdict(emulated, [new VmmSetPmuEventFilter(f)])).toBe('passed');
      expect(verdict(filterErrorsLost, [new VmmSetPmuEventFilter(f)])).toMatch(/KVM_SET_PMU_EVENT_FILTER/);
    }
  });

  it('judges the errno in the order KVM checks: a bad action with 301 events is -EINVAL, not -E2BIG', () => {
    const sizeFirst: VmmAbiRun = { ...emulated, design: (h, o) => new FilterSizeFirst(h, o) };
    const many = Array<bigint>(301).fill(0xc0n);
    const badAction = { action: 2, flags: 0, fixed_counter_bitmap: 0, events: many };
    const tooMany = { action: 0, flags: 0, fixed_counter_bitmap: 0, events: many };
    expect(verdict(emulated, [new VmmSetPmuEventFilter(badAction), new VmmSetPmuEventFilter(tooMany)])).toBe('passed');
    expect(verdict(sizeFirst, [new VmmSetPmuEventFilter(tooMany)])).toBe('passed');
    expect(verdict(sizeFirst, [new VmmSetPmuEventFilter(badAction)])).toMatch(
      /KVM_SET_PMU_EVENT_FILTER.*refused \(-E2BIG\).*refused \(-EINVAL\)/,
    );
  });

  it('takes 300 events and a masked entry with every field bit set', () => {
    const max = { action: 1, flags: 0, fixed_counter_bitmap: 0, events: Array<bigint>(300).fill(0xc0n) };
    const full = { action: 1, flags: 1, fixed_counter_bitmap: 0, events: [0xff80_0000_0000_ffffn] };
    expect(verdict(emulated, [new VmmSetPmuEventFilter(max), new VmmSetPmuEventFilter(full)])).toBe('passed');
    expect(String(new VmmSetPmuEventFilter(max))).toContain('...Array<bigint>(300).fill(0xc0n)');
  });

  it('the search finds a KVM whose filter checks lose their error, on two seeds', () => {
    for (const seed of [1, 2]) {
      const d = fc.check(vmmAbiProperty(filterErrorsLost), { numRuns: 1000, seed });
      expect(d.failed).toBe(true);
    }
  });
});
