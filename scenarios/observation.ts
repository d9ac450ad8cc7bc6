/**
 * What one command let each side show, as typed values: an access's value or #GP (with the rule
 * that raised it), the PMIs and the unit each came after, an XSAVES image, a VMM ioctl's answer,
 * a host event's count. Properties and declared divergences decide on these values; the words a
 * person reads (a trace row, a divergence message) are rendered from them here and nowhere else.
 */

import type { ArchLbrXsave } from '../model/hw/msr/lbr_arch.js';
import type { ProfileRule } from '../model/hw/errors.js';
import type { WorkUnit } from '../model/hw/work.js';
import type { PerfEventAttr } from '../model/host/types.js';
import type { EmulatedInsn, Errno, GuestCpuid, GuestPmi, KvmPmuEventFilter } from '../model/kvm/types.js';

/** What one side showed. */
export type Outcome =
  /** RDMSR, RDPMC or KVM_GET_MSRS: the value read. */
  | { readonly kind: 'value'; readonly value: bigint }
  /** A WRMSR or XRSTORS that retired: whether it faulted is all it shows (W3). */
  | { readonly kind: 'accepted' }
  /**
   * A #GP, with the rule that raised it (bare metal's rule, or the design's reason) and, for a value refused, the bits
   * of it the rule reserves.
   */
  | { readonly kind: 'gp'; readonly rule: string; readonly reservedBits?: bigint }
  /** The design's host kernel crashed handling the instruction (KernelOops): the guest sees its host die. */
  | { readonly kind: 'oops'; readonly reason: string }
  /** The PMIs the guest got, oldest first. */
  | { readonly kind: 'pmis'; readonly pmis: readonly GuestPmi[] }
  /** XSAVES of the Arch LBR component: the image. */
  | { readonly kind: 'xsave'; readonly area: ArchLbrXsave }
  /** A VMM ioctl that succeeded or was refused. */
  | { readonly kind: 'ok' }
  | { readonly kind: 'refused'; readonly errno?: Errno }
  /** What KVM's ABI promises of a listed MSR's round trip when the first KVM_GET_MSRS already failed. */
  | { readonly kind: 'savable' }
  /** A host perf event's count. */
  | { readonly kind: 'count'; readonly count: bigint }
  /** Nothing to see: a VMM action or host step both sides record alike. */
  | { readonly kind: 'none' }
  /** The other run has no such observation (it ended earlier, or its host event was never opened). */
  | { readonly kind: 'absent' }
  /** The next instruction a guest driver routine issues on this side, or null where its routine ended. */
  | { readonly kind: 'step'; readonly step: DriverStep | null };

/** One instruction of a guest driver routine (scenarios/driver.ts). */
export type DriverStep =
  | { readonly op: 'rdmsr'; readonly msr: number }
  | { readonly op: 'wrmsr'; readonly msr: number; readonly value: bigint }
  | { readonly op: 'rdpmc'; readonly ecx: number }
  | { readonly op: 'run'; readonly unit: WorkUnit }
  /** An instruction behind the forced-emulation prefix (KVM_FEP), not a taken branch. */
  | { readonly op: 'emulate'; readonly insn: EmulatedInsn; readonly cpl: number };

export const NONE: Outcome = Object.freeze({ kind: 'none' });
export const ABSENT: Outcome = Object.freeze({ kind: 'absent' });
export const ACCEPTED: Outcome = Object.freeze({ kind: 'accepted' });
export const OK: Outcome = Object.freeze({ kind: 'ok' });
export const REFUSED: Outcome = Object.freeze({ kind: 'refused' });
export const valueOutcome = (value: bigint): Outcome => ({ kind: 'value', value });
export const gpOutcome = (rule: string, reservedBits?: bigint): Outcome =>
  reservedBits === undefined ? { kind: 'gp', rule } : { kind: 'gp', rule, reservedBits };
/** The bits a refused write's rule reserves, if it said; undefined for anything else. */
export const reservedBitsOf = (x: Outcome): bigint | undefined => (x.kind === 'gp' ? x.reservedBits : undefined);
export const oopsOutcome = (reason: string): Outcome => ({ kind: 'oops', reason });
/** No PMI, one shared outcome: nearly every instruction's, on both sides. */
const NO_PMIS: Outcome = Object.freeze({ kind: 'pmis', pmis: Object.freeze([]) });
export const pmisOutcome = (pmis: readonly GuestPmi[]): Outcome =>
  pmis.length === 0 ? NO_PMIS : { kind: 'pmis', pmis };

/** The VMM's step an observation records (kind 'vmm'). */
/** Why no CPU enumerates a guest (W4): the contradiction by rule, for matchers, and in words, for reports. */
export interface Impossible {
  readonly rule: ProfileRule;
  readonly why: string;
}

export type VmmOp =
  | { readonly op: 'migrate'; readonly cpu: number }
  | { readonly op: 'preempt'; readonly units: number }
  | {
      readonly op: 'save-restore';
      readonly cpu: number;
      /**
       * Saved at the exit of the guest instruction observed just before, in its step, before KVM re-entered the guest
       * (its requests pending): the GLOBAL_STATUS bits bare metal set in that instruction (counters it overflowed), and
       * the counters it counted (GP i, fixed j as 32 + j).
       */
      readonly atExit?: { readonly overflowed: bigint; readonly counted: bigint };
    }
  | { readonly op: 'irq-exit'; readonly cpu: number; readonly units: number }
  | {
      readonly op: 'set-cpuid';
      readonly cpuid: GuestCpuid;
      /** PERF_CAPABILITIES written after it (with PDCM), else null. */
      readonly perfCapabilities: bigint | null;
      readonly afterRun: boolean;
      /** Why no CPU enumerates the model asked for (W4), or null. */
      readonly impossible: Impossible | null;
    }
  | {
      readonly op: 'set-msr';
      readonly msr: number;
      readonly value: bigint;
      readonly afterRun: boolean;
      /** Why no CPU enumerates the PERF_CAPABILITIES written (W4), or null. */
      readonly impossible: Impossible | null;
    }
  | { readonly op: 'get-msr'; readonly msr: number }
  | { readonly op: 'round-trip'; readonly msr: number }
  | { readonly op: 'set-filter'; readonly filter: KvmPmuEventFilter | null }
  /** KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY, args0) on the vCPU's VM. */
  | { readonly op: 'pmu-cap'; readonly args0: bigint };

/** A host user's step an observation records (kind 'host', vCPU -1). */
export type HostOp =
  | {
      readonly op: 'open';
      /** A pCPU-bound event, or one on a vCPU's thread. */
      readonly on: { readonly cpu: number } | { readonly vcpu: number };
      readonly attr: PerfEventAttr;
      /** perf_event_open succeeded (a refused open holds no counter). */
      readonly accepted: boolean;
      /** Its index among the events opened (what HostEvent commands name), when accepted. */
      readonly index: number | null;
    }
  | { readonly op: 'read'; readonly index: number; readonly count: bigint }
  | { readonly op: 'enable' | 'disable' | 'close'; readonly index: number };

/** A guest instruction an observation is about (what a PMI observation came around). */
export type InstructionKind = 'rdmsr' | 'wrmsr' | 'rdpmc' | 'xsaves' | 'xrstors' | 'emulate';

export type ObservationKind = InstructionKind | 'pmi' | 'run' | 'vmm' | 'host' | 'driver';

/** How a property re-labelled an observation it compares with another run. */
export type ObservationNote =
  /** The weaker contract of a known divergence does not hold here. */
  | { readonly kind: 'contract'; readonly id: string; readonly why: string }
  /** no-leak: the run with the host's private values changed (oracle: the run with the original ones). */
  | { readonly kind: 'host-values' }
  /** invisible: the run with `command` inserted before command `at` (oracle: the plain run). */
  | { readonly kind: 'insertion'; readonly command: string; readonly at: number };

/** One observation: what the guest saw on the system under test and on bare metal. */
export interface Observation {
  readonly step: number;
  readonly vcpu: number;
  readonly kind: ObservationKind;
  /** The MSR (rdmsr/wrmsr, and their PMIs), the ECX (rdpmc), the pCPU (migrate, preempt, save/restore), or null. */
  readonly target: number | null;
  /** The value written (wrmsr), else null. */
  readonly value: bigint | null;
  readonly sut: Outcome;
  readonly oracle: Outcome;
  /** rdpmc and emulate (and their PMIs): the CPL it ran at. */
  readonly cpl?: number;
  /** emulate (and its PMIs): the instruction behind the forced-emulation prefix. */
  readonly insn?: EmulatedInsn;
  /** pmi: the instruction the PMIs came around. */
  readonly around?: InstructionKind;
  /** run: how many work units ran. */
  readonly units?: number;
  /** run: the design's pCPUs took LBR records during it (LBR_TOS moved there), when they did. */
  readonly sutLbrRecorded?: true;
  /**
   * A declared divergence bare metal took on for this access (W6): it faulted only on one side, or bare metal was
   * written the value the declared mechanism leaves instead of the one the guest wrote, or a read took the design's
   * value where the mechanism alone explains the difference (what bare metal read itself).
   */
  readonly adopted?:
    | { readonly id: string; readonly bareMetal: 'faults' | 'does not fault' }
    | { readonly id: string; readonly written: bigint }
    | { readonly id: string; readonly read: bigint };
  readonly vmm?: VmmOp;
  readonly host?: HostOp;
  /**
   * driver: the routine whose two sides issued different instructions next, and the step of the routine's
   * first observation where the sides differed (what the routine's data flow parted on), if any.
   */
  readonly driver?: { readonly routine: string; readonly cause: number | null };
  /**
   * The counters (GP i, fixed j as 32 + j) bare metal held at -1 (one event short of overflowing) once a guest
   * instruction retired, or after some unit of a run (where the design's vCPU may exit on an NMI), when any: where
   * perf may re-arm a counter with one event left.
   */
  readonly oracleAtMinusOne?: readonly number[];
  /** A run's: the counters bare metal held at -1 once its last unit ran, when any (what an instruction after it may wrap). */
  readonly oracleAtMinusOneAtEnd?: readonly number[];
  /**
   * The counters perf armed at -1 (WorldFacts.oracleCounter) that bare metal holds at 0 once the instruction retired:
   * overflowed there one event before perf's minimum period of 2 lets the design's, as of this observation.
   */
  readonly oracleOneEventPast?: readonly number[];
  /**
   * A run's, or the PMIs around an instruction: the GLOBAL_STATUS bits of PMI-enabled counters whose overflow there
   * bare metal's masked LVTPC dropped (decision D7), when any.
   */
  readonly oracleDroppedPmis?: bigint;
  /** A run's, or the PMIs around an instruction: how many overflows brought no PMI of their own there (no INT, D8). */
  readonly oracleQuietOverflows?: number;
  readonly note?: ObservationNote;
}

const sameArea = (a: ArchLbrXsave, b: ArchLbrXsave) =>
  a.lbrCtl === b.lbrCtl &&
  a.lbrDepth === b.lbrDepth &&
  a.lerFrom === b.lerFrom &&
  a.lerTo === b.lerTo &&
  a.entries.length === b.entries.length &&
  a.entries.every((e, i) => {
    const f = b.entries[i]!;
    return e.from === f.from && e.to === f.to && e.info === f.info;
  });

/**
 * Whether two sides showed the same: values equal, both faulted (whatever rule each names), the
 * same PMIs after the same units, the same XSAVES image (LER_INFO is not part of what a guest
 * compares: W3), the same ioctl answer or count.
 */
export function sameOutcome(a: Outcome, b: Outcome): boolean {
  switch (a.kind) {
    case 'value':
      return b.kind === 'value' && a.value === b.value;
    case 'count':
      return b.kind === 'count' && a.count === b.count;
    case 'pmis':
      return (
        b.kind === 'pmis' &&
        a.pmis.length === b.pmis.length &&
        a.pmis.every((p, i) => p.afterUnit === b.pmis[i]!.afterUnit && p.vector === b.pmis[i]!.vector)
      );
    case 'xsave':
      return b.kind === 'xsave' && sameArea(a.area, b.area);
    case 'step':
      return b.kind === 'step' && sameStep(a.step, b.step);
    case 'refused':
      return b.kind === 'refused' && a.errno === b.errno;
    default:
      return a.kind === b.kind;
  }
}

/** The same driver instruction (a run names the same unit). */
export function sameStep(a: DriverStep | null, b: DriverStep | null): boolean {
  if (a === null || b === null) return a === b;
  switch (a.op) {
    case 'rdmsr':
      return b.op === 'rdmsr' && a.msr === b.msr;
    case 'wrmsr':
      return b.op === 'wrmsr' && a.msr === b.msr && a.value === b.value;
    case 'rdpmc':
      return b.op === 'rdpmc' && a.ecx === b.ecx;
    case 'run':
      return b.op === 'run' && a.unit === b.unit;
    case 'emulate':
      return b.op === 'emulate' && a.insn === b.insn && a.cpl === b.cpl;
  }
}

/** The two sides of an observation differ. */
export const diverges = (o: Pick<Observation, 'sut' | 'oracle'>): boolean => !sameOutcome(o.sut, o.oracle);

/** The value read, for an access that read one; else null. */
export const readValue = (x: Outcome): bigint | null => (x.kind === 'value' ? x.value : null);
export const isGp = (x: Outcome): boolean => x.kind === 'gp';
/** A guest access that retired: a value read or a write accepted. */
export const retired = (x: Outcome): boolean => x.kind === 'value' || x.kind === 'accepted';
/** The PMIs of a run or an instruction's PMI observation, else the empty list. */
export const pmisOf = (x: Outcome): readonly GuestPmi[] => (x.kind === 'pmis' ? x.pmis : []);

// ---- display text (rendered from the values above; read by people, never by a judgement) ----

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

/** One side as a trace cell shows it: `0x5`, `#GP`, `no PMI`, `PMI(vector 2) after unit 4`, `ok`. */
export function showOutcome(x: Outcome): string {
  switch (x.kind) {
    case 'value':
      return hex(x.value);
    case 'accepted':
      return '0x0'; // W3: a WRMSR shows only that it retired; the trace has always printed it so
    case 'gp':
      return '#GP';
    case 'oops':
      return 'host oops';
    case 'pmis':
      return x.pmis.length === 0
        ? 'no PMI'
        : x.pmis.map((p) => `PMI(vector ${p.vector}) after unit ${p.afterUnit}`).join(', ');
    case 'xsave': {
      const a = x.area;
      const recs = a.entries.map((e) => `${e.from.toString(16)}->${e.to.toString(16)}/${e.info.toString(16)}`);
      return `ctl ${hex(a.lbrCtl)} depth ${a.lbrDepth} ler ${a.lerFrom.toString(16)}->${a.lerTo.toString(16)} [${recs.join(' ')}]`;
    }
    case 'ok':
      return 'ok';
    case 'refused':
      return x.errno === undefined ? 'refused' : `refused (-${x.errno})`;
    case 'savable':
      return 'an MSR the VMM can save';
    case 'count':
      return String(x.count);
    case 'none':
      return '';
    case 'absent':
      return '(none)';
    case 'step':
      return x.step === null ? 'the routine ends' : `next ${describeStep(x.step)}`;
  }
}

/** A driver routine's instruction in words: `RDMSR 0x38e`, `WRMSR 0x390 <- 0x1`, `RDPMC 0x0`, `a work unit`. */
export function describeStep(s: DriverStep): string {
  switch (s.op) {
    case 'rdmsr':
      return `RDMSR ${hex(s.msr)}`;
    case 'wrmsr':
      return `WRMSR ${hex(s.msr)} <- ${hex(s.value)}`;
    case 'rdpmc':
      return `RDPMC ${hex(s.ecx)}`;
    case 'run':
      return 'a work unit';
    case 'emulate':
      return `KVM_FEP ${s.insn.toUpperCase()} at CPL ${s.cpl}`;
  }
}

function describeCpuid(op: Extract<VmmOp, { op: 'set-cpuid' }>): string {
  const { eax, edx } = op.cpuid.leaf0a;
  const caps = op.perfCapabilities === null ? ', no PDCM' : `, PDCM, PERF_CAPABILITIES ${hex(op.perfCapabilities)}`;
  const what = `KVM_SET_CPUID2 (0AH eax ${hex(eax)} edx ${hex(edx)}${caps})${op.afterRun ? ' after KVM_RUN' : ''}`;
  return op.impossible === null ? what : `${what}: no CPU enumerates it (${op.impossible.why})`;
}

const filterJson = (f: KvmPmuEventFilter | null) =>
  f === null ? 'none' : JSON.stringify(f, (_k, x: unknown) => (typeof x === 'bigint' ? hex(x) : x));

/** How an external-interrupt exit reads in a trace. */
export const IRQ_EXIT = 'external-interrupt VM-exit';

/** A VMM step in words. */
export function describeVmm(op: VmmOp): string {
  switch (op.op) {
    case 'migrate':
      return `migrate to pCPU ${op.cpu}`;
    case 'preempt':
      return `preempted by a host task (${op.units} units)`;
    case 'save-restore':
      return `save/restore onto pCPU ${op.cpu}${op.atExit !== undefined ? ' at the exit of the instruction above, before KVM re-entered the guest' : ''}`;
    case 'irq-exit':
      return `${IRQ_EXIT} on pCPU ${op.cpu}: the host IRQ handler runs ${op.units} units`;
    case 'set-cpuid':
      return describeCpuid(op);
    case 'set-msr': {
      const what = `KVM_SET_MSRS ${hex(op.msr)} <- ${hex(op.value)}`;
      return op.impossible === null ? what : `${what}: no CPU enumerates it (${op.impossible.why})`;
    }
    case 'get-msr':
      return `KVM_GET_MSRS ${hex(op.msr)}`;
    case 'round-trip':
      return `KVM_GET_MSRS / KVM_SET_MSRS round trip of listed MSR ${hex(op.msr)}`;
    case 'set-filter':
      return `KVM_SET_PMU_EVENT_FILTER ${filterJson(op.filter)}`;
    case 'pmu-cap':
      return `KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY, ${hex(op.args0)}) on a VM with a vCPU`;
  }
}

/** A host user's step in words. */
export function describeHost(op: HostOp): string {
  switch (op.op) {
    case 'open': {
      const a = op.attr;
      const kind = `${a.sample_period !== 0n ? 'sampling' : 'counting'}${a.branchSample !== undefined ? ' with branch stack' : ''}`;
      const where = 'cpu' in op.on ? `pCPU ${op.on.cpu}` : `vCPU ${op.on.vcpu}'s thread`;
      return `host opens a ${kind} event ${hex(a.config)} on ${where}${op.accepted ? '' : ' (refused)'}`;
    }
    case 'read':
      return `host reads event ${op.index}: ${op.count}`;
    default:
      return `host ${op.op}s event ${op.index}`;
  }
}

type Described = Pick<
  Observation,
  'kind' | 'target' | 'value' | 'cpl' | 'insn' | 'around' | 'units' | 'adopted' | 'vmm' | 'host' | 'driver'
>;

/** The instruction or step itself, without a property's note: `RDMSR 0x38e`, `run 4 units`. */
export function describeAction(o: Described): string {
  const t = o.target ?? 0;
  const a = o.adopted;
  const adopted =
    a === undefined
      ? ''
      : 'written' in a
        ? ` (bare metal is written ${hex(a.written)}; adopted: ${a.id})`
        : 'read' in a
          ? ` (bare metal read ${hex(a.read)}; adopted: ${a.id})`
          : a.bareMetal === 'faults'
            ? ` (bare metal #GPs; adopted: ${a.id})`
            : ` (bare metal would not fault; adopted: ${a.id})`;
  switch (o.kind) {
    case 'rdmsr':
      return `RDMSR ${hex(t)}${adopted}`;
    case 'wrmsr':
      return `WRMSR ${hex(t)} <- ${hex(o.value ?? 0n)}${adopted}`;
    case 'rdpmc':
      return `RDPMC ${hex(t)} at CPL ${o.cpl ?? 0}`;
    case 'xsaves':
      return 'XSAVES (Arch LBR component)';
    case 'xrstors':
      return 'XRSTORS (Arch LBR component)';
    case 'emulate':
      return `KVM_FEP ${(o.insn ?? 'mov').toUpperCase()} at CPL ${o.cpl ?? 0}`;
    case 'pmi':
      return `${describeAround(o)}: PMIs`;
    case 'run':
      return `run ${o.units ?? 0} units`;
    case 'vmm':
      return o.vmm === undefined ? 'VMM' : describeVmm(o.vmm);
    case 'host':
      return o.host === undefined ? 'host' : describeHost(o.host);
    case 'driver':
      return `guest driver (${o.driver?.routine ?? 'routine'}): the instruction after the last one both ran`;
  }
}

/** What a PMI observation came around, in words: `RDMSR 0x38e`, `XSAVES`. */
export function describeAround(o: Described): string {
  const around = o.around ?? 'rdmsr';
  return around === 'xsaves' ? 'XSAVES' : describeAction({ ...o, kind: around });
}

/** A property's note in words, as a suffix. */
export function describeNote(n: ObservationNote | undefined): string {
  if (n === undefined) return '';
  switch (n.kind) {
    case 'contract':
      return ` (after the known divergence ${n.id}, ${n.why})`;
    case 'host-values':
      return " (with the host's private values changed)";
    case 'insertion':
      return ` (with ${n.command} before command ${n.at})`;
  }
}

/** The observation in words, as traces and messages show it: `WRMSR 0x38f <- 0x1`. */
export const describeObservation = (o: Described & Pick<Observation, 'note'>): string =>
  describeAction(o) + describeNote(o.note);

/**
 * The history a declaration judges observation `o` on: every observation up to it. What the same command recorded
 * after it (a save at the instruction's exit, its PMIs) cannot excuse it.
 */
export function historyTo(all: readonly Observation[], o: Observation): readonly Observation[] {
  const at = all.indexOf(o);
  return at < 0 ? all : all.slice(0, at + 1);
}
