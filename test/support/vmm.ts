import type { ConformanceRun } from '../../properties/conformance.js';
import { runVmmProgram } from '../../properties/vmm_conformance.js';
import { Divergence, type WorldCommand } from '../../scenarios/commands.js';
import type { GuestConfig } from '../../scenarios/world.js';

/** The VMM property's verdict on a program: the declarations met, or the divergence it reports. */
export function vmmVerdict(
  r: Omit<ConformanceRun, 'known' | 'ended'>,
  guest: GuestConfig,
  program: readonly WorldCommand[],
): { readonly met?: readonly string[]; readonly reported?: string } {
  const known = new Map<string, number>();
  try {
    runVmmProgram({ ...r, known }, guest, program);
  } catch (e) {
    if (e instanceof Divergence) return { reported: e.message };
    throw e;
  }
  return { met: [...known.keys()] };
}
