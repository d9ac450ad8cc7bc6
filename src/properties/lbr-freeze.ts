/**
 * Property 3: LBRs freeze on PMI. A guest with legacy LBRs sets DEBUGCTL.LBR and
 * FREEZE_LBRS_ON_PMI, arms a counter to overflow with a PMI inside a branchy run, keeps running,
 * and then reads its LBR stack, DEBUGCTL and GLOBAL_STATUS. Everything it reads must be what bare
 * metal shows: the branches up to the overflowing unit and nothing after, DEBUGCTL.LBR clear
 * before v4, LBR_FRZ set from v4 (pmu-semantics.md §4.4, §4.5, §7 item 14; design.md property 3).
 */

import fc from 'fast-check';
import { leaf0aEax, leaf0aEdx, type Profile } from '../model/hw/profile.js';
import type { WorkUnit } from '../model/hw/work.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, type WorldCommand } from '../scenarios/commands.js';
import { branchArb } from '../scenarios/work.js';
import type { GuestConfig } from '../scenarios/world.js';
import { type ConformanceRun, runProgram } from './conformance.js';

const DEBUGCTL = 0x1d9;
const LBR_TOS = 0x1c9;

/** A guest with the host's legacy LBRs and PMU version `v`. */
export function lbrGuest(host: Profile, v: number): GuestConfig {
  return {
    cpuid: {
      family: host.family,
      model: host.model,
      leaf0a: { eax: leaf0aEax(v, Math.min(host.nGP, 4), host.gpWidth, host.evLen), ebx: 0, ecx: 0, edx: leaf0aEdx(Math.min(host.nFixedContig, 3), host.fixedWidth) },
      pdcm: true,
    },
    perfCapabilities: (1n << 13n) | (host.perfCapabilities & 0x3fn),
  };
}

const branchyUnit: fc.Arbitrary<WorkUnit> = fc
  .tuple(fc.constantFrom(0, 3), fc.integer({ min: 1, max: 3 }))
  .chain(([cpl, n]) =>
    fc.array(branchArb(cpl), { minLength: n, maxLength: n }).map((branches) => ({ cpl, instructions: n + 1, cycles: 2, branches })),
  );

/**
 * The program: LBR on with freeze, a branch counter preset to overflow after `k` branches with
 * INT, a branchy run, then the reads. The LBR depth bounds what the stack can show.
 */
export function freezeProgram(depth: number, k: number, before: readonly WorkUnit[], after: readonly WorkUnit[]): WorldCommand[] {
  const reads: WorldCommand[] = [new GuestRdmsr(0, DEBUGCTL), new GuestRdmsr(0, 0x38e), new GuestRdmsr(0, LBR_TOS)];
  for (let i = 0; i < depth; i++) reads.push(new GuestRdmsr(0, 0x680 + i), new GuestRdmsr(0, 0x6c0 + i));
  return [
    new GuestWrmsr(0, 0x38f, 0x0n),
    new GuestWrmsr(0, 0x834, 0x400n),
    new GuestWrmsr(0, DEBUGCTL, 0x801n), // LBR | FREEZE_LBRS_ON_PMI
    new GuestWrmsr(0, 0x186, 0x5300c4n | (1n << 20n)), // BR_INST_RETIRED, USR|OS|INT|EN
    new GuestWrmsr(0, 0x4c1, (1n << 48n) - BigInt(k)),
    new GuestWrmsr(0, 0x38f, 0x1n),
    new GuestRun(0, before),
    new GuestRun(0, after),
    ...reads,
  ];
}

export function lbrFreezeProperty(r: ConformanceRun) {
  const depth = r.host.legacyLbr?.depth ?? 0;
  return fc.property(
    fc.constantFrom(2, 3, 4, 5),
    fc.integer({ min: 2, max: 12 }),
    fc.array(branchyUnit, { minLength: 1, maxLength: 8 }),
    fc.array(branchyUnit, { minLength: 1, maxLength: 4 }),
    (v, k, before, after) => runProgram(r, lbrGuest(r.host, v), freezeProgram(depth, k, before, after)),
  );
}
