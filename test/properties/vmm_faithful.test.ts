import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { designById } from '../../designs/registry.js';
import { BUILTIN_PROFILES, SKYLAKE } from '../../model/hw/profiles.js';
import { MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR } from '../../model/hw/msr/debugctl.js';
import { MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import { designChecks } from '../../properties/checks.js';
import { GuestRdmsr, GuestRun, type WorldCommand } from '../../scenarios/commands.js';
import { VmmGetMsr, VmmSetCpuid, VmmSetMsr } from '../../scenarios/vmm.js';
import { fullestGuest } from '../../properties/vmm_abi.js';
import { World } from '../../scenarios/world.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { adoptionOf } from '../../properties/expectations/types.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';

/** Programs per check and seed: the checks as `npm start -- --only vmm-abi vmm-conformance` runs them, fewer programs. */
const RUNS = 200;
const SEEDS = [1, 2, 3];

describe('the faithful designs under the VMM checks, judged on bare metal of the guest CPUID', () => {
  for (const id of ['emulated', 'mediated'])
    for (const [name, host] of Object.entries(BUILTIN_PROFILES))
      it(`${id} on ${name} passes vmm-abi and vmm-conformance (seeds ${SEEDS.join(', ')}, ${RUNS} programs each)`, () => {
        const checks = designChecks(designById(id), name, host).filter(
          (c) => c.id === 'vmm-abi' || c.id === 'vmm-conformance',
        );
        expect(checks.map((c) => c.id).sort()).toEqual(['vmm-abi', 'vmm-conformance']);
        for (const c of checks) for (const seed of SEEDS) fc.assert(c.property(new Map()), { seed, numRuns: RUNS });
      });

  const run = (cmds: readonly WorldCommand[]) => {
    const guest = fullestGuest(SKYLAKE);
    const w = new World({
      host: SKYLAKE,
      cpus: 1,
      guests: [guest],
      design: (h, o) => new EmulatedVcpu(h, o),
      adopt: adoptionOf(EMULATED_EXPECTATIONS, SKYLAKE),
    });
    fc.modelRun(() => ({ model: {}, real: w }), cmds);
    return w;
  };

  it('keeps the DEBUGCTL a VMM restored before KVM_SET_CPUID2, as KVM keeps GUEST_IA32_DEBUGCTL', () => {
    const guest = fullestGuest(SKYLAKE);
    const w = run([
      new VmmSetMsr(0, MSR_IA32_DEBUGCTLMSR, DEBUGCTLMSR_LBR),
      new VmmSetCpuid(0, guest),
      new GuestRdmsr(0, MSR_IA32_DEBUGCTLMSR),
    ]);
    expect(w.oracles[0]!.rdmsr(MSR_IA32_DEBUGCTLMSR)).toEqual({ ok: true, value: DEBUGCTLMSR_LBR });
  });

  it('expects a GLOBAL_STATUS bit no status of the CPU has to be refused, before and after KVM_RUN', () => {
    // Bit 40 is no counter's on the fullest Skylake guest: KVM refuses it, and bare metal says it must.
    const w = run([
      new VmmSetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS, 1n << 40n),
      new GuestRun(0, []),
      new VmmSetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS, (1n << 40n) | 1n),
      new VmmSetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS, 1n),
      new VmmGetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
    ]);
    const sets = w.observations.filter((o) => o.vmm?.op === 'set-msr').map((o) => o.oracle.kind);
    expect(sets).toEqual(['refused', 'refused', 'ok']);
    expect(w.observations.at(-1)!.oracle).toEqual({ kind: 'value', value: 1n });
  });
});
