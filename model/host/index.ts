/** The host kernel: perf core, x86/Intel PMU driver, LBR facility and threads on simulated pCPUs. */

export { HOST_DECISIONS, hostDecision } from './decisions.js';
export { type BranchRecord, lbrFilter, lbrFormat, lbrNr, lbrRead, type LbrSaved } from './lbr.js';
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
  eventConstraint,
  FIXED_BASE,
  fixedMapping,
  IDX_VLBR,
  VLBR_CONFIG,
  x86ScheduleEvents,
} from './schedule.js';
export * from './types.js';
