import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { PRE_REFRESH_RESET_FIX_OPS } from '../../model/kvm/bugs/1647b52757d5_refresh_without_reset.js';
import { PRE_FILTER_EMULATED_EVENTS_FIX_OPS } from '../../model/kvm/bugs/dfdeda67ea2d_filter_emulated_events.js';
import { emulatedWith } from '../../designs/registry.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import type { ConformanceRun } from '../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { vmmConformanceProperty } from '../../properties/vmm_conformance.js';
import { Divergence } from '../../scenarios/commands.js';

const emulated: ConformanceRun = {
  host: SKYLAKE,
  design: (h, o) => new EmulatedVcpu(h, o),
  expectations: EMULATED_EXPECTATIONS,
};

describe('property 1 with a VMM: setup ioctls and the event filter', () => {
  // That the faithful designs pass it on every host: vmm_faithful.test.ts.
  it("finds bug #34 (refresh without reset, fixed by 1647b52757d5): the guest sees the old model's state", () => {
    const d = fc.check(vmmConformanceProperty({ ...emulated, design: emulatedWith(PRE_REFRESH_RESET_FIX_OPS) }), {
      numRuns: 1000,
      seed: 2,
    });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(Divergence);
    const [[, [setup]]] = d.counterexample!;
    expect(setup.map(String).some((c) => c.startsWith('new VmmSetCpuid'))).toBe(true);
  });

  it('finds bug #49 (emulated instructions ignore the filter, fixed by dfdeda67ea2d)', () => {
    const d = fc.check(
      vmmConformanceProperty({ ...emulated, design: emulatedWith(PRE_FILTER_EMULATED_EVENTS_FIX_OPS) }),
      {
        numRuns: 1000,
        seed: 1,
      },
    );
    expect(d.failed).toBe(true);
    const [[, [setup]]] = d.counterexample!;
    expect(setup.map(String).some((c) => c.startsWith('new VmmSetPmuEventFilter'))).toBe(true);
  });
});
