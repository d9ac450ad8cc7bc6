/**
 * The checks of KVM selftests x86/pmu_counters_test.c (kvm-vpmu.md §3.1, C1–C8) against the
 * emulated vPMU on Skylake pCPUs: for every guest PMU version 0..5 × PERF_CAPABILITIES ∈ {0,
 * FW_WRITES}, the guest code of the selftest is replayed as guest instructions and work units.
 *
 * As in the selftest, the guest treats its PMU version as min(KVM's version, CPUID's): KVM
 * advertises at most version 2 (§2.3) but does not clamp what userspace puts in CPUID (§2.4).
 * Intercepted WRMSR/RDMSR/RDPMC instructions that KVM skips count as one instruction retired at
 * CPL 0 (kvm_skip_emulated_instruction → kvm_pmu_instruction_retired), for counters that are
 * counting instructions at that moment; since 5dfd498bad5f "at that moment" includes the
 * WRMSR's own effect on the event selector (the set of to-be-emulated PMCs is recalculated at
 * the time of the WRMSR). That is the "1 WRMSR" of NUM_INSNS_RETIRED.
 */
import { describe, expect, it } from 'vitest';
import { ICELAKE, SKYLAKE } from '../../../model/hw/profiles.js';
import {
  ARCH_EVENTS,
  createVcpu,
  fixedGlobalEnable,
  fixedPmcCtrl,
  isGp,
  loopDot,
  measuredLoop,
  NUM_BRANCH_INSNS_RETIRED,
  NUM_INSNS_RETIRED,
  NUM_LOOPS,
  val,
  type VcpuSetup,
  type World,
} from './util.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  INTEL_FIXED_0_KERNEL,
  INTEL_PMC_RDPMC_FAST,
  INTEL_PMC_FIXED_RDPMC_BASE,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
  MSR_P6_PERFCTR0,
  MSR_P6_PERFCTR1,
} from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES } from '../../../model/hw/msr/capabilities.js';

const HOST = SKYLAKE;
/** kvm_pmu_cap.version: KVM advertises at most v2 (kvm_init_pmu_capability). */
const KVM_PMU_VERSION = Math.min(HOST.version, 2);
const HOST_NR_GP = Math.min(HOST.nGP, 8);
const HOST_NR_FIXED = Math.min(HOST.nFixedContig, 3);
/** hardware_pmu_arch_events: what the host's own CPUID.0AH enumerates. */
const hwHasEvent = (idx: number) => idx < HOST.evLen && ((HOST.eventsUnavailable >>> idx) & 1) === 0;
const MAX_NR_GP_COUNTERS = 8;
const MAX_NR_FIXED_COUNTERS = 3;

const VERSIONS = [0, 1, 2, 3, 4, 5];
const CAPS: readonly bigint[] = [0n, PERF_CAP_FW_WRITES];
const CONFIGS = VERSIONS.flatMap((v) => CAPS.map((c) => [v, c] as const));

/** guest_get_pmu_version(). */
const effectiveVersion = (v: number) => Math.min(KVM_PMU_VERSION, v);

/** A guest with the selftest's helpers: wrmsr() must not fault, *_safe() report the fault. */
class Guest {
  constructor(readonly w: World) {}
  wrmsr(msr: number, v: bigint): void {
    val(this.w.vcpu.guestWrmsr(msr, v), `WRMSR 0x${msr.toString(16)} <- 0x${v.toString(16)}`);
  }
  rdmsr(msr: number): bigint {
    return val(this.w.vcpu.guestRdmsr(msr), `RDMSR 0x${msr.toString(16)}`);
  }
  rdpmc(ecx: number): bigint {
    return val(this.w.vcpu.guestRdpmc(ecx >>> 0, 0), `RDPMC 0x${(ecx >>> 0).toString(16)}`);
  }
  /** The selftest's base: IA32_PMC0 iff PDCM and PERF_CAPABILITIES.FW_WRITES (C7). */
  gpCounterBase(): number {
    const pdcm = this.w.vcpu.s.cpuid.pdcm;
    return pdcm && (this.rdmsr(MSR_IA32_PERF_CAPABILITIES) & PERF_CAP_FW_WRITES) !== 0n
      ? MSR_IA32_PMC0
      : MSR_IA32_PERFCTR0;
  }
}

// ---- guest_test_arch_event ----

function assertEventCount(g: Guest, idx: number, pmc: number, pmcMsr: number, where: string): void {
  const count = g.rdpmc(pmc);
  if (hwHasEvent(idx)) {
    switch (idx) {
      case 1:
        expect(count, `${where}: instructions`).toBe(BigInt(NUM_INSNS_RETIRED));
        break;
      case 5:
        expect(count, `${where}: branches`).toBe(BigInt(NUM_BRANCH_INSNS_RETIRED));
        break;
      case 0:
      case 2:
      case 3:
      case 4:
        expect(count, `${where}: ${ARCH_EVENTS[idx].name}`).not.toBe(0n);
        break;
      case 7:
        expect(count >= BigInt(NUM_INSNS_RETIRED), `${where}: slots ≥ instructions`).toBe(true);
        break;
      default:
        break;
    }
  }
  // Sanity checks: the event doesn't count when disabled (C3), and KVM emulates the write (C4).
  g.w.vcpu.guestRun(loopDot());
  expect(g.rdpmc(pmc), `${where}: frozen while disabled`).toBe(count);
  g.wrmsr(pmcMsr, 0xdeadn);
  expect(g.rdpmc(pmc), `${where}: RDPMC after WRMSR 0xdead`).toBe(0xdeadn);
  expect(g.rdmsr(pmcMsr), `${where}: RDMSR after WRMSR 0xdead`).toBe(0xdeadn);
}

/** GUEST_TEST_EVENT: zero the counter, enable, run the payload, disable, check. */
function guestTestEvent(
  g: Guest,
  idx: number,
  pmc: number,
  pmcMsr: number,
  ctrlMsr: number,
  value: bigint,
  where: string,
) {
  g.wrmsr(pmcMsr, 0n);
  g.wrmsr(ctrlMsr, value); // GUEST_MEASURE_EVENT: "wrmsr" ...
  g.w.vcpu.guestRun(measuredLoop());
  g.wrmsr(ctrlMsr, 0n); // ... "xor %eax; xor %edx; wrmsr"
  assertEventCount(g, idx, pmc, pmcMsr, where);
}

function guestTestArchEvent(g: Guest, idx: number, nrGp: number, nrFixed: number, version: number): void {
  const hasGlobalCtrl = version >= 2;
  const base = g.gpCounterBase();
  expect(nrGp).toBeGreaterThan(0);
  for (let i = 0; i < nrGp; i++) {
    const eventsel = ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_ENABLE | ARCH_EVENTS[idx]!.sel;
    g.wrmsr(MSR_P6_EVNTSEL0 + i, 0n);
    if (hasGlobalCtrl) g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n << BigInt(i));
    guestTestEvent(g, idx, i, base + i, MSR_P6_EVNTSEL0 + i, eventsel, `${ARCH_EVENTS[idx]!.name} on GP ${i}`);
  }
  if (!hasGlobalCtrl) return;
  const f = ARCH_EVENTS[idx]!.fixed;
  if (f < 0 || f >= nrFixed) return;
  g.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(f, INTEL_FIXED_0_KERNEL));
  guestTestEvent(
    g,
    idx,
    f | INTEL_PMC_FIXED_RDPMC_BASE,
    MSR_CORE_PERF_FIXED_CTR0 + f,
    MSR_CORE_PERF_GLOBAL_CTRL,
    fixedGlobalEnable(f),
    `${ARCH_EVENTS[idx]!.name} on fixed ${f}`,
  );
}

function testArchEvents(v: number, caps: bigint, length: number, unavailable: number): void {
  const w = createVcpu({ profile: HOST, perfCaps: caps, version: v, evLen: length, unavailable });
  const g = new Guest(w);
  for (let idx = 0; idx < ARCH_EVENTS.length; idx++)
    guestTestArchEvent(g, idx, HOST_NR_GP, HOST_NR_FIXED, effectiveVersion(v));
}

// ---- guest_rd_wr_counters ----

function testRdpmc(w: World, ecx: number, expectSuccess: boolean, expected: bigint, where: string): void {
  const r = w.vcpu.guestRdpmc(ecx >>> 0, 0);
  expect(isGp(r), `${where}: RDPMC 0x${(ecx >>> 0).toString(16)} ${expectSuccess ? 'succeeds' : '#GPs'}`).toBe(
    !expectSuccess,
  );
  if (expectSuccess) expect(val(r), `${where}: RDPMC 0x${(ecx >>> 0).toString(16)} value`).toBe(expected);
}

function guestRdWrCounters(w: World, baseMsr: number, nrPossible: number, nrCounters: number, orMask: number): void {
  const testVal = 0xffffn;
  for (let i = 0; i < nrPossible; i++) {
    const msr = baseMsr + i;
    const where = `MSR 0x${msr.toString(16)}`;
    const expectSuccess = i < nrCounters || ((orMask >>> i) & 1) === 1;
    // KVM drops writes to MSR_P6_PERFCTR[0|1] if the counters are unsupported: no #GP, reads 0.
    const expectedVal = expectSuccess ? testVal : 0n;
    const expectGp = !expectSuccess && msr !== MSR_P6_PERFCTR0 && msr !== MSR_P6_PERFCTR1;

    expect(isGp(w.vcpu.guestWrmsr(msr, testVal)), `${where}: WRMSR ${expectGp ? '#GPs' : 'succeeds'}`).toBe(expectGp);
    const r = w.vcpu.guestRdmsr(msr);
    expect(isGp(r), `${where}: RDMSR ${expectGp ? '#GPs' : 'succeeds'}`).toBe(expectGp);
    if (!expectGp) expect(val(r), `${where}: RDMSR value`).toBe(expectedVal);

    let rdpmcIdx = i;
    if (baseMsr === MSR_CORE_PERF_FIXED_CTR0) rdpmcIdx |= INTEL_PMC_FIXED_RDPMC_BASE;
    testRdpmc(w, rdpmcIdx, expectSuccess, expectedVal, where);
    // KVM has no non-architectural PMU: "fast" RDPMC always #GPs.
    testRdpmc(w, rdpmcIdx | INTEL_PMC_RDPMC_FAST, false, 0n, `${where} (fast)`);

    expect(isGp(w.vcpu.guestWrmsr(msr, 0n)), `${where}: WRMSR 0 ${expectGp ? '#GPs' : 'succeeds'}`).toBe(expectGp);
  }
}

function testGpCounters(v: number, caps: bigint, nrGp: number): void {
  const w = createVcpu({ profile: HOST, perfCaps: caps, version: v, nrGp });
  const g = new Guest(w);
  const ver = effectiveVersion(v);
  const nr = ver > 0 ? nrGp : 0;
  // C5: post-RESET GLOBAL_CTRL is GENMASK(nr_gp - 1, 0), or 0 without GP counters.
  if (ver > 1)
    expect(g.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL), 'post-RESET GLOBAL_CTRL').toBe(nr > 0 ? (1n << BigInt(nr)) - 1n : 0n);
  guestRdWrCounters(w, g.gpCounterBase(), MAX_NR_GP_COUNTERS, nr, 0);
}

function testFixedCounters(v: number, caps: bigint, nrFixed: number, bitmask: number): void {
  const w = createVcpu({ profile: HOST, perfCaps: caps, version: v, nrFixed, fixedBitmap: bitmask });
  const g = new Guest(w);
  const ver = effectiveVersion(v);
  const nr = ver >= 2 ? nrFixed : 0;
  // The supported-counters bitmap is v5; the guest's effective version never reaches it.
  const supported = ver >= 5 ? bitmask : 0;
  guestRdWrCounters(w, MSR_CORE_PERF_FIXED_CTR0, MAX_NR_FIXED_COUNTERS, nr, supported);
  for (let i = 0; i < MAX_NR_FIXED_COUNTERS; i++) {
    if (i >= nr && ((supported >>> i) & 1) === 0) {
      // C8: an absent fixed counter cannot be enabled, locally or globally.
      expect(
        isGp(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(i, INTEL_FIXED_0_KERNEL))),
        `FIXED_CTR_CTRL field ${i} #GPs`,
      ).toBe(true);
      expect(
        isGp(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, fixedGlobalEnable(i))),
        `GLOBAL_CTRL bit ${32 + i} #GPs`,
      ).toBe(true);
      continue;
    }
    g.wrmsr(MSR_CORE_PERF_FIXED_CTR0 + i, 0n);
    g.wrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(i, INTEL_FIXED_0_KERNEL));
    g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, fixedGlobalEnable(i));
    w.vcpu.guestRun(loopDot());
    g.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n);
    const count = g.rdmsr(MSR_CORE_PERF_FIXED_CTR0 + i);
    expect(count, `fixed counter ${i} counts`).not.toBe(0n);
    // FC0 counts instructions: the loop and the enabling WRMSR KVM skipped.
    if (i === 0) expect(count, 'fixed counter 0 = loop + enabling WRMSR').toBe(BigInt(NUM_LOOPS + 1));
  }
}

const hex = (c: bigint) => c.toString(16);

describe.each(CONFIGS)('pmu_counters_test: guest PMU v%d, PERF_CAPABILITIES 0x%s', (v, caps) => {
  // Arch events need a vPMU: upstream runs them only for version > 0.
  if (v !== 0)
    it(`v${v}/caps 0x${hex(caps)}: each arch event counts on each GP counter and on its fixed counter; instructions and branches exactly (C1, C3, C4)`, () =>
      testArchEvents(v, caps, HOST.evLen, 0));

  // Arch events need a vPMU: upstream runs them only for version > 0.
  if (v !== 0)
    it(`v${v}/caps 0x${hex(caps)}: events count whatever CPUID.0AH:EBX says is unavailable (C1)`, () => {
      for (let length = 0; length <= 9; length++) {
        testArchEvents(v, caps, length, 0);
        testArchEvents(v, caps, length, 0xff);
      }
      for (let bit = 0; bit < 8; bit++) testArchEvents(v, caps, HOST.evLen, 1 << bit);
    });

  it(`v${v}/caps 0x${hex(caps)}: GP counters exist iff CPUID enumerates them; post-RESET GLOBAL_CTRL; RDPMC; fast RDPMC #GPs (C5, C6, C7)`, () => {
    for (let nr = 0; nr <= HOST_NR_GP; nr++) testGpCounters(v, caps, nr);
  });

  it(`v${v}/caps 0x${hex(caps)}: fixed counters exist iff CPUID enumerates them; absent ones cannot be enabled (C6, C8)`, () => {
    for (let nr = 0; nr <= HOST_NR_FIXED; nr++)
      for (let mask = 0; mask <= (1 << HOST_NR_FIXED) - 1; mask++) testFixedCounters(v, caps, nr, mask);
  });
});

describe('pmu_counters_test: IA32_PMC0 aliases (C7)', () => {
  it('IA32_PMCx exist iff PDCM and PERF_CAPABILITIES.FW_WRITES', () => {
    const cases: readonly (readonly [VcpuSetup, boolean])[] = [
      [{ perfCaps: PERF_CAP_FW_WRITES }, true],
      [{ perfCaps: 0n }, false],
      [{ cpuid: { pdcm: false } }, false],
    ];
    for (const [setup, exists] of cases) {
      const w = createVcpu(setup);
      for (let i = 0; i < HOST_NR_GP; i++) {
        expect(
          isGp(w.vcpu.guestWrmsr(MSR_IA32_PMC0 + i, 0x1234n)),
          `PMC${i} WRMSR with ${JSON.stringify(setup, (_, x: unknown) => (typeof x === 'bigint' ? x.toString(16) : x))}`,
        ).toBe(!exists);
        expect(isGp(w.vcpu.guestRdmsr(MSR_IA32_PMC0 + i))).toBe(!exists);
      }
      // The legacy aliases are there either way.
      expect(isGp(w.vcpu.guestWrmsr(MSR_IA32_PERFCTR0, 0x1234n))).toBe(false);
    }
  });
});

describe('pmu_counters_test: guest CPUID is clamped to what KVM supports, except the version', () => {
  it('nr_gp is clamped to the host: CPUID 8 GP counters on a 4-counter host gives 4', () => {
    const w = createVcpu({ profile: SKYLAKE, perfCaps: PERF_CAP_FW_WRITES, nrGp: 8 });
    const g = new Guest(w);
    expect(g.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL), 'post-RESET GLOBAL_CTRL covers the counters that exist').toBe(0xfn);
    guestRdWrCounters(w, MSR_IA32_PMC0, MAX_NR_GP_COUNTERS, SKYLAKE.nGP, 0);
    expect(isGp(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n << 4n)), 'GLOBAL_CTRL bit 4').toBe(true);
  });

  it('nr_fixed is clamped to 3: CPUID 4 fixed counters on an Ice Lake host gives 3', () => {
    const w = createVcpu({ profile: ICELAKE, perfCaps: PERF_CAP_FW_WRITES, nrFixed: 4 });
    guestRdWrCounters(w, MSR_CORE_PERF_FIXED_CTR0, 4, 3, 0);
    expect(
      isGp(w.vcpu.guestWrmsr(MSR_CORE_PERF_FIXED_CTR_CTRL, fixedPmcCtrl(3, INTEL_FIXED_0_KERNEL))),
      'FIXED_CTR_CTRL field 3',
    ).toBe(true);
    expect(isGp(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, fixedGlobalEnable(3))), 'GLOBAL_CTRL bit 35').toBe(true);
    expect(isGp(w.vcpu.guestWrmsr(MSR_CORE_PERF_GLOBAL_CTRL, fixedGlobalEnable(2))), 'GLOBAL_CTRL bit 34').toBe(false);
  });

  it('counter width is clamped to the host: CPUID width 64 gives 48-bit counters', () => {
    const w = createVcpu({ profile: SKYLAKE, perfCaps: PERF_CAP_FW_WRITES, gpWidth: 64 });
    expect(isGp(w.vcpu.guestWrmsr(MSR_IA32_PMC0, 1n << 48n)), 'full-width write above bit 47').toBe(true);
    expect(val(w.vcpu.guestWrmsr(MSR_IA32_PMC0, (1n << 48n) - 1n))).toBe((1n << 48n) - 1n);
    expect(val(w.vcpu.guestRdpmc(0, 0))).toBe((1n << 48n) - 1n);
  });

  it('the version is not clamped: a CPUID v5 guest still has a working v2-style PMU', () => {
    const w = createVcpu({ profile: SKYLAKE, perfCaps: PERF_CAP_FW_WRITES, version: 5 });
    expect(w.vcpu.s.pmu.version, 'pmu->version follows CPUID').toBe(5);
    testArchEvents(5, PERF_CAP_FW_WRITES, SKYLAKE.evLen, 0);
  });
});
