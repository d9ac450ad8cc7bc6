/**
 * counter-width-passthrough: the mediated vPMU passes every counter the guest has through, whatever its width, so a
 * guest whose CPUID gives its fixed counters a narrower width than the hardware's (KVM_SET_CPUID2 takes the smaller)
 * runs them at the hardware's width: a preset two events before the guest's wrap is far from the hardware's, and the
 * overflow bare metal raises never comes. Found by the driver profile's guests with every counter at narrower widths.
 */
import { describe, expect, it } from 'vitest';
import { designById, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { runProgram } from '../../properties/conformance.js';
import { DriverOpen, GuestRdmsr, GuestRun, GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';
import { reportedGuest } from '../support/guests.js';
import { runWithGuestRead } from '../support/planted.js';
import { work } from '../model/kvm/util.js';

const host = BUILTIN_PROFILES.skylake!;
const full = reportedGuest(designById('mediated'), host, false);
/** Every counter the host has; fixed counters `width` bits wide. */
const withFixedWidth = (width: number): GuestConfig => {
  const l = full.cpuid.leaf0a;
  return { ...full, cpuid: { ...full.cpuid, leaf0a: { ...l, edx: (l.edx & ~0x1fe0) | (width << 5) } } };
};
const narrow = withFixedWidth(40);

/** FIXED_CTR0 (instructions) and PMC0 (instructions) two events before a 40-bit wrap and a 48-bit one, then 3. */
const program: WorldCommand[] = [
  new GuestWrmsr(0, 0x834, 0x400n), // LVTPC: NMI, unmasked
  new GuestWrmsr(0, 0x309, 0xff_ffff_fffen), // FIXED_CTR0 = -2 at 40 bits
  new GuestWrmsr(0, 0x4c1, 0xffff_ffff_fffen), // PMC0 = -2 at 48 bits
  new GuestWrmsr(0, 0x186, 0x5300c0n), // EVNTSEL0: instructions, USR|OS|INT|EN
  new GuestWrmsr(0, 0x38d, 0xbn), // FIXED_CTR_CTRL: fixed 0 OS|USR|PMI
  new GuestWrmsr(0, 0x38f, 0x1_0000_0001n), // GLOBAL_CTRL: PMC0 and FIXED_CTR0
  new GuestRun(0, work(1, 3)),
  new GuestRdmsr(0, 0x38e),
];

describe('counter-width-passthrough: the mediated vPMU runs narrower counters at the hardware width', () => {
  it('the 40-bit fixed counter does not overflow where bare metal does, and that is the declared mechanism', () => {
    expect(firstDivergence('skylake', narrow, program, 'mediated')).toMatchObject({ kind: 'rdmsr', target: 0x38e });
    expect(knownDivergencesMet('skylake', narrow, program, 'mediated')).toEqual(['counter-width-passthrough']);
  });

  it('a write above the guest width is taken where bare metal faults: the same mechanism', () => {
    const wide = [new GuestWrmsr(0, 0x309, 0xffff_ffff_fffen)];
    expect(firstDivergence('skylake', narrow, wide, 'mediated')).toMatchObject({
      kind: 'wrmsr',
      sut: { kind: 'accepted' },
    });
    expect(knownDivergencesMet('skylake', narrow, wide, 'mediated')).toEqual(['counter-width-passthrough']);
  });

  it('at the hardware width the same program conforms', () => {
    expect(firstDivergence('skylake', withFixedWidth(48), program, 'mediated')).toBeNull();
  });

  it("a full-width counter's overflow lost on the narrow guest is reported", () => {
    const run = runWithGuestRead('mediated', 'skylake', 0x38e, (v) => v & ~1n);
    expect(() => runProgram(run, narrow, program)).toThrow(/RDMSR 0x38e: guest saw 0x0, bare metal shows 0x1_?0+_?0+1/);
  });
});

describe('counter-width-passthrough: the missing PMI lets a later one through', () => {
  // A soak's driver program (seed 1175607176, and -508759414 on icelake and sapphirerapids): Linux perf opens
  // instructions on FIXED_CTR0 and branch mispredicts on PMC0, both two events before the wrap. Bare metal's 40-bit
  // FIXED_CTR0 wraps after the first unit and its PMI masks LVTPC, so PMC0's wrap a unit later raises none; the
  // hardware's 48-bit FIXED_CTR0 never wraps, so the design's only PMI is PMC0's (a legacy PERFCTR0 write sign-extends
  // to the hardware's width), a unit later than bare metal's.
  const guest: GuestConfig = {
    cpuid: { family: 6, model: 0x55, leaf0a: { eax: 0x7280402, ebx: 0x18, ecx: 0x0, edx: 0x503 }, pdcm: true },
    perfCapabilities: 0x0n,
  };
  const unit = {
    cpl: 3,
    instructions: 1,
    branches: [{ from: 0x400000n, to: 0x400000n, kind: 'COND', mispredict: true, cpl: 3 }],
  } as const;
  const program: WorldCommand[] = [
    new DriverOpen(0, [
      { event: 0xc0n, usr: true, os: true, period: 0x2n },
      { event: 0xc5n, usr: true, os: true, period: 0x2n },
    ]),
    new GuestRun(0, [unit, unit]),
  ];

  it("the design's PMI a unit after bare metal's is the declared mechanism", () => {
    expect(firstDivergence('skylake', guest, program, 'mediated', 2)).toMatchObject({
      kind: 'run',
      sut: { kind: 'pmis', pmis: [{ afterUnit: 1, vector: 2 }] },
      oracle: { kind: 'pmis', pmis: [{ afterUnit: 0, vector: 2 }] },
    });
    expect(knownDivergencesMet('skylake', guest, program, 'mediated')).toEqual(['counter-width-passthrough']);
  });

  it("the same late PMI on a guest with the hardware's widths is reported", () => {
    const d = designById('mediated');
    const late: VcpuFactory = (h, o) => {
      const v = d.factory(h, o);
      const run = v.guestRun.bind(v);
      v.guestRun = (units) => run(units).map((p) => ({ ...p, afterUnit: p.afterUnit + 1 }));
      return v;
    };
    const wide: GuestConfig = {
      ...guest,
      cpuid: { ...guest.cpuid, leaf0a: { ...guest.cpuid.leaf0a, eax: 0x7300402, edx: 0x603 } },
    };
    expect(firstDivergence('skylake', wide, program, 'mediated', 2)).toBeNull();
    const r = { host, design: late, hostKernel: d.hostKernel, expectations: d.expectations };
    expect(() => runProgram(r, wide, program)).toThrow(/run 2 units: guest saw PMI\(vector 2\) after unit 1/);
  });
});
