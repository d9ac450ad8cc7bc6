/**
 * The LBR facility as arch/x86/events/intel/lbr.c drives it: the filter an event asks for
 * (intel_pmu_setup_hw_lbr_filter), enabling and disabling recording, reading the stack into a
 * sample, resetting it, and saving/restoring a task's call stack. Every access goes through the
 * pCPU's RDMSR/WRMSR or XSAVES/XRSTORS.
 */

import { type Access } from '../hw/access.js';
import {
  type ArchLbrXsave,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_TO_0,
  lbrCtlWritable,
  ARCH_LBR_REL_CALL,
  ARCH_LBR_IND_CALL,
  ARCH_LBR_RETURN,
  ARCH_LBR_CALL_STACK,
  ARCH_LBR_ANY,
  ARCH_LBR_USER,
  ARCH_LBR_KERNEL,
  ARCH_LBR_LBREN,
} from '../hw/msr/lbr_arch.js';
import { type Cpu } from '../hw/cpu.js';
import { MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR, DEBUGCTLMSR_FREEZE_LBRS_ON_PMI } from '../hw/msr/debugctl.js';
import {
  MSR_LBR_SELECT,
  MSR_LBR_TOS,
  LBR_JCC,
  LBR_REL_CALL,
  LBR_IND_CALL,
  LBR_RETURN,
  LBR_REL_JMP,
  LBR_IND_JMP,
  LBR_FAR,
  LBR_CALL_STACK,
  LBR_USER,
  LBR_KERNEL,
  LBR_SEL_MASK,
} from '../hw/msr/lbr_legacy.js';
import { bit, lowMask, signExtend } from '../hw/bits.js';
import { ModelError } from '../hw/errors.js';
import { msrName } from '../hw/msr/map.js';
import { type Profile } from '../hw/profile.js';
import { relied } from '../hw/relied.js';
import type { BranchSampleType } from './types.js';

// Legacy LBR_SELECT bits (LBR_KERNEL .. LBR_CALL_STACK), "capture" sense before inversion.
const LBR_ANY = LBR_JCC | LBR_REL_CALL | LBR_IND_CALL | LBR_RETURN | LBR_REL_JMP | LBR_IND_JMP | LBR_FAR;

// Arch LBR_CTL bits (arch_lbr_ctl_map), positive sense.

export type LbrFormat = 'legacy' | 'arch';

export function lbrFormat(p: Profile): LbrFormat | null {
  return p.archLbr !== undefined ? 'arch' : p.legacyLbr !== undefined ? 'legacy' : null;
}

/** x86_pmu.lbr_nr: the stack depth perf uses (Arch LBR: the deepest enumerated). */
export function lbrNr(p: Profile): number {
  return p.archLbr?.maxDepth ?? p.legacyLbr?.depth ?? 0;
}

function must(a: Access, what: string): bigint {
  if (!a.ok) throw new ModelError(`host perf: ${what} faulted: ${a.gp}`);
  return a.value;
}

// The messages are built only on a fault: these run for every LBR MSR at each context switch.
function rd(hw: Cpu, msr: number): bigint {
  const a = hw.rdmsr(msr);
  return a.ok ? a.value : must(a, `RDMSR ${msrName(msr)}`);
}

function wr(hw: Cpu, msr: number, v: bigint): void {
  const a = hw.wrmsr(msr, v);
  if (!a.ok) must(a, `WRMSR ${msrName(msr)} <- 0x${v.toString(16)}`);
}

/**
 * The branch filter with the privilege levels filled in from exclude_user/exclude_kernel when
 * the caller gave none (perf_copy_attr does this).
 */
export function effectiveBranchType(
  b: BranchSampleType,
  excludeUser: boolean,
  excludeKernel: boolean,
): BranchSampleType {
  if (b.user || b.kernel) return b;
  return { user: !excludeUser, kernel: !excludeKernel, callStack: b.callStack };
}

/**
 * intel_pmu_setup_hw_lbr_filter: the LBR_SELECT image (legacy, suppress sense) or the LBR_CTL
 * filter bits (Arch LBR) for PERF_SAMPLE_BRANCH_ANY or _CALL_STACK plus the privilege levels
 * (decision H12), or the errno perf returns.
 */
export function intel_pmu_setup_hw_lbr_filter(p: Profile, b: BranchSampleType): { config: bigint } | { error: string } {
  const fmt = lbrFormat(p);
  if (fmt === null) return { error: `EOPNOTSUPP: ${p.name} has no LBRs` };
  if (fmt === 'arch') {
    relied('H12');
    const a = p.archLbr!;
    if (b.callStack && !a.callStack) return { error: 'EOPNOTSUPP: Arch LBR without call-stack mode' };
    let m = b.callStack ? ARCH_LBR_REL_CALL | ARCH_LBR_IND_CALL | ARCH_LBR_RETURN | ARCH_LBR_CALL_STACK : ARCH_LBR_ANY;
    if (b.user) m |= ARCH_LBR_USER;
    if (b.kernel) m |= ARCH_LBR_KERNEL;
    return { config: m & lbrCtlWritable(p) & ~ARCH_LBR_LBREN };
  }
  const g = p.legacyLbr!;
  if (b.callStack && !g.callStack) return { error: `EOPNOTSUPP: ${p.name} has no LBR call-stack mode` };
  relied('H12');
  if (!g.select) return { config: 0n }; // no LBR_SELECT: everything is recorded (decision H12)
  let m = b.callStack ? LBR_REL_CALL | LBR_IND_CALL | LBR_RETURN | LBR_CALL_STACK : LBR_ANY;
  if (b.user) m |= LBR_USER;
  if (b.kernel) m |= LBR_KERNEL;
  // The first nine bits suppress, the call-stack bit enables: invert all but LBR_CALL_STACK.
  return { config: (m ^ (LBR_SEL_MASK & ~LBR_CALL_STACK)) & LBR_SEL_MASK };
}

function callStackBit(p: Profile, config: bigint): boolean {
  return (config & (p.archLbr !== undefined ? ARCH_LBR_CALL_STACK : LBR_CALL_STACK)) !== 0n;
}

/** __intel_pmu_lbr_enable: program the filter and start recording (in a PMI, only re-arm). */
export function intel_pmu_lbr_enable_all(hw: Cpu, config: bigint | null, pmi: boolean): void {
  const p = hw.profile;
  if (pmi && p.version >= 4) return; // v4+ unfreezes through the GLOBAL_STATUS ack
  const arch = p.archLbr !== undefined;
  const sel = config ?? 0n;
  if (!arch && !pmi && config !== null && p.legacyLbr?.select === true) wr(hw, MSR_LBR_SELECT, sel);
  const orig = rd(hw, MSR_IA32_DEBUGCTLMSR);
  let d = arch ? orig : orig | DEBUGCTLMSR_LBR;
  // Call-stack mode and FREEZE_LBRS_ON_PMI do not mix: a PMI next to a call/return corrupts TOS.
  d = callStackBit(p, sel) ? d & ~DEBUGCTLMSR_FREEZE_LBRS_ON_PMI : d | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
  if (d !== orig) wr(hw, MSR_IA32_DEBUGCTLMSR, d);
  if (arch) wr(hw, MSR_ARCH_LBR_CTL, sel | ARCH_LBR_LBREN);
}

/** __intel_pmu_lbr_disable. */
export function intel_pmu_lbr_disable_all(hw: Cpu): void {
  if (hw.profile.archLbr !== undefined) {
    wr(hw, MSR_ARCH_LBR_CTL, 0n);
    return;
  }
  const d = rd(hw, MSR_IA32_DEBUGCTLMSR);
  wr(hw, MSR_IA32_DEBUGCTLMSR, d & ~(DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI));
}

/** intel_pmu_lbr_reset: wipe every record, and zero LBR_SELECT where the part has one (H14). */
export function intel_pmu_lbr_reset(hw: Cpu): void {
  const p = hw.profile;
  if (p.archLbr !== undefined) {
    wr(hw, MSR_ARCH_LBR_DEPTH, BigInt(lbrNr(p))); // any DEPTH write clears the records
    return;
  }
  const g = p.legacyLbr;
  if (g === undefined) return;
  for (let i = 0; i < g.depth; i++) {
    wr(hw, g.fromBase + i, 0n);
    wr(hw, g.toBase + i, 0n);
    if (g.infoBase !== undefined) wr(hw, g.infoBase + i, 0n);
  }
  // "if (!ARCH_LBR && cpuc->lbr_select) wrmsrl(MSR_LBR_SELECT, 0)": every LBR user filters here.
  if (g.select) {
    relied('H14');
    wr(hw, MSR_LBR_SELECT, 0n);
  }
}

/** An LBR record's addresses with the format's flag bits stripped, as perf reports them. */
export interface BranchRecord {
  readonly from: bigint;
  readonly to: bigint;
}

const U64 = lowMask(64);

/** Strips the flag bits a legacy format keeps above the address (intel_pmu_lbr_read_64's skip). */
function legacyFrom(fmt: number, raw: bigint): bigint {
  if (fmt === 3 || fmt === 6) return signExtend(raw, 62) & U64;
  if (fmt === 4) return signExtend(raw, 60) & U64;
  return raw;
}

function legacyTo(fmt: number, raw: bigint): bigint {
  return fmt === 6 ? signExtend(raw & lowMask(48), 47) : raw; // 63:48 hold the cycle count
}

/** Bits 60:59 of a FROM, always part of the address's sign extension. */
const LBR_FROM_SIGNEXT_2MSB = bit(60) | bit(59);

/**
 * lbr_from_signext_quirk_wr: with LBR_FMT 4 and no TSX, WRMSR takes FROM bits 62:61 as sign
 * extension while the hardware records them as 0, so a FROM read back is sign-extended into them
 * before it is written.
 */
function lbr_from_signext_quirk_wr(p: Profile, v: bigint): bigint {
  return p.lbrFmt === 4 && !p.tsx ? v | ((v & LBR_FROM_SIGNEXT_2MSB) << 2n) : v;
}

/** intel_pmu_lbr_read: the stack newest first, up to the first empty record (decision H5). */
export function intel_pmu_lbr_read(hw: Cpu): BranchRecord[] {
  const p = hw.profile;
  const out: BranchRecord[] = [];
  if (p.archLbr !== undefined) {
    const depth = Number(rd(hw, MSR_ARCH_LBR_DEPTH));
    for (let k = 0; k < depth; k++) {
      const from = rd(hw, MSR_ARCH_LBR_FROM_0 + k);
      if (from === 0n) {
        relied('H5');
        break;
      }
      out.push({ from, to: rd(hw, MSR_ARCH_LBR_TO_0 + k) });
    }
    return out;
  }
  const g = p.legacyLbr;
  if (g === undefined) return out;
  const tos = Number(rd(hw, MSR_LBR_TOS));
  for (let i = 0; i < g.depth; i++) {
    const idx = (tos - i + g.depth) % g.depth;
    const from = rd(hw, g.fromBase + idx);
    if (from === 0n) {
      relied('H5');
      break;
    }
    out.push({ from: legacyFrom(p.lbrFmt, from), to: legacyTo(p.lbrFmt, rd(hw, g.toBase + idx)) });
  }
  return out;
}

/** struct x86_perf_task_context (legacy) or the XSAVE area (Arch LBR): a task's saved stack. */
export type LbrSaved =
  | {
      readonly format: 'legacy';
      readonly tos: bigint;
      readonly entries: readonly { readonly from: bigint; readonly to: bigint; readonly info: bigint }[];
      readonly select: bigint | null;
    }
  | { readonly format: 'arch'; readonly area: ArchLbrXsave };

/** intel_pmu_lbr_save / intel_pmu_arch_lbr_xsaves. */
export function intel_pmu_lbr_save(hw: Cpu): LbrSaved {
  const p = hw.profile;
  if (p.archLbr !== undefined) {
    const x = hw.xsaves();
    if (!x.ok) throw new ModelError(`host perf: XSAVES of the LBR state faulted: ${x.gp}`);
    return { format: 'arch', area: x.area };
  }
  const g = p.legacyLbr!;
  const tos = rd(hw, MSR_LBR_TOS);
  const entries: { from: bigint; to: bigint; info: bigint }[] = [];
  for (let i = 0; i < g.depth; i++) {
    const idx = (Number(tos) - i + g.depth) % g.depth;
    const from = rd(hw, g.fromBase + idx);
    if (from === 0n) break; // rdlbr_all: an empty record ends the valid part
    entries.push({
      from,
      to: rd(hw, g.toBase + idx),
      info: g.infoBase !== undefined ? rd(hw, g.infoBase + idx) : 0n,
    });
  }
  return { format: 'legacy', tos, entries, select: g.select ? rd(hw, MSR_LBR_SELECT) : null };
}

/** intel_pmu_lbr_restore / intel_pmu_arch_lbr_xrstors. */
export function intel_pmu_lbr_restore(hw: Cpu, s: LbrSaved): void {
  if (s.format === 'arch') {
    must(hw.xrstors(s.area), 'XRSTORS of the LBR state');
    return;
  }
  const p = hw.profile;
  const g = p.legacyLbr!;
  const tos = Number(s.tos);
  for (let i = 0; i < g.depth; i++) {
    const idx = (tos - i + g.depth) % g.depth;
    const e = s.entries[i];
    wr(hw, g.fromBase + idx, lbr_from_signext_quirk_wr(p, e?.from ?? 0n)); // wrlbr_from
    wr(hw, g.toBase + idx, e?.to ?? 0n);
    if (g.infoBase !== undefined) wr(hw, g.infoBase + idx, e?.info ?? 0n);
  }
  wr(hw, MSR_LBR_TOS, s.tos);
  if (s.select !== null) wr(hw, MSR_LBR_SELECT, s.select);
}
