/**
 * Like Xu's topdown RFC (topdown-rebuilt) at FIXED_CTR3's edges, four programs conformance found on sapphirerapids:
 * - clearing GLOBAL_CTRL bit 48 alone must end topdown mode: patch 8/8's intel_pmc_idx_to_pmc names FC3 for bit 48,
 *   so the GLOBAL_CTRL write reprograms FC3 (designs test, seed 1198952587; 1000 topdown programs, seeds 1–40, pass);
 * - FC3 armed at -1 overflows one slot late under perf's period floor, bit 48 with it (perf-min-period; seed 14);
 * - FC3's own overflow never sets bit 48 under the series (slots-overflow-without-metrics-ovf; seed 14 once the
 *   period floor is declared);
 * - a byte that wraps at a pause's fold, on a value written before the last PERF_METRICS write (metrics-wrap-status;
 *   seed 11).
 */
import { describe, expect, it } from 'vitest';
import { ok } from '../../model/hw/access.js';
import { SAPPHIRE_RAPIDS } from '../../model/hw/profiles.js';
import { MSR_CORE_PERF_FIXED_CTR0, MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import { MSR_PERF_METRICS, type TopdownSlots } from '../../model/hw/msr/topdown.js';
import { kvm_pmu_handle_event } from '../../model/kvm/emulated/pmu.js';
import { TOPDOWN_REBUILT_OPS } from '../../model/kvm/series/topdown_rebuilt.js';
import { designById, emulatedWith, firstDivergence, knownDivergencesMet } from '../../designs/registry.js';
import { CONFORMANCE_CPUS, runProgram } from '../../properties/conformance.js';
import {
  Divergence,
  GuestRdmsr,
  GuestRdpmc,
  GuestRun,
  GuestWrmsr,
  type WorldCommand,
} from '../../scenarios/commands.js';
import { VmmSetMsr } from '../../scenarios/vmm.js';
import { topdownGuest } from '../support/guests.js';
import { type GuestConfig, type VcpuFactory, World } from '../../scenarios/world.js';

const h = SAPPHIRE_RAPIDS;
const host = 'sapphirerapids';
const ID = 'topdown-rebuilt';
const guest: GuestConfig = topdownGuest(h);

const FC3 = MSR_CORE_PERF_FIXED_CTR0 + 3;
const EN_FC3 = 1n << 35n;
const EN_METRICS = 1n << 48n;
const NONE: TopdownSlots = {
  retiring: 0,
  badSpeculation: 0,
  frontendBound: 0,
  backendBound: 0,
  heavyOperations: 0,
  branchMispredicts: 0,
  fetchLatency: 0,
  memoryBound: 0,
};
const slotsUnit = (cpl: number, badSpeculation: number) => ({ cpl, slots: { ...NONE, badSpeculation } });

function world(design: VcpuFactory, cmds: readonly WorldCommand[]): World {
  const w = new World({ host: h, cpus: CONFORMANCE_CPUS, guests: [guest], design, compare: false });
  for (const c of cmds) c.run({}, w);
  return w;
}

/** The conformance verdict on `design` judged by the series' declarations: those met, or the divergence reported. */
function verdict(program: readonly WorldCommand[], design: VcpuFactory = designById(ID).factory) {
  const known = new Map<string, number>();
  try {
    runProgram({ host: h, design, expectations: designById(ID).expectations, known }, guest, program);
  } catch (e) {
    if (e instanceof Divergence) return { reported: e.message };
    throw e;
  }
  return { met: [...known.keys()] };
}

/** The design with GLOBAL_STATUS reads changed by `f`: a planted fault in what the guest is shown. */
const statusRead =
  (f: (v: bigint) => bigint): VcpuFactory =>
  (hh, o) => {
    const v = designById(ID).factory(hh, o);
    const get = v.guestRdmsr.bind(v);
    v.guestRdmsr = (m, ...rest) => {
      const r = get(m, ...rest);
      return r.ok && m === MSR_CORE_PERF_GLOBAL_STATUS ? ok(f(r.value)) : r;
    };
    return v;
  };

describe('topdown-rebuilt: GLOBAL_CTRL bit 48 names FIXED_CTR3 (patch 8/8, intel_pmc_idx_to_pmc)', () => {
  // The group is made with bit 48 set; the guest then clears bit 48 only and reads PERF_METRICS after a unit.
  const program = [
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, EN_FC3 | EN_METRICS),
    new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3000n),
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, EN_FC3),
    new GuestRun(0, [{ cpl: 0, slots: { ...NONE, retiring: 10, badSpeculation: 10 } }]),
    new GuestRdpmc(0, 0x2000_0000, 0),
  ];

  it('clearing bit 48 reprograms FIXED_CTR3 out of topdown mode: PERF_METRICS reads 0, as on bare metal', () => {
    expect(firstDivergence(host, guest, program, ID)).toBeNull();
  });

  it('without the alias (today kvm_pmu_handle_event reaches no pmc for bit 48) the group counts on', () => {
    const noAlias = emulatedWith({ ...TOPDOWN_REBUILT_OPS, kvm_pmu_handle_event });
    const o = world(noAlias, program)
      .observations.filter((x) => x.kind === 'rdpmc')
      .at(-1)!;
    expect(o.oracle).toEqual({ kind: 'value', value: 0n });
    expect(o.sut.kind === 'value' && o.sut.value !== 0n).toBe(true);
    expect(verdict(program, noAlias)).toHaveProperty('reported');
  });
});

describe('topdown-rebuilt: FIXED_CTR3 overflows', () => {
  const armed = (value: bigint, slots: number) => [
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, EN_FC3 | EN_METRICS),
    new GuestWrmsr(0, FC3, value),
    new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0xb000n), // OS, USR and PMI
    new GuestRun(0, [slotsUnit(0, slots)]),
    new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
  ];
  const fixedMask = (1n << BigInt(h.fixedWidth)) - 1n;

  it('at -1, under perf period floor, one slot late: bits 35 and 48 missing is perf-min-period', () => {
    expect(firstDivergence(host, guest, armed(fixedMask, 1), ID)).toMatchObject({
      target: MSR_CORE_PERF_GLOBAL_STATUS,
      sut: { kind: 'value', value: 0n },
      oracle: { kind: 'value', value: EN_FC3 | EN_METRICS },
    });
    expect(knownDivergencesMet(host, guest, armed(fixedMask, 1), ID)).toEqual(['perf-min-period']);
  });

  it('at -2, its overflow sets bit 35 alone: slots-overflow-without-metrics-ovf', () => {
    expect(firstDivergence(host, guest, armed(fixedMask - 1n, 2), ID)).toMatchObject({
      sut: { kind: 'value', value: EN_FC3 },
      oracle: { kind: 'value', value: EN_FC3 | EN_METRICS },
    });
    expect(knownDivergencesMet(host, guest, armed(fixedMask - 1n, 2), ID)).toEqual([
      'slots-overflow-without-metrics-ovf',
    ]);
  });

  it('neighbour: a vPMU that also loses bit 35 of that overflow is reported', () => {
    expect(
      verdict(
        armed(fixedMask - 1n, 2),
        statusRead((v) => v & ~EN_FC3),
      ),
    ).toHaveProperty('reported');
  });

  it('neighbour: after the VMM wrote GLOBAL_STATUS, a missing bit 48 may be a restore lost: reported', () => {
    const program = [new VmmSetMsr(0, MSR_CORE_PERF_GLOBAL_STATUS, 0n), ...armed(fixedMask - 1n, 2)];
    expect(verdict(program)).toHaveProperty('reported');
  });
});

describe('topdown-rebuilt: a byte that wraps at the fold of a pause (metrics-wrap-status)', () => {
  // PERF_METRICS written all ones while FC3 counts in the group; the pause's fold wraps a byte (bit 48), even though
  // the guest wrote PERF_METRICS 0 after the pause.
  const program = (before: bigint) => [
    new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0x3333n),
    new GuestWrmsr(0, MSR_CORE_PERF_GLOBAL_CTRL, EN_METRICS | (0xfn << 32n) | 1n),
    new GuestWrmsr(0, MSR_PERF_METRICS, before),
    new GuestRun(0, [{ cpl: 1, slots: { ...NONE, backendBound: 1 } }]),
    new GuestWrmsr(0, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n),
    new GuestWrmsr(0, MSR_PERF_METRICS, 0n),
    new GuestRdmsr(0, MSR_CORE_PERF_GLOBAL_STATUS),
  ];

  it('on the value written before the last write: declared', () => {
    expect(firstDivergence(host, guest, program((1n << 64n) - 1n), ID)).toMatchObject({
      sut: { kind: 'value', value: EN_METRICS },
      oracle: { kind: 'value', value: 0n },
    });
    expect(knownDivergencesMet(host, guest, program((1n << 64n) - 1n), ID)).toEqual(['metrics-wrap-status']);
  });

  it('neighbour: with PERF_METRICS only ever 0 and never folded before, no byte can wrap: a bit 48 is reported', () => {
    expect(verdict(program(0n))).toEqual({ met: [] });
    expect(
      verdict(
        program(0n),
        statusRead((v) => v | EN_METRICS),
      ),
    ).toHaveProperty('reported');
  });
});
