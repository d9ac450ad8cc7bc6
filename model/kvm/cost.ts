/**
 * What a vPMU design spends, counted per expensive step (issue #6's cost model): every design
 * bumps these counters where the kernel would pay; `npm run compare` turns them into time with
 * per-step latencies. Counting only: nothing here changes behaviour.
 */

export interface VpmuCost {
  /** VM-exits taken for an intercepted guest RDMSR/WRMSR. */
  msrExits: number;
  /** VM-exits taken for an intercepted guest RDPMC. */
  rdpmcExits: number;
  /** VM-exits for a guest instruction KVM emulates (the forced-emulation prefix's #UD). */
  emulationExits: number;
  /** VM-exits for a host NMI/PMI arriving while the guest runs. */
  pmiExits: number;
  /** PMIs injected into the guest. */
  injectedPmis: number;
  /** reprogram_counter runs (perf-based) or counter reloads on a guest control write (mediated). */
  reprograms: number;
  /** perf events KVM created (perf_event_create_kernel_counter) and released. */
  perfCreates: number;
  perfReleases: number;
  /** Other perf API calls on KVM's events: period, enable, disable, pause, read. */
  perfCalls: number;
  /** MSR accesses done by KVM itself at VM-entry and VM-exit (atomic switch lists, context load/put). */
  entryExitMsrAccesses: number;
  /** RDMSR/WRMSR/RDPMC KVM issues to host counters in an exit handler or at vCPU scheduling (a hw-assigned vPMC). */
  kvmMsrAccesses: number;
  /** VM-entries (each run, each re-entry after an exit). */
  entries: number;
}

export function newVpmuCost(): VpmuCost {
  return {
    msrExits: 0,
    rdpmcExits: 0,
    emulationExits: 0,
    pmiExits: 0,
    injectedPmis: 0,
    reprograms: 0,
    perfCreates: 0,
    perfReleases: 0,
    perfCalls: 0,
    entryExitMsrAccesses: 0,
    kvmMsrAccesses: 0,
    entries: 0,
  };
}
