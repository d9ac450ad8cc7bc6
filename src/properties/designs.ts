/**
 * The vPMU designs a report can name, by id: report.json stores the id, and `npm run replay`
 * and the main job's `--design` look it up here. A ported historical bug is a design of its own
 * (the faithful port with one patch reverted) and shares the faithful design's declared
 * divergences, so only the bug itself can fail the property.
 */

import fc from 'fast-check';
import { BUILTIN_PROFILES } from '../model/hw/profiles.js';
import { FIXED_BY as GLOBAL_CTRL_MASK_FIX, PreGlobalCtrlMaskFixHost } from '../model/host/bugs/971079464001-global-ctrl-mask.js';
import { FIXED_BY as FAST_RDPMC_FIX, preFastRdpmcFix } from '../model/kvm/bugs/5728a4a0ea79-fast-rdpmc.js';
import { EmulatedVcpu } from '../model/kvm/emulated/vcpu.js';
import { Divergence, type WorldCommand } from '../scenarios/commands.js';
import { type GuestConfig, type HostKernelFactory, type Observation, type VcpuFactory, World } from '../scenarios/world.js';
import { CONFORMANCE_CPUS } from './conformance.js';
import { EMULATED_EXPECTATIONS } from './expectations/emulated.js';
import { EMULATED_INVISIBILITY_EXPECTATIONS } from './expectations/emulated-invisibility.js';
import type { KnownDivergence } from './expectations/types.js';

export interface Design {
  readonly id: string;
  readonly title: string;
  /** Where the design's code lives. */
  readonly source: string;
  readonly factory: VcpuFactory;
  /** The host's perf, where the design patches it (default: upstream's). */
  readonly hostKernel?: HostKernelFactory;
  /** Declared divergences from bare metal (properties 1 and 3). */
  readonly expectations: readonly KnownDivergence[];
  /** Declared losses across migration and save/restore (property 4). */
  readonly invisibility: readonly KnownDivergence[];
  /** For a ported bug, the upstream commit that fixed it. */
  readonly fixedBy?: string;
}

export const DESIGNS: readonly Design[] = [
  {
    id: 'emulated',
    title: "upstream's perf-based vPMU",
    source: 'src/model/kvm/emulated',
    factory: (h, o) => new EmulatedVcpu(h, o),
    expectations: EMULATED_EXPECTATIONS,
    invisibility: EMULATED_INVISIBILITY_EXPECTATIONS,
  },
  {
    id: `bug/${FAST_RDPMC_FIX}`,
    title: 'bug #41: "fast" RDPMC honoured on architectural PMUs (before 5728a4a0ea79)',
    source: 'src/model/kvm/bugs/5728a4a0ea79-fast-rdpmc.ts',
    factory: preFastRdpmcFix,
    expectations: EMULATED_EXPECTATIONS,
    invisibility: EMULATED_INVISIBILITY_EXPECTATIONS,
    fixedBy: FAST_RDPMC_FIX,
  },
  {
    id: `bug/${GLOBAL_CTRL_MASK_FIX}`,
    title: 'bug #1: host-only counters left enabled while the guest runs (before 971079464001)',
    source: 'src/model/host/bugs/971079464001-global-ctrl-mask.ts',
    factory: (h, o) => new EmulatedVcpu(h, o),
    hostKernel: (o) => new PreGlobalCtrlMaskFixHost(o),
    expectations: EMULATED_EXPECTATIONS,
    invisibility: EMULATED_INVISIBILITY_EXPECTATIONS,
    fixedBy: GLOBAL_CTRL_MASK_FIX,
  },
];

export const DESIGN_IDS: readonly string[] = DESIGNS.map((d) => d.id);

export class UnknownDesignError extends Error {
  override readonly name = 'UnknownDesignError';
}

export function designById(id: string): Design {
  const d = DESIGNS.find((x) => x.id === id);
  if (d === undefined) throw new UnknownDesignError(`unknown design '${id}' (known: ${DESIGN_IDS.join(', ')})`);
  return d;
}

/**
 * Runs a plain program under design `id` on a built-in host with fc.modelRun: the first
 * observation where the guest and bare metal differ, or null. What committed regressions assert on.
 */
export function firstDivergence(
  host: string,
  guest: GuestConfig,
  program: readonly WorldCommand[],
  id: string,
  cpus = CONFORMANCE_CPUS,
): Observation | null {
  const profile = BUILTIN_PROFILES[host];
  if (profile === undefined) throw new Error(`unknown host profile '${host}'`);
  const d = designById(id);
  const setup = () => ({ model: {}, real: new World({ host: profile, cpus, guests: [guest], design: d.factory, hostKernel: d.hostKernel }) });
  try {
    fc.modelRun(setup, program);
    return null;
  } catch (e) {
    if (e instanceof Divergence) return e.observation;
    throw e;
  }
}
