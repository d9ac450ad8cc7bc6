import { designById } from '../../designs/registry.js';
import { BUILTIN_PROFILES } from '../../model/hw/profiles.js';
import { type ConformanceRun, runProgram } from '../../properties/conformance.js';
import { Divergence, type WorldCommand } from '../../scenarios/commands.js';
import type { Observation } from '../../scenarios/observation.js';
import type { GuestConfig, VcpuFactory } from '../../scenarios/world.js';

/** A planted fault: `design` with the value of a guest RDMSR of `msr` changed by `f` (the access still succeeds). */
export function withGuestRead(design: VcpuFactory, msr: number, f: (v: bigint) => bigint): VcpuFactory {
  return (h, o) => {
    const v = design(h, o);
    const rd = v.guestRdmsr.bind(v);
    v.guestRdmsr = (m) => {
      const r = rd(m);
      return r.ok && m === msr ? { ok: true, value: f(r.value) } : r;
    };
    return v;
  };
}

/** A conformance run of the registered design `id` on a built-in host, its guest RDMSR of `msr` changed by `f`. */
export function runWithGuestRead(id: string, host: string, msr: number, f: (v: bigint) => bigint): ConformanceRun {
  const d = designById(id);
  return {
    host: BUILTIN_PROFILES[host]!,
    design: withGuestRead(d.factory, msr, f),
    hostKernel: d.hostKernel,
    expectations: d.expectations,
  };
}

/**
 * Runs `program` as the conformance property does (declared divergences end it or hold it to their contract): the
 * declarations it met, and the undeclared divergence it reported, or null.
 */
export function judge(
  r: Omit<ConformanceRun, 'known' | 'ended'>,
  guest: GuestConfig,
  program: readonly WorldCommand[],
): { reported: Observation | null; known: string[] } {
  const known = new Map<string, number>();
  try {
    runProgram({ ...r, known }, guest, program);
  } catch (e) {
    if (e instanceof Divergence) return { reported: e.observation, known: [...known.keys()] };
    throw e;
  }
  return { reported: null, known: [...known.keys()] };
}
