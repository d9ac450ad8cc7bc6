/**
 * The VMM ABI of the vPMU, which bare metal cannot be the oracle of (kvm-vpmu.md §2.15, §2.18):
 * - KVM_GET_MSR_INDEX_LIST lists only MSRs a vCPU of this host can hold: on a vCPU given the
 *   host's whole PMU (KVM clamps it), every listed counter and control MSR keeps a value the VMM
 *   restores, so a saved VM restores (e33b6d79acac);
 * - every listed MSR survives KVM_GET_MSRS then KVM_SET_MSRS of what was read, at any time;
 * - without CPUID.PDCM, PERF_CAPABILITIES reads 0 and only 0 can be written (d75cac366f44);
 * - KVM_SET_CPUID2 is accepted before KVM_RUN and refused after it unless nothing changes.
 */

import fc from 'fast-check';
import { leaf0aEax, leaf0aEdx, type Profile, perfCaps } from '../model/hw/profile.js';
import { GuestRun, type WorldCommand } from '../scenarios/commands.js';
import { VmmGetMsr, VmmRoundTrip, vmmMsrArb, vmmSetCpuidArb, vmmSetMsrArb } from '../scenarios/vmm.js';
import { type GuestConfig, type HostKernelFactory, type VcpuFactory, World } from '../scenarios/world.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../model/hw/msr/capabilities.js';
import { supportedGuestArb, supportedOf } from '../scenarios/supported.js';

export interface VmmAbiRun {
  readonly host: Profile;
  readonly design: VcpuFactory;
  readonly hostKernel?: HostKernelFactory | undefined;
}

export class VmmAbiViolation extends Error {
  override readonly name = 'VmmAbiViolation';
}

/** The guest a VMM gives the host's whole PMU (architectural v2, every counter, PDCM, full-width writes). */
export function fullestGuest(host: Profile): GuestConfig {
  return {
    cpuid: {
      family: host.family,
      model: host.model,
      leaf0a: {
        eax: leaf0aEax(2, host.nGP, host.gpWidth, host.evLen),
        ebx: 0,
        ecx: 0,
        edx: leaf0aEdx(host.nFixedContig, host.fixedWidth),
      },
      pdcm: true,
    },
    perfCapabilities: perfCaps({ fwWrite: true, lbrFmt: 0 }),
  };
}

/** Every listed counter and control MSR holds a non-zero restored value on the fullest vCPU. */
export function checkMsrIndexList(r: VmmAbiRun): void {
  const w = new World({
    host: r.host,
    cpus: 1,
    guests: [fullestGuest(r.host)],
    design: r.design,
    hostKernel: r.hostKernel,
  });
  const x = w.vcpus[0]!;
  for (const m of x.msrIndexList()) {
    if (m === MSR_IA32_PERF_CAPABILITIES) continue; // a feature MSR: its value is the model, not state
    const set = x.hostSetMsr(m, 1n);
    const got = set.ok ? x.hostGetMsr(m) : set;
    if (!got.ok || got.value !== 1n)
      throw new VmmAbiViolation(
        `KVM_GET_MSR_INDEX_LIST lists MSR 0x${m.toString(16)}, but a vCPU with all of ${r.host.name}'s PMU cannot hold it: ` +
          `KVM_SET_MSRS 0x${m.toString(16)} <- 0x1 ${set.ok ? `then KVM_GET_MSRS reads ${got.ok ? `0x${got.value.toString(16)}` : 'an error'}` : `fails (${set.error})`}`,
      );
  }
}

export function checkVmmAbi(r: VmmAbiRun, guest: GuestConfig, cmds: readonly WorldCommand[]): void {
  checkMsrIndexList(r);
  const w = new World({ host: r.host, cpus: 2, guests: [guest], design: r.design, hostKernel: r.hostKernel });
  fc.modelRun(() => ({ model: {}, real: w }), cmds);
}

const getMsrArb: fc.Arbitrary<WorldCommand> = fc
  .oneof({ arbitrary: fc.constant(MSR_IA32_PERF_CAPABILITIES), weight: 2 }, { arbitrary: vmmMsrArb, weight: 1 })
  .map((m) => new VmmGetMsr(0, m));

export function vmmAbiProperty(r: VmmAbiRun) {
  return fc.property(
    // No chain: nothing below depends on the first guest, so the shrinker may shrink both.
    fc.tuple(
      supportedGuestArb(r.host, supportedOf(r)),
      fc.array(
        fc.oneof(
          { arbitrary: vmmSetCpuidArb(r.host, supportedOf(r)), weight: 2 },
          { arbitrary: getMsrArb, weight: 2 },
          { arbitrary: vmmSetMsrArb(r.host, [MSR_IA32_PERF_CAPABILITIES]), weight: 2 },
          { arbitrary: fc.constant(new VmmRoundTrip(0)), weight: 1 },
          { arbitrary: fc.constant(new GuestRun(0, [])), weight: 1 }, // KVM_RUN: the model is frozen from here
        ),
        { maxLength: 12, size: '+1' },
      ),
    ),
    ([guest, cmds]) => checkVmmAbi(r, guest, cmds),
  );
}
