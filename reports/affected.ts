/**
 * Who is affected by a finding: the real guest software that issues the shrunk program's sequence, derived from its
 * commands (which instructions, which MSRs, at which CPL, on which PMU version). A report says it in its header, so a
 * maintainer can weigh the finding by the guests it hurts.
 */

import {
  DriverBoot,
  DriverCheckOverflow,
  DriverClose,
  DriverLbr,
  DriverNmi,
  DriverOpen,
  DriverRun,
  DriverSwitch,
  GuestEmulate,
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
  GuestXrstors,
  GuestXsaves,
  HostEvent,
  HostNmi,
  HostOpen,
  HostOpenThread,
  HostWork,
  Preempt,
  type WorldCommand,
} from '../scenarios/commands.js';
import type { GuestConfig } from '../scenarios/world.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { MSR_CORE_PERF_FIXED_CTR_CTRL, MSR_P6_EVNTSEL0 } from '../model/hw/msr/counters.js';
import { isCounter } from '../properties/expectations/common.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../model/hw/msr/global.js';
import { MSR_PERF_METRICS } from '../model/hw/msr/topdown.js';
import { MSR_LBR_NHM_FROM, MSR_LBR_SELECT, MSR_LBR_TOS } from '../model/hw/msr/lbr_legacy.js';

const KUT_FEP =
  'kvm-unit-tests (x86/pmu.c check_emulated_instr) and the KVM selftests (pmu_counters_test): forced emulation (KVM_FEP) is a test hook, on only with kvm.force_emulation_prefix';
const KUT_OVERFLOW =
  'kvm-unit-tests x86/pmu (check_counter_overflow: a counter preset near the wrap, INT on odd counters only, the PMI checked to come iff INT)';
const LINUX_PERF =
  'Linux perf in the guest (perf stat / perf record: x86_pmu_enable and disable write GLOBAL_CTRL, the PMI handler reads GLOBAL_STATUS and acks through GLOBAL_OVF_CTRL) and kvm-unit-tests x86/pmu';
const V1_DRIVER =
  'a driver for a version-1 PMU (no global controls: Linux perf on such a PMU, kvm-unit-tests x86/pmu with a v1 CPUID)';
const LBR = "Linux perf's LBR users (perf record -b, --call-graph lbr) and kvm-unit-tests x86/pmu_lbr";
const ARCH_LBR = 'a guest kernel that context-switches Arch LBR state with XSAVES/XRSTORS (Linux on Arch LBR parts)';
const USER_RDPMC = "user-space self-monitoring through RDPMC at CPL 3 (perf's mmap'd counters, PAPI, rr)";
const FAST_RDPMC =
  'RDPMC with the "fast" flag (ECX[31]): no Linux driver of an architectural PMU; kvm-unit-tests x86/pmu asserts its #GP';
const TOPDOWN = 'Linux perf topdown metrics (perf stat --topdown) on Ice Lake and later';
const HOST = 'host perf users (perf stat / perf record on the host or on the vCPU thread) while the guest runs';

const isPmuMsr = (m: number) =>
  isCounter(m) || (m >= MSR_P6_EVNTSEL0 && m < MSR_P6_EVNTSEL0 + 8) || m === MSR_CORE_PERF_FIXED_CTR_CTRL;
const isGlobal = (m: number) =>
  m === MSR_CORE_PERF_GLOBAL_CTRL || m === MSR_CORE_PERF_GLOBAL_STATUS || m === MSR_CORE_PERF_GLOBAL_OVF_CTRL;
const isLbr = (m: number) => m === MSR_LBR_SELECT || m === MSR_LBR_TOS || (m >= MSR_LBR_NHM_FROM && m < 0x700);

/** A guest driver routine (scenarios/driver.ts): Linux perf's own sequences, or a v1 driver's on a version-1 PMU. */
const isDriver = (c: WorldCommand) =>
  c instanceof DriverBoot ||
  c instanceof DriverOpen ||
  c instanceof DriverClose ||
  c instanceof DriverRun ||
  c instanceof DriverSwitch ||
  c instanceof DriverNmi;

/** The guest software (and host users) that issue the program's sequence, most specific first; never empty. */
export function affectedGuests(program: readonly WorldCommand[], guest: GuestConfig): string[] {
  const out = new Set<string>();
  const version = guest.cpuid.leaf0a.eax & 0xff;
  const msrOf = (c: WorldCommand) => (c instanceof GuestWrmsr || c instanceof GuestRdmsr ? c.msr : null);
  for (const c of program) {
    if (c instanceof DriverLbr) out.add(LBR);
    else if (c instanceof DriverCheckOverflow) out.add(c.spec.fep > 0 ? KUT_FEP : KUT_OVERFLOW);
    else if (isDriver(c)) out.add(version === 1 ? V1_DRIVER : LINUX_PERF);
    else if (c instanceof GuestEmulate) out.add(KUT_FEP);
    else if (c instanceof GuestXsaves || c instanceof GuestXrstors) out.add(ARCH_LBR);
    else if (c instanceof GuestRdpmc) {
      if ((c.ecx & 0x8000_0000) !== 0) out.add(FAST_RDPMC);
      else if (c.cpl > 0) out.add(USER_RDPMC);
    } else if (
      c instanceof HostOpen ||
      c instanceof HostOpenThread ||
      c instanceof HostWork ||
      c instanceof HostEvent ||
      c instanceof HostNmi ||
      c instanceof Preempt
    )
      out.add(HOST);
    const m = msrOf(c);
    if (m === null) continue;
    if (m === MSR_IA32_DEBUGCTLMSR || isLbr(m)) out.add(LBR);
    else if (m === MSR_PERF_METRICS) out.add(TOPDOWN);
    else if (isPmuMsr(m) || isGlobal(m)) out.add(version === 1 ? V1_DRIVER : LINUX_PERF);
  }
  // Work alone (a run after setup) matters only with counters a driver set up; RDPMC at CPL 0 is what perf reads.
  if (out.size === 0 && program.some((c) => c instanceof GuestRun || c instanceof GuestRdpmc))
    out.add(version === 1 ? V1_DRIVER : LINUX_PERF);
  if (out.size === 0) out.add('no guest software known to the suite issues this sequence');
  return [...out];
}
