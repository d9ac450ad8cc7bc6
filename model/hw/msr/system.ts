/**
 * MSRs outside the PMU that the reproducers' guest set-up touches (reports/emit): SYSCALL/SYSRET
 * for work at CPL 3, IA32_XSS for XSAVES of the Arch LBR component, and the x2APIC EOI that a
 * fixed-vector PMI handler writes. The PMU model has no state for them; they are named here so
 * that no other layer writes a raw MSR address (msr-index.h and apicdef.h names).
 */

/** SYSCALL/SYSRET target selectors: SYSRET CS/SS from bits 63:48, SYSCALL CS/SS from bits 47:32. */
export const MSR_STAR = 0xc000_0081;
/** SYSCALL target RIP in 64-bit mode. */
export const MSR_LSTAR = 0xc000_0082;
/** RFLAGS bits SYSCALL clears (SFMASK). */
export const MSR_SYSCALL_MASK = 0xc000_0084;
/** Supervisor state components XSAVES saves; bit 15 is the Arch LBR component (XFEATURE_LBR). */
export const MSR_IA32_XSS = 0xda0;
export const XFEATURE_LBR = 15;
/** The x2APIC end-of-interrupt register (APIC_BASE_MSR + (APIC_EOI >> 4)). */
export const X2APIC_EOI = 0x80b;
