/** The reference model of one logical Intel CPU's PMU: the oracle, and the host's physical CPUs. */

export { type Access, gp, ok } from './access.js';
export * from './bits.js';
export { Cpu, type CpuMode, type PmiDelivery, type XsaveResult } from './cpu.js';
export { DECISIONS, type Decision, decision } from './decisions.js';
export { ModelError, MsrNameError, ProfileError, type ProfileRule, WorkError } from './errors.js';
export { gpSource, SRC } from './events.js';
export * from './msr/apic.js';
export * from './msr/capabilities.js';
export * from './msr/counters.js';
export * from './msr/debugctl.js';
export * from './msr/global.js';
export * from './msr/lbr_arch.js';
export * from './msr/lbr_legacy.js';
export { buildMsrFile, msrAddress, msrName } from './msr/map.js';
export * from './msr/topdown.js';
export type { MsrDef } from './msr/types.js';
export * from './profile.js';
export { BUILTIN_PROFILES, ICELAKE, SAPPHIRE_RAPIDS, SKYLAKE } from './profiles.js';
export { BRANCH_KINDS, type BranchKind, PmuState } from './state.js';
export { type Branch, validateUnit, type WorkUnit } from './work.js';
