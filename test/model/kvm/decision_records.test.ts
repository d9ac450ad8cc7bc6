/**
 * The decisions a report says it rests on are those its replay applied (model/hw/relied.ts): each K decision the
 * KVM port records, and those of host perf's H decisions that hang on a condition of their own, is listed after a program whose outcome
 * it decides, and not after the same program where it decides nothing; every id either program records is one of
 * the lists a report looks decisions up in (reports/decisions.ts). A maintainer reads that list to know which
 * unverified choices a finding stands on, so a record missing, made where nothing was decided, or naming no decision
 * misleads them.
 */
import { describe, expect, it } from 'vitest';
import { firstDivergence } from '../../../designs/registry.js';
import { DecisionLog, type DecisionId, recording } from '../../../model/hw/relied.js';
import { MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0, MSR_P6_PERFCTR0 } from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_INUSE, MSR_CORE_PERF_GLOBAL_STATUS_SET } from '../../../model/hw/msr/global.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES } from '../../../model/hw/msr/capabilities.js';
import { attr } from '../../../model/host/types.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, HostOpen, type WorldCommand } from '../../../scenarios/commands.js';
import { VmmSetCpuid, VmmSetMsr } from '../../../scenarios/vmm.js';
import type { GuestConfig } from '../../../scenarios/world.js';
import { leaf0aEax } from '../../../model/hw/profile.js';
import { SKYLAKE_V2 } from '../../support/guests.js';
import { unverifiedDecision } from '../../../reports/decisions.js';

const V2 = SKYLAKE_V2;
/** No vPMU: CPUID.0AH all zero, no PDCM. */
const V0: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0, ebx: 0, ecx: 0, edx: 0 }, pdcm: false },
  perfCapabilities: 0n,
};
/** SKYLAKE_V2's counters under CPUID.0AH version 4, which a VMM may set: intel_pmu_refresh takes it unclamped. */
const V4: GuestConfig = { ...V2, cpuid: { ...V2.cpuid, leaf0a: { ...V2.cpuid.leaf0a, eax: leaf0aEax(4, 4, 48, 7) } } };
const V2_NO_PDCM: GuestConfig = { cpuid: { ...V2.cpuid, pdcm: false }, perfCapabilities: 0n };
/** No vPMU, but PDCM: PERF_CAPABILITIES is the vCPU's MSR, so KVM_SET_MSRS reaches vmx_set_msr's checks. */
const V0_PDCM: GuestConfig = { cpuid: { ...V0.cpuid, pdcm: true }, perfCapabilities: 0n };

/** The decisions applied while `program` runs under `design` on `host`, up to its first divergence. */
function decisions(design: string, guest: GuestConfig, program: readonly WorldCommand[], host = 'skylake') {
  const log = new DecisionLog();
  recording(log, () => firstDivergence(host, guest, program, design));
  return log.ids;
}

const PEBS_ENABLE = 0x3f1;
/** MSR_PKG_C3_RESIDENCY: no PMU MSR, unknown to the vPMU. */
const UNKNOWN_MSR = 0x3f8;
/** PMC0 counting instructions at every CPL from -`left`, its PMI to an unmasked LVTPC (NMI mode) when `int`. */
const overflow = (left: bigint, int: boolean, lvtpc = 0x400n): WorldCommand[] => [
  new GuestWrmsr(0, X2APIC_LVTPC, lvtpc),
  new GuestWrmsr(0, MSR_IA32_PERFCTR0, (1n << 48n) - left),
  new GuestWrmsr(0, MSR_P6_EVNTSEL0, int ? 0x5300c0n : 0x4300c0n),
  new GuestRun(0, [{ cpl: 3, instructions: 10 }]),
];
/** A host user's cycles event on the vCPU's pCPU that counts host work (or only guest work). */
const hostCycles = (excludeHost: boolean) => new HostOpen(0, attr({ config: 0x3cn, exclude_host: excludeHost }));
/** The same beside a mediated vPMU, which takes the counters in guest mode: host work only (or none). */
const hostOnlyCycles = (excludeHost: boolean) =>
  new HostOpen(0, attr({ config: 0x3cn, exclude_guest: true, exclude_host: excludeHost }));

type Case = {
  readonly id: DecisionId;
  readonly design: string;
  readonly host?: string;
  readonly decides: readonly [GuestConfig, readonly WorldCommand[]];
  readonly not: readonly [GuestConfig, readonly WorldCommand[]];
  readonly why: string;
};

const CASES: readonly Case[] = [
  {
    id: 'K1',
    design: 'emulated',
    why: 'an absent EVNTSEL0 reads 0 where it could #GP (an absent PERFCTR0 is the documented quirk, not K1)',
    decides: [V0, [new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
    not: [V0, [new GuestRdmsr(0, MSR_P6_PERFCTR0)]],
  },
  {
    id: 'K1',
    design: 'emulated',
    why: 'a write to an absent EVNTSEL1 is dropped where it could #GP',
    decides: [V0, [new GuestWrmsr(0, MSR_P6_EVNTSEL0 + 1, 1n)]],
    not: [V0, [new GuestWrmsr(0, MSR_P6_PERFCTR0 + 1, 1n)]],
  },
  {
    id: 'K2',
    design: 'emulated',
    why: 'PEBS is not ported: its MSR #GPs, as does an MSR KVM does not know',
    decides: [V2, [new GuestRdmsr(0, PEBS_ENABLE)]],
    not: [V2, [new GuestRdmsr(0, UNKNOWN_MSR)]],
  },
  {
    id: 'K2',
    design: 'emulated',
    why: 'PEBS is not ported: a write to its MSR #GPs, as does one to an MSR KVM does not know',
    decides: [V2, [new GuestWrmsr(0, PEBS_ENABLE, 1n)]],
    not: [V2, [new GuestWrmsr(0, UNKNOWN_MSR, 1n)]],
  },
  {
    id: 'K3',
    design: 'emulated',
    why: "the exit handler's host work shows to a host event that counts the host",
    decides: [V2, [hostCycles(false), new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
    not: [V2, [hostCycles(true), new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
  },
  {
    id: 'K5',
    design: 'emulated',
    why: 'an overflow with INT asks for KVM_REQ_PMU and KVM_REQ_PMI at one entry',
    decides: [V2, overflow(5n, true)],
    not: [V2, overflow(5n, false)],
  },
  {
    id: 'K6',
    design: 'emulated',
    why: 'the PMI is injected at the entry after the overflowing unit',
    decides: [V2, overflow(5n, true)],
    not: [V2, overflow(50n, true)],
  },
  {
    id: 'K5',
    design: 'mediated',
    why: 'an instruction KVM counts in software overflows a counter with INT',
    decides: [V2, [...overflow(1n, true).slice(0, 3), new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
    not: [V2, [...overflow(1n, false).slice(0, 3), new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
  },
  {
    id: 'K8',
    design: 'emulated',
    why: 'a PMI to LVTPC in SMI mode is accepted and masks LVTPC, though nothing reaches the guest; Fixed mode is not K8',
    decides: [V2, overflow(5n, true, 0x220n)],
    not: [V2, overflow(5n, true, 0x020n)],
  },
  {
    id: 'K8',
    design: 'emulated',
    why: 'a PMI to LVTPC in ExtINT mode is not accepted; LowestPrio delivers the vector as Fixed does',
    decides: [V2, overflow(5n, true, 0x720n)],
    not: [V2, overflow(5n, true, 0x120n)],
  },
  {
    id: 'K8',
    design: 'emulated',
    why: 'a PMI to LVTPC in INIT mode is accepted with nothing the guest sees; NMI mode is an NMI',
    decides: [V2, overflow(5n, true, 0x520n)],
    not: [V2, overflow(5n, true, 0x400n)],
  },
  {
    id: 'K7',
    design: 'emulated',
    why: 'a non-zero PERF_CAPABILITIES (FW_WRITES alone) is refused without a vPMU; zero is taken',
    decides: [V0_PDCM, [new VmmSetMsr(0, MSR_IA32_PERF_CAPABILITIES, PERF_CAP_FW_WRITES)]],
    not: [V0_PDCM, [new VmmSetMsr(0, MSR_IA32_PERF_CAPABILITIES, 0n)]],
  },
  {
    id: 'K9',
    design: 'emulated',
    why: 'PDCM given back shows what PERF_CAPABILITIES held while hidden',
    decides: [V2_NO_PDCM, [new VmmSetCpuid(0, V2)]],
    not: [V2, [new VmmSetCpuid(0, V2)]],
  },
  {
    id: 'K10',
    design: 'mediated',
    why: 'a version-4 guest reads GLOBAL_STATUS_SET, which KVM does not have; a version-2 guest has none either way',
    decides: [V4, [new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS_SET)]],
    not: [V2, [new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS_SET)]],
  },
  {
    id: 'K10',
    design: 'mediated',
    why: 'a version-4 guest reads GLOBAL_INUSE, which KVM does not have; its EVNTSEL0 is KVM’s',
    decides: [V4, [new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_INUSE)]],
    not: [V4, [new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
  },
  {
    id: 'K14',
    design: 'mediated',
    why: 'the put at an exit hands the PMU back to a host event that counts the host',
    decides: [V2, [hostOnlyCycles(false), new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
    not: [V2, [hostOnlyCycles(true), new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
  },
  {
    id: 'H8',
    design: 'emulated',
    why: "a host user's pseudo-encoding (0x0300, reference cycles) goes to its fixed counter only",
    decides: [V2, [new HostOpen(0, attr({ config: 0x300n }))]],
    not: [V2, [new HostOpen(0, attr({ config: 0x3cn }))]],
  },
  {
    id: 'H10',
    design: 'emulated',
    why: "the sample of KVM's event that overflowed is attributed to the guest",
    decides: [V2, overflow(5n, false)],
    not: [V2, overflow(50n, false)],
  },
  {
    id: 'H3',
    design: 'emulated',
    why: 'an exclusive host event is scheduled',
    decides: [V2, [new HostOpen(0, attr({ config: 0x3cn, exclusive: true }))]],
    not: [V2, [new HostOpen(0, attr({ config: 0x3cn }))]],
  },
  {
    id: 'K17',
    design: 'mediated',
    why: 'a vCPU without a vPMU loads and puts nothing',
    decides: [V0, [new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
    not: [V2, [new GuestRdmsr(0, MSR_P6_EVNTSEL0)]],
  },
];

describe("a report's decisions are the ones its replay applied", () => {
  for (const c of CASES)
    it(`${c.id} on ${c.design} (${c.why})`, () => {
      const decided = decisions(c.design, c.decides[0], c.decides[1], c.host);
      const not = decisions(c.design, c.not[0], c.not[1], c.host);
      expect(decided).toContain(c.id);
      expect(not).not.toContain(c.id);
      // Every id a report would list is one a maintainer can look up.
      expect([...decided, ...not].filter((id) => unverifiedDecision(id) === undefined)).toEqual([]);
    });

  it("K15 on mediated: perf's fixed-counter count differs from KVM's on Ice Lake (4 by fls), not on Skylake", () => {
    const p = [new GuestRdmsr(0, MSR_P6_EVNTSEL0)];
    expect(decisions('mediated', V2, p, 'icelake')).toContain('K15');
    expect(decisions('mediated', V2, p, 'skylake')).not.toContain('K15');
  });
});
