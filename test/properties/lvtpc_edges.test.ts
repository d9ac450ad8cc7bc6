/**
 * LVTPC written with bits its writers must not set. Bare metal #GPs a reserved bit (the SDM's x2APIC reserved bit
 * checking) and ignores the read-only delivery status (D32); KVM's lapic.c keeps `val & apic_lvt_mask[LVTPC]`, dropping
 * the reserved bits of 31:0 and keeping the status, and refuses bits 63:32. Each declaration (`lvtpc-reserved-dropped`,
 * `lvtpc-status-kept`) lets the program run on, judged exactly, and excuses nothing beside its mechanism.
 */
import { describe, expect, it } from 'vitest';
import { designById, emulatedWith, mediatedWith } from '../../designs/registry.js';
import { type Access, ok } from '../../model/hw/access.js';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { APIC_SEND_PENDING, X2APIC_LVTPC } from '../../model/hw/msr/apic.js';
import { MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0 } from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../model/hw/msr/global.js';
import { EMULATED_OPS } from '../../model/kvm/emulated/ops.js';
import { MEDIATED_OPS } from '../../model/kvm/mediated/ops.js';
import { LVTPC_MASK_NOT_WRITABLE } from '../../model/kvm/faults/common_vcpu.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { MEDIATED_EXPECTATIONS } from '../../properties/expectations/mediated.js';
import { GuestRdmsr, GuestRun, GuestWrmsr, type WorldCommand } from '../../scenarios/commands.js';
import { type VcpuFactory, World } from '../../scenarios/world.js';
import { adoptionOf, type KnownDivergence } from '../../properties/expectations/types.js';
import { CONFORMANCE_CPUS } from '../../properties/conformance.js';
import { judge } from '../support/planted.js';
import { SKYLAKE_V2 } from '../support/guests.js';

const PLAIN = SKYLAKE_V2;

const FIXED_0x20 = 0x20n;
const BIT17 = 1n << 17n;

/** LVTPC written and read; counter 0 armed to overflow, with its PMI, within one run; LVTPC read again. */
const pmiAfter = (lvtpc: bigint): WorldCommand[] => [
  new GuestWrmsr(0, X2APIC_LVTPC, lvtpc),
  new GuestRdmsr(0, X2APIC_LVTPC),
  new GuestWrmsr(0, MSR_P6_EVNTSEL0, 0x5300c0n),
  new GuestWrmsr(0, MSR_IA32_PERFCTR0, (1n << 48n) - 8n),
  new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, 1n),
  new GuestRun(0, [{ cpl: 0, instructions: 12 }]),
  new GuestRdmsr(0, X2APIC_LVTPC),
];

const designs = [
  { name: 'emulated', factory: designById('emulated').factory, expectations: EMULATED_EXPECTATIONS },
  { name: 'mediated', factory: designById('mediated').factory, expectations: MEDIATED_EXPECTATIONS },
] as const;

/** A design whose LVTPC reads are changed by `rd` (a planted fault at the vCPU's answer). */
function readPlanted(base: VcpuFactory, rd: (r: Access) => Access): VcpuFactory {
  return (h, o) => {
    const v = base(h, o);
    const read = v.guestRdmsr.bind(v);
    v.guestRdmsr = (msr, ...rest) => (msr === X2APIC_LVTPC ? rd(read(msr, ...rest)) : read(msr, ...rest));
    return v;
  };
}

/** The vectors of the PMIs each side delivered, running `program` with the adoptions of `expectations`. */
function pmiVectors(program: readonly WorldCommand[], design: VcpuFactory, expectations: readonly KnownDivergence[]) {
  const w = new World({
    host: SKYLAKE,
    cpus: CONFORMANCE_CPUS,
    guests: [PLAIN],
    design,
    adopt: adoptionOf(expectations, SKYLAKE),
  });
  for (const c of program) c.run({}, w);
  const vectors = (side: 'sut' | 'oracle') =>
    w.observations.flatMap((o) => (o[side].kind === 'pmis' ? o[side].pmis.map((p) => p.vector) : []));
  return { sut: vectors('sut'), oracle: vectors('oracle') };
}

describe.each(designs)('LVTPC edge values on the $name vPMU', ({ name, factory, expectations }) => {
  const run = (program: readonly WorldCommand[], design: VcpuFactory = factory) =>
    judge({ host: SKYLAKE, design, expectations }, PLAIN, program);

  it('a reserved bit of 31:0 is dropped, bare metal takes what KVM kept, and the PMI that follows is compared exactly', () => {
    for (const bit of [1n << 11n, 1n << 13n, BIT17, 1n << 31n])
      expect(run(pmiAfter(FIXED_0x20 | bit))).toEqual({ reported: null, known: ['lvtpc-reserved-dropped'] });
    expect(pmiVectors(pmiAfter(FIXED_0x20 | BIT17), factory, expectations)).toEqual({ sut: [0x20], oracle: [0x20] });
    // Undeclared, the write itself diverges.
    const bare = judge({ host: SKYLAKE, design: factory, expectations: [] }, PLAIN, pmiAfter(FIXED_0x20 | BIT17));
    expect(bare.reported).toMatchObject({ kind: 'wrmsr', target: X2APIC_LVTPC, sut: { kind: 'accepted' } });
  });

  it('bits 63:32 #GP on both sides: nothing to declare', () => {
    expect(run(pmiAfter(FIXED_0x20 | (1n << 32n)))).toEqual({ reported: null, known: [] });
  });

  it('the delivery status written is read back, from the write on and after the PMI masks the entry', () => {
    expect(run(pmiAfter(FIXED_0x20 | APIC_SEND_PENDING))).toEqual({ reported: null, known: ['lvtpc-status-kept'] });
    const p = pmiAfter(FIXED_0x20 | APIC_SEND_PENDING);
    expect(pmiVectors(p, factory, expectations)).toEqual({ sut: [0x20], oracle: [0x20] });
    const bare = judge({ host: SKYLAKE, design: factory, expectations: [] }, PLAIN, p);
    expect(bare.reported).toMatchObject({ kind: 'rdmsr', target: X2APIC_LVTPC, sut: { value: 0x1020n } });
  });

  it('a reserved bit kept (not dropped) is reported at the read', () => {
    const kept = readPlanted(factory, (r) => (r.ok ? ok(r.value | BIT17) : r));
    expect(run(pmiAfter(FIXED_0x20 | BIT17), kept).reported).toMatchObject({ kind: 'rdmsr', target: X2APIC_LVTPC });
  });

  it('a delivery status the guest never wrote is reported, also after one it wrote and then cleared', () => {
    const own = readPlanted(factory, (r) => (r.ok ? ok(r.value | APIC_SEND_PENDING) : r));
    expect(run(pmiAfter(FIXED_0x20), own).reported).toMatchObject({ kind: 'rdmsr', target: X2APIC_LVTPC });
    const cleared = [new GuestWrmsr(0, X2APIC_LVTPC, FIXED_0x20 | APIC_SEND_PENDING), ...pmiAfter(FIXED_0x20)];
    expect(run(cleared, own).reported).toMatchObject({ kind: 'rdmsr', target: X2APIC_LVTPC });
  });

  if (name === 'emulated')
    it('lvtpc-mask-not-writable, beside a dropped reserved bit, is still reported', () => {
      const p = pmiAfter(0x1_0000n | FIXED_0x20 | BIT17);
      expect(run(p, emulatedWith(LVTPC_MASK_NOT_WRITABLE)).reported).not.toBeNull();
      expect(run(p, emulatedWith(EMULATED_OPS)).reported).toBeNull();
    });
  else
    it('the faithful ops through mediatedWith agree with the registry design', () => {
      expect(run(pmiAfter(FIXED_0x20 | BIT17), mediatedWith(MEDIATED_OPS)).known).toEqual(['lvtpc-reserved-dropped']);
    });
});
