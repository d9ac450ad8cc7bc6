import { describe, expect, it } from 'vitest';
import { leaf0aEax } from '../../model/hw/profile.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import {
  ACCEPTED,
  describeObservation,
  gpOutcome,
  NONE,
  type Observation,
  pmisOutcome,
  sameOutcome,
  showOutcome,
  valueOutcome,
} from '../../scenarios/observation.js';
import { World } from '../../scenarios/world.js';
import { irqExit, vmmSetCpuid } from '../../scenarios/vmm_ioctls.js';
import { MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import { SKYLAKE_V2 } from '../support/guests.js';

const guest = SKYLAKE_V2;
const world = () => new World({ host: SKYLAKE, cpus: 2, guests: [guest], design: (h, o) => new EmulatedVcpu(h, o) });

describe('typed outcomes', () => {
  it('compare values, faults whatever their rule, and PMIs by unit and vector', () => {
    expect(sameOutcome(valueOutcome(5n), valueOutcome(5n))).toBe(true);
    expect(sameOutcome(valueOutcome(5n), valueOutcome(6n))).toBe(false);
    expect(sameOutcome(gpOutcome('bare metal: reserved bit 3'), gpOutcome('KVM: reserved_bits'))).toBe(true);
    expect(sameOutcome(gpOutcome('x'), ACCEPTED)).toBe(false);
    expect(sameOutcome(valueOutcome(0n), ACCEPTED)).toBe(false);
    const pmi = (afterUnit: number, vector = 2) => pmisOutcome([{ afterUnit, vector }]);
    expect(sameOutcome(pmi(3), pmi(3))).toBe(true);
    expect(sameOutcome(pmi(3), pmi(4))).toBe(false);
    expect(sameOutcome(pmi(3), pmi(3, 0xfe))).toBe(false);
    expect(sameOutcome(pmi(3), pmisOutcome([]))).toBe(false);
  });

  it('render as the trace has always shown them', () => {
    expect(showOutcome(valueOutcome(0x801n))).toBe('0x801');
    expect(showOutcome(ACCEPTED)).toBe('0x0');
    expect(showOutcome(gpOutcome('any rule'))).toBe('#GP');
    expect(showOutcome(pmisOutcome([]))).toBe('no PMI');
    expect(showOutcome(pmisOutcome([{ afterUnit: 4, vector: 2 }]))).toBe('PMI(vector 2) after unit 4');
    expect(showOutcome(NONE)).toBe('');
  });

  it('describe an observation from its typed fields, a property note included', () => {
    const o: Observation = {
      step: 3,
      vcpu: 0,
      kind: 'pmi',
      around: 'rdpmc',
      target: 0x40000001,
      value: null,
      cpl: 3,
      sut: pmisOutcome([]),
      oracle: pmisOutcome([]),
    };
    expect(describeObservation(o)).toBe('RDPMC 0x40000001 at CPL 3: PMIs');
    expect(describeObservation({ ...o, note: { kind: 'host-values' } })).toBe(
      "RDPMC 0x40000001 at CPL 3: PMIs (with the host's private values changed)",
    );
  });

  it('the world records typed values: a read, a write, a run', () => {
    const w = world();
    w.guestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS);
    w.guestWrmsr(0, 0x391, 1n); // GLOBAL_STATUS_SET: a v4 MSR, absent on this v2 guest
    w.guestRun(0, [{ cpl: 3, instructions: 1 }]);
    const [rd, , wr, , run] = w.observations;
    expect(rd).toMatchObject({
      kind: 'rdmsr',
      sut: { kind: 'value', value: 0n },
      oracle: { kind: 'value', value: 0n },
    });
    expect(wr).toMatchObject({ kind: 'wrmsr', sut: { kind: 'gp' }, oracle: { kind: 'gp' } });
    expect(run).toMatchObject({ kind: 'run', units: 1, sut: { kind: 'pmis', pmis: [] } });
  });
});

describe('vcpuHasRun decides on the typed VMM step, not its wording', () => {
  it('is false before any guest step, true after one or after an interrupt exit, false after a restore', () => {
    const w = world();
    expect(w.vcpuHasRun(0)).toBe(false);
    w.migrate(0, 1);
    expect(w.vcpuHasRun(0)).toBe(false); // the thread moved; the guest never entered
    irqExit(w, 0, [{ cpl: 0, instructions: 10 }]);
    expect(w.vcpuHasRun(0)).toBe(true);
    w.saveRestore(0, 0);
    expect(w.vcpuHasRun(0)).toBe(false); // a fresh vCPU took the state
    w.guestRun(0, []);
    expect(w.vcpuHasRun(0)).toBe(true);
  });

  it('judges KVM_SET_CPUID2 by it: a new model is expected to be refused after KVM_RUN only', () => {
    const w = world();
    const other = {
      ...guest,
      cpuid: { ...guest.cpuid, leaf0a: { ...guest.cpuid.leaf0a, eax: leaf0aEax(2, 2, 48, 7) } },
    };
    expect(vmmSetCpuid(w, 0, other)[0]!.oracle).toEqual({ kind: 'ok' });
    w.guestRun(0, []);
    const [o] = vmmSetCpuid(w, 0, guest);
    expect(o).toMatchObject({ vmm: { op: 'set-cpuid', afterRun: true }, sut: { kind: 'refused' } });
    expect(o!.oracle).toEqual({ kind: 'refused' });
  });
});
