/**
 * The decision log (model/hw/relied.ts): what a recording sees, and that every unverified decision is
 * either recorded where its choice decides an outcome or says why no run can rest on it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Cpu } from '../../../model/hw/cpu.js';
import { DECISIONS, type Decision } from '../../../model/hw/decisions.js';
import { X2APIC_LVTPC } from '../../../model/hw/msr/apic.js';
import { MSR_IA32_PMC0, MSR_P6_EVNTSEL0 } from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { MSR_LBR_TOS } from '../../../model/hw/msr/lbr_legacy.js';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { DecisionLog, recording, relied } from '../../../model/hw/relied.js';
import { HOST_DECISIONS } from '../../../model/host/decisions.js';
import { KVM_DECISIONS } from '../../../model/kvm/decisions.js';
import { WORLD_DECISIONS } from '../../../scenarios/decisions.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Ids passed to relied() anywhere in a layer's sources. */
function recordedIn(dir: string): Set<string> {
  const code = sources(dir)
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  return new Set([...code.matchAll(/relied\('([DHKW]\d+)'\)/g)].map((m) => m[1]!));
}

describe('a decision log records what runs inside it, and only that', () => {
  it('records each id once, in the order met; nothing outside a recording; a nested recording keeps its own', () => {
    const outer = new DecisionLog();
    const inner = new DecisionLog();
    relied('D1');
    recording(outer, () => {
      relied('D7');
      recording(inner, () => relied('D8'));
      relied('D7');
      relied('D2');
    });
    expect(outer.ids).toEqual(['D7', 'D2']);
    expect(inner.ids).toEqual(['D8']);
  });

  it('a PMI raised while LVTPC is masked records D7; the same overflow with LVTPC unmasked does not', () => {
    const run = (lvtpc: bigint | null) => {
      const c = new Cpu(SKYLAKE);
      const log = new DecisionLog();
      recording(log, () => {
        if (lvtpc !== null) c.wrmsr(X2APIC_LVTPC, lvtpc);
        c.wrmsr(MSR_IA32_PMC0, (1n << 48n) - 1n);
        c.wrmsr(MSR_P6_EVNTSEL0, 0x5300c0n | (1n << 20n)); // INST_RETIRED, OS|USR|INT|EN
        c.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 1n);
        c.step({ cpl: 3, instructions: 2 });
      });
      return log;
    };
    expect(run(null).has('D7')).toBe(true); // LVTPC is masked at RESET (D32)
    expect(run(0x400n).has('D7')).toBe(false);
  });

  it('a read of LBR_TOS before software wrote it records D40; after a write it does not', () => {
    const c = new Cpu(SKYLAKE);
    const before = new DecisionLog();
    recording(before, () => c.rdmsr(MSR_LBR_TOS));
    expect(before.ids).toEqual(['D40']);
    c.wrmsr(MSR_LBR_TOS, 3n);
    const after = new DecisionLog();
    recording(after, () => c.rdmsr(MSR_LBR_TOS));
    expect(after.ids).toEqual([]);
  });
});

describe.each([
  ['hardware model (D)', ['model/hw'], DECISIONS],
  ['host perf model (H)', ['model/host'], HOST_DECISIONS],
  ['KVM port (K)', ['model/kvm', 'scenarios'], KVM_DECISIONS],
  ['world (W)', ['scenarios'], WORLD_DECISIONS],
] as const)('every decision of the %s is recorded where it decides, or says why not', (_n, dirs, list) => {
  const recorded = new Set(dirs.flatMap((d) => [...recordedIn(d)]));
  it.each(list.map((d: Decision) => [d.id, d] as const))('%s', (id, d) => {
    if (d.unrecorded !== undefined) {
      expect(recorded.has(id), `${id} says no run records it, yet code calls relied('${id}')`).toBe(false);
      expect(d.unrecorded.length).toBeGreaterThan(20);
    } else
      expect(recorded.has(id), `${id}: no relied('${id}') in ${dirs.join(', ')}, and no 'unrecorded' reason`).toBe(
        true,
      );
  });
  it('code records no id the list lacks', () => {
    const ids = new Set(list.map((d: Decision) => d.id));
    for (const id of recorded) if (id.startsWith(list[0]!.id[0]!)) expect(ids.has(id), id).toBe(true);
  });
});
