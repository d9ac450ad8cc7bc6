/**
 * FREEZE_LBRS_ON_PMI (DEBUGCTL[11]) from pmu-semantics.md §4.4, §4.5, §3.6 and §7 item 14, with
 * the model's choices D6, D7, D36 and D37.
 */
import { describe, expect, it } from 'vitest';
import {
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
  MSR_IA32_PERFCTR0,
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
} from '../../../model/hw/msr/counters.js';
import { type Branch, type WorkUnit } from '../../../model/hw/work.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { DecisionLog, recording } from '../../../model/hw/relied.js';
import {
  MSR_IA32_DEBUGCTLMSR,
  DEBUGCTLMSR_LBR,
  DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
} from '../../../model/hw/msr/debugctl.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
  GLOBAL_STATUS_LBRS_FROZEN,
} from '../../../model/hw/msr/global.js';
import {
  ARCH_LBR_LBREN,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
} from '../../../model/hw/msr/lbr_arch.js';
import { MSR_LBR_TOS, MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO } from '../../../model/hw/msr/lbr_legacy.js';
import { defineProfile, leaf0aEax, leaf0aEdx, type Profile, perfCaps } from '../../../model/hw/profile.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { X2APIC_LVTPC, APIC_DM_NMI } from '../../../model/hw/msr/apic.js';
import { ARCH_CAPTURE_ALL, part, rd, USER, wr } from './parts.js';

/** EN | INT | OS | USR, branch instructions retired (0xC4). */
const BRANCHES_PMI =
  ARCH_PERFMON_EVENTSEL_ENABLE |
  ARCH_PERFMON_EVENTSEL_INT |
  ARCH_PERFMON_EVENTSEL_OS |
  ARCH_PERFMON_EVENTSEL_USR |
  0xc4n;
const BRANCHES_NO_PMI = BRANCHES_PMI & ~ARCH_PERFMON_EVENTSEL_INT;

function legacyPart(version: number): Profile {
  return part({
    v: version,
    name: `legacy-v${version}`,
    model: 0x2a,
    caps: perfCaps({ lbrFmt: 3 }),
    legacyLbr: { depth: 16, fromBase: MSR_LBR_NHM_FROM, toBase: MSR_LBR_NHM_TO, select: true, callStack: false },
  });
}
const V1 = legacyPart(1);
const V2 = legacyPart(2);
const V3 = legacyPart(3);

/** One unit per branch; branch i jumps from USER + 0x10·i. */
function unit(i: number, n = 1): WorkUnit {
  const branches: Branch[] = Array.from({ length: n }, (_, k) => ({
    kind: 'NEAR_REL_JMP',
    from: USER + BigInt(i * 0x100 + k * 0x10),
    to: USER + 0x8000n,
  }));
  return { cpl: 3, instructions: n, branches };
}
const fromOf = (i: number, k = 0) => USER + BigInt(i * 0x100 + k * 0x10);

interface Setup {
  readonly freeze?: boolean;
  readonly pmi?: boolean;
  readonly unmask?: boolean;
  /** Branches until PMC0 overflows. */
  readonly k: number;
}

/** PMC0 counts branches and overflows after `k` of them; LBR recording on. */
function armed(p: Profile, s: Setup): Cpu {
  const c = new Cpu(p);
  if (p.archLbr !== undefined) wr(c, MSR_ARCH_LBR_CTL, ARCH_CAPTURE_ALL);
  wr(
    c,
    MSR_IA32_DEBUGCTLMSR,
    (p.archLbr === undefined ? DEBUGCTLMSR_LBR : 0n) | (s.freeze === false ? 0n : DEBUGCTLMSR_FREEZE_LBRS_ON_PMI),
  );
  wr(c, MSR_P6_EVNTSEL0, s.pmi === false ? BRANCHES_NO_PMI : BRANCHES_PMI);
  if (p.version >= 2) wr(c, MSR_CORE_PERF_GLOBAL_CTRL, 1n);
  if (p.fwWrite) wr(c, MSR_IA32_PMC0, p.gpMask + 1n - BigInt(s.k));
  else wr(c, MSR_IA32_PERFCTR0, (1n << 32n) - BigInt(s.k)); // legacy alias: sign-extended -k (§2.2)
  if (s.unmask !== false) wr(c, X2APIC_LVTPC, APIC_DM_NMI);
  return c;
}

/** Legacy records newest first, non-zero only. */
function legacyFroms(c: Cpu): bigint[] {
  const n = c.profile.legacyLbr!.depth;
  const tos = Number(rd(c, MSR_LBR_TOS));
  const out: bigint[] = [];
  for (let k = 0; k < n; k++) {
    const v = rd(c, MSR_LBR_NHM_FROM + ((((tos - k) % n) + n) % n));
    if (v !== 0n) out.push(v & ((1n << 63n) - 1n)); // strip the format-3 MISPRED flag
  }
  return out;
}

function archFroms(c: Cpu): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < Number(rd(c, MSR_ARCH_LBR_DEPTH)); i++) {
    const v = rd(c, MSR_ARCH_LBR_FROM_0 + i);
    if (v !== 0n) out.push(v);
  }
  return out;
}

describe('legacy freeze on v2/v3: the PMI clears DEBUGCTL.LBR (§4.4, §4.5, §7 item 14)', () => {
  for (const p of [V2, V3]) {
    it(`${p.name}: PMI clears DEBUGCTL.LBR, keeps FREEZE_LBRS_ON_PMI, and recording stops`, () => {
      const c = armed(p, { k: 3 });
      expect(c.step(unit(0))).toBeNull();
      expect(c.step(unit(1))).toBeNull();
      expect(c.step(unit(2))).toEqual({ vector: 0, nmi: true });
      expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS) & 1n).toBe(1n);
      expect(rd(c, MSR_IA32_DEBUGCTLMSR)).toBe(DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
      expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS) & GLOBAL_STATUS_LBRS_FROZEN).toBe(0n);
      c.step(unit(3));
      c.step(unit(4));
      expect(legacyFroms(c)).toEqual([fromOf(2), fromOf(1), fromOf(0)]);
    });

    it(`${p.name}: recording resumes when software sets DEBUGCTL.LBR again`, () => {
      const c = armed(p, { k: 1 });
      c.step(unit(0));
      expect(rd(c, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_LBR).toBe(0n);
      c.step(unit(1));
      wr(c, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
      c.step(unit(2));
      expect(legacyFroms(c)).toEqual([fromOf(2), fromOf(0)]);
    });
  }

  it('v1 has no Freeze_LBRs_On_PMI: DEBUGCTL bit 11 #GPs and the LBRs record on past a PMI (D37)', () => {
    const c = new Cpu(V1);
    const log = new DecisionLog();
    const r = recording(log, () => c.wrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI));
    expect(r.ok).toBe(false);
    expect(log.ids).toEqual(['D37']);
    expect(rd(c, MSR_IA32_DEBUGCTLMSR)).toBe(0n);
  });
});

describe('v4 streamlined freeze on SKYLAKE: LBR_FRZ (GLOBAL_STATUS[58]) (§2.6, §4.5, §7 item 14)', () => {
  it('sets LBR_FRZ, leaves DEBUGCTL.LBR = 1, and records nothing while frozen', () => {
    const c = armed(SKYLAKE, { k: 2 });
    c.step(unit(0));
    expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(0n);
    expect(c.step(unit(1))).toEqual({ vector: 0, nmi: true });
    expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(GLOBAL_STATUS_LBRS_FROZEN | 1n);
    expect(rd(c, MSR_IA32_DEBUGCTLMSR)).toBe(DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
    c.step(unit(2));
    c.step(unit(3));
    expect(legacyFroms(c)).toEqual([fromOf(1), fromOf(0)]);
    expect(rd(c, MSR_LBR_TOS)).toBe(2n);
  });

  it('setting DEBUGCTL.LBR again does not unfreeze; writing STATUS_RESET bit 58 does', () => {
    const c = armed(SKYLAKE, { k: 1 });
    c.step(unit(0));
    wr(c, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
    c.step(unit(1));
    expect(legacyFroms(c)).toEqual([fromOf(0)]);
    wr(c, MSR_CORE_PERF_GLOBAL_OVF_CTRL, 1n); // clears only the counter's bit
    c.step(unit(2));
    expect(legacyFroms(c)).toEqual([fromOf(0)]);
    wr(c, MSR_CORE_PERF_GLOBAL_OVF_CTRL, GLOBAL_STATUS_LBRS_FROZEN);
    expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS) & GLOBAL_STATUS_LBRS_FROZEN).toBe(0n);
    c.step(unit(3));
    expect(legacyFroms(c)).toEqual([fromOf(3), fromOf(0)]);
  });

  it('the LBRs hold exactly the branches up to and including the overflowing unit (D36)', () => {
    const c = armed(SKYLAKE, { k: 3 });
    c.step(unit(0, 1));
    expect(c.step(unit(1, 4))).not.toBeNull(); // overflow at the 3rd branch; all 4 of the unit are recorded
    c.step(unit(2, 2));
    expect(legacyFroms(c)).toEqual([fromOf(1, 3), fromOf(1, 2), fromOf(1, 1), fromOf(1, 0), fromOf(0)]);
  });
});

describe('LBR_FRZ set through STATUS_SET freezes like a hardware freeze (§2.8; D15)', () => {
  for (const p of [SKYLAKE, SAPPHIRE_RAPIDS]) {
    it(`${p.name}: recording stops while bit 58 is set and resumes when STATUS_RESET clears it`, () => {
      const c = armed(p, { k: 1000 });
      c.step(unit(0));
      wr(c, MSR_CORE_PERF_GLOBAL_STATUS_SET, GLOBAL_STATUS_LBRS_FROZEN);
      expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(GLOBAL_STATUS_LBRS_FROZEN);
      c.step(unit(1));
      wr(c, MSR_CORE_PERF_GLOBAL_OVF_CTRL, GLOBAL_STATUS_LBRS_FROZEN);
      c.step(unit(2));
      const froms = p.archLbr === undefined ? legacyFroms(c) : archFroms(c);
      expect(froms).toEqual([fromOf(2), fromOf(0)]);
    });
  }
});

describe('Arch LBR freeze on SAPPHIRE_RAPIDS (§3.6)', () => {
  it('sets LBR_FRZ, LBR_CTL.LBREn stays 1, and records nothing until STATUS_RESET bit 58', () => {
    const c = armed(SAPPHIRE_RAPIDS, { k: 2 });
    c.step(unit(0));
    expect(c.step(unit(1))).not.toBeNull();
    expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS) & GLOBAL_STATUS_LBRS_FROZEN).toBe(GLOBAL_STATUS_LBRS_FROZEN);
    expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(ARCH_CAPTURE_ALL);
    expect(rd(c, MSR_IA32_DEBUGCTLMSR)).toBe(DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
    c.step(unit(2));
    expect(archFroms(c)).toEqual([fromOf(1), fromOf(0)]);
    wr(c, MSR_CORE_PERF_GLOBAL_OVF_CTRL, GLOBAL_STATUS_LBRS_FROZEN);
    c.step(unit(3));
    expect(archFroms(c)).toEqual([fromOf(3), fromOf(1), fromOf(0)]);
  });

  it('holds exactly the branches up to and including the overflowing unit (D36)', () => {
    const c = armed(SAPPHIRE_RAPIDS, { k: 2 });
    c.step(unit(0, 3)); // overflow inside the first unit
    c.step(unit(1, 3));
    expect(archFroms(c)).toEqual([fromOf(0, 2), fromOf(0, 1), fromOf(0, 0)]);
  });
});

describe('Arch LBR below PMU version 4 (a VMM-made part, D41): the PMI clears LBR_CTL.LBREn', () => {
  it('clears LBREn, sets no LBR_FRZ, and records nothing until LBREn is set again', () => {
    const v2Arch = defineProfile({
      ...SAPPHIRE_RAPIDS.spec,
      name: 'v2-arch-lbr',
      leaf0a: { eax: leaf0aEax(2, 4, 48, 8), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
      perfCapabilities: perfCaps({ lbrFmt: 0x3f, fwWrite: true }),
      topdownL2: false,
    });
    const c = armed(v2Arch, { k: 2 });
    c.step(unit(0));
    expect(c.step(unit(1))).not.toBeNull();
    expect(rd(c, MSR_ARCH_LBR_CTL)).toBe(ARCH_CAPTURE_ALL & ~ARCH_LBR_LBREN);
    expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS) & GLOBAL_STATUS_LBRS_FROZEN).toBe(0n);
    c.step(unit(2));
    expect(archFroms(c)).toEqual([fromOf(1), fromOf(0)]);
    wr(c, MSR_ARCH_LBR_CTL, ARCH_CAPTURE_ALL);
    c.step(unit(3));
    expect(archFroms(c)).toEqual([fromOf(3), fromOf(1), fromOf(0)]);
  });
});

describe('no freeze without a PMI (D6) or without FREEZE_LBRS_ON_PMI', () => {
  for (const p of [V2, SKYLAKE, SAPPHIRE_RAPIDS]) {
    it(`${p.name}: overflow with INT = 0 sets the status bit but freezes nothing`, () => {
      const c = armed(p, { k: 1, pmi: false });
      expect(c.step(unit(0))).toBeNull();
      expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(1n);
      expect(rd(c, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI).toBe(DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
      if (p.archLbr === undefined) expect(rd(c, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_LBR).toBe(DEBUGCTLMSR_LBR);
      c.step(unit(1));
      const froms = p.archLbr === undefined ? legacyFroms(c) : archFroms(c);
      expect(froms).toEqual([fromOf(1), fromOf(0)]);
    });

    it(`${p.name}: a PMI with FREEZE_LBRS_ON_PMI = 0 freezes nothing`, () => {
      const c = armed(p, { k: 1, freeze: false });
      expect(c.step(unit(0))).not.toBeNull();
      expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS) & GLOBAL_STATUS_LBRS_FROZEN).toBe(0n);
      if (p.archLbr === undefined) expect(rd(c, MSR_IA32_DEBUGCTLMSR)).toBe(DEBUGCTLMSR_LBR);
      c.step(unit(1));
      const froms = p.archLbr === undefined ? legacyFroms(c) : archFroms(c);
      expect(froms).toEqual([fromOf(1), fromOf(0)]);
    });
  }
});

describe('the freeze happens even when LVTPC is masked (§4.4: freeze at PMI generation, LAPIC drops it)', () => {
  it('v2: no PMI delivered, but DEBUGCTL.LBR is cleared', () => {
    const c = armed(V2, { k: 1, unmask: false });
    expect(rd(c, X2APIC_LVTPC) & (1n << 16n)).toBe(1n << 16n);
    expect(c.step(unit(0))).toBeNull();
    expect(rd(c, MSR_IA32_DEBUGCTLMSR)).toBe(DEBUGCTLMSR_FREEZE_LBRS_ON_PMI);
    c.step(unit(1));
    expect(legacyFroms(c)).toEqual([fromOf(0)]);
  });

  for (const p of [SKYLAKE, SAPPHIRE_RAPIDS]) {
    it(`${p.name}: no PMI delivered, but LBR_FRZ is set and recording stops`, () => {
      const c = armed(p, { k: 1, unmask: false });
      expect(c.step(unit(0))).toBeNull();
      expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS) & GLOBAL_STATUS_LBRS_FROZEN).toBe(GLOBAL_STATUS_LBRS_FROZEN);
      c.step(unit(1));
      const froms = p.archLbr === undefined ? legacyFroms(c) : archFroms(c);
      expect(froms).toEqual([fromOf(0)]);
    });
  }

  it('after a delivered PMI LVTPC is masked, yet a second PMI-enabled overflow still freezes', () => {
    const c = armed(SKYLAKE, { k: 1 });
    expect(c.step(unit(0))).not.toBeNull();
    expect(rd(c, X2APIC_LVTPC) & (1n << 16n)).toBe(1n << 16n);
    wr(c, MSR_CORE_PERF_GLOBAL_OVF_CTRL, GLOBAL_STATUS_LBRS_FROZEN | 1n);
    wr(c, MSR_IA32_PMC0, SKYLAKE.gpMask); // overflows on the next branch
    expect(c.step(unit(1))).toBeNull();
    expect(rd(c, MSR_CORE_PERF_GLOBAL_STATUS)).toBe(GLOBAL_STATUS_LBRS_FROZEN | 1n);
    c.step(unit(2));
    expect(legacyFroms(c)).toEqual([fromOf(1), fromOf(0)]);
  });
});
