/**
 * Host perf's refusals of what the kernel never does: a CPU, task or event handle that does not
 * exist, programming a pCPU while it runs a guest (decision H2), and a perf access to a counter
 * MSR that faults (the kernel's wrmsrl/rdpmcl assume it cannot). Each is a ModelError that names
 * the access, so a broken port or caller is found where it went wrong.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { gp } from '../../../model/hw/access.js';
import { Cpu } from '../../../model/hw/cpu.js';
import { ModelError } from '../../../model/hw/errors.js';
import { SAPPHIRE_RAPIDS, SKYLAKE } from '../../../model/hw/profiles.js';
import { msrName } from '../../../model/hw/msr/map.js';
import { MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../../model/hw/msr/global.js';
import { MSR_PERF_METRICS } from '../../../model/hw/msr/topdown.js';
import { HOST_PERF_OPS, HostKernel } from '../../../model/host/perf.js';
import { INTEL_TD_METRIC_RETIRING, INTEL_TD_SLOTS } from '../../../model/host/schedule.js';
import { attr } from '../../../model/host/types.js';
import { ev, INSTRUCTIONS, LLC_REFERENCES } from './util.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** Cpu's own method, to call from a spy that replaces it. */
function original<K extends 'rdmsr' | 'wrmsr' | 'rdpmc'>(name: K): Cpu[K] {
  return (Object.getOwnPropertyDescriptor(Cpu.prototype, name) as { value: Cpu[K] }).value;
}

/** Makes RDMSR of one MSR fault on every pCPU, the rest as they are. */
function faultRdmsr(msr: number): void {
  const orig = original('rdmsr');
  vi.spyOn(Cpu.prototype, 'rdmsr').mockImplementation(function (this: Cpu, m: number) {
    return m === msr ? gp('refused') : orig.call(this, m);
  });
}

/** Makes WRMSR of one MSR fault on every pCPU. */
function faultWrmsr(msr: number): void {
  const orig = original('wrmsr');
  vi.spyOn(Cpu.prototype, 'wrmsr').mockImplementation(function (this: Cpu, m: number, v: bigint) {
    return m === msr ? gp('refused') : orig.call(this, m, v);
  });
}

/** Makes RDPMC of one index fault on every pCPU. */
function faultRdpmc(ecx: number): void {
  const orig = original('rdpmc');
  vi.spyOn(Cpu.prototype, 'rdpmc').mockImplementation(function (this: Cpu, e: number, cpl?: number) {
    return e === ecx ? gp('refused') : orig.call(this, e, cpl);
  });
}

/** The ModelError `f` throws, or a failure when it throws none. */
function modelError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelError);
    return (e as Error).message;
  }
  throw new Error('no ModelError was thrown');
}

describe('handles that do not exist', () => {
  it('a CPU or a task the kernel does not have', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    expect(modelError(() => k.pcpu(2))).toBe('host: no CPU 2 (have 2)');
    expect(modelError(() => k.taskCpu(42))).toBe('host: no task 42');
    expect(modelError(() => k.context_switch(0, 7))).toBe('host: no task 7');
  });

  it("another kernel's event, or one already released", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const other = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const foreign = ev(other.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    expect(modelError(() => k.perf_event_read_value(foreign))).toBe('host perf: not an event of this kernel');
    expect(modelError(() => k.perf_event_enable({ ...foreign }))).toBe('host perf: not an event of this kernel');
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    k.perf_event_release_kernel(e);
    expect(modelError(() => k.perf_event_read_value(e))).toBe(`host perf: event ${e.id} was released`);
  });
});

describe('programming a pCPU that runs a guest (decision H2)', () => {
  it('host work is refused, naming the CPU', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 2 });
    k.pcpu(1).hw.mode = 'guest';
    expect(modelError(() => k.runHost(1, []))).toBe(
      'host perf: host work on CPU 1 while it runs a guest (decision H2)',
    );
    expect(k.runHost(0, [])).toBe(0);
  });
});

describe('a perf access that faults', () => {
  it("RDMSR of FIXED_CTR_CTRL at a fixed counter's start", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    faultRdmsr(MSR_CORE_PERF_FIXED_CTR_CTRL);
    expect(modelError(() => k.perf_event_open(attr({ config: INSTRUCTIONS }), { cpu: 0 }))).toBe(
      `host perf: RDMSR ${msrName(MSR_CORE_PERF_FIXED_CTR_CTRL)} faulted: refused`,
    );
  });

  it('WRMSR of GLOBAL_CTRL at perf_pmu_disable', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    faultWrmsr(MSR_CORE_PERF_GLOBAL_CTRL);
    expect(modelError(() => k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }))).toBe(
      `host perf: WRMSR ${msrName(MSR_CORE_PERF_GLOBAL_CTRL)} <- 0x0 faulted: refused`,
    );
  });

  it('RDPMC of a counter at x86_perf_event_update, named by its RDPMC index', () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    const f = ev(k.perf_event_open(attr({ config: INSTRUCTIONS }), { cpu: 0 }));
    faultRdpmc(0x4000_0000);
    expect(k.perf_event_read_value(e)).toBe(0n);
    expect(modelError(() => k.perf_event_read_value(f))).toBe('host perf: RDPMC 0x40000000 faulted: refused');
  });

  it('RDPMC of FIXED_CTR3 or PERF_METRICS at a topdown update', () => {
    for (const [ecx, what] of [
      [0x4000_0003, 'FIXED_CTR3'],
      [0x2000_0000, 'PERF_METRICS'],
    ] as const) {
      const k = new HostKernel({ profile: SAPPHIRE_RAPIDS, cpus: 1 });
      const l = ev(k.perf_event_open(attr({ config: INTEL_TD_SLOTS, disabled: true }), { cpu: 0 }));
      ev(k.perf_event_create_kernel_counter(attr({ config: INTEL_TD_METRIC_RETIRING }), { cpu: 0 }, undefined, l));
      k.perf_event_enable(l);
      k.runHost(0, [
        { cpl: 0, instructions: 1, slots: { retiring: 1, badSpeculation: 1, frontendBound: 1, backendBound: 1 } },
      ]);
      faultRdpmc(ecx);
      expect(modelError(() => k.perf_event_read_value(l))).toBe(`host perf: RDPMC ${what} faulted: refused`);
      vi.restoreAllMocks();
    }
  });

  it("a counter write of upstream's perf ops (perf_wrmsrl) to an MSR the part lacks", () => {
    const k = new HostKernel({ profile: SKYLAKE, cpus: 1 });
    const e = ev(k.perf_event_open(attr({ config: LLC_REFERENCES }), { cpu: 0 }));
    const hw = k.pcpu(0).hw;
    const refusal = hw.wrmsr(MSR_PERF_METRICS, 0x5n);
    expect(refusal.ok).toBe(false);
    const why = refusal.ok ? '' : refusal.gp;
    const text = `host perf: WRMSR ${msrName(MSR_PERF_METRICS)} <- 0x5 faulted: ${why}`;
    expect(modelError(() => HOST_PERF_OPS.x86_perf_event_set_event_base(hw, e, MSR_PERF_METRICS, 0x5n))).toBe(text);
    expect(modelError(() => HOST_PERF_OPS.x86_perf_event_set_config_base(hw, e, MSR_PERF_METRICS, 0x5n))).toBe(text);
  });
});
