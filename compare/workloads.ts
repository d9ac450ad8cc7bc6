/**
 * The guest workloads `npm run compare` prices, as plain programs a guest kernel's perf would
 * issue (issue #6): `perf stat` of six events across guest context switches, `perf record` with
 * its PMI handler, multiplexing eight events over four counters, a guest using LBRs while the
 * host profiles with LBRs, and the same with Arch LBR where a design offers it (seed 004's series). Each runs on a
 * guest with the host's PMU (QEMU's `-cpu host`).
 */

import { LBR_FMT_ARCH, leaf0aEax, leaf0aEdx, type Profile, perfCaps } from '../model/hw/profile.js';
import type { SupportedPmu } from '../model/kvm/types.js';
import type { WorkUnit } from '../model/hw/work.js';
import { attr } from '../model/host/types.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, HostOpen, type WorldCommand } from '../scenarios/commands.js';
import type { GuestConfig } from '../scenarios/world.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
} from '../model/hw/msr/global.js';
import {
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  ARCH_PERFMON_EVENTSEL_INT,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR0,
  ARCH_PERFMON_EVENTSEL_USR,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_ENABLE,
} from '../model/hw/msr/counters.js';
import { X2APIC_LVTPC } from '../model/hw/msr/apic.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { MSR_LBR_TOS, MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO } from '../model/hw/msr/lbr_legacy.js';
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

export interface Workload {
  readonly id: string;
  readonly title: string;
  /** The guest's operations, for "per guest operation" figures: its instructions and runs. */
  readonly program: (host: Profile) => WorldCommand[];
  /** The guest, from the host and what the design reports on it. */
  readonly guest: (host: Profile, supported: SupportedPmu) => GuestConfig;
  /** Why a design cannot give the workload its guest on a host (it is then unavailable there), or null. */
  readonly unavailable?: (supported: SupportedPmu) => string | null;
}

const USR_OS_EN = ARCH_PERFMON_EVENTSEL_USR | ARCH_PERFMON_EVENTSEL_OS | ARCH_PERFMON_EVENTSEL_ENABLE;
const evtsel = (event: number, umask: number, extra = 0n) => BigInt(event) | (BigInt(umask) << 8n) | USR_OS_EN | extra;

/** The guest QEMU's `-cpu host,pmu=on` makes: the host's counters (fixed capped at 3), full-width writes. */
export function hostLikeGuest(host: Profile, lbr = false): GuestConfig {
  const v = Math.min(host.version, 5);
  return {
    cpuid: {
      family: host.family,
      model: host.model,
      leaf0a: {
        eax: leaf0aEax(v, host.nGP, host.gpWidth, host.evLen),
        ebx: 0,
        ecx: 0,
        edx: leaf0aEdx(Math.min(host.nFixedContig, 3), host.fixedWidth),
      },
      pdcm: true,
    },
    perfCapabilities: perfCaps({
      fwWrite: true,
      lbrFmt: lbr && host.legacyLbr !== undefined ? Number(host.perfCapabilities & PERF_CAP_LBR_FMT) : 0,
    }),
  };
}

/** A slice of guest user work: `n` units of plain instructions with a branch each. */
function work(n: number, cpl = 3): WorkUnit[] {
  const base = cpl === 0 ? 0xffff_ffff_8100_0000n : 0x40_0000n;
  return Array.from({ length: n }, (_, i) => ({
    cpl,
    instructions: 50,
    cycles: 80,
    branches: [{ from: base + BigInt(i % 16) * 64n, to: base + BigInt((i + 5) % 16) * 64n, kind: 'COND' as const }],
  }));
}

const gpEnable = (n: number) => (1n << BigInt(n)) - 1n;

/** hostLikeGuest with Arch LBR as the design reports it: CPUID.(7,0):EDX[19], KVM's leaf 0x1C, LBR_FMT 0x3f. */
function archLbrGuest(host: Profile, s: SupportedPmu): GuestConfig {
  const g = hostLikeGuest(host);
  return {
    cpuid: { ...g.cpuid, archLbr: true, leaf1c: s.archLbr! },
    perfCapabilities: g.perfCapabilities | BigInt(LBR_FMT_ARCH),
  };
}

/** A host user sampling branches with branch stacks (perf record -b), leaving the guest out (exclude_guest). */
const hostBranchSampler = new HostOpen(
  0,
  attr({
    config: 0xc4n,
    sample_period: 200n,
    pinned: false,
    exclude_guest: true,
    branchSample: { user: true, kernel: true, callStack: false },
  }),
);

export const WORKLOADS: readonly Workload[] = [
  {
    id: 'perf-stat',
    title: 'perf stat of six events (4 GP + 2 fixed) across 10 guest context switches',
    guest: (h) => hostLikeGuest(h),
    program: (h) => {
      const n = Math.min(h.nGP, 4);
      const events = [evtsel(0xc4, 0), evtsel(0xc5, 0), evtsel(0x2e, 0x41), evtsel(0x2e, 0x4f)];
      const on = gpEnable(n) | (3n << 32n);
      const p: WorldCommand[] = [new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n)];
      for (let i = 0; i < n; i++)
        p.push(new GuestWrmsr(0, MSR_IA32_PMC0 + i, 0n), new GuestWrmsr(0, MSR_P6_EVNTSEL0 + i, events[i]!));
      p.push(
        new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR0, 0n),
        new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR0 + 1, 0n),
        new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x33n),
        new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, on),
      );
      // The counted task is switched out and in: x86_pmu_disable / x86_pmu_enable.
      for (let t = 0; t < 10; t++)
        p.push(
          new GuestRun(0, work(20)),
          new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n),
          new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, on),
        );
      p.push(new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n));
      for (let i = 0; i < n; i++) p.push(new GuestRdmsr(0, MSR_IA32_PMC0 + i));
      p.push(new GuestRdmsr(0, MSR_CORE_PERF_FIXED_CTR0), new GuestRdmsr(0, MSR_CORE_PERF_FIXED_CTR0 + 1));
      return p;
    },
  },
  {
    id: 'perf-record',
    title: 'perf record: one sampling counter, 10 PMIs, each handled as intel_pmu_handle_irq does',
    guest: (h) => hostLikeGuest(h),
    program: () => {
      const period = 1000n;
      const reload = (1n << 48n) - period;
      const p: WorldCommand[] = [
        new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n),
        new GuestWrmsr(0, X2APIC_LVTPC, 0x400n), // NMI delivery, as Linux programs it
        new GuestWrmsr(0, MSR_IA32_PMC0, reload),
        new GuestWrmsr(0, MSR_P6_EVNTSEL0, evtsel(0xc0, 0, ARCH_PERFMON_EVENTSEL_INT)),
        new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 1n),
      ];
      for (let k = 0; k < 10; k++)
        p.push(
          new GuestRun(0, work(20)), // 1000 instructions: one overflow
          new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n),
          new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
          new GuestWrmsr(0, MSR_IA32_PMC0, reload),
          new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n),
          new GuestWrmsr(0, X2APIC_LVTPC, 0x400n),
          new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 1n),
        );
      return p;
    },
  },
  {
    id: 'multiplex',
    title: 'perf stat of 8 GP events on 4 counters: 10 rotations, each reprogramming every counter',
    guest: (h) => hostLikeGuest(h),
    program: (h) => {
      const n = Math.min(h.nGP, 4);
      const sets = [
        [evtsel(0xc4, 0), evtsel(0xc5, 0), evtsel(0x2e, 0x41), evtsel(0x2e, 0x4f)],
        [evtsel(0xc0, 0), evtsel(0x3c, 0), evtsel(0x3c, 1), evtsel(0xc4, 0x20)],
      ];
      const p: WorldCommand[] = [];
      for (let r = 0; r < 10; r++) {
        p.push(new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n));
        for (let i = 0; i < n; i++) p.push(new GuestRdmsr(0, MSR_IA32_PMC0 + i));
        for (let i = 0; i < n; i++)
          p.push(new GuestWrmsr(0, MSR_P6_EVNTSEL0 + i, sets[r % 2]![i]!), new GuestWrmsr(0, MSR_IA32_PMC0 + i, 0n));
        p.push(new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, gpEnable(n)), new GuestRun(0, work(20)));
      }
      return p;
    },
  },
  {
    id: 'lbr-vs-host',
    title: 'the guest records LBRs while a host user samples with branch stacks (exclude_guest) on its pCPU',
    guest: (h) => hostLikeGuest(h, true),
    program: () => {
      const p: WorldCommand[] = [hostBranchSampler, new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, 0x1n)];
      for (let k = 0; k < 10; k++) {
        p.push(new GuestRun(0, work(10)), new GuestRdmsr(0, MSR_LBR_TOS));
        for (let i = 0; i < 4; i++)
          p.push(new GuestRdmsr(0, MSR_LBR_NHM_FROM + i), new GuestRdmsr(0, MSR_LBR_NHM_TO + i));
      }
      return p;
    },
  },
  {
    id: 'arch-lbr-pmi',
    title:
      'guest perf record -b with Arch LBR beside a host LBR user: LBR_CTL on, 10 branch-counter PMIs, each handler reading the 4 newest records',
    unavailable: (s) => (s.archLbr === undefined ? 'no guest Arch LBR (CPUID.(7,0):EDX[19]) from this design' : null),
    guest: archLbrGuest,
    program: () => {
      const period = 10n; // work(10) takes ten branches: one overflow per run
      const reload = (1n << 48n) - period;
      const p: WorldCommand[] = [
        hostBranchSampler,
        new GuestWrmsr(0, MSR_ARCH_LBR_CTL, ARCH_LBR_LBREN | ARCH_LBR_KERNEL | ARCH_LBR_USER | ARCH_LBR_ANY),
        new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n),
        new GuestWrmsr(0, X2APIC_LVTPC, 0x400n),
        new GuestWrmsr(0, MSR_IA32_PMC0, reload),
        new GuestWrmsr(0, MSR_P6_EVNTSEL0, evtsel(0xc4, 0, ARCH_PERFMON_EVENTSEL_INT)),
        new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 1n),
      ];
      for (let k = 0; k < 10; k++) {
        p.push(
          new GuestRun(0, work(10)),
          new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 0n),
          new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
        );
        // The handler's branch stack: Arch LBR records are newest first.
        for (let i = 0; i < 4; i++)
          p.push(new GuestRdmsr(0, MSR_ARCH_LBR_FROM_0 + i), new GuestRdmsr(0, MSR_ARCH_LBR_TO_0 + i));
        p.push(
          new GuestWrmsr(0, MSR_IA32_PMC0, reload),
          new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n),
          new GuestWrmsr(0, X2APIC_LVTPC, 0x400n),
          new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 1n),
        );
      }
      return p;
    },
  },
];
