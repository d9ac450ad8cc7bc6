/**
 * A VMM that saves a vCPU at an instruction's exit, before KVM re-enters the guest (QEMU pausing vCPUs for a migration
 * with a signal, or re-entering with immediate_exit to finish an I/O exit): what KVM's exit handler requested is still
 * pending then. Each declaration is met on the faithful designs, and a neighbouring planted fault (same event, another
 * mechanism) is still reported.
 */
import { describe, expect, it } from 'vitest';
import { designById, emulatedWith, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { EMULATED_OPS } from '../../model/kvm/emulated/ops.js';
import type { KvmPmc, KvmVcpuState } from '../../model/kvm/emulated/state.js';
import { runProgram } from '../../properties/conformance.js';
import {
  DriverNmi,
  DriverOpen,
  GuestEmulate,
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
  SaveRestore,
} from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';

const v2: GuestConfig = {
  cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0x0, ecx: 0x0, edx: 0x603 }, pdcm: true },
  perfCapabilities: 0x2000n,
};

/** PMC0 counts instructions with a PMI, LVTPC (NMI, unmasked unless told) set first, the counter at `value`. */
const armed = (value: bigint, lvtpc = 0x400n) => [
  new GuestWrmsr(0, 0x834, lvtpc),
  new GuestWrmsr(0, 0x4c1, value),
  new GuestWrmsr(0, 0x186, 0x5300c0n),
  new GuestWrmsr(0, 0x38f, 0x1n),
];

const run = (id: string, design?: VcpuFactory) => {
  const d = designById(id);
  return {
    host: BUILTIN_PROFILES.skylake!,
    design: design ?? d.factory,
    hostKernel: d.hostKernel,
    expectations: d.expectations,
  };
};

describe('overflow-lost-at-save: an emulated overflow the VMM saves before KVM finds it', () => {
  // The enabling selector write and the GLOBAL_CTRL write each count: PMC0 at -3 reaches -1, and the MOV overflows it.
  const program = [...armed(0xffff_ffff_fffdn), new GuestEmulate(0, 'mov', 0, false, 1), new GuestRdmsr(0, 0x38e)];

  it('loses the PMI and the GLOBAL_STATUS bit on the perf-based vPMU, and that is the declared mechanism', () => {
    expect(firstDivergence('skylake', v2, program, 'emulated')).toMatchObject({
      kind: 'pmi',
      around: 'emulate',
      sut: { kind: 'pmis', pmis: [] },
      oracle: { kind: 'pmis', pmis: [{ afterUnit: 0, vector: 2 }] },
    });
    expect(knownDivergencesMet('skylake', v2, program, 'emulated')).toContain('overflow-lost-at-save');
    // LVTPC masked: no PMI on either side, and the status read shows the lost overflow.
    const masked = [new GuestWrmsr(0, 0x834, 0x10400n), ...program.slice(1)];
    expect(firstDivergence('skylake', v2, masked, 'emulated')).toMatchObject({
      kind: 'rdmsr',
      target: 0x38e,
      sut: { kind: 'value', value: 0n },
      oracle: { kind: 'value', value: 1n },
    });
    expect(knownDivergencesMet('skylake', v2, masked, 'emulated')).toContain('overflow-lost-at-save');
  });

  it('the mediated vPMU sets GLOBAL_STATUS at once and loses only the PMI (pmi-lost-at-save)', () => {
    expect(knownDivergencesMet('skylake', v2, program, 'mediated')).toEqual(['pmi-lost-at-save']);
  });

  it('without the save at the exit, or with a plain save after it, both designs conform', () => {
    const plain = [
      ...armed(0xffff_ffff_fffdn),
      new GuestEmulate(0, 'mov', 0),
      new SaveRestore(0, 1),
      new GuestRdmsr(0, 0x38e),
    ];
    for (const id of ['emulated', 'mediated']) expect(firstDivergence('skylake', v2, plain, id)).toBeNull();
  });

  // pmc_read_counter without pmc->emulated_counter: KVM_GET_MSRS saves the counter without the pending event.
  const dropsPending = emulatedWith({
    ...EMULATED_OPS,
    pmc_read_counter(vcpu: KvmVcpuState, pmc: KvmPmc): bigint {
      const e = pmc.emulated_counter;
      pmc.emulated_counter = 0n;
      try {
        return EMULATED_OPS.pmc_read_counter(vcpu, pmc);
      } finally {
        pmc.emulated_counter = e;
      }
    },
  });

  it('a KVM that saves a counter without its pending emulated events is reported: the count, not an overflow', () => {
    const counted = [...armed(0x1000n), new GuestEmulate(0, 'mov', 0, false, 1), new GuestRdmsr(0, 0xc1)];
    expect(() => runProgram(run('emulated'), v2, counted)).not.toThrow();
    expect(() => runProgram(run('emulated', dropsPending), v2, counted)).toThrow(
      /RDMSR 0xc1: guest saw 0x1002, bare metal shows 0x1003/,
    );
  });

  it('a PMI lost after an instruction the VMM did not save at is reported', () => {
    // A design that drops whatever a plain (not kicked) emulated instruction's exit requested.
    const dropsPmi: VcpuFactory = (h, o) => {
      const x = designById('emulated').factory(h, o);
      const emulate = x.guestEmulate.bind(x);
      x.guestEmulate = (insn, cpl, kicked) => {
        emulate(insn, cpl, kicked);
        if (kicked !== true) x.drainPmis();
      };
      return x;
    };
    const plain = [...armed(0xffff_ffff_fffdn), new GuestEmulate(0, 'mov', 0)];
    expect(() => runProgram(run('emulated', dropsPmi), v2, plain)).toThrow(
      /KVM_FEP MOV at CPL 0: PMIs: guest saw no PMI, bare metal shows PMI\(vector 2\) after unit 0/,
    );
  });
});

describe('emulated-overflow-stale-int after a restore: a fresh vCPU has made no perf event yet', () => {
  // Linux perf's PMI handler disables GLOBAL_CTRL; the VMM saves there; the handler's re-enable retires on a counter
  // at -1, and KVM finds that overflow in software before it creates the counter's event (pmc->intr still false).
  const open = new DriverOpen(0, [
    { event: 0xc0n, usr: true, os: true, period: 0x2n },
    { event: 0xc0n, usr: true, os: true, period: 0x9n },
  ]);
  const guest: GuestConfig = {
    cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300402, ebx: 0x0, ecx: 0x0, edx: 0x603 }, pdcm: false },
    perfCapabilities: 0x2000n,
  };

  it('a save during the disabled window loses the re-enabling write PMI, and that is the declared mechanism', () => {
    for (const save of [[new GuestWrmsr(0, 0x38f, 0x0n, 0)], [new GuestWrmsr(0, 0x38f, 0x0n), new SaveRestore(0, 0)]])
      expect(knownDivergencesMet('skylake', guest, [open, ...save, new DriverNmi(0)], 'emulated')).toContain(
        'emulated-overflow-stale-int',
      );
  });

  it('without the save, the handler gets its PMI: nothing declared', () => {
    expect(
      knownDivergencesMet('skylake', guest, [open, new GuestWrmsr(0, 0x38f, 0x0n), new DriverNmi(0)], 'emulated'),
    ).not.toContain('emulated-overflow-stale-int');
  });

  it('a restore that drops the INT bit is reported at the next overflow a run makes', () => {
    // KVM_SET_MSRS of a selector loses its INT: the event made at the re-enable has no PMI either.
    const dropsInt: VcpuFactory = (h, o) => {
      const x = designById('emulated').factory(h, o);
      const set = x.hostSetMsr.bind(x);
      x.hostSetMsr = (msr, value) => set(msr, msr >= 0x186 && msr < 0x18e ? value & ~(1n << 20n) : value);
      return x;
    };
    const program = [
      ...armed(0xffff_ffff_ff00n),
      new SaveRestore(0, 1),
      new GuestRun(0, [{ cpl: 0, instructions: 0x200 }]),
    ];
    expect(() => runProgram(run('emulated'), v2, program)).not.toThrow();
    expect(() => runProgram(run('emulated', dropsInt), v2, program)).toThrow(/PMI/);
  });
});

/** `id`'s vCPU with `f` applied to each vCPU it makes: a planted fault. */
const planted =
  (id: string, f: (x: ReturnType<VcpuFactory>) => void): VcpuFactory =>
  (h, o) => {
    const x = designById(id).factory(h, o);
    f(x);
    return x;
  };

describe('the saves at an exit excuse only what was pending there', () => {
  it('a passed-through instruction has nothing pending: a PMI a design drops there is reported (mediated RDPMC)', () => {
    const drops = planted('mediated', (x) => {
      const rdpmc = x.guestRdpmc.bind(x);
      x.guestRdpmc = (ecx, cpl, kicked) => {
        const r = rdpmc(ecx, cpl, kicked);
        x.drainPmis();
        return r;
      };
    });
    // PMC0 at -1 once the two enabling writes counted: the RDPMC, retiring in guest mode, overflows it.
    const program = [...armed(0xffff_ffff_fffdn), new GuestRdpmc(0, 0, 0, 1)];
    expect(() => runProgram(run('mediated'), v2, program)).not.toThrow();
    expect(() => runProgram(run('mediated', drops), v2, program)).toThrow(
      /RDPMC 0x0 at CPL 0: PMIs: guest saw no PMI, bare metal shows PMI\(vector 2\) after unit 0/,
    );
  });

  it('a status bit the guest cleared since the save is no longer excused when it is lost again', () => {
    const hides = planted('emulated', (x) => {
      const rdmsr = x.guestRdmsr.bind(x);
      x.guestRdmsr = (msr, kicked) => {
        const r = rdmsr(msr, kicked);
        return msr === 0x38e && r.ok ? { ok: true, value: r.value & ~1n } : r;
      };
    });
    // LVTPC masked: the saved MOV's overflow is lost; the guest clears bit 0, PMC0 overflows again on both sides.
    const program = [
      ...armed(0xffff_ffff_fffdn, 0x10400n),
      new GuestEmulate(0, 'mov', 0, false, 1),
      new GuestWrmsr(0, 0x390, 0x1n),
      new GuestWrmsr(0, 0x4c1, 0xffff_ffff_fff0n),
      new GuestRun(0, [{ cpl: 0, instructions: 0x40 }]),
      new GuestRdmsr(0, 0x38e),
    ];
    expect(() => runProgram(run('emulated'), v2, program)).not.toThrow();
    expect(() => runProgram(run('emulated', hides), v2, program)).toThrow(
      /RDMSR 0x38e: guest saw 0x0, bare metal shows 0x1/,
    );
  });

  it("a restored vCPU whose GLOBAL_CTRL kept its reset value makes the counter's event: a PMI lost there is reported", () => {
    const drops = planted('emulated', (x) => {
      const wrmsr = x.guestWrmsr.bind(x);
      x.guestWrmsr = (msr, value, kicked) => {
        const r = wrmsr(msr, value, kicked);
        if (msr === 0x186) x.drainPmis();
        return r;
      };
    });
    // GLOBAL_CTRL is written here, but its reset value enables PMC0 too: the restore made its event with INT.
    const program = [
      ...armed(0xffff_ffff_fffcn),
      new SaveRestore(0, 1),
      new GuestRdmsr(0, 0x38e),
      new GuestWrmsr(0, 0x186, 0x5300c0n),
    ];
    expect(() => runProgram(run('emulated'), v2, program)).not.toThrow();
    expect(() => runProgram(run('emulated', drops), v2, program)).toThrow(
      /WRMSR 0x186 <- 0x5300c0: PMIs: guest saw no PMI, bare metal shows PMI\(vector 2\) after unit 0/,
    );
  });

  it('hw-assigned: a count the saved instruction did not make is not excused (emulated-count-lost-at-save)', () => {
    const inflates = planted('hw-assigned', (x) => {
      const rdmsr = x.guestRdmsr.bind(x);
      x.guestRdmsr = (msr, kicked) => {
        const r = rdmsr(msr, kicked);
        return msr === 0xc1 && r.ok ? { ok: true, value: r.value + 5n } : r;
      };
    });
    const program = [new GuestRdmsr(0, 0x38f, 1), new GuestRdmsr(0, 0xc1)];
    expect(() => runProgram(run('hw-assigned'), v2, program)).not.toThrow();
    expect(() => runProgram(run('hw-assigned', inflates), v2, program)).toThrow(
      /RDMSR 0xc1: guest saw 0x5, bare metal shows 0x0/,
    );
  });
});
