/**
 * The world one program runs in: a host of simulated pCPUs running a vPMU design (the system
 * under test), and beside it, for each vCPU, an ideal bare-metal CPU of the guest's enumeration
 * (the oracle). Every guest command runs on both; the world records both sides' observations.
 */

import type { Access } from '../model/hw/access.js';
import { Cpu, type PmiDelivery } from '../model/hw/cpu.js';
import { defineProfile, type Profile } from '../model/hw/profile.js';
import type { WorkUnit } from '../model/hw/work.js';
import { HostKernel } from '../model/host/perf.js';
import type { PerfEvent, PerfEventAttr } from '../model/host/types.js';
import type { GuestCpuid, GuestPmi, VpmuVcpu } from '../model/kvm/types.js';
import { restoreVcpu, saveVcpu } from './restore.js';

export const MSR_IA32_PERF_CAPABILITIES = 0x345;
/** Vector the SUT reports for an NMI-mode PMI (decision K8); the oracle is normalised to it (W2). */
export const NMI_VECTOR = 2;

/** How a design creates a vCPU on a host. */
export type VcpuFactory = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) => VpmuVcpu;

/** How a world builds its host kernel; a ported host-side bug substitutes its patched perf. */
export type HostKernelFactory = (opts: { profile: Profile; cpus: number }) => HostKernel;

export interface GuestConfig {
  readonly cpuid: GuestCpuid;
  /** What userspace writes to PERF_CAPABILITIES before the first run (ignored without PDCM). */
  readonly perfCapabilities: bigint;
}

export interface WorldConfig {
  readonly host: Profile;
  readonly cpus: number;
  readonly guests: readonly GuestConfig[];
  readonly design: VcpuFactory;
  /** Compare each observation with bare metal as it is made (default); off to record only. */
  readonly compare?: boolean;
  /** The host kernel (default: upstream's perf); a ported host-side bug patches it here. */
  readonly hostKernel?: HostKernelFactory | undefined;
}

export type ObservationKind = 'rdmsr' | 'wrmsr' | 'rdpmc' | 'pmi' | 'run' | 'vmm';

/** One observation: what the guest saw on the system under test and on bare metal. */
export interface Observation {
  readonly step: number;
  readonly vcpu: number;
  readonly kind: ObservationKind;
  /** The MSR (rdmsr/wrmsr), the ECX (rdpmc), or null. */
  readonly target: number | null;
  /** The value written (wrmsr), else null. */
  readonly value: bigint | null;
  readonly what: string;
  readonly sut: string;
  readonly oracle: string;
}

export class SetupError extends Error {
  override readonly name = 'SetupError';
}

const oracleProfiles = new WeakMap<GuestConfig, Map<Profile, Profile>>();

/** The bare-metal CPU a guest of this CPUID and PERF_CAPABILITIES would be (one per config and host). */
export function oracleProfile(host: Profile, g: GuestConfig): Profile {
  let byHost = oracleProfiles.get(g);
  if (byHost === undefined) oracleProfiles.set(g, (byHost = new Map<Profile, Profile>()));
  const cached = byHost.get(host);
  if (cached !== undefined) return cached;
  const p = makeOracleProfile(host, g);
  byHost.set(host, p);
  return p;
}

function makeOracleProfile(host: Profile, g: GuestConfig): Profile {
  const caps = g.cpuid.pdcm ? g.perfCapabilities : 0n;
  const fmt = Number(caps & 0x3fn);
  return defineProfile({
    name: 'guest',
    family: g.cpuid.family,
    model: g.cpuid.model,
    leaf0a: g.cpuid.leaf0a,
    pdcm: g.cpuid.pdcm,
    perfCapabilities: caps,
    // The LBR geometry is model-specific: a guest with the host's format and FMS has the host's.
    ...(fmt >= 1 && fmt <= 7 && host.legacyLbr !== undefined ? { legacyLbr: host.legacyLbr } : {}),
    ...(g.cpuid.tsx === true ? { tsx: true } : {}),
  });
}

const showAccess = (a: Access) => (a.ok ? `0x${a.value.toString(16)}` : '#GP');
const showPmis = (l: readonly { afterUnit: number; vector: number }[]) =>
  l.length === 0 ? 'no PMI' : l.map((p) => `PMI(vector ${p.vector}) after unit ${p.afterUnit}`).join(', ');

export class World {
  readonly host: HostKernel;
  readonly vcpus: VpmuVcpu[] = [];
  readonly oracles: Cpu[] = [];
  readonly observations: Observation[] = [];
  private step = 0;

  constructor(readonly config: WorldConfig) {
    const make = config.hostKernel ?? ((o: { profile: Profile; cpus: number }) => new HostKernel(o));
    this.host = make({ profile: config.host, cpus: config.cpus });
    config.guests.forEach((g, i) => {
      const v = config.design(this.host, { cpu: i % config.cpus, cpuid: g.cpuid });
      if (g.cpuid.pdcm) {
        const r = v.hostSetMsr(MSR_IA32_PERF_CAPABILITIES, g.perfCapabilities);
        if (!r.ok) throw new SetupError(`vCPU ${i}: KVM_SET_MSRS PERF_CAPABILITIES=0x${g.perfCapabilities.toString(16)}: ${r.error}`);
      }
      this.vcpus.push(v);
      this.oracles.push(new Cpu(oracleProfile(config.host, g)));
    });
  }

  private record(
    vcpu: number,
    kind: ObservationKind,
    target: number | null,
    value: bigint | null,
    what: string,
    sut: string,
    oracle: string,
  ): Observation {
    const o = { step: this.step, vcpu, kind, target, value, what, sut, oracle };
    this.observations.push(o);
    return o;
  }

  private index(v: number): number {
    return ((v % this.vcpus.length) + this.vcpus.length) % this.vcpus.length;
  }

  /**
   * The oracle executes an MSR instruction: its effect, then (if it did not fault) its
   * retirement as one instruction at `cpl`, which may overflow and deliver a PMI (decision W1).
   */
  private oracleInstruction(o: Cpu, cpl: number, effect: () => Access): { r: Access; pmis: GuestPmi[] } {
    const r = effect();
    const pmis: GuestPmi[] = [];
    if (r.ok) {
      const d = o.step({ cpl, instructions: 1 });
      if (d !== null) pmis.push({ afterUnit: 0, vector: vectorOf(d) });
    }
    return { r, pmis };
  }

  private compareInstruction(
    v: number,
    kind: ObservationKind,
    target: number,
    value: bigint | null,
    what: string,
    sut: Access,
    sutPmis: GuestPmi[],
    oracle: { r: Access; pmis: GuestPmi[] },
  ): Observation[] {
    this.step++;
    return [
      this.record(v, kind, target, value, what, showAccess(sut), showAccess(oracle.r)),
      this.record(v, 'pmi', target, value, `${what}: PMIs`, showPmis(sutPmis.map((p) => ({ ...p, afterUnit: 0 }))), showPmis(oracle.pmis)),
    ];
  }

  guestRdmsr(vcpu: number, msr: number): Observation[] {
    const v = this.index(vcpu);
    const sut = this.vcpus[v]!.guestRdmsr(msr);
    const pm = this.vcpus[v]!.drainPmis();
    const o = this.oracleInstruction(this.oracles[v]!, 0, () => this.oracles[v]!.rdmsr(msr));
    return this.compareInstruction(v, 'rdmsr', msr, null, `RDMSR 0x${msr.toString(16)}`, sut, pm, o);
  }

  guestWrmsr(vcpu: number, msr: number, value: bigint): Observation[] {
    const v = this.index(vcpu);
    const sut = this.vcpus[v]!.guestWrmsr(msr, value);
    const pm = this.vcpus[v]!.drainPmis();
    const o = this.oracleInstruction(this.oracles[v]!, 0, () => this.oracles[v]!.wrmsr(msr, value));
    return this.compareInstruction(v, 'wrmsr', msr, value, `WRMSR 0x${msr.toString(16)} <- 0x${value.toString(16)}`, ok(sut), pm, {
      ...o,
      r: ok(o.r),
    });
  }

  guestRdpmc(vcpu: number, ecx: number, cpl: number): Observation[] {
    const v = this.index(vcpu);
    const sut = this.vcpus[v]!.guestRdpmc(ecx, cpl);
    const pm = this.vcpus[v]!.drainPmis();
    const o = this.oracleInstruction(this.oracles[v]!, cpl, () => this.oracles[v]!.rdpmc(ecx, cpl));
    return this.compareInstruction(v, 'rdpmc', ecx, null, `RDPMC 0x${ecx.toString(16)} at CPL ${cpl}`, sut, pm, o);
  }

  guestRun(vcpu: number, units: readonly WorkUnit[]): Observation[] {
    const v = this.index(vcpu);
    const sut = this.vcpus[v]!.guestRun(units);
    const oracle: GuestPmi[] = [];
    units.forEach((u, i) => {
      const d = this.oracles[v]!.step(u);
      if (d !== null) oracle.push({ afterUnit: i, vector: vectorOf(d) });
    });
    this.step++;
    return [this.record(v, 'run', null, null, `run ${units.length} units`, showPmis(sut), showPmis(oracle))];
  }

  /**
   * The VMM saves the vCPU, destroys it, and restores the state into a fresh vCPU whose thread
   * runs on `cpu` (live migration within one host). Bare metal has nothing to do.
   */
  saveRestore(vcpu: number, cpu: number): void {
    const v = this.index(vcpu);
    const old = this.vcpus[v]!;
    const saved = saveVcpu(old);
    old.destroy();
    const g = this.config.guests[v]!;
    const fresh = this.config.design(this.host, { cpu: ((cpu % this.config.cpus) + this.config.cpus) % this.config.cpus, cpuid: g.cpuid });
    restoreVcpu(fresh, saved);
    this.vcpus[v] = fresh;
    this.step++;
    this.record(v, 'vmm', cpu, null, `save/restore onto pCPU ${cpu}`, '', '');
  }

  /** Host events opened by host commands, in order; index = the command's event number. */
  readonly hostEvents: PerfEvent[] = [];

  /** A host user opens a perf event on a pCPU (perf record/stat -a -C cpu). */
  hostOpen(cpu: number, a: PerfEventAttr): void {
    const c = ((cpu % this.config.cpus) + this.config.cpus) % this.config.cpus;
    const ev = this.host.perf_event_open(a, { cpu: c });
    if (!('error' in ev)) this.hostEvents.push(ev);
    this.step++;
  }

  /** Host work on a pCPU (another task's time slice); the vCPU thread is preempted meanwhile. */
  hostWork(cpu: number, units: readonly WorkUnit[]): void {
    const c = ((cpu % this.config.cpus) + this.config.cpus) % this.config.cpus;
    this.host.runHost(c, units);
    this.step++;
  }

  /** The host scheduler moves the vCPU thread; bare metal has nothing to do. */
  migrate(vcpu: number, cpu: number): void {
    const v = this.index(vcpu);
    this.vcpus[v]!.migrate(((cpu % this.config.cpus) + this.config.cpus) % this.config.cpus);
    this.step++;
    this.record(v, 'vmm', cpu, null, `migrate to pCPU ${cpu}`, '', '');
  }
}

/** A WRMSR's observable result is only whether it faulted (W3). */
function ok(a: Access): Access {
  return a.ok ? { ok: true, value: 0n } : a;
}

function vectorOf(d: PmiDelivery): number {
  return d.nmi ? NMI_VECTOR : d.vector;
}
