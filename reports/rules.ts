/**
 * The rule that decides an observation, from the MSR family (or RDPMC, or PMI delivery): the Intel SDM section, the
 * KVM functions that handle it and the docs/pmu-semantics.md section; and domain words for a title. A table, not a derivation: the report points the
 * reader at the rule; the oracle already applied it.
 */

import { msrName } from '../model/hw/msr/map.js';
import type { Case, PropertyId, ReportObservation } from './replay.js';
import { countShape, gpShape, pmiShape } from './signature.js';
import {
  describeObservation,
  describeAction,
  describeAround,
  isGp,
  type Outcome,
  pmisOf,
  showOutcome,
} from '../scenarios/observation.js';
import {
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
} from '../model/hw/msr/counters.js';
import { MSR_PERF_METRICS } from '../model/hw/msr/topdown.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
  MSR_CORE_PERF_GLOBAL_INUSE,
} from '../model/hw/msr/global.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../model/hw/msr/capabilities.js';
import { MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { MSR_LBR_SELECT, MSR_LBR_TOS, MSR_LBR_NHM_FROM, MSR_LBR_INFO_0 } from '../model/hw/msr/lbr_legacy.js';
import {
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_TO_0,
} from '../model/hw/msr/lbr_arch.js';
import { X2APIC_LVTPC } from '../model/hw/msr/apic.js';

interface Family {
  readonly test: (msr: number) => boolean;
  /** docs/pmu-semantics.md. */
  readonly section: string;
  /** The Intel SDM section(s) that state the rule (titles; numbers of the edition docs/pmu-semantics.md cites). */
  readonly sdm: string;
  /** The KVM functions that handle the access (arch/x86/kvm/). */
  readonly kvm: string;
}

const V1 = 'Intel SDM Vol. 3B §18.2.1 "Architectural Performance Monitoring Version 1"';
const V2 = 'Intel SDM Vol. 3B §18.2.2 "Architectural Performance Monitoring Version 2"';
const V4 = 'Intel SDM Vol. 3B §18.2.4 "Architectural Performance Monitoring Version 4"';
const PMU_MSR = 'kvm_pmu_get_msr/kvm_pmu_set_msr (pmu.c), intel_pmu_get_msr/intel_pmu_set_msr (vmx/pmu_intel.c)';
const LBR_MSR = 'intel_pmu_handle_lbr_msrs_access, vmx_passthrough_lbr_msrs (vmx/pmu_intel.c, vmx/vmx.c)';

const range = (lo: number, n: number) => (m: number) => m >= lo && m < lo + n;

const FAMILIES: readonly Family[] = [
  {
    test: (m) => range(MSR_IA32_PERFCTR0, 8)(m) || range(MSR_IA32_PMC0, 8)(m),
    section: '§2.2 IA32_PMCi / IA32_A_PMCi; §4.8 counter writes',
    sdm: `${V1}; "Full-Width Writes to Performance Counter Registers"`,
    kvm: `${PMU_MSR}, pmc_write_counter (pmu.c)`,
  },
  {
    test: range(MSR_P6_EVNTSEL0, 8),
    section: '§2.3 IA32_PERFEVTSELi',
    sdm: V1,
    kvm: `${PMU_MSR}, reprogram_counter (pmu.c)`,
  },
  {
    test: (m) => range(MSR_CORE_PERF_FIXED_CTR0, 3)(m) || m === MSR_CORE_PERF_FIXED_CTR_CTRL,
    section: '§2.4 IA32_FIXED_CTRi and IA32_FIXED_CTR_CTRL',
    sdm: V2,
    kvm: `${PMU_MSR}, reprogram_fixed_counters (vmx/pmu_intel.c)`,
  },
  {
    test: (m) => m === MSR_CORE_PERF_FIXED_CTR0 + 3 || m === MSR_PERF_METRICS,
    section: '§2.11 MSR_PERF_METRICS and fixed counter 3 (SLOTS)',
    sdm: 'Intel SDM Vol. 3B "Performance Monitoring", IA32_PERF_METRICS and fixed counter 3 (topdown slots)',
    kvm: 'intel_pmu_is_valid_msr (vmx/pmu_intel.c): not emulated',
  },
  {
    test: (m) => m === MSR_CORE_PERF_GLOBAL_CTRL,
    section: '§2.5 IA32_PERF_GLOBAL_CTRL',
    sdm: V2,
    kvm: `${PMU_MSR}, reprogram_counters (pmu.h)`,
  },
  {
    test: (m) => m === MSR_CORE_PERF_GLOBAL_STATUS,
    section: '§2.6 IA32_PERF_GLOBAL_STATUS',
    sdm: V2,
    kvm: `${PMU_MSR}; kvm_perf_overflow, pmc_pause_counter (pmu.c) set its bits`,
  },
  {
    test: (m) => m === MSR_CORE_PERF_GLOBAL_OVF_CTRL,
    section: '§2.7 IA32_PERF_GLOBAL_OVF_CTRL / STATUS_RESET',
    sdm: `${V2}; ${V4}`,
    kvm: PMU_MSR,
  },
  {
    test: (m) => m === MSR_CORE_PERF_GLOBAL_STATUS_SET,
    section: '§2.8 IA32_PERF_GLOBAL_STATUS_SET',
    sdm: V4,
    kvm: 'kvm_pmu_is_valid_msr (pmu.c): not emulated',
  },
  {
    test: (m) => m === MSR_CORE_PERF_GLOBAL_INUSE,
    section: '§2.9 IA32_PERF_GLOBAL_INUSE',
    sdm: V4,
    kvm: 'kvm_pmu_is_valid_msr (pmu.c): not emulated',
  },
  {
    test: (m) => m === MSR_IA32_PERF_CAPABILITIES,
    section: '§2.10 IA32_PERF_CAPABILITIES',
    sdm: 'Intel SDM Vol. 4 "IA-32 Architectural MSRs" (IA32_PERF_CAPABILITIES, 345H)',
    kvm: 'vmx_get_msr/vmx_set_msr, vmx_get_perf_capabilities (vmx/vmx.c)',
  },
  {
    test: (m) => m === MSR_IA32_DEBUGCTLMSR,
    section: '§2.12 IA32_DEBUGCTL',
    sdm: 'Intel SDM Vol. 3B §17.4.1 "IA32_DEBUGCTL MSR", §17.4.7 "Freezing LBR and Performance Counters on PMI"',
    kvm: 'vmx_set_msr, vmx_get_supported_debugctl (vmx/vmx.c)',
  },
  {
    test: (m) =>
      m === MSR_LBR_SELECT || m === MSR_LBR_TOS || range(MSR_LBR_NHM_FROM, 0x80)(m) || range(MSR_LBR_INFO_0, 0x20)(m),
    section: '§2.13 legacy LBR',
    sdm: 'Intel SDM Vol. 3B §17.4.8 "LBR Stack"',
    kvm: LBR_MSR,
  },
  {
    test: (m) => m === MSR_ARCH_LBR_CTL || m === MSR_ARCH_LBR_DEPTH,
    section: '§3.2–3.3 IA32_LBR_CTL / IA32_LBR_DEPTH',
    sdm: 'Intel SDM Vol. 3B "Last Branch Records" (architectural LBRs: IA32_LBR_CTL, IA32_LBR_DEPTH)',
    kvm: 'intel_pmu_is_valid_msr (vmx/pmu_intel.c): no architectural LBRs for guests',
  },
  {
    test: (m) =>
      range(MSR_ARCH_LBR_INFO_0, 0x40)(m) || range(MSR_ARCH_LBR_FROM_0, 0x40)(m) || range(MSR_ARCH_LBR_TO_0, 0x40)(m),
    section: '§3.4 arch LBR records',
    sdm: 'Intel SDM Vol. 3B "Last Branch Records" (architectural LBR record MSRs)',
    kvm: 'intel_pmu_is_valid_msr (vmx/pmu_intel.c): no architectural LBRs for guests',
  },
  {
    test: (m) => m === X2APIC_LVTPC,
    section: '§4.4 PMI request and LAPIC LVTPC',
    sdm: 'Intel SDM Vol. 3A "Local Vector Table" (LVT performance counter register)',
    kvm: 'kvm_apic_local_deliver (lapic.c), kvm_pmu_deliver_pmi (pmu.c)',
  },
];

const PMI_RULE = '§4.3 event delivery, increment, wrap, overflow; §4.4 PMI request and LAPIC LVTPC';
const PMI_SDM = `${V1} (the INT flag: a PMI on overflow), ${V2} (overflow status); Intel SDM Vol. 3A "Local Vector Table"`;
const PMI_KVM =
  'kvm_perf_overflow, pmc_pause_counter, kvm_pmu_handle_event, kvm_pmu_deliver_pmi (pmu.c), intel_pmu_deliver_pmi (vmx/pmu_intel.c)';
const RDPMC_SDM = 'Intel SDM Vol. 2B "RDPMC—Read Performance-Monitoring Counters"';
const RDPMC_KVM = 'kvm_pmu_rdpmc (pmu.c), intel_rdpmc_ecx_to_pmc (vmx/pmu_intel.c)';
const MSR_GP_SDM = '; Intel SDM Vol. 4 "IA-32 Architectural MSRs" (reserved bits, MSRs a part lacks: #GP)';

/** Why bare metal #GPs on this RDPMC ECX (pmu-semantics.md §4.9), in the words of the rule. */
function rdpmcGpReason(ecx: number): string {
  if ((ecx & 0x8000_0000) !== 0) return 'ECX[31] (the "fast" flag) #GPs on an architectural PMU';
  const type = (ecx >>> 16) & 0x7fff;
  if (type !== 0 && type !== 0x4000 && type !== 0x2000)
    return `ECX[31:16] = 0x${type.toString(16)} is not a counter type (0, 0x4000, 0x2000)`;
  return 'the counter this ECX names does not exist in the guest enumeration';
}

/**
 * The rule that decides the observation: the Intel SDM section(s), the KVM functions that handle it (arch/x86/kvm/),
 * and the docs/pmu-semantics.md section this repository's model follows, with a reason where one is known.
 */
export function ruleFor(o: Pick<ReportObservation, 'kind' | 'target' | 'sut' | 'oracle'>): string {
  const isGpShape = gpShape(o) !== 'value';
  const gp = isGpShape ? '; §5 #GP master table' : '';
  const gpSdm = isGpShape ? MSR_GP_SDM : '';
  const cite = (sdm: string, kvm: string, section: string) => `${sdm}; KVM: ${kvm}; docs/pmu-semantics.md ${section}`;
  if (o.kind === 'rdpmc') {
    const why = isGp(o.oracle) ? `: ${rdpmcGpReason(o.target ?? 0)}` : '';
    return `${cite(RDPMC_SDM, RDPMC_KVM, '§4.9 RDPMC')}${gp}${why}`;
  }
  if (o.kind === 'pmi' || o.kind === 'run') return cite(PMI_SDM, PMI_KVM, PMI_RULE);
  const f = o.target === null ? undefined : FAMILIES.find((x) => x.test(o.target!));
  return f === undefined
    ? cite(
        `Intel SDM Vol. 4 "IA-32 Architectural MSRs"${gpSdm}`,
        'kvm_get_msr_common/kvm_set_msr_common (x86.c)',
        `§2.1 address map${gp}`,
      )
    : cite(`${f.sdm}${gpSdm}`, f.kvm, `${f.section}${gp}`);
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** A report's observation in words: the guest's, or a host event's count (`host event 0 on pCPU 1: count`). */
export function describeReport(o: ReportObservation): string {
  if (o.kind !== 'host-event') return describeObservation({ ...o, kind: o.kind });
  return `host event ${o.event?.index ?? 0} on pCPU ${o.event?.cpu ?? -1}: count${o.atEnd === true ? ' at the end' : ''}`;
}

/** `RDMSR IA32_PERF_GLOBAL_INUSE (0x392)`, `RDPMC 0x80000000 at CPL 0`: the instruction in words. */
export function instructionWords(o: Pick<ReportObservation, 'kind' | 'target' | 'cpl'>): string {
  if (o.kind === 'rdpmc') return describeAction({ ...o, kind: 'rdpmc', value: null });
  if (o.kind === 'xsaves' || o.kind === 'xrstors') return `${o.kind.toUpperCase()} of the Arch LBR state`;
  if (o.kind !== 'rdmsr' && o.kind !== 'wrmsr') return o.kind;
  const op = o.kind === 'wrmsr' ? 'WRMSR' : 'RDMSR';
  return o.target === null ? op : `${op} ${msrName(o.target)} (${hex(o.target)})`;
}

/** What one side did, as a verb phrase. */
function outcome(o: Pick<ReportObservation, 'kind'>, side: Outcome): string {
  if (isGp(side)) return 'raises #GP';
  if (o.kind === 'wrmsr') return 'is accepted';
  return o.kind === 'rdpmc' ? `returns ${showOutcome(side)}` : `reads ${showOutcome(side)}`;
}

/** What a title needs of an observation. */
type Titled = Pick<ReportObservation, 'kind' | 'target' | 'value' | 'cpl' | 'around' | 'adopted' | 'sut' | 'oracle'>;

function pmiWords(o: Titled): string {
  const where = pmiWhere(o);
  switch (pmiShape(o.sut, o.oracle)) {
    case 'missing-pmi':
      return pmisOf(o.sut).length === 0
        ? `guest gets no PMI ${where} where bare metal delivers one`
        : `guest misses a PMI ${where}`;
    case 'extra-pmi':
      return `guest gets a PMI ${where} that bare metal does not deliver`;
    case 'pmi-vector':
      return `guest's PMI ${where} arrives on the wrong vector`;
    default:
      return `guest's PMI ${where} arrives at the wrong time`;
  }
}

/** Where a PMI observation was made: during a run, or around an instruction. */
function pmiWhere(o: Titled): string {
  return o.kind === 'run' || o.kind === 'host-event'
    ? 'during guest work'
    : `around ${describeAround({ ...o, kind: o.kind })}`;
}

/** The subject prefix of a KVM finding; a host perf finding or an unsupported configuration gets its own. */
export const KVM_SUBJECT = 'KVM: x86/pmu:';

/** A kernel-style subject line for a divergence from bare metal (properties 1 and 3). */
export function titleFor(o: Titled, property: PropertyId = 'conformance', prefix = KVM_SUBJECT): string {
  const subject =
    o.kind === 'pmi' || o.kind === 'run'
      ? pmiWords(o)
      : o.kind === 'xsaves'
        ? xsavesWords(o)
        : o.kind === 'rdmsr' || o.kind === 'wrmsr' || o.kind === 'rdpmc'
          ? `guest ${instructionWords(o)} ${outcome(o, o.sut)} where bare metal ${outcome(o, o.oracle).replace(/^is accepted$/, 'accepts it')}`
          : o.kind === 'host-event'
            ? `a host event counts ${showOutcome(o.sut)} where it counts ${showOutcome(o.oracle)} without the guest`
            : `${o.kind === 'vmm' ? "the VMM's" : 'guest'} ${describeObservation({ ...o, kind: o.kind })} gives ${showOutcome(o.sut)} where bare metal gives ${showOutcome(o.oracle)}`;
  return `[${property}] ${prefix} ${subject}`;
}

/** An XSAVES of the Arch LBR component in words: the first field of the image that differs, not the whole image. */
function xsavesWords(o: Titled): string {
  const a = o.sut.kind === 'xsave' ? o.sut.area : null;
  const b = o.oracle.kind === 'xsave' ? o.oracle.area : null;
  const what = 'guest XSAVES of the Arch LBR state';
  if (a === null || b === null) return `${what} ${outcome(o, o.sut)} where bare metal ${outcome(o, o.oracle)}`;
  const h = (v: bigint) => `0x${v.toString(16)}`;
  const field =
    a.lbrCtl !== b.lbrCtl
      ? ['LBR_CTL', h(a.lbrCtl), h(b.lbrCtl)]
      : a.lbrDepth !== b.lbrDepth
        ? ['LBR_DEPTH', h(a.lbrDepth), h(b.lbrDepth)]
        : a.lerFrom !== b.lerFrom || a.lerTo !== b.lerTo || a.lerInfo !== b.lerInfo
          ? ['LER', `${h(a.lerFrom)}->${h(a.lerTo)}`, `${h(b.lerFrom)}->${h(b.lerTo)}`]
          : ['records', 'other records', "bare metal's"];
  return `${what} saves ${field[0]} ${field[1]} where bare metal saves ${field[2]}`;
}

/** What the guest got, as a short phrase: `0x5`, `#GP`, `no PMI`. */
const got = (o: Pick<ReportObservation, 'kind'>, side: Outcome) =>
  o.kind === 'wrmsr' ? (isGp(side) ? '#GP' : 'accepted') : showOutcome(side);

/** The two runs a property compares, in the words of a title: [failing side, baseline side]. */
function sides(c: Case): [string, string] {
  if (c.property === 'no-leak') return ["with the host's values changed", 'with the original ones'];
  const what =
    c.property === 'invisible' && /^new SaveRestore/.test(String(c.insertion.command))
      ? 'a save/restore'
      : 'a migration';
  return [`after ${what}`, 'without it'];
}

/** A kernel-style subject line for a failing case of any property. */
export function caseTitle(c: Case, o: ReportObservation, prefix = KVM_SUBJECT): string {
  switch (c.property) {
    case 'conformance':
    case 'lbr-freeze':
      return titleFor(o, c.property, prefix);
    case 'host-undisturbed': {
      const ev = o.event === undefined ? 'host event' : `host event (${o.event.perf})`;
      const how =
        countShape(o) === 'over-count'
          ? 'counts guest work'
          : countShape(o) === 'under-count'
            ? 'loses counts while the guest runs'
            : 'is missing';
      return `[host-undisturbed] ${prefix} ${ev} ${how}: ${showOutcome(o.sut)} with the guest running, ${showOutcome(o.oracle)} without it`;
    }
    default: {
      const [changed, baseline] = sides(c);
      const subject =
        o.kind === 'pmi' || o.kind === 'run'
          ? `guest's PMIs ${pmiWhere(o)} differ: ${showOutcome(o.sut)} ${changed}, ${showOutcome(o.oracle)} ${baseline}`
          : `guest ${instructionWords(o)} gets ${got(o, o.sut)} ${changed}, ${got(o, o.oracle)} ${baseline}`;
      return `[${c.property}] ${prefix} ${subject}`;
    }
  }
}

const HOST_UNDISTURBED_RULE =
  'design.md property 2 (guest to host): a pinned, exclude_guest, user-only host event counts exactly what it counts on the same host without the guest; ' +
  'while the guest runs its counter must be off (perf_event_attr.exclude_guest; Intel SDM Vol. 3B §18.2.2 "Architectural Performance Monitoring Version 2", IA32_PERF_GLOBAL_CTRL; ' +
  'perf intel_guest_get_msrs (arch/x86/events/intel/core.c), KVM atomic_switch_perf_msrs (vmx/vmx.c); docs/pmu-semantics.md §2.5 IA32_PERF_GLOBAL_CTRL, §4.2 is a counter counting?)';

/** The rule that decides a failing case: the property's, and the pmu-semantics.md section for what the guest read. */
export function caseRule(c: Case, o: ReportObservation): string {
  switch (c.property) {
    case 'conformance':
    case 'lbr-freeze':
      return ruleFor(o);
    case 'host-undisturbed':
      return HOST_UNDISTURBED_RULE;
    case 'no-leak':
      return `design.md property 2 (host to guest): runs that differ only in host-private values give the guest identical observations; what it may read: ${ruleFor(o)}`;
    case 'invisible':
      return `design.md property 4: a migration or save/restore inserted anywhere leaves the guest's observations unchanged; what it may read: ${ruleFor(o)}`;
  }
}
