/**
 * Property 3: LBRs freeze on PMI. A guest with legacy LBRs sets DEBUGCTL.LBR and
 * FREEZE_LBRS_ON_PMI, arms a counter to overflow with a PMI inside a branchy run, keeps running,
 * and then reads its LBR stack, DEBUGCTL and GLOBAL_STATUS. Everything it reads must be what bare
 * metal shows: the branches up to the overflowing unit and nothing after, DEBUGCTL.LBR clear
 * before v4, LBR_FRZ set from v4 (pmu-semantics.md §4.4, §4.5, §7 item 14; design.md property 3).
 * Now and then the guest sets LBR alone, as Linux does in call-stack mode: then the PMI freezes nothing.
 */

import fc from 'fast-check';
import { type CpuidRegs, LBR_FMT_ARCH, leaf0aEax, leaf0aEdx, type Profile } from '../model/hw/profile.js';
import { PERF_CAP_LBR_FMT } from '../model/hw/msr/capabilities.js';
import {
  ARCH_LBR_ANY,
  ARCH_LBR_KERNEL,
  ARCH_LBR_LBREN,
  ARCH_LBR_USER,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_TO_0,
} from '../model/hw/msr/lbr_arch.js';
import type { WorkUnit } from '../model/hw/work.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, type WorldCommand } from '../scenarios/commands.js';
import { branchArb } from '../scenarios/work.js';
import type { GuestConfig } from '../scenarios/world.js';
import { type ConformanceRun, runProgram } from './conformance.js';
import type { SupportedPmu } from '../model/kvm/types.js';
import { supportedOf } from '../scenarios/supported.js';
import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI, DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { MSR_LBR_TOS, MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO } from '../model/hw/msr/lbr_legacy.js';
import { MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL } from '../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../model/hw/msr/apic.js';
import { MSR_P6_EVNTSEL0, MSR_IA32_PMC0 } from '../model/hw/msr/counters.js';

/** A guest with the host's legacy LBRs and PMU version `v`. */
export function lbrGuest(host: Profile, v: number): GuestConfig {
  return {
    cpuid: {
      family: host.family,
      model: host.model,
      leaf0a: {
        eax: leaf0aEax(v, Math.min(host.nGP, 4), host.gpWidth, host.evLen),
        ebx: 0,
        ecx: 0,
        edx: leaf0aEdx(Math.min(host.nFixedContig, 3), host.fixedWidth),
      },
      pdcm: true,
    },
    perfCapabilities: (1n << 13n) | (host.perfCapabilities & 0x3fn),
  };
}

const branchyUnit: fc.Arbitrary<WorkUnit> = fc
  .tuple(fc.constantFrom(0, 3), fc.integer({ min: 1, max: 3 }))
  .chain(([cpl, n]) =>
    fc
      .array(branchArb(cpl), { minLength: n, maxLength: n })
      .map((branches) => ({ cpl, instructions: n + 1, cycles: 2, branches })),
  );

/** What the program may leave out; the shrinker drops what the failure does not need. */
export interface FreezeShape {
  /** Write GLOBAL_CTRL = 0 first, as a driver does before programming. */
  readonly quiesce: boolean;
  /** Unmask LVTPC to a fixed vector (without it the PMI is masked; LBRs still freeze). */
  readonly lvtpc: boolean;
  /** Which of the reads (DEBUGCTL, GLOBAL_STATUS, LBR_TOS, FROM/TO pairs) the program makes, in order. */
  readonly reads: readonly number[];
  /**
   * FREEZE_LBRS_ON_PMI set beside the LBRs. Linux leaves it clear in LBR call-stack mode (intel_pmu_lbr_enable_all):
   * then the PMI must leave the LBRs recording.
   */
  readonly freeze: boolean;
}

/** The reads a freeze program may make: DEBUGCTL, GLOBAL_STATUS, LBR_TOS, then FROM_i/TO_i for each slot. */
export function freezeReads(depth: number): number[] {
  const reads = [MSR_IA32_DEBUGCTLMSR, MSR_CORE_PERF_GLOBAL_STATUS, MSR_LBR_TOS];
  for (let i = 0; i < depth; i++) reads.push(MSR_LBR_NHM_FROM + i, MSR_LBR_NHM_TO + i);
  return reads;
}

/**
 * The program: LBR on with freeze, a branch counter preset to overflow after `k` branches with
 * INT, a branchy run, then the reads. The LBR depth bounds what the stack can show.
 */
export function freezeProgram(
  depth: number,
  k: number,
  before: readonly WorkUnit[],
  after: readonly WorkUnit[],
  shape: FreezeShape = { quiesce: true, lvtpc: true, reads: freezeReads(depth), freeze: true },
  lbrOn: readonly WorldCommand[] = [
    new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR | (shape.freeze ? DEBUGCTLMSR_FREEZE_LBRS_ON_PMI : 0n)),
  ],
): WorldCommand[] {
  return [
    ...(shape.quiesce ? [new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x0n)] : []),
    ...(shape.lvtpc ? [new GuestWrmsr(0, X2APIC_LVTPC, 0x400n)] : []),
    ...lbrOn,
    new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x5300c4n | (1n << 20n)), // BR_INST_RETIRED, USR|OS|INT|EN
    new GuestWrmsr(0, MSR_IA32_PMC0, (1n << 48n) - BigInt(k)),
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0x1n),
    new GuestRun(0, before),
    ...(after.length > 0 ? [new GuestRun(0, after)] : []),
    ...shape.reads.map((m) => new GuestRdmsr(0, m)),
  ];
}

/**
 * A freeze program and its guest, as [guest, program] like the conformance property's input: PMU versions from 2 (a
 * version-1 PMU has no freeze on PMI, decision D37) up to what the design reports, or beyond it up to 5.
 */
export function freezeProgramArb(
  host: Profile,
  supported: SupportedPmu,
  range: 'supported' | 'beyond-supported' = 'supported',
): fc.Arbitrary<[GuestConfig, WorldCommand[]]> {
  const arch = supported.archLbr;
  const depth = arch !== undefined ? Math.min(host.archLbr?.maxDepth ?? 0, 8) : (host.legacyLbr?.depth ?? 0);
  const reads = arch !== undefined ? archFreezeReads(depth) : freezeReads(depth);
  const v = supported.leaf0a.eax & 0xff;
  return fc
    .record({
      v:
        range === 'supported'
          ? fc.integer({ min: 2, max: Math.max(v, 2) })
          : fc.integer({ min: Math.min(v + 1, 5), max: 5 }),
      k: fc.integer({ min: 2, max: 12 }),
      before: fc.array(branchyUnit, { minLength: 1, maxLength: 8 }),
      after: fc.array(branchyUnit, { maxLength: 4 }),
      quiesce: fc.boolean(),
      lvtpc: fc.boolean(),
      // Mostly the freeze; now and then the LBRs alone, as in call-stack mode.
      freeze: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
      // Reads shrink toward GLOBAL_STATUS, the one read that shows a missing freeze on any version.
      reads: fc.array(
        fc.constantFrom(MSR_CORE_PERF_GLOBAL_STATUS, ...reads.filter((m) => m !== MSR_CORE_PERF_GLOBAL_STATUS)),
        {
          minLength: 1,
          maxLength: 2 * depth + 3,
        },
      ),
    })
    .map((r) =>
      arch !== undefined
        ? [archLbrGuest(host, r.v, arch), archFreezeProgram(r.k, r.before, r.after, r)]
        : [lbrGuest(host, r.v), freezeProgram(depth, r.k, r.before, r.after, r)],
    );
}

/** A guest with Arch LBR as the design reports it (`leaf1c`, LBR_FMT 0x3f) and PMU version `v`. */
export function archLbrGuest(host: Profile, v: number, leaf1c: CpuidRegs): GuestConfig {
  const g = lbrGuest(host, v);
  return {
    cpuid: { ...g.cpuid, archLbr: true, leaf1c },
    perfCapabilities: (g.perfCapabilities & ~PERF_CAP_LBR_FMT) | BigInt(LBR_FMT_ARCH),
  };
}

/** The reads of an Arch LBR freeze program: LBR_CTL, DEBUGCTL, GLOBAL_STATUS, then FROM_i/TO_i, newest first. */
export function archFreezeReads(depth: number): number[] {
  const reads = [MSR_ARCH_LBR_CTL, MSR_IA32_DEBUGCTLMSR, MSR_CORE_PERF_GLOBAL_STATUS];
  for (let i = 0; i < depth; i++) reads.push(MSR_ARCH_LBR_FROM_0 + i, MSR_ARCH_LBR_TO_0 + i);
  return reads;
}

/**
 * The Arch LBR program: LBR_CTL records every branch at CPL 0 and 3, DEBUGCTL has FREEZE_LBRS_ON_PMI only (Arch LBR
 * has no DEBUGCTL.LBR), then the counter, runs and reads of freezeProgram. Below version 4 the PMI clears LBREn (D41),
 * from 4 it sets LBR_FRZ.
 */
export function archFreezeProgram(
  k: number,
  before: readonly WorkUnit[],
  after: readonly WorkUnit[],
  shape: FreezeShape,
): WorldCommand[] {
  return freezeProgram(0, k, before, after, shape, [
    new GuestWrmsr(0, MSR_ARCH_LBR_CTL, ARCH_LBR_LBREN | ARCH_LBR_KERNEL | ARCH_LBR_USER | ARCH_LBR_ANY),
    ...(shape.freeze ? [new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_FREEZE_LBRS_ON_PMI)] : []),
  ]);
}

export function lbrFreezeProperty(r: ConformanceRun, range: 'supported' | 'beyond-supported' = 'supported') {
  return fc.property(freezeProgramArb(r.host, supportedOf(r), range), ([guest, program]) =>
    runProgram(r, guest, program),
  );
}
