/**
 * MSRs the model knows only by address, to say which decision leaves them out: PEBS and the debug store
 * (decision D31) and the last-exception records (decision D27). Every part of the model lacks them (#GP).
 */

export const MSR_IA32_PEBS_ENABLE = 0x3f1;
export const MSR_PEBS_DATA_CFG = 0x3f2;
export const MSR_IA32_DS_AREA = 0x600;
/** PEBS and the debug store: what D31 leaves out of the model and K2 out of the port. */
export const PEBS_DS_MSRS: ReadonlySet<number> = new Set([MSR_IA32_PEBS_ENABLE, MSR_PEBS_DATA_CFG, MSR_IA32_DS_AREA]);
export const MSR_IA32_LASTINTFROMIP = 0x1dd;
export const MSR_IA32_LASTINTTOIP = 0x1de;
export const MSR_LER_INFO = 0x1e0;
