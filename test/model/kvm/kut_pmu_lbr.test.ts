/**
 * kvm-unit-tests x86/pmu_lbr.c (kvm-vpmu.md §3.2, §2.13) against the emulated vPMU on Skylake
 * pCPUs: guest PERF_CAPABILITIES.LBR_FMT is the host's and the guest family/model is the host's
 * ("-cpu host,migratable=no"), so KVM enables guest LBR with the host's depth and MSR bases.
 * Beyond kut's two reports, the guest LBR event's life is checked where upstream defines it:
 * created on the first LBR MSR access or DEBUGCTL.LBR=1, LBR MSRs passed through while ACTIVE.
 */
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { branchy, createVcpu, guestBranches, isGp, kvmSupportedPerfCaps, val, type World } from './util.js';
import { DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../../../model/hw/msr/debugctl.js';
import {
  MSR_IA32_PERF_CAPABILITIES,
  PERF_CAP_FW_WRITES,
  PERF_CAP_LBR_FMT,
} from '../../../model/hw/msr/capabilities.js';
import {
  MSR_LBR_INFO_0,
  MSR_LBR_NHM_FROM,
  MSR_LBR_NHM_TO,
  MSR_LBR_SELECT,
  MSR_LBR_TOS,
  MSR_LBR_CORE_FROM,
} from '../../../model/hw/msr/lbr_legacy.js';

const DEPTH = SKYLAKE.legacyLbr!.depth;
const HOST_CAP = kvmSupportedPerfCaps(SKYLAKE);

function lbrGuest(): World {
  return createVcpu({ profile: SKYLAKE, perfCaps: HOST_CAP });
}

const wr = (w: World, msr: number, v: bigint) => val(w.vcpu.guestWrmsr(msr, v), `WRMSR 0x${msr.toString(16)}`);
const rd = (w: World, msr: number) => val(w.vcpu.guestRdmsr(msr), `RDMSR 0x${msr.toString(16)}`);

describe('kvm-unit-tests pmu_lbr (Skylake host, LBR_FMT 5, depth 32)', () => {
  it('the guest sees PDCM, LBR_FMT = host format and a vPMU', () => {
    const w = lbrGuest();
    expect(rd(w, MSR_IA32_PERF_CAPABILITIES) & PERF_CAP_LBR_FMT).toBe(SKYLAKE.perfCapabilities & PERF_CAP_LBR_FMT);
    expect(w.vcpu.lbrEnabled).toBe(true);
  });

  it('"The number of guest LBR entries is good": FROM/TO/INFO exist for the host depth and #GP beyond', () => {
    const w = lbrGuest();
    expect(isGp(w.vcpu.guestWrmsr(MSR_LBR_CORE_FROM, 0n)), 'Core-style LBR_FROM base #GPs, so kut picks NHM').toBe(
      true,
    );
    wr(w, MSR_LBR_SELECT, 0n);
    wr(w, MSR_LBR_TOS, 0n);
    let max = 0;
    for (; max < 64; max++) {
      if (isGp(w.vcpu.guestWrmsr(MSR_LBR_NHM_FROM + max, 0n))) break;
      if (isGp(w.vcpu.guestWrmsr(MSR_LBR_NHM_TO + max, 0n))) break;
    }
    expect(max).toBe(DEPTH);
    for (const base of [MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO, MSR_LBR_INFO_0]) {
      expect(isGp(w.vcpu.guestRdmsr(base + DEPTH - 1)), `0x${(base + DEPTH - 1).toString(16)} exists`).toBe(false);
      expect(isGp(w.vcpu.guestRdmsr(base + DEPTH)), `0x${(base + DEPTH).toString(16)} #GPs`).toBe(true);
      expect(isGp(w.vcpu.guestWrmsr(base + DEPTH, 0n)), `0x${(base + DEPTH).toString(16)} write #GPs`).toBe(true);
    }
  });

  it('"The guest LBR MSR_IA32_DEBUGCTLMSR is recorded": after a branchy run every FROM/TO is non-zero and holds guest branches', () => {
    const w = lbrGuest();
    wr(w, MSR_LBR_SELECT, 0n);
    wr(w, MSR_LBR_TOS, 0n);
    for (let i = 0; i < DEPTH; i++) {
      wr(w, MSR_LBR_NHM_FROM + i, 0n);
      wr(w, MSR_LBR_NHM_TO + i, 0n);
    }
    const brs = guestBranches(DEPTH + 8);
    wr(w, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
    w.vcpu.guestRun([branchy(brs.slice(0, 20)), branchy(brs.slice(20))]);
    wr(w, MSR_IA32_DEBUGCTLMSR, 0n);

    const froms = new Set<bigint>();
    for (let i = 0; i < DEPTH; i++) {
      const from = rd(w, MSR_LBR_NHM_FROM + i);
      const to = rd(w, MSR_LBR_NHM_TO + i);
      expect(from, `FROM ${i}`).not.toBe(0n);
      expect(to, `TO ${i}`).not.toBe(0n);
      froms.add(from);
    }
    // Exactly the newest DEPTH guest branches: nothing from KVM's exit handler or the host.
    expect(froms).toEqual(new Set(brs.slice(-DEPTH).map((b) => b.from)));
    const tos = Number(rd(w, MSR_LBR_TOS));
    expect(rd(w, MSR_LBR_NHM_FROM + tos), 'TOS points at the newest record').toBe(brs[brs.length - 1]!.from);
  });

  it('the guest LBR event is created on the first LBR MSR access', () => {
    const w = lbrGuest();
    expect(w.vcpu.s.lbr.event, 'no event before any LBR access').toBeNull();
    w.vcpu.guestRun([branchy(guestBranches(4))]);
    expect(w.vcpu.s.lbr.event).toBeNull();
    rd(w, MSR_LBR_TOS);
    const ev = w.vcpu.s.lbr.event;
    expect(ev, 'created by the RDMSR').not.toBeNull();
    expect(ev!.state).toBe('ACTIVE');
    expect(w.host.lbrOwner(w.vcpu.cpu)).toBe(ev);
  });

  it('the guest LBR event is created by DEBUGCTL.LBR = 1, and not by DEBUGCTL writes without LBR', () => {
    const w = lbrGuest();
    wr(w, MSR_IA32_DEBUGCTLMSR, 0n);
    expect(w.vcpu.s.lbr.event).toBeNull();
    wr(w, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR);
    expect(w.vcpu.s.lbr.event?.state).toBe('ACTIVE');
    expect(rd(w, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_LBR).toBe(DEBUGCTLMSR_LBR);
  });

  it('while the event is ACTIVE the LBR MSRs are passed through, and guest accesses reach the hardware', () => {
    const w = lbrGuest();
    expect(w.vcpu.s.lbr.msr_passthrough).toBe(false);
    expect(w.vcpu.s.passthrough.has(MSR_LBR_NHM_FROM)).toBe(false);
    wr(w, MSR_LBR_NHM_FROM + 3, 0x7123_4000n); // creates the event; passthrough from the next entry
    expect(w.vcpu.s.lbr.msr_passthrough).toBe(true);
    for (const m of [MSR_LBR_SELECT, MSR_LBR_TOS, MSR_LBR_NHM_FROM, MSR_LBR_NHM_TO + DEPTH - 1, MSR_LBR_INFO_0 + 5])
      expect(w.vcpu.s.passthrough.has(m), `0x${m.toString(16)} passed through`).toBe(true);
    expect(w.vcpu.s.passthrough.has(MSR_IA32_DEBUGCTLMSR), 'DEBUGCTL stays intercepted').toBe(false);
    const hw = w.host.pcpu(w.vcpu.cpu).hw;
    expect(val(hw.rdmsr(MSR_LBR_NHM_FROM + 3))).toBe(0x7123_4000n);
    wr(w, MSR_LBR_NHM_TO + 3, 0x7123_5000n); // passed through
    expect(val(hw.rdmsr(MSR_LBR_NHM_TO + 3))).toBe(0x7123_5000n);
    expect(rd(w, MSR_LBR_NHM_TO + 3)).toBe(0x7123_5000n);
  });

  it('without LBR_FMT there are no LBR MSRs and DEBUGCTL.LBR is dropped, not #GP', () => {
    const w = createVcpu({ profile: SKYLAKE, perfCaps: PERF_CAP_FW_WRITES });
    expect(isGp(w.vcpu.guestRdmsr(MSR_LBR_NHM_FROM))).toBe(true);
    expect(isGp(w.vcpu.guestRdmsr(MSR_LBR_TOS))).toBe(true);
    expect(isGp(w.vcpu.guestWrmsr(MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR)), 'unsupported LBR bit: dropped').toBe(false);
    expect(rd(w, MSR_IA32_DEBUGCTLMSR) & DEBUGCTLMSR_LBR).toBe(0n);
    expect(w.vcpu.s.lbr.event).toBeNull();
  });
});
