/**
 * Helpers shared by the unit tests in test/model/hw: one builder for small test parts, the few
 * MSR addresses and bit values the model does not export, and the small routines several test
 * files need (checked MSR access, #GP expectations, work units and branches).
 *
 * Not a test file (vitest collects only *.test.ts). MSR addresses the model exports come from
 * model/hw/index.js; import them from there.
 */
import { expect } from 'vitest';
import { type Access } from '../../../model/hw/access.js';
import { type Branch, type WorkUnit } from '../../../model/hw/work.js';
import { type BranchKind } from '../../../model/hw/state.js';
import { type Cpu } from '../../../model/hw/cpu.js';
import {
  type CpuidRegs,
  defineProfile,
  type LegacyLbrGeometry,
  leaf0aEax,
  leaf0aEdx,
  type Profile,
  perfCaps,
} from '../../../model/hw/profile.js';

// ---------------------------------------------------------------------------------------------
// Test parts

/**
 * What a test part enumerates. Every field but `v` has a default, the same in every file; a test
 * that wants another value says so.
 */
export interface PartOptions {
  /** PMU version, CPUID.0AH:EAX[7:0]. */
  readonly v: number;
  /** Default `v<v>-test`. */
  readonly name?: string;
  /** CPUID.01H model (family is always 6). Default 0x55. */
  readonly model?: number;
  /** GP counters, CPUID.0AH:EAX[15:8]. Default 4. */
  readonly nGP?: number;
  /** GP counter width, CPUID.0AH:EAX[23:16]. Default 48. */
  readonly gpWidth?: number;
  /** Event vector length, CPUID.0AH:EAX[31:24]. Default 7. */
  readonly evLen?: number;
  /** CPUID.0AH:EBX, events unavailable. Default 0. */
  readonly ebx?: number;
  /** CPUID.0AH:ECX, the v5 fixed-counter bitmap. Default 0. */
  readonly ecx?: number;
  /** Contiguous fixed counters, CPUID.0AH:EDX[4:0]. Default 3. */
  readonly nFixed?: number;
  /** Fixed counter width, CPUID.0AH:EDX[12:5]. Default 48. */
  readonly fixedWidth?: number;
  /** CPUID.0AH:EDX[15], AnyThread deprecated. Default false. */
  readonly anyDeprecated?: boolean;
  /** IA32_PERF_CAPABILITIES. Default 0. */
  readonly caps?: bigint;
  /** CPUID.01H:ECX.PDCM. Default: exactly when `caps` is given. */
  readonly pdcm?: boolean;
  /** Left out of the profile unless given. */
  readonly tsx?: boolean;
  /** Left out of the profile unless given. */
  readonly topdownL2?: boolean;
  /** Legacy LBR geometry; left out unless given. */
  readonly legacyLbr?: LegacyLbrGeometry;
  /** CPUID.1CH (Arch LBR); left out unless given. */
  readonly leaf1c?: CpuidRegs;
}

/** A small part: CPUID.0AH from its fields, PDCM exactly when `caps` is given (unless `pdcm` says). */
export function part(s: PartOptions): Profile {
  return defineProfile({
    name: s.name ?? `v${s.v}-test`,
    family: 6,
    model: s.model ?? 0x55,
    leaf0a: {
      eax: leaf0aEax(s.v, s.nGP ?? 4, s.gpWidth ?? 48, s.evLen ?? 7),
      ebx: s.ebx ?? 0,
      ecx: s.ecx ?? 0,
      edx: leaf0aEdx(s.nFixed ?? 3, s.fixedWidth ?? 48, s.anyDeprecated ?? false),
    },
    pdcm: s.pdcm ?? s.caps !== undefined,
    perfCapabilities: s.caps ?? 0n,
    ...(s.tsx !== undefined ? { tsx: s.tsx } : {}),
    ...(s.topdownL2 !== undefined ? { topdownL2: s.topdownL2 } : {}),
    ...(s.legacyLbr !== undefined ? { legacyLbr: s.legacyLbr } : {}),
    ...(s.leaf1c !== undefined ? { leaf1c: s.leaf1c } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// Addresses and values the model does not export

/** PERF_CAPABILITIES with only FW_WRITE (bit 13): the IA32_A_PMCi full-width aliases exist. */
export const FW_WRITE = perfCaps({ fwWrite: true });

export const INSTR = 0xc0n;

/** IA32_LBR_CTL: LBREn | OS | USR and every branch type (22:16). */
export const ARCH_CAPTURE_ALL = 0x7f0007n;

// ---------------------------------------------------------------------------------------------
// Checked access

/** The value of an access that must not #GP. */
export function value(a: Access, what = 'access'): bigint {
  if (!a.ok) throw new Error(`${what}: unexpected #GP (${a.gp})`);
  return a.value;
}

/** RDMSR that must not #GP. */
export const rd = (c: Cpu, msr: number): bigint => value(c.rdmsr(msr), `RDMSR 0x${msr.toString(16)}`);

/** WRMSR that must not #GP; returns what was written. */
export const wr = (c: Cpu, msr: number, v: bigint): bigint => value(c.wrmsr(msr, v), `WRMSR 0x${msr.toString(16)}`);

export const isGp = (a: Access): boolean => !a.ok;

export function expectGp(a: Access): void {
  expect(a.ok, a.ok ? `expected #GP, got 0x${a.value.toString(16)}` : '').toBe(false);
}

export function expectOk(a: Access): void {
  expect(a.ok, a.ok ? '' : `unexpected #GP: ${a.gp}`).toBe(true);
}

// ---------------------------------------------------------------------------------------------
// Work units and branches

/** A unit retiring `n` instructions at `cpl`. */
export const instr = (n: number, cpl = 3): WorkUnit => ({ cpl, instructions: n });

/** A user-mode and a kernel-mode (canonical upper-half) address. */
export const USER = 0x401000n;
export const KERNEL = 0xffffffff81000000n;

export function br(kind: BranchKind, from: bigint, to: bigint, extra: Partial<Branch> = {}): Branch {
  return { kind, from, to, ...extra };
}

/** `n` distinct user-mode branches of one kind. */
export function userBranches(n: number, kind: BranchKind = 'NEAR_REL_JMP'): Branch[] {
  return Array.from({ length: n }, (_, i) => br(kind, USER + BigInt(i) * 0x10n, USER + 0x8000n + BigInt(i) * 0x10n));
}
