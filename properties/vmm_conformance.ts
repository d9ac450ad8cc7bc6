/**
 * Property 1 with the VMM in the program: a VMM sets the vCPU up (KVM_SET_MSRS and KVM_GET_MSRS of the PMU
 * MSRs it saves, DEBUGCTL among them, KVM_SET_CPUID2, KVM_SET_PMU_EVENT_FILTER), then the guest runs on a quiet host
 * while the VMM saves and restores again. Bare metal of the guest's CPUID is the oracle throughout: a new vCPU model is
 * a freshly reset CPU of that model (DEBUGCTL kept, as KVM keeps it), a restored value is taken and held only if that
 * CPU can hold it (scenarios/vmm_ioctls.ts), and under an event filter it is a CPU whose counters programmed with
 * denied events do not count (what KVM's documentation promises of the filter).
 */

import fc from 'fast-check';
import { focusArb, nonEmptyArray, quietHostCommands, shapeOf } from '../scenarios/arbitraries.js';
import { Divergence, type WorldCommand } from '../scenarios/commands.js';
import { historyTo } from '../scenarios/observation.js';
import {
  countedArb,
  guestCountingArbs,
  guestReadbackArb,
  noPmuGuestArb,
  pmuOffGuestArb,
  vmmPmuCapabilityArb,
  vmmSetCpuidArb,
  vmmGetMsrArb,
  vmmSaveCommands,
  vmmSetFilterArb,
  vmmSetMsrArb,
} from '../scenarios/vmm.js';
import type { GuestConfig } from '../scenarios/world.js';
import { type ConformanceRun, conformanceWorld, countAdopted } from './conformance.js';
import { declaredFor } from './expectations/types.js';
import { supportedGuestArb, supportedOf } from '../scenarios/supported.js';

/** Runs a VMM-prefixed program; a declared divergence (judged on the vCPU's model then) ends it quietly. */
export function runVmmProgram(r: ConformanceRun, guest: GuestConfig, cmds: readonly WorldCommand[]): void {
  const w = conformanceWorld(r, guest);
  try {
    fc.modelRun(() => ({ model: {}, real: w }), cmds);
  } catch (e) {
    if (!(e instanceof Divergence)) throw e;
    const now = w.guestConfig(e.observation.vcpu);
    const k = declaredFor(r.expectations, e.observation, {
      host: r.host,
      guest: now,
      history: historyTo(w.observations, e.observation),
      facts: w,
    });
    if (k === undefined) throw e;
    r.known?.set(k.id, (r.known.get(k.id) ?? 0) + 1);
    r.ended?.set(k.id, (r.ended.get(k.id) ?? 0) + 1);
  } finally {
    countAdopted(r, w.adopted);
  }
}

/** The VMM property's guests: supported ones, and now and then a VM created with KVM_PMU_CAP_DISABLE (pmu=off). */
export function vmmGuestArb(r: ConformanceRun): fc.Arbitrary<GuestConfig> {
  return fc.oneof(
    { arbitrary: supportedGuestArb(r.host, supportedOf(r)), weight: 6 },
    { arbitrary: pmuOffGuestArb(r.host), weight: 1 },
    { arbitrary: noPmuGuestArb(r.host), weight: 1 },
  );
}

export function vmmConformanceProperty(r: ConformanceRun) {
  return fc.property(
    vmmGuestArb(r).chain((guest) => {
      // Any of the MSRs a save reads (all of them as a VMM does at migration, fewer as the shrinker keeps what matters).
      const save = fc.subarray(vmmSaveCommands(shapeOf(guest)), { minLength: 1 });
      return fc.tuple(
        fc.constant(guest),
        fc.tuple(focusArb, countedArb(shapeOf(guest))).chain(([focus, counted]) =>
          fc.tuple(
            nonEmptyArray(
              fc.oneof(
                { arbitrary: vmmSetMsrArb(r.host, focus), weight: 3 },
                // A PMU-off VM keeps its CPUID: a new one with a PMU is a configuration KVM does not support.
                ...(guest.pmuCap === undefined
                  ? [{ arbitrary: vmmSetCpuidArb(r.host, supportedOf(r)), weight: 2 }]
                  : []),
                { arbitrary: vmmSetFilterArb(counted), weight: 2 },
                { arbitrary: vmmPmuCapabilityArb, weight: 1 },
                { arbitrary: vmmGetMsrArb(focus), weight: 1 },
                // A save (as at migration), after what the VMM did so far.
                { arbitrary: save, weight: 1 },
              ),
              6,
            ),
            fc.array(
              fc.oneof(
                { arbitrary: fc.oneof(...quietHostCommands(focus, shapeOf(guest))), weight: 4 },
                { arbitrary: fc.oneof(...guestCountingArbs(shapeOf(guest), counted)), weight: 2 },
                { arbitrary: guestReadbackArb(focus), weight: 1 },
                // The VMM again once the guest has run (a restore on the destination, a save on the source).
                { arbitrary: vmmSetMsrArb(r.host, focus), weight: 1 },
                { arbitrary: vmmGetMsrArb(focus), weight: 1 },
                { arbitrary: save, weight: 1 },
                // KVM_SET_CPUID2 once the guest has run: refused unless nothing changes.
                ...(guest.pmuCap === undefined
                  ? [{ arbitrary: vmmSetCpuidArb(r.host, supportedOf(r)), weight: 1 }]
                  : []),
              ),
              { maxLength: 20, size: '+1' },
            ),
          ),
        ),
      );
    }),
    ([guest, [setup, body]]) => runVmmProgram(r, guest, [...setup, ...body].flat()),
  );
}
