/**
 * Shared pieces of the mediated vPMU tests: a vCPU created the way a VMM does it with
 * enable_mediated_pmu (CPUID from the host, PERF_CAPABILITIES limited to what KVM supports), and a
 * recorder of what KVM and perf do to a pCPU's PMU registers.
 */
import fc from 'fast-check';
import type { Access } from '../../../../model/hw/access.js';
import type { Cpu } from '../../../../model/hw/cpu.js';
import { leaf0aEax, leaf0aEdx, type Profile } from '../../../../model/hw/profile.js';
import { SKYLAKE } from '../../../../model/hw/profiles.js';
import { HostKernel } from '../../../../model/host/perf.js';
import { type MediatedVcpu, newMediatedVcpu } from '../../../../model/kvm/mediated/vcpu.js';
import type { GuestCpuid } from '../../../../model/kvm/types.js';
import type { VcpuFactory } from '../../../../scenarios/world.js';
import { PERF_CAP_FW_WRITES, MSR_IA32_PERF_CAPABILITIES } from '../../../../model/hw/msr/capabilities.js';

export interface Setup {
  readonly profile?: Profile;
  readonly version?: number;
  readonly nrGp?: number;
  readonly nrFixed?: number;
  readonly perfCaps?: bigint;
  readonly host?: HostKernel;
}

export interface MWorld {
  readonly host: HostKernel;
  readonly vcpu: MediatedVcpu;
  readonly profile: Profile;
}

export function guestCpuid(p: Profile, o: Setup = {}): GuestCpuid {
  return {
    family: p.family,
    model: p.model,
    leaf0a: {
      eax: leaf0aEax(o.version ?? 2, o.nrGp ?? Math.min(p.nGP, 8), p.gpWidth, p.evLen),
      ebx: 0,
      ecx: 0,
      edx: leaf0aEdx(o.nrFixed ?? Math.min(p.nFixedContig, 3), p.fixedWidth),
    },
    pdcm: true,
  };
}

/** KVM_CREATE_VCPU, KVM_SET_MSRS(PERF_CAPABILITIES), KVM_SET_CPUID2 on a host of two pCPUs. */
export function createMediated(o: Setup = {}): MWorld {
  const profile = o.profile ?? SKYLAKE;
  const host = o.host ?? new HostKernel({ profile, cpus: 2 });
  const vcpu = newMediatedVcpu(host, { cpu: 0, cpuid: guestCpuid(profile, o) });
  const r = vcpu.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, o.perfCaps ?? PERF_CAP_FW_WRITES);
  if (!r.ok) throw new Error(r.error);
  return { host, vcpu, profile };
}

export function val(a: Access, what = 'access'): bigint {
  if (!a.ok) throw new Error(`${what} #GP: ${a.gp}`);
  return a.value;
}

export type HwOp = { readonly op: 'wrmsr' | 'rdmsr' | 'rdpmc'; readonly target: number; readonly value?: bigint };

/** Records every RDMSR/WRMSR/RDPMC made on `hw` while `f` runs. */
export function recordHw(hw: Cpu, f: () => void): HwOp[] {
  const log: HwOp[] = [];
  const wrmsr = hw.wrmsr.bind(hw);
  const rdmsr = hw.rdmsr.bind(hw);
  const rdpmc = hw.rdpmc.bind(hw);
  hw.wrmsr = (m: number, v: bigint) => {
    log.push({ op: 'wrmsr', target: m, value: v });
    return wrmsr(m, v);
  };
  hw.rdmsr = (m: number) => {
    log.push({ op: 'rdmsr', target: m });
    return rdmsr(m);
  };
  hw.rdpmc = (e: number, cpl?: number) => {
    log.push({ op: 'rdpmc', target: e });
    return rdpmc(e, cpl);
  };
  try {
    f();
  } finally {
    delete (hw as Partial<Cpu>).wrmsr;
    delete (hw as Partial<Cpu>).rdmsr;
    delete (hw as Partial<Cpu>).rdpmc;
  }
  return log;
}

/**
 * The mediated design as a VMM drives it: userspace asks only for PERF_CAPABILITIES bits KVM
 * reports as supported (KVM_GET_MSRS on the feature MSR gives FW_WRITES alone, no LBR format), so
 * a generated guest configuration asking for more is not one the VMM could create: a precondition.
 */
export const mediatedAsVmm: VcpuFactory = (h, o) => {
  const v = newMediatedVcpu(h, o);
  const set = v.hostSetMsr.bind(v);
  v.hostSetMsr = (m, value) => {
    if (m === MSR_IA32_PERF_CAPABILITIES) fc.pre((value & ~PERF_CAP_FW_WRITES) === 0n);
    return set(m, value);
  };
  return v;
};
