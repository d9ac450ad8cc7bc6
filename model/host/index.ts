/** The host kernel: perf core, x86/Intel PMU driver, LBR facility and threads on simulated pCPUs. */

export { HOST_DECISIONS, hostDecision } from './decisions.js';
export {
  type BranchRecord,
  intel_pmu_setup_hw_lbr_filter,
  lbrFormat,
  lbrNr,
  intel_pmu_lbr_read,
  type LbrSaved,
} from './lbr.js';
export {
  type GuestInfoCallbacks,
  type GuestMsrs,
  HostKernel,
  type HostKernelOptions,
  type PerfOpenResult,
  type PhysCpu,
  WATCHDOG_CONFIG,
  WATCHDOG_DEFAULT_PERIOD,
} from './perf.js';
export {
  type Constraint,
  intel_get_event_constraints,
  FIXED_BASE,
  fixedMapping,
  IDX_VLBR,
  VLBR_CONFIG,
  x86_schedule_events,
} from './schedule.js';
export * from './types.js';
