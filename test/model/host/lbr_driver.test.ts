/**
 * Host perf's LBR driver (model/host/lbr.ts) held directly to what arch/x86/events/intel/lbr.c
 * does on one pCPU: the filter a branch-stack request gets or the EOPNOTSUPP it is refused with
 * (intel_pmu_setup_lbr_filter), the MSRs __intel_pmu_lbr_enable and the disable paths write and
 * in which order, the v4 unfreeze left to the GLOBAL_STATUS ack, intel_pmu_lbr_reset, the FROM/TO
 * flag stripping of intel_pmu_lbr_read_64 per LBR format, and the task call-stack save/restore.
 *
 * The property tests judge the host side against a host on the same perf model, so a fault in
 * these functions moves both sides alike; these tests state the kernel's values instead. Besides
 * the built-in parts they use a few older legacy formats (3, 4 and 6, a part without LBR_SELECT,
 * one without call-stack mode) and an Arch LBR part without call-stack mode.
 */
import { describe, expect, it } from 'vitest';
import { type Access } from '../../../model/hw/access.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { ModelError } from '../../../model/hw/errors.js';
import {
  defineProfile,
  type LegacyLbrGeometry,
  leaf0aEax,
  leaf0aEdx,
  type Profile,
  perfCaps,
} from '../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { DecisionLog, recording } from '../../../model/hw/relied.js';
import {
  ARCH_LBR_ANY,
  ARCH_LBR_CALL_STACK,
  ARCH_LBR_IND_CALL,
  ARCH_LBR_KERNEL,
  ARCH_LBR_LBREN,
  ARCH_LBR_REL_CALL,
  ARCH_LBR_RETURN,
  ARCH_LBR_USER,
  type ArchLbrXsave,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_TO_0,
} from '../../../model/hw/msr/lbr_arch.js';
import {
  LBR_CALL_STACK,
  LBR_FAR,
  LBR_IND_JMP,
  LBR_JCC,
  LBR_KERNEL,
  LBR_REL_JMP,
  LBR_USER,
  MSR_LBR_CORE_FROM,
  MSR_LBR_CORE_TO,
  MSR_LBR_INFO_0,
  MSR_LBR_NHM_FROM,
  MSR_LBR_NHM_TO,
  MSR_LBR_SELECT,
  MSR_LBR_TOS,
} from '../../../model/hw/msr/lbr_legacy.js';
import {
  DEBUGCTLMSR_BTF,
  DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
  DEBUGCTLMSR_LBR,
  MSR_IA32_DEBUGCTLMSR,
} from '../../../model/hw/msr/debugctl.js';
import { bit } from '../../../model/hw/bits.js';
import { attr, type BranchSampleType } from '../../../model/host/types.js';
import { HostKernel } from '../../../model/host/perf.js';
import {
  effectiveBranchType,
  intel_pmu_lbr_disable_all,
  intel_pmu_lbr_enable_all,
  intel_pmu_lbr_read,
  intel_pmu_lbr_reset,
  intel_pmu_lbr_restore,
  intel_pmu_lbr_save,
  intel_pmu_setup_hw_lbr_filter,
  lbrFormat,
  lbrNr,
} from '../../../model/host/lbr.js';
import { CYCLES, ev, NO_LBR, rd } from './util.js';

// ---------------------------------------------------------------------------------------------
// Parts

/** A legacy-LBR part of PMU version `v` with LBR_FMT `fmt`; 16 records at the Nehalem bases unless `g` says. */
function legacyPart(name: string, v: number, fmt: number, g: Partial<LegacyLbrGeometry>, tsx = false): Profile {
  return defineProfile({
    name,
    family: 6,
    model: 0x3c,
    leaf0a: { eax: leaf0aEax(v, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
    pdcm: true,
    perfCapabilities: perfCaps({ lbrFmt: fmt }),
    legacyLbr: { depth: 16, fromBase: MSR_LBR_NHM_FROM, toBase: MSR_LBR_NHM_TO, select: true, callStack: false, ...g },
    ...(tsx ? { tsx } : {}),
  });
}

/** Sandy Bridge-like: LBR_FMT 3 (EIP_FLAGS: MISPRED in FROM bit 63), LBR_SELECT without call-stack mode, v3. */
const FMT3 = legacyPart('fmt3-snb', 3, 3, {});
/** Haswell-like with TSX: LBR_FMT 4 (EIP_FLAGS2: MISPRED, IN_TX, ABORT in FROM 63:61), call-stack mode, v3. */
const FMT4 = legacyPart('fmt4-hsw', 3, 4, { callStack: true }, true);
/** The same without TSX: WRMSR takes FROM bits 62:61 as sign extension, the hardware records them as 0. */
const FMT4_NO_TSX = legacyPart('fmt4-no-tsx', 3, 4, { callStack: true });
/** Goldmont Plus-like: LBR_FMT 6 (TIME: MISPRED in FROM 63, the cycle count in TO 63:48), 32 records, v4. */
const FMT6 = legacyPart('fmt6-glp', 4, 6, { depth: 32, callStack: true });
/** Core 2-like: 4 records at 0x40/0x60, LBR_FMT 2, no LBR_SELECT (so no filter and no call stack), v2. */
const NO_SELECT = legacyPart('no-lbr-select', 2, 2, {
  depth: 4,
  fromBase: MSR_LBR_CORE_FROM,
  toBase: MSR_LBR_CORE_TO,
  select: false,
});
/** Sapphire Rapids with CPUID.1CH:EBX[2] (call-stack mode) clear: CPL and branch-type filtering only. */
const ARCH_NO_CALLSTACK = defineProfile({
  ...SAPPHIRE_RAPIDS.spec,
  name: 'arch-lbr-no-callstack',
  leaf1c: { ...SAPPHIRE_RAPIDS.spec.leaf1c!, ebx: 0x3 },
});

// ---------------------------------------------------------------------------------------------
// Helpers

type MsrAccess = readonly ['rd' | 'wr', number, bigint?];

/** A pCPU that logs every RDMSR and WRMSR the code under test makes, in order. */
class LoggingCpu extends Cpu {
  log: MsrAccess[] = [];
  override rdmsr(address: number): Access {
    this.log.push(['rd', address]);
    return super.rdmsr(address);
  }
  override wrmsr(address: number, value: bigint): Access {
    this.log.push(['wr', address, value]);
    return super.wrmsr(address, value);
  }
  /** The WRMSRs logged since the last call, as [msr, value]. */
  takeWrites(): (readonly [number, bigint])[] {
    const w = this.log.filter((a) => a[0] === 'wr').map((a) => [a[1], a[2]!] as const);
    this.log = [];
    return w;
  }
}

/** WRMSR from the test's side that must not #GP (it sets up the state the code under test meets). */
function put(hw: Cpu, msr: number, v: bigint): void {
  const a = hw.wrmsr(msr, v);
  if (!a.ok) throw new Error(`test setup: WRMSR 0x${msr.toString(16)} <- 0x${v.toString(16)} faulted: ${a.gp}`);
}

function filter(p: Profile, b: BranchSampleType): bigint {
  const r = intel_pmu_setup_hw_lbr_filter(p, b);
  if ('error' in r) throw new Error(`filter refused: ${r.error}`);
  return r.config;
}

function refused(p: Profile, b: BranchSampleType): string {
  const r = intel_pmu_setup_hw_lbr_filter(p, b);
  expect(r, 'the request should be refused').toHaveProperty('error');
  return 'error' in r ? r.error : '';
}

const ANY: BranchSampleType = { user: true, kernel: true, callStack: false };
const ANY_USER: BranchSampleType = { user: true, kernel: false, callStack: false };
const ANY_KERNEL: BranchSampleType = { user: false, kernel: true, callStack: false };
const CALLSTACK_USER: BranchSampleType = { user: true, kernel: false, callStack: true };

/** A user-mode and a kernel-mode (upper-half canonical) address. */
const UADDR = 0x40_1000n;
const KADDR = 0xffff_ffff_8100_0000n;
const MISPRED = bit(63);
const IN_TX = bit(62);
const ABORT = bit(61);

// ---------------------------------------------------------------------------------------------

describe('which LBRs perf drives (x86_pmu.lbr_nr and the Arch LBR feature bit)', () => {
  it('names the LBR kind of a part, or none', () => {
    expect([SKYLAKE, FMT3, NO_SELECT, SAPPHIRE_RAPIDS, NO_LBR].map(lbrFormat)).toEqual([
      'legacy',
      'legacy',
      'legacy',
      'arch',
      null,
    ]);
  });

  it('uses the whole legacy stack, the deepest Arch LBR depth CPUID.1CH enumerates, and 0 without LBRs', () => {
    expect([SKYLAKE, FMT3, NO_SELECT, SAPPHIRE_RAPIDS, NO_LBR].map(lbrNr)).toEqual([32, 16, 4, 32, 0]);
  });
});

describe('the privilege levels of a branch-stack request (perf_copy_attr)', () => {
  it('keeps the levels the request names', () => {
    expect(effectiveBranchType(ANY_KERNEL, false, true)).toEqual(ANY_KERNEL);
    expect(effectiveBranchType(CALLSTACK_USER, true, false)).toEqual(CALLSTACK_USER);
  });

  it('fills them in from exclude_user and exclude_kernel when it names none', () => {
    const none = { user: false, kernel: false };
    expect(effectiveBranchType({ ...none, callStack: true }, false, true)).toEqual({
      user: true,
      kernel: false,
      callStack: true,
    });
    expect(effectiveBranchType({ ...none, callStack: false }, true, false)).toEqual(ANY_KERNEL);
  });

  it('so `perf record -b` on a user-only event suppresses ring 0 in LBR_SELECT', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const b: BranchSampleType = { user: false, kernel: false, callStack: false };
    ev(
      k.perf_event_open(attr({ config: CYCLES, sample_period: 1000n, branchSample: b, exclude_kernel: true }), {
        cpu: 0,
      }),
    );
    expect(rd(k.pcpu(0).hw, MSR_LBR_SELECT)).toBe(LBR_KERNEL);
  });
});

describe('the filter a branch-stack request gets, or EOPNOTSUPP (intel_pmu_setup_lbr_filter)', () => {
  it('refuses every request on a part without LBRs', () => {
    expect(refused(NO_LBR, ANY)).toMatch(/^EOPNOTSUPP/);
    expect(refused(NO_LBR, CALLSTACK_USER)).toMatch(/^EOPNOTSUPP/);
  });

  it('legacy: LBR_SELECT suppresses what is not asked for, and call-stack mode is a positive bit', () => {
    expect(filter(SKYLAKE, ANY)).toBe(0n);
    expect(filter(SKYLAKE, ANY_USER)).toBe(LBR_KERNEL);
    expect(filter(SKYLAKE, ANY_KERNEL)).toBe(LBR_USER);
    // hsw_lbr_sel_map's CALL_STACK: near calls and returns only, at the user's level.
    expect(filter(SKYLAKE, CALLSTACK_USER)).toBe(
      LBR_CALL_STACK | LBR_KERNEL | LBR_JCC | LBR_REL_JMP | LBR_IND_JMP | LBR_FAR,
    );
  });

  it('legacy: refuses call-stack mode on a part whose LBR_SELECT has none (snb_lbr_sel_map)', () => {
    expect(refused(FMT3, CALLSTACK_USER)).toMatch(/^EOPNOTSUPP/);
    expect(filter(FMT3, ANY_USER)).toBe(LBR_KERNEL);
  });

  it('legacy without LBR_SELECT: no hardware filter, everything is recorded', () => {
    expect(filter(NO_SELECT, ANY_USER)).toBe(0n);
    expect(filter(NO_SELECT, ANY_KERNEL)).toBe(0n);
    expect(refused(NO_SELECT, CALLSTACK_USER)).toMatch(/^EOPNOTSUPP/);
  });

  it('Arch LBR: LBR_CTL captures what is asked for (arch_lbr_ctl_map), LBREn left to the enable', () => {
    expect(filter(SAPPHIRE_RAPIDS, ANY)).toBe(ARCH_LBR_ANY | ARCH_LBR_USER | ARCH_LBR_KERNEL);
    expect(filter(SAPPHIRE_RAPIDS, ANY_KERNEL)).toBe(ARCH_LBR_ANY | ARCH_LBR_KERNEL);
    expect(filter(SAPPHIRE_RAPIDS, ANY_USER)).toBe(ARCH_LBR_ANY | ARCH_LBR_USER);
    expect(filter(SAPPHIRE_RAPIDS, CALLSTACK_USER)).toBe(
      ARCH_LBR_REL_CALL | ARCH_LBR_IND_CALL | ARCH_LBR_RETURN | ARCH_LBR_CALL_STACK | ARCH_LBR_USER,
    );
  });

  it('Arch LBR: refuses call-stack mode when CPUID.1CH does not enumerate it', () => {
    expect(refused(ARCH_NO_CALLSTACK, CALLSTACK_USER)).toMatch(/^EOPNOTSUPP/);
    expect(filter(ARCH_NO_CALLSTACK, ANY)).toBe(ARCH_LBR_ANY | ARCH_LBR_USER | ARCH_LBR_KERNEL);
  });

  it('records decision H12 for the filters of both LBR kinds', () => {
    for (const p of [SKYLAKE, SAPPHIRE_RAPIDS]) {
      const log = new DecisionLog();
      recording(log, () => filter(p, CALLSTACK_USER));
      expect(log.ids, p.name).toEqual(['H12']);
    }
  });
});

describe('starting recording (__intel_pmu_lbr_enable)', () => {
  const LEGACY_ON = DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;

  it('legacy: LBR_SELECT first, then DEBUGCTL.LBR with FREEZE_LBRS_ON_PMI, rewritten only when it changes', () => {
    const hw = new LoggingCpu(SKYLAKE);
    const cfg = filter(SKYLAKE, ANY_USER);
    intel_pmu_lbr_enable_all(hw, cfg, false);
    expect(hw.takeWrites()).toEqual([
      [MSR_LBR_SELECT, cfg],
      [MSR_IA32_DEBUGCTLMSR, LEGACY_ON],
    ]);
    intel_pmu_lbr_enable_all(hw, cfg, false);
    expect(hw.takeWrites()).toEqual([[MSR_LBR_SELECT, cfg]]);
  });

  it('legacy: keeps the other DEBUGCTL bits, and call-stack mode drops FREEZE_LBRS_ON_PMI', () => {
    const hw = new LoggingCpu(SKYLAKE);
    put(hw, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_BTF | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
    intel_pmu_lbr_enable_all(hw, filter(SKYLAKE, CALLSTACK_USER), false);
    expect(rd(hw, MSR_IA32_DEBUGCTLMSR)).toBe(DEBUGCTLMSR_BTF | DEBUGCTLMSR_LBR);
  });

  it('Arch LBR: FREEZE_LBRS_ON_PMI per the filter, then LBR_CTL with LBREn; DEBUGCTL.LBR stays clear', () => {
    const hw = new LoggingCpu(SAPPHIRE_RAPIDS);
    const any = filter(SAPPHIRE_RAPIDS, ANY);
    intel_pmu_lbr_enable_all(hw, any, false);
    expect(hw.takeWrites()).toEqual([
      [MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_FREEZE_LBRS_ON_PMI],
      [MSR_ARCH_LBR_CTL, any | ARCH_LBR_LBREN],
    ]);
    const cs = filter(SAPPHIRE_RAPIDS, CALLSTACK_USER);
    intel_pmu_lbr_enable_all(hw, cs, false); // LBR_CTL.CALL_STACK (bit 3), not LBR_SELECT's bit 9
    expect(hw.takeWrites()).toEqual([
      [MSR_IA32_DEBUGCTLMSR, 0n],
      [MSR_ARCH_LBR_CTL, cs | ARCH_LBR_LBREN],
    ]);
    intel_pmu_lbr_enable_all(hw, cs, false);
    expect(hw.takeWrites()).toEqual([[MSR_ARCH_LBR_CTL, cs | ARCH_LBR_LBREN]]);
  });

  it('v4 and later, in a PMI: touches no MSR, the GLOBAL_STATUS ack unfreezes', () => {
    for (const p of [SKYLAKE, FMT6, SAPPHIRE_RAPIDS]) {
      const hw = new LoggingCpu(p);
      intel_pmu_lbr_enable_all(hw, filter(p, ANY), false);
      put(hw, MSR_IA32_DEBUGCTLMSR, 0n); // whatever DEBUGCTL holds, the PMI path leaves it alone
      hw.log = [];
      intel_pmu_lbr_enable_all(hw, filter(p, ANY_USER), true);
      expect(hw.log, p.name).toEqual([]);
    }
  });

  it('v2/v3, in a PMI: sets DEBUGCTL.LBR again after the legacy freeze cleared it, and leaves LBR_SELECT', () => {
    const hw = new LoggingCpu(FMT4);
    const cfg = filter(FMT4, ANY);
    intel_pmu_lbr_enable_all(hw, cfg, false);
    put(hw, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_FREEZE_LBRS_ON_PMI); // what the v2/v3 freeze leaves
    hw.takeWrites();
    intel_pmu_lbr_enable_all(hw, filter(FMT4, ANY_USER), true);
    expect(hw.takeWrites()).toEqual([[MSR_IA32_DEBUGCTLMSR, LEGACY_ON]]);
    expect(rd(hw, MSR_LBR_SELECT)).toBe(cfg);
  });

  it('legacy: writes no LBR_SELECT for a user without a filter of its own, nor on a part without one', () => {
    const hw = new LoggingCpu(SKYLAKE);
    put(hw, MSR_LBR_SELECT, LBR_USER);
    hw.takeWrites();
    intel_pmu_lbr_enable_all(hw, null, false); // cpuc->lbr_sel is NULL: lbr_select = 0, not written
    expect(hw.takeWrites()).toEqual([[MSR_IA32_DEBUGCTLMSR, LEGACY_ON]]);
    expect(rd(hw, MSR_LBR_SELECT)).toBe(LBR_USER);

    const core = new LoggingCpu(NO_SELECT);
    intel_pmu_lbr_enable_all(core, filter(NO_SELECT, ANY), false);
    expect(core.takeWrites()).toEqual([[MSR_IA32_DEBUGCTLMSR, LEGACY_ON]]);
  });
});

describe('stopping recording (__intel_pmu_lbr_disable, __intel_pmu_arch_lbr_disable)', () => {
  it('legacy: clears DEBUGCTL.LBR and FREEZE_LBRS_ON_PMI and keeps the other bits', () => {
    const hw = new LoggingCpu(SKYLAKE);
    put(hw, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_BTF | DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
    hw.takeWrites();
    intel_pmu_lbr_disable_all(hw);
    expect(hw.takeWrites()).toEqual([[MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_BTF]]);
  });

  it('Arch LBR: writes LBR_CTL 0 and nothing else', () => {
    const hw = new LoggingCpu(SAPPHIRE_RAPIDS);
    intel_pmu_lbr_enable_all(hw, filter(SAPPHIRE_RAPIDS, ANY), false);
    hw.takeWrites();
    intel_pmu_lbr_disable_all(hw);
    expect(hw.log).toEqual([['wr', MSR_ARCH_LBR_CTL, 0n]]);
    expect(rd(hw, MSR_IA32_DEBUGCTLMSR)).toBe(DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
  });
});

describe('wiping the stack (intel_pmu_lbr_reset)', () => {
  it('does nothing on a part without LBRs', () => {
    const hw = new LoggingCpu(NO_LBR);
    intel_pmu_lbr_reset(hw);
    expect(hw.log).toEqual([]);
  });

  it('legacy: zeroes FROM and TO (and INFO where the format has it), then LBR_SELECT where the part has one', () => {
    const snb = new LoggingCpu(FMT3);
    intel_pmu_lbr_reset(snb);
    const records = Array.from({ length: 16 }, (_, i) => [
      [MSR_LBR_NHM_FROM + i, 0n],
      [MSR_LBR_NHM_TO + i, 0n],
    ]).flat();
    expect(snb.takeWrites()).toEqual([...records, [MSR_LBR_SELECT, 0n]]);

    const core = new LoggingCpu(NO_SELECT);
    intel_pmu_lbr_reset(core);
    expect(core.takeWrites()).toEqual(
      [0, 1, 2, 3].flatMap((i) => [
        [MSR_LBR_CORE_FROM + i, 0n],
        [MSR_LBR_CORE_TO + i, 0n],
      ]),
    );

    const skl = new LoggingCpu(SKYLAKE);
    intel_pmu_lbr_reset(skl);
    const w = skl.takeWrites();
    expect(w.slice(0, 3)).toEqual([
      [MSR_LBR_NHM_FROM, 0n],
      [MSR_LBR_NHM_TO, 0n],
      [MSR_LBR_INFO_0, 0n],
    ]);
    expect(w).toHaveLength(3 * 32 + 1);
  });

  it('Arch LBR: one write of IA32_LBR_DEPTH with the depth perf uses', () => {
    const hw = new LoggingCpu(SAPPHIRE_RAPIDS);
    intel_pmu_lbr_reset(hw);
    expect(hw.takeWrites()).toEqual([[MSR_ARCH_LBR_DEPTH, 32n]]);
  });
});

/** A part without LBR_SELECT whose 4-deep ring is full: record i from UADDR + i to KADDR + i, TOS at `tos`. */
function fullRing(tos: bigint): Cpu {
  const hw = new Cpu(NO_SELECT);
  for (let i = 0; i < 4; i++) {
    put(hw, MSR_LBR_CORE_FROM + i, UADDR + BigInt(i));
    put(hw, MSR_LBR_CORE_TO + i, KADDR + BigInt(i));
  }
  put(hw, MSR_LBR_TOS, tos);
  return hw;
}

describe('reading the stack into a sample (intel_pmu_lbr_read_64, intel_pmu_arch_lbr_read)', () => {
  /** Records 1 (newest, TOS) and 0 hold these raw values; the rest of the ring is empty. */
  function twoRecords(p: Profile, newest: readonly [bigint, bigint], older: readonly [bigint, bigint]): Cpu {
    const hw = new Cpu(p);
    const g = p.legacyLbr!;
    put(hw, g.fromBase + 1, newest[0]);
    put(hw, g.toBase + 1, newest[1]);
    put(hw, g.fromBase, older[0]);
    put(hw, g.toBase, older[1]);
    put(hw, MSR_LBR_TOS, 1n);
    return hw;
  }

  it('LBR_FMT 3: FROM loses MISPRED (bit 63) and is sign-extended from bit 62; TO is the address', () => {
    const hw = twoRecords(FMT3, [MISPRED | UADDR, KADDR], [KADDR & ~MISPRED, UADDR]);
    expect(intel_pmu_lbr_read(hw)).toEqual([
      { from: UADDR, to: KADDR },
      { from: KADDR, to: UADDR },
    ]);
  });

  it('LBR_FMT 4: FROM loses MISPRED, IN_TX and ABORT (63:61) and is sign-extended from bit 60', () => {
    const kflags = (KADDR & (bit(61) - 1n)) | ABORT; // the address part of a kernel FROM, flags 63:62 clear
    const hw = twoRecords(FMT4, [MISPRED | IN_TX | ABORT | UADDR, UADDR], [kflags, KADDR]);
    expect(intel_pmu_lbr_read(hw)).toEqual([
      { from: UADDR, to: UADDR },
      { from: KADDR, to: KADDR },
    ]);
  });

  it('LBR_FMT 6: FROM as format 3, and TO loses the cycle count (63:48) and is sign-extended from bit 47', () => {
    const cycles = 0x1234n << 48n;
    const hw = twoRecords(
      FMT6,
      [MISPRED | UADDR, cycles | (KADDR & (bit(48) - 1n))],
      [KADDR & ~MISPRED, cycles | UADDR],
    );
    expect(intel_pmu_lbr_read(hw)).toEqual([
      { from: UADDR, to: KADDR },
      { from: KADDR, to: UADDR },
    ]);
  });

  it('LBR_FMT 5 (flags in LBR_INFO): FROM and TO as read', () => {
    const hw = twoRecords(SKYLAKE, [KADDR, UADDR], [UADDR, KADDR]);
    expect(intel_pmu_lbr_read(hw)).toEqual([
      { from: KADDR, to: UADDR },
      { from: UADDR, to: KADDR },
    ]);
  });

  it('branches recorded by the hardware read back as their addresses in every format', () => {
    for (const p of [FMT3, FMT4, FMT6, SKYLAKE, NO_SELECT]) {
      const hw = new Cpu(p);
      put(hw, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
      hw.step({
        cpl: 0,
        instructions: 2,
        cycles: 3,
        branches: [
          { kind: 'NEAR_REL_JMP', from: KADDR, to: KADDR + 0x40n, cpl: 0, mispredict: true },
          { kind: 'NEAR_REL_CALL', from: KADDR + 0x80n, to: UADDR, cpl: 0 },
        ],
      });
      expect(intel_pmu_lbr_read(hw), p.name).toEqual([
        { from: KADDR + 0x80n, to: UADDR },
        { from: KADDR, to: KADDR + 0x40n },
      ]);
    }
  });

  it('a full ring reads lbr_nr records, newest first from TOS', () => {
    const hw = fullRing(2n);
    expect(intel_pmu_lbr_read(hw).map((r) => r.from - UADDR)).toEqual([2n, 1n, 0n, 3n]);
  });

  it('stops at the first empty record on either LBR kind (decision H5), and reads nothing without LBRs', () => {
    const legacy = twoRecords(SKYLAKE, [UADDR, KADDR], [0n, 0n]);
    const arch = new Cpu(SAPPHIRE_RAPIDS);
    put(arch, MSR_ARCH_LBR_FROM_0, UADDR);
    put(arch, MSR_ARCH_LBR_TO_0, KADDR);
    for (const hw of [legacy, arch]) {
      const log = new DecisionLog();
      expect(recording(log, () => intel_pmu_lbr_read(hw))).toEqual([{ from: UADDR, to: KADDR }]);
      expect(log.has('H5'), hw.profile.name).toBe(true);
    }
    expect(intel_pmu_lbr_read(new LoggingCpu(NO_LBR))).toEqual([]);
  });
});

describe("a task's call stack across a context switch (intel_pmu_lbr_save, intel_pmu_lbr_restore)", () => {
  it('saves TOS, the valid records newest first, and LBR_SELECT; a full ring is lbr_nr records', () => {
    const hw = fullRing(1n);
    expect(intel_pmu_lbr_save(hw)).toEqual({
      format: 'legacy',
      tos: 1n,
      entries: [1, 0, 3, 2].map((i) => ({ from: UADDR + BigInt(i), to: KADDR + BigInt(i), info: 0n })),
      select: null,
    });
  });

  it('restores records, INFO where the format has it, TOS and LBR_SELECT onto another pCPU', () => {
    for (const p of [SKYLAKE, FMT3, NO_SELECT]) {
      const a = new Cpu(p);
      const g = p.legacyLbr!;
      put(a, g.fromBase + 3, UADDR);
      put(a, g.toBase + 3, KADDR);
      if (g.infoBase !== undefined) put(a, g.infoBase + 3, MISPRED | 0x42n);
      put(a, MSR_LBR_TOS, 3n);
      if (g.select) put(a, MSR_LBR_SELECT, LBR_KERNEL);
      const saved = intel_pmu_lbr_save(a);

      const b = new Cpu(p);
      put(b, g.fromBase, KADDR); // a stale record the restore must clear
      if (g.infoBase !== undefined) put(b, g.infoBase, 0x7n);
      intel_pmu_lbr_restore(b, saved);
      expect(intel_pmu_lbr_save(b), p.name).toEqual(saved);
      expect(rd(b, g.fromBase), p.name).toBe(0n);
      if (g.infoBase !== undefined) {
        expect(rd(b, g.infoBase + 3)).toBe(MISPRED | 0x42n);
        expect(rd(b, g.infoBase)).toBe(0n);
      }
    }
  });

  it('LBR_FMT 4 without TSX: restores a kernel FROM sign-extended into bits 62:61 (lbr_from_signext_quirk_wr)', () => {
    const a = new Cpu(FMT4_NO_TSX);
    put(a, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
    a.step({ cpl: 0, instructions: 1, branches: [{ kind: 'NEAR_REL_CALL', from: KADDR, to: KADDR + 0x40n }] });
    const recorded = rd(a, MSR_LBR_NHM_FROM + 1);
    expect(recorded).toBe(KADDR & (bit(61) - 1n)); // as the hardware records it: 62:61 clear
    const b = new Cpu(FMT4_NO_TSX);
    intel_pmu_lbr_restore(b, intel_pmu_lbr_save(a));
    expect(rd(b, MSR_LBR_NHM_FROM + 1)).toBe(recorded | IN_TX | ABORT);
    expect(intel_pmu_lbr_read(b)).toEqual([{ from: KADDR, to: KADDR + 0x40n }]);
  });

  it('a faulting WRMSR or XRSTORS is a model error naming the access, never ignored', () => {
    const skl = new Cpu(SKYLAKE);
    const bad = { format: 'legacy', tos: 32n, entries: [], select: null } as const; // TOS beyond the 32 records
    expect(() => intel_pmu_lbr_restore(skl, bad)).toThrow(ModelError);
    expect(() => intel_pmu_lbr_restore(skl, bad)).toThrow(/^host perf: WRMSR MSR_LASTBRANCH_TOS <- 0x20 faulted: /);

    const spr = new Cpu(SAPPHIRE_RAPIDS);
    const s = intel_pmu_lbr_save(spr);
    if (s.format !== 'arch') throw new Error('Arch LBR saves through XSAVES');
    const area: ArchLbrXsave = { ...s.area, lbrCtl: bit(40) }; // a reserved LBR_CTL bit
    expect(() => intel_pmu_lbr_restore(spr, { format: 'arch', area })).toThrow(
      /^host perf: XRSTORS of the LBR state faulted: /,
    );
  });
});
