/**
 * Shared pieces of the KVM-side tests: MSR numbers as the upstream tests name them, a vCPU set up
 * the way the selftests' harness does it (KVM_GET_SUPPORTED_CPUID, then PERF_CAPABILITIES, then
 * the CPUID under test), and guest payloads as work units.
 *
 * Every expectation in these tests comes from upstream KVM (kvm-vpmu.md §2, §3) and the selftests
 * and kvm-unit-tests it cites, never from what the port happens to return.
 */
import { expect, it } from 'vitest';
import type { Access } from '../../../model/hw/access.js';
import type { Branch, WorkUnit } from '../../../model/hw/work.js';
import { type CpuidRegs, leaf0aEax, leaf0aEdx, type Profile } from '../../../model/hw/profile.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { HostKernel } from '../../../model/host/perf.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import type { EmulatedOps } from '../../../model/kvm/emulated/ops.js';
import type { VpmuCost } from '../../../model/kvm/cost.js';
import type { GuestCpuid, HostAccess, VpmuVcpu } from '../../../model/kvm/types.js';
import { MSR_P6_EVNTSEL0 } from '../../../model/hw/msr/counters.js';
import {
  PERF_CAP_LBR_FMT,
  PERF_CAP_FW_WRITES,
  MSR_IA32_PERF_CAPABILITIES,
} from '../../../model/hw/msr/capabilities.js';

// ---- MSRs (arch/x86/include/asm/msr-index.h) ----

// ---- bits ----
export const EVENTSEL_CMASK_SHIFT = 24n;
export const fixedPmcCtrl = (i: number, nibble: bigint): bigint => nibble << BigInt(4 * i);
export const fixedGlobalEnable = (i: number): bigint => 1n << BigInt(32 + i);
export const PC_VECTOR = 32n;

/** The architectural events in CPUID.0AH:EBX order (intel_pmu_arch_events[]). */
export const ARCH_EVENTS = [
  { name: 'cpu cycles', sel: 0x003cn, fixed: 1 },
  { name: 'instructions retired', sel: 0x00c0n, fixed: 0 },
  { name: 'reference cycles', sel: 0x013cn, fixed: 2 },
  { name: 'LLC references', sel: 0x4f2en, fixed: -1 },
  { name: 'LLC misses', sel: 0x412en, fixed: -1 },
  { name: 'branches retired', sel: 0x00c4n, fixed: -1 },
  { name: 'branches mispredicted', sel: 0x00c5n, fixed: -1 },
  { name: 'topdown slots', sel: 0x01a4n, fixed: 3 },
] as const;
export const INSTRUCTIONS = ARCH_EVENTS[1].sel;
export const BRANCHES = ARCH_EVENTS[5].sel;
export const CYCLES = ARCH_EVENTS[0].sel;

// ---- access helpers ----
export function val(a: Access, what = 'access'): bigint {
  if (!a.ok) throw new Error(`${what} #GP: ${a.gp}`);
  return a.value;
}

export function isGp(a: Access): boolean {
  return !a.ok;
}

export function hostOk(a: HostAccess): boolean {
  return a.ok;
}

export function hostVal(a: HostAccess, what = 'host access'): bigint {
  if (!a.ok) throw new Error(`${what} failed: ${a.error}`);
  return a.value;
}

// ---- vCPU setup ----

/** KVM_GET_SUPPORTED_CPUID's leaf 0xA on this host: version ≤ 2, ≤ 8 GP and ≤ 3 fixed counters (§2.3). */
export function supportedLeaf0a(p: Profile): CpuidRegs {
  return {
    eax: leaf0aEax(Math.min(p.version, 2), Math.min(p.nGP, 8), p.gpWidth, p.evLen),
    ebx: p.eventsUnavailable,
    ecx: 0,
    edx: leaf0aEdx(Math.min(p.nFixedContig, 3), p.fixedWidth),
  };
}

/** The default guest CPUID of vm_create_with_one_vcpu: what KVM supports, host family/model, PDCM. */
export function defaultCpuid(p: Profile): GuestCpuid {
  return { family: p.family, model: p.model, leaf0a: supportedLeaf0a(p), pdcm: p.pdcm };
}

/** What KVM_GET_MSRS(KVM_FEATURE) reports for PERF_CAPABILITIES: FW_WRITES and the legacy LBR format. */
export function kvmSupportedPerfCaps(p: Profile): bigint {
  const lbr = p.archLbr === undefined && p.legacyLbr?.callStack === true ? p.perfCapabilities & PERF_CAP_LBR_FMT : 0n;
  return PERF_CAP_FW_WRITES | lbr; // PEBS is not ported (decision K2)
}

export interface VcpuSetup {
  readonly profile?: Profile;
  readonly cpus?: number;
  readonly cpu?: number;
  /** PERF_CAPABILITIES, written before the CPUID under test (pmu_vm_create_with_one_vcpu). */
  readonly perfCaps?: bigint;
  /** Changes to the default CPUID. */
  readonly cpuid?: Partial<GuestCpuid>;
  /** Changes to leaf 0xA fields. */
  readonly version?: number;
  readonly nrGp?: number;
  readonly gpWidth?: number;
  readonly nrFixed?: number;
  readonly fixedBitmap?: number;
  readonly evLen?: number;
  readonly unavailable?: number;
  /** The kernel functions the vCPU runs: upstream's perf-based vPMU unless a variant's. */
  readonly ops?: EmulatedOps;
}

export interface World {
  readonly host: HostKernel;
  readonly vcpu: EmulatedVcpu;
  readonly profile: Profile;
}

/** A VM with one vCPU, set up as the selftests do: PERF_CAPABILITIES first, then CPUID. */
export function createVcpu(o: VcpuSetup = {}): World {
  const profile = o.profile ?? SKYLAKE;
  const host = new HostKernel({ profile, cpus: o.cpus ?? 2 });
  const base = defaultCpuid(profile);
  const vcpu = new EmulatedVcpu(host, { cpu: o.cpu ?? 0, cpuid: base }, o.ops);
  if (o.perfCaps !== undefined) {
    const r = vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, o.perfCaps);
    expect(r.ok, `KVM_SET_MSRS PERF_CAPABILITIES=0x${o.perfCaps.toString(16)}`).toBe(true);
  }
  const eax = base.leaf0a.eax;
  const edx = base.leaf0a.edx;
  const leaf0a: CpuidRegs = {
    eax: leaf0aEax(
      o.version ?? eax & 0xff,
      o.nrGp ?? (eax >>> 8) & 0xff,
      o.gpWidth ?? (eax >>> 16) & 0xff,
      o.evLen ?? (eax >>> 24) & 0xff,
    ),
    ebx: o.unavailable ?? base.leaf0a.ebx,
    ecx: o.fixedBitmap ?? 0,
    edx: leaf0aEdx(o.nrFixed ?? edx & 0x1f, (edx >>> 5) & 0xff),
  };
  vcpu.setCpuid({ ...base, leaf0a, ...o.cpuid });
  return { host, vcpu, profile };
}

// ---- guest payloads ----

const loopBranch: Branch = { from: 0x40_1010n, to: 0x40_1000n, kind: 'COND' };

/**
 * The measured section of pmu_counters_test's GUEST_MEASURE_EVENT after the enabling WRMSR:
 * "mov $NUM_LOOPS, %ecx", NUM_LOOPS × (CLFLUSH, MFENCE, MOV, LOOP), then MOV, XOR, XOR. That is
 * 1 + 4·10 + 3 = 44 instructions and 10 LOOPs (9 taken, the last falls through), all at CPL 0.
 * The closing WRMSR is the 45th instruction of NUM_INSNS_RETIRED.
 */
export function measuredLoop(cpl = 0): WorkUnit[] {
  const us: WorkUnit[] = [{ cpl, instructions: 1, cycles: 1, refCycles: 1, tscCycles: 1 }];
  for (let i = 0; i < NUM_LOOPS; i++) {
    const last = i === NUM_LOOPS - 1;
    us.push({
      cpl,
      instructions: NUM_INSNS_PER_LOOP,
      cycles: 20,
      refCycles: 20,
      tscCycles: 20,
      llcReferences: 1,
      llcMisses: 1,
      branches: last ? [] : [loopBranch],
      untakenBranches: last ? 1 : 0,
      slots: { retiring: 16, badSpeculation: 4, frontendBound: 40, backendBound: 20 },
    });
  }
  us.push({ cpl, instructions: 3, cycles: 3, refCycles: 3, tscCycles: 3 });
  return us;
}
export const NUM_LOOPS = 10;
export const NUM_INSNS_PER_LOOP = 4;
/** Hardware-retired instructions of measuredLoop(). */
export const LOOP_HW_INSNS = 1 + NUM_LOOPS * NUM_INSNS_PER_LOOP + 3;
/** NUM_INSNS_RETIRED: the loop plus the one WRMSR that KVM counts when it skips it. */
export const NUM_INSNS_RETIRED = LOOP_HW_INSNS + 1;
export const NUM_BRANCH_INSNS_RETIRED = NUM_LOOPS;

/** "loop ." with ECX = NUM_LOOPS: 10 LOOP instructions, 9 taken. */
export function loopDot(cpl = 0): WorkUnit[] {
  return Array.from({ length: NUM_LOOPS }, (_, i) => ({
    cpl,
    instructions: 1,
    cycles: 2,
    refCycles: 2,
    tscCycles: 2,
    branches: i === NUM_LOOPS - 1 ? [] : [{ from: 0x40_2000n, to: 0x40_2000n, kind: 'COND' as const }],
    untakenBranches: i === NUM_LOOPS - 1 ? 1 : 0,
  }));
}

/** n units of `insns` instructions each, at `cpl`. */
export function work(n: number, insns: number, cpl = 0): WorkUnit[] {
  return Array.from({ length: n }, () => ({ cpl, instructions: insns, cycles: 2 * insns, refCycles: 2 * insns }));
}

/** A unit with one taken branch per element of `brs`, as a branchy loop retires them. */
export function branchy(brs: readonly Branch[], cpl = 3): WorkUnit {
  return { cpl, instructions: brs.length, cycles: 2 * brs.length, branches: brs };
}

/** n distinct guest user-space jumps. */
export function guestBranches(n: number, base = 0x7000_0000n): Branch[] {
  return Array.from({ length: n }, (_, i) => ({
    from: base + BigInt(i) * 0x100n,
    to: base + BigInt(i) * 0x100n + 0x40n,
    kind: 'NEAR_REL_JMP' as const,
    cpl: 3,
  }));
}

/** The cost model's exit and entry counts: what each guest instruction costs in VM-exits. */
const EXIT_KINDS = ['msrExits', 'rdpmcExits', 'emulationExits', 'pmiExits', 'entries'] as const;
export type ExitCounts = Pick<VpmuCost, (typeof EXIT_KINDS)[number]>;

/** What `f` added to each exit and entry count of `vcpu`. */
export function exitsSpent(vcpu: { readonly cost: VpmuCost }, f: () => void): ExitCounts {
  const before = { ...vcpu.cost };
  f();
  return Object.fromEntries(EXIT_KINDS.map((k) => [k, vcpu.cost[k] - before[k]])) as ExitCounts;
}

/** Exit and entry counts, zero but for those given. */
export const onlyExits = (o: Partial<ExitCounts>): ExitCounts => ({
  msrExits: 0,
  rdpmcExits: 0,
  emulationExits: 0,
  pmiExits: 0,
  entries: 0,
  ...o,
});

/** A vCPU of either design, with the steps around which a PMI's injection shows. */
type PmiVcpu = VpmuVcpu & { externalInterrupt(units: readonly WorkUnit[]): void };

/**
 * What both designs share of when a PMI raised at an intercepted instruction's exit is injected: without a signal, at
 * the entry right after it (afterUnit 0); with one, at the next KVM_RUN, before whatever the guest does next (afterUnit
 * −1). `armed` gives a vCPU whose next counted instruction wraps a counter with INT, delivering `vector`.
 */
export function itInjectsAPmiRaisedAtAnExit(armed: () => { readonly vcpu: PmiVcpu }, vector: number): void {
  const units = [1, 2].map(() => ({ cpl: 0, instructions: 1, cycles: 2 }));
  const exits: readonly [string, (v: PmiVcpu, kicked: boolean) => void][] = [
    ['RDMSR', (v, k) => val(v.guestRdmsr(MSR_P6_EVNTSEL0, k))],
    ['RDPMC', (v, k) => val(v.guestRdpmc(0, 0, k))],
    ['an emulated MOV', (v, k) => v.guestEmulate('mov', 0, k)],
  ];
  it('without a signal, at the entry that follows the exit: after the instruction', () => {
    for (const [what, exit] of exits) {
      const { vcpu } = armed();
      exit(vcpu, false);
      expect(vcpu.returnedAtExit, what).toBe(false);
      expect(vcpu.drainPmis(), what).toEqual([{ afterUnit: 0, vector }]);
    }
  });
  it('with a signal, at the next KVM_RUN: before whatever the guest does next', () => {
    const next: readonly [string, (v: PmiVcpu) => readonly unknown[]][] = [
      ['RDMSR', (v) => (val(v.guestRdmsr(MSR_P6_EVNTSEL0)), v.drainPmis())],
      ['a run', (v) => v.guestRun(units)],
      ['an external interrupt', (v) => (v.externalInterrupt([]), v.drainPmis())],
    ];
    for (const [insn, exit] of exits)
      for (const [what, f] of next) {
        const { vcpu } = armed();
        exit(vcpu, true);
        expect(vcpu.returnedAtExit, `${insn}, then ${what}`).toBe(true);
        expect(vcpu.drainPmis(), `${insn}, then ${what}`).toEqual([]);
        expect(f(vcpu), `${insn}, then ${what}`).toEqual([{ afterUnit: -1, vector }]);
      }
  });
}

/** Both designs: an intercepted instruction exits once for its kind and is entered twice. `make` gives a 2-GP guest. */
export function itCountsAnInterceptedInstruction(make: () => { readonly vcpu: VpmuVcpu }): void {
  it('an intercepted instruction exits once for its kind and is entered twice (the instruction, the next KVM_RUN loop)', () => {
    const { vcpu } = make();
    const spent = (f: () => void) => exitsSpent(vcpu, f);
    expect(spent(() => val(vcpu.guestRdmsr(MSR_P6_EVNTSEL0)))).toEqual(onlyExits({ msrExits: 1, entries: 2 }));
    expect(spent(() => val(vcpu.guestWrmsr(MSR_P6_EVNTSEL0, 0n)))).toEqual(onlyExits({ msrExits: 1, entries: 2 }));
    expect(spent(() => val(vcpu.guestRdpmc(0, 0)))).toEqual(onlyExits({ rdpmcExits: 1, entries: 2 }));
    expect(spent(() => vcpu.guestEmulate('mov', 0))).toEqual(onlyExits({ emulationExits: 1, entries: 2 }));
  });
}
