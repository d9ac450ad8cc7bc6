import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../../model/hw/profiles.js';
import { leaf0aEax, leaf0aEdx } from '../../../model/hw/profile.js';
import { HostKernel } from '../../../model/host/perf.js';
import { EMULATED_OPS, type EmulatedOps } from '../../../model/kvm/emulated/ops.js';
import type { KvmPmc, KvmVcpuState } from '../../../model/kvm/emulated/state.js';
import { EmulatedVcpu } from '../../../model/kvm/emulated/vcpu.js';
import { MEDIATED_OPS } from '../../../model/kvm/mediated/ops.js';
import { MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0 } from '../../../model/hw/msr/counters.js';

/** The kernel functions of both records. */
const MEMBERS = new Set([...Object.keys(EMULATED_OPS), ...Object.keys(MEDIATED_OPS)]);

/**
 * Direct calls of a record member in `src`: a call not made through a record (`ops.x(`, `EMULATED_OPS.x(`)
 * and not the function's own declaration. Each is a caller a replaced function would not reach.
 */
export function directCalls(source: string): string[] {
  const src = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, ''); // comments name functions freely
  const out: string[] = [];
  for (const m of src.matchAll(/(?<![.\w])([a-z_][a-z0-9_]*)\s*\(/g)) {
    const name = m[1]!;
    if (!MEMBERS.has(name)) continue;
    const before = src.slice(Math.max(0, m.index - 9), m.index);
    if (/function\s*$/.test(before)) continue;
    out.push(name);
  }
  return out;
}

const ROOT = join(import.meta.dirname, '../../../model/kvm');

function sources(): { file: string; src: string }[] {
  const out: { file: string; src: string }[] = [];
  for (const dir of ['common', 'emulated', 'mediated', 'variants', 'bugs', 'fixes']) {
    for (const f of readdirSync(join(ROOT, dir))) {
      // ops.ts files build the records; they name the functions without calling them.
      if (!f.endsWith('.ts') || f === 'ops.ts') continue;
      out.push({ file: `${dir}/${f}`, src: readFileSync(join(ROOT, dir, f), 'utf8') });
    }
  }
  return out;
}

describe('the seam: kernel functions reach each other only through the design record', () => {
  it('no port calls a record member directly (so a replacement reaches every caller)', () => {
    const found = sources().flatMap(({ file, src }) => directCalls(src).map((n) => `${file}: ${n}(`));
    expect(found).toEqual([]);
  });

  it('the check finds a planted direct call', () => {
    expect(directCalls('function f(vcpu) { return pmc_read_counter(vcpu, pmc); }')).toEqual(['pmc_read_counter']);
    expect(directCalls('const v = vcpu.ops.pmc_read_counter(vcpu, pmc);')).toEqual([]);
    expect(directCalls('export function pmc_read_counter(vcpu, pmc) {}')).toEqual([]);
  });

  it('a replaced pmc_read_counter is seen by RDMSR (intel_pmu_get_msr) and RDPMC (kvm_pmu_rdpmc) alike', () => {
    const plus7: EmulatedOps = {
      ...EMULATED_OPS,
      pmc_read_counter: (vcpu: KvmVcpuState, pmc: KvmPmc) => EMULATED_OPS.pmc_read_counter(vcpu, pmc) + 7n,
    };
    const cpuid = {
      family: SKYLAKE.family,
      model: SKYLAKE.model,
      leaf0a: { eax: leaf0aEax(2, 4, SKYLAKE.gpWidth, SKYLAKE.evLen), ebx: 0, ecx: 0, edx: leaf0aEdx(3, 48) },
      pdcm: false,
    };
    const reads = (ops: EmulatedOps) => {
      const v = new EmulatedVcpu(new HostKernel({ profile: SKYLAKE, cpus: 1 }), { cpu: 0, cpuid }, ops);
      v.guestWrmsr(MSR_P6_EVNTSEL0, 0n);
      const r = v.guestRdmsr(MSR_IA32_PERFCTR0);
      const p = v.guestRdpmc(0, 0);
      return [r.ok ? r.value : -1n, p.ok ? p.value : -1n];
    };
    expect(reads(EMULATED_OPS)).toEqual([0n, 0n]);
    expect(reads(plus7)).toEqual([7n, 7n]);
  });
});
