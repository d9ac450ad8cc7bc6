/**
 * Planted faults for the report tests: small designs, not historical bugs, that fail one property
 * each. The CLI and the generated regression tests reach them by id through PLANTED.
 */

import type { Access } from '../../model/hw/access.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import type { HostAccess, KvmPmuEventFilter } from '../../model/kvm/types.js';
import { designById } from '../../designs/registry.js';
import type { Design } from '../../properties/design.js';
import { MSR_IA32_PERFCTR0, MSR_IA32_PMC0, MSR_CORE_PERF_FIXED_CTR0 } from '../../model/hw/msr/counters.js';

const emulated = designById('emulated');

/**
 * RDPMC of a GP counter adds the host's raw IA32_PMC0 of the pCPU: whatever host perf counts there reaches the guest.
 */
class LeaksHostPmc0 extends EmulatedVcpu {
  override guestRdpmc(ecx: number, cpl: number): Access {
    const r = super.guestRdpmc(ecx, cpl);
    if (!r.ok || ecx >>> 16 !== 0) return r;
    const hw = this.s.host.pcpu(this.s.cpu).hw.rdmsr(MSR_IA32_PERFCTR0);
    return hw.ok ? { ok: true, value: r.value ^ hw.value } : r;
  }
}

const isCounter = (msr: number) =>
  (msr >= MSR_IA32_PERFCTR0 && msr < 0xc9) ||
  (msr >= MSR_IA32_PMC0 && msr < 0x4c9) ||
  (msr >= MSR_CORE_PERF_FIXED_CTR0 && msr < 0x30d);

/** A migration loses the counter values: every counter reads 0 (RDMSR and RDPMC) until the guest writes one. */
class LosesCountersOnMigrate extends EmulatedVcpu {
  private lost = false;
  override migrate(cpu: number): void {
    super.migrate(cpu);
    this.lost = true;
  }
  override guestWrmsr(msr: number, value: bigint): Access {
    if (isCounter(msr)) this.lost = false;
    return super.guestWrmsr(msr, value);
  }
  override guestRdmsr(msr: number): Access {
    const r = super.guestRdmsr(msr);
    return this.lost && r.ok && isCounter(msr) ? { ok: true, value: 0n } : r;
  }
  override guestRdpmc(ecx: number, cpl: number): Access {
    const r = super.guestRdpmc(ecx, cpl);
    return this.lost && r.ok ? { ok: true, value: 0n } : r;
  }
}

/** KVM_SET_PMU_EVENT_FILTER counts the events before it checks the action and flags: -E2BIG where KVM says -EINVAL. */
class FilterSizeFirst extends EmulatedVcpu {
  override setPmuEventFilter(filter: KvmPmuEventFilter | null): HostAccess {
    if (filter !== null && filter.events.length > 300) return { ok: false, error: 'too many events', errno: 'E2BIG' };
    return super.setPmuEventFilter(filter);
  }
}

export const PLANTED: Readonly<Record<string, Design>> = {
  'test/leaks-host-pmc0': {
    ...emulated,
    id: 'test/leaks-host-pmc0',
    title: 'planted: RDPMC leaks the host PMC0',
    source: 'test/reports/planted.ts',
    factory: (h, o) => new LeaksHostPmc0(h, o),
  },
  'test/loses-counters-on-migrate': {
    ...emulated,
    id: 'test/loses-counters-on-migrate',
    title: 'planted: a migration loses the counter values',
    source: 'test/reports/planted.ts',
    factory: (h, o) => new LosesCountersOnMigrate(h, o),
  },
  'test/filter-size-first': {
    ...emulated,
    id: 'test/filter-size-first',
    title: 'planted: KVM_SET_PMU_EVENT_FILTER checks the number of events first',
    source: 'test/reports/planted.ts',
    factory: (h, o) => new FilterSizeFirst(h, o),
  },
  'test/undeclared-v4-freeze': {
    ...emulated,
    id: 'test/undeclared-v4-freeze',
    title: "planted: upstream's vPMU without its declared v4 LBR-freeze divergence",
    source: 'test/reports/planted.ts',
    expectations: emulated.expectations.filter((e) => e.id !== 'no-v4-lbr-freeze'),
  },
};
