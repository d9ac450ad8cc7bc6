/**
 * The host kernel's perf interface as KVM and host users see it: event attributes, the event
 * handle, samples. Names follow include/linux/perf_event.h; values are bigint where the kernel's
 * are u64. Implemented in perf.ts on simulated physical CPUs (model/hw).
 */

import { ModelError } from '../hw/errors.js';
import type { Branch } from '../hw/work.js';

/** enum perf_event_state, the subset the model needs. */
export type PerfEventState = 'ERROR' | 'OFF' | 'INACTIVE' | 'ACTIVE';

/** perf_event_attr.branch_sample_type, as far as LBR filtering goes. */
export interface BranchSampleType {
  readonly user: boolean;
  readonly kernel: boolean;
  /** PERF_SAMPLE_BRANCH_CALL_STACK: LBR call-stack mode, LBRs saved/restored with the task. */
  readonly callStack: boolean;
}

export interface PerfEventAttr {
  /**
   * PERF_TYPE_RAW config: an IA32_PERFEVTSELx image without the control bits (event select,
   * umask, edge, inv, cmask, in_tx, in_tx_cp). Fixed-only events use Linux's pseudo-encodings
   * (event 0x00, umask idx+1: 0x0300 is REF_TSC on fixed counter 2).
   */
  readonly config: bigint;
  /** 0n: a counting event; otherwise overflow every `samplePeriod` events. */
  readonly sample_period: bigint;
  readonly pinned: boolean;
  readonly exclusive: boolean;
  readonly exclude_user: boolean;
  readonly exclude_kernel: boolean;
  readonly exclude_host: boolean;
  readonly exclude_guest: boolean;
  /** Sample the LBRs (perf record -b); needs the LBR facility of the CPU. */
  readonly branchSample?: BranchSampleType;
  /**
   * KVM's guest LBR event (INTEL_FIXED_VLBR_EVENT): takes the LBR facility for the guest and no
   * counter (vmx/pmu_intel.c intel_pmu_create_guest_lbr_event).
   */
  readonly vlbr?: boolean;
  /** attr.disabled: created OFF, until perf_event_enable (how a group is built before it runs). */
  readonly disabled?: boolean;
}

const ATTR_KEYS: ReadonlySet<string> = new Set([
  'config',
  'sample_period',
  'pinned',
  'exclusive',
  'exclude_user',
  'exclude_kernel',
  'exclude_host',
  'exclude_guest',
  'branchSample',
  'vlbr',
  'disabled',
] satisfies (keyof PerfEventAttr)[]);

/** Defaults for the fields a caller leaves out, as perf_event_attr zero-initialisation does. */
export function attr(a: Partial<PerfEventAttr> & { readonly config: bigint }): PerfEventAttr {
  // Pasted or generated code is not type-checked when it runs: a misspelt field must not vanish.
  for (const k of Object.keys(a)) if (!ATTR_KEYS.has(k)) throw new ModelError(`perf_event_attr has no field '${k}'`);
  return {
    sample_period: 0n,
    pinned: false,
    exclusive: false,
    exclude_user: false,
    exclude_kernel: false,
    exclude_host: false,
    exclude_guest: false,
    ...a,
  };
}

/** Where an event counts: one CPU (any task), or one task (on whatever CPU it runs). */
export type PerfTarget = { readonly cpu: number } | { readonly task: number };

/** One overflow sample, as perf records it. */
export interface PerfSample {
  readonly cpu: number;
  /** perf_guest_state(): the NMI arrived while the CPU ran a guest. */
  readonly inGuest: boolean;
  /** The branch stack read from the LBRs, newest first, when the event samples branches. */
  readonly branches?: readonly Pick<Branch, 'from' | 'to'>[];
}

/** Called in NMI context when a sampling event overflows (perf_overflow_handler_t). */
export type OverflowHandler = (event: PerfEvent, sample: PerfSample) => void;

/** What callers may look at of a struct perf_event. */
export interface PerfEvent {
  readonly id: number;
  readonly attr: PerfEventAttr;
  readonly target: PerfTarget;
  readonly state: PerfEventState;
  /** hw.idx: the hardware counter (GP i, or 32 + fixed j) while ACTIVE, else -1. */
  readonly hw_idx: number;
  /** event->oncpu: the CPU it is scheduled on while ACTIVE, else -1. */
  readonly oncpu: number;
  /** hwc->config: the event select image perf programs, without EN. */
  readonly hw_config: bigint;
  readonly samples: readonly PerfSample[];
}
