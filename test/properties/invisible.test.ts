import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { GuestPmi, HostAccess } from '../../model/kvm/types.js';
import type { WorkUnit } from '../../model/hw/work.js';
import { leaf0aEax, leaf0aEdx } from '../../model/hw/profile.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { EMULATED_INVISIBILITY_EXPECTATIONS } from '../../properties/expectations/emulated_invisibility.js';
import { checkInvisible, type InvisibilityRun, invisibilityProperty } from '../../properties/invisible.js';
import {
  Divergence,
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
  Migrate,
  SaveRestore,
  type WorldCommand,
} from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../model/hw/msr/global.js';
import { MSR_P6_EVNTSEL0, MSR_IA32_PERFCTR0 } from '../../model/hw/msr/counters.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../model/hw/msr/debugctl.js';
import { X2APIC_LVTPC } from '../../model/hw/msr/apic.js';
import { designById } from '../../designs/registry.js';
import { MSR_LBR_TOS } from '../../model/hw/msr/lbr_legacy.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../model/hw/msr/capabilities.js';
import { type Access, ok } from '../../model/hw/access.js';

const emulated: InvisibilityRun = {
  host: SKYLAKE,
  design: (h, o) => new EmulatedVcpu(h, o),
  expectations: EMULATED_INVISIBILITY_EXPECTATIONS,
};
const guest: GuestConfig = {
  cpuid: {
    family: 6,
    model: 0x55,
    leaf0a: { eax: leaf0aEax(2, 4, 48, 7), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
    pdcm: true,
  },
  perfCapabilities: 0x2005n, // FW_WRITES and the host's LBR format
};

/** The faithful design's guest cannot tell the insertion, and the planted `fault`'s can, at the observation `shows`. */
function plantedShows(
  fault: InvisibilityRun['design'],
  g: GuestConfig,
  program: readonly WorldCommand[],
  at: number,
  inserted: WorldCommand,
  shows: RegExp,
): void {
  checkInvisible(emulated, g, program, at, inserted);
  expect(() => checkInvisible({ ...emulated, design: fault }, g, program, at, inserted)).toThrow(shows);
}

/** A planted fault, not a historical bug: KVM_SET_MSRS of GLOBAL_CTRL is accepted and ignored. */
class IgnoresRestoredGlobalCtrl extends EmulatedVcpu {
  override hostSetMsr(msr: number, value: bigint): HostAccess {
    return msr === MSR_CORE_PERF_GLOBAL_CTRL ? { ok: true, value } : super.hostSetMsr(msr, value);
  }
}

/** A planted fault: once KVM_SET_MSRS has restored the vCPU, guest work brings no PMI. */
class NoPmiAfterRestore extends EmulatedVcpu {
  private restored = false;
  override hostSetMsr(msr: number, value: bigint): HostAccess {
    if (msr !== MSR_IA32_PERF_CAPABILITIES) this.restored = true;
    return super.hostSetMsr(msr, value);
  }
  override guestRun(units: readonly WorkUnit[]): readonly GuestPmi[] {
    const pmis = super.guestRun(units);
    return this.restored ? [] : pmis;
  }
}

/** A planted fault: once KVM_SET_MSRS has restored the vCPU, the guest's LBR_TOS reads 0 whatever the LBRs hold. */
class TosStuckAfterRestore extends EmulatedVcpu {
  private restored = false;
  override hostSetMsr(msr: number, value: bigint): HostAccess {
    if (msr !== MSR_IA32_PERF_CAPABILITIES) this.restored = true;
    return super.hostSetMsr(msr, value);
  }
  override guestRdmsr(msr: number): Access {
    return this.restored && msr === MSR_LBR_TOS ? ok(0n) : super.guestRdmsr(msr);
  }
}

/** A planted fault: once the vCPU has been rescheduled, the guest's LBR_TOS reads 0 whatever the LBRs hold. */
class TosStuckAfterMigrate extends EmulatedVcpu {
  private moved = false;
  override migrate(cpu: number): void {
    this.moved = true;
    super.migrate(cpu);
  }
  override guestRdmsr(msr: number): Access {
    return this.moved && msr === MSR_LBR_TOS ? ok(0n) : super.guestRdmsr(msr);
  }
}

describe('property 4: migration and save/restore are invisible to the guest', () => {
  it('holds for the emulated vPMU up to what it loses on purpose (1000 programs)', () => {
    fc.assert(invisibilityProperty(emulated), { numRuns: 1000 });
  });

  it('a counting program is unchanged by a migration or a save/restore in the middle', () => {
    const program = [
      new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x4300c0n),
      new GuestRun(0, [{ cpl: 3, instructions: 5 }]),
      new GuestRdmsr(0, MSR_IA32_PERFCTR0),
      new GuestRun(0, [{ cpl: 0, instructions: 7 }]),
      new GuestRdmsr(0, MSR_IA32_PERFCTR0),
      new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_CTRL),
    ];
    for (let at = 0; at <= program.length; at++) {
      checkInvisible(emulated, guest, program, at, new Migrate(0, 1));
      checkInvisible(emulated, guest, program, at, new SaveRestore(0, 1));
    }
  });

  it('catches a VMM-visible loss: DEBUGCTL does not survive a save/restore (declared, decision K4)', () => {
    const program = [new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, 0x1n), new GuestRdmsr(0, MSR_IA32_DEBUGCTLMSR)];
    expect(() => checkInvisible({ ...emulated, expectations: [] }, guest, program, 1, new SaveRestore(0, 1))).toThrow(
      /RDMSR 0x1d9 \(with new SaveRestore\(0, 1\) before command 1\): guest saw 0x0, without it the guest saw 0x1/,
    );
    const known = new Map<string, number>();
    checkInvisible({ ...emulated, known }, guest, program, 1, new SaveRestore(0, 1));
    expect([...known.keys()]).toEqual(['debugctl-not-saved']);
  });

  it('fails on a design that drops the restored GLOBAL_CTRL (planted fault)', () => {
    // Measured: found after 900 programs on average (20 seeds, 123 to 2515); 8000 misses with p < 0.02 %.
    const d = fc.check(invisibilityProperty({ ...emulated, design: (h, o) => new IgnoresRestoredGlobalCtrl(h, o) }), {
      numRuns: 8000,
    });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(Divergence);
  });
});

describe('a declared loss is judged on the history up to the divergent read', () => {
  // FC_SEED=1185897311: DEBUGCTL written, saved and restored (lost: debugctl-not-saved), read, then written again. The
  // write after the read made the whole-run history say "written since the save/restore", and the loss went undeclared.
  const program = [
    new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, 0x1n),
    new GuestRdmsr(0, MSR_IA32_DEBUGCTLMSR),
    new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, 0x1n),
  ];

  it('a DEBUGCTL lost at save/restore is declared even when the guest writes it again later', () => {
    const known = new Map<string, number>();
    expect(() => checkInvisible({ ...emulated, known }, guest, program, 1, new SaveRestore(0, 0))).not.toThrow();
    expect([...known.keys()]).toEqual(['debugctl-not-saved']);
  });
});

describe('debugctl-not-saved: the LBRs stop recording once the save/restore has cleared DEBUGCTL.LBR', () => {
  // FC_SEED=1216750436: a v1 guest with LBR format 5 sets DEBUGCTL.LBR, is saved and restored, takes a branch, reads TOS.
  const lbrGuest: GuestConfig = {
    cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7300801, ebx: 0x7f, ecx: 0, edx: 0 }, pdcm: true },
    perfCapabilities: 5n,
  };
  const branch = new GuestRun(0, [
    {
      cpl: 0,
      instructions: 1,
      branches: [{ from: 0xffff_ffff_8100_0000n, to: 0xffff_ffff_8100_0000n, kind: 'COND', mispredict: false, cpl: 0 }],
    },
  ]);
  const setLbr = new GuestWrmsr(0, MSR_IA32_DEBUGCTLMSR, 0x1n);
  const readTos = new GuestRdmsr(0, MSR_LBR_TOS);

  it('a TOS that stays 0 after the restore is declared', () => {
    const known = new Map<string, number>();
    checkInvisible({ ...emulated, known }, lbrGuest, [setLbr, branch, readTos], 1, new SaveRestore(0, 0));
    expect([...known.keys()]).toEqual(['debugctl-not-saved']);
  });

  it("the guest's own TOS, lost at the save/restore and read before anything moves it, is declared (FC_SEED=147370892)", () => {
    const known = new Map<string, number>();
    const setTos = new GuestWrmsr(0, MSR_LBR_TOS, 0x1n);
    checkInvisible({ ...emulated, known }, lbrGuest, [setTos, readTos], 1, new SaveRestore(0, 1));
    expect([...known.keys()]).toEqual(['lbr-not-saved']);
  });

  it('the TOS an LBR event left on the pCPU the restored vCPU reads it on is declared too (a soak, seed 1126439008)', () => {
    // DEBUGCTL.LBR on, a branch on pCPU 1 (TOS 1 there), save/restore onto pCPU 0 (DEBUGCTL cleared, the LBR event
    // gone), back on pCPU 1: the TOS read makes a new LBR event there, which reads the 1 the old one left, where the
    // run without the save/restore has recorded on (TOS 2).
    const known = new Map<string, number>();
    const program = [setLbr, new Migrate(0, 1), branch, branch, new Migrate(0, 1), readTos];
    checkInvisible({ ...emulated, known }, lbrGuest, program, 3, new SaveRestore(0, 0));
    expect([...known.keys()]).toEqual(['lbr-not-saved']);
  });

  it("the guest's own TOS on a pCPU it left and came back to is declared too (a soak, seed -1260692442)", () => {
    // With the inserted migration the TOS write lands on pCPU 1 (on pCPU 0 without it); reschedules with DEBUGCTL.LBR
    // clear release the LBR event (intel_pmu_cleanup); back on pCPU 1 the TOS read makes a new event there, which
    // reads the 1 the guest left on it, where the run without the insertion reads pCPU 1's untouched 0.
    const known = new Map<string, number>();
    const setTos = new GuestWrmsr(0, MSR_LBR_TOS, 0x1n);
    const program = [setTos, new Migrate(0, 0), new GuestRdpmc(0, 0x4000_0000, 0), new Migrate(0, 1), readTos];
    checkInvisible({ ...emulated, known }, lbrGuest, program, 0, new Migrate(0, 1));
    expect([...known.keys()]).toEqual(['lbr-not-saved']);
  });

  it('a TOS read after DEBUGCTL.LBR is set again on the restored vCPU is declared too (a soak, seed -1165819969)', () => {
    // The save/restore cleared DEBUGCTL and took the LBR event; setting DEBUGCTL.LBR again makes a new one, whose TOS
    // starts where the pCPU's LBRs were left (0), where the run without the save/restore recorded the branch (TOS 1).
    const known = new Map<string, number>();
    checkInvisible({ ...emulated, known }, lbrGuest, [setLbr, branch, setLbr, readTos], 1, new SaveRestore(0, 0));
    // So is one on another pCPU after a run that took no LBR record: nothing moved the new event's TOS there.
    const noBranch = new GuestRun(0, [{ cpl: 0, instructions: 3 }]);
    checkInvisible(
      { ...emulated, known },
      lbrGuest,
      [setLbr, branch, setLbr, noBranch, readTos],
      2,
      new SaveRestore(0, 1),
    );
    expect([...known]).toEqual([['lbr-not-saved', 2]]);
  });

  it('a TOS the guest wrote again after the reschedule, read back as 0, is reported', () => {
    const program = [
      new Migrate(0, 0),
      new GuestWrmsr(0, MSR_LBR_TOS, 0x1n),
      new GuestWrmsr(0, MSR_LBR_TOS, 0x2n),
      readTos,
    ];
    checkInvisible(emulated, lbrGuest, program, 0, new Migrate(0, 1));
    expect(() =>
      checkInvisible(
        { ...emulated, design: (h, o) => new TosStuckAfterMigrate(h, o) },
        lbrGuest,
        program.slice(1),
        0,
        new Migrate(0, 1),
      ),
    ).toThrow(/RDMSR 0x1c9/);
  });

  it('a TOS the guest wrote again after the restore, read back as 0, is reported', () => {
    const program = [new GuestWrmsr(0, MSR_LBR_TOS, 0x1n), new GuestWrmsr(0, MSR_LBR_TOS, 0x2n), readTos];
    plantedShows((h, o) => new TosStuckAfterRestore(h, o), lbrGuest, program, 1, new SaveRestore(0, 1), /RDMSR 0x1c9/);
  });

  it('a TOS that stays 0 though the guest set DEBUGCTL.LBR again after the restore is reported', () => {
    plantedShows(
      (h, o) => new TosStuckAfterRestore(h, o),
      lbrGuest,
      [setLbr, setLbr, branch, readTos],
      1,
      new SaveRestore(0, 0),
      /RDMSR 0x1c9/,
    );
  });
});

describe('write-period-from-base: a save/restore between a counter counting and a write to it moves its overflow', () => {
  // A soak, seed -1659487671: an enabled cycles counter with INT counts 1, the guest writes it -10, and 10 cycles run.
  // Without the save/restore perf's period is armed from the base (11 events): no PMI. With it the restored vCPU's
  // event counted nothing yet when the write came, and the period is the 10 written: a PMI after the third unit.
  const cycles = (n: number) => ({ cpl: 3, instructions: 0, cycles: n });
  const program = [
    new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x51003cn),
    new GuestWrmsr(0, X2APIC_LVTPC, 0x400n),
    new GuestRun(0, [cycles(1)]),
    new GuestWrmsr(0, MSR_IA32_PERFCTR0, 0xfffffffffff6n),
    new GuestRun(0, [cycles(1), cycles(2), cycles(7)]),
  ];

  it('is declared for the perf-based vPMU', () => {
    const known = new Map<string, number>();
    checkInvisible({ ...emulated, known }, guest, program, 3, new SaveRestore(0, 0));
    expect([...known.keys()]).toEqual(['write-period-from-base']);
  });

  it('is gone with the fix reports/filed/0001 suggests, which declares nothing of it', () => {
    const fix = designById('fix/0001-write-period-from-value');
    expect(fix.invisibility.map((e) => e.id)).not.toContain('write-period-from-base');
    const known = new Map<string, number>();
    checkInvisible({ ...emulated, design: fix.factory, known }, guest, program, 3, new SaveRestore(0, 0));
    expect(known.size).toBe(0);
  });

  it('a PMI lost after a save/restore with no write to the counter is still reported (planted fault)', () => {
    const counting = [...program.slice(0, 3), new GuestRun(0, [cycles(1), cycles(2), cycles(7)])];
    const preset = [new GuestWrmsr(0, MSR_IA32_PERFCTR0, 0xfffffffffff6n), ...counting];
    plantedShows((h, o) => new NoPmiAfterRestore(h, o), guest, preset, 4, new SaveRestore(0, 0), /run 3 units/);
  });
});
