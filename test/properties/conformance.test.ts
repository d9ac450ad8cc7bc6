import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SKYLAKE } from '../../model/hw/profiles.js';
import { PRE_FAST_RDPMC_FIX_OPS } from '../../model/kvm/bugs/5728a4a0ea79_fast_rdpmc.js';
import { emulatedWith } from '../../designs/registry.js';
import { EmulatedVcpu } from '../../model/kvm/emulated/vcpu.js';
import { type ConformanceRun, conformanceProperty } from '../../properties/conformance.js';
import { EMULATED_EXPECTATIONS } from '../../properties/expectations/emulated.js';
import { Divergence } from '../../scenarios/commands.js';

const emulated: ConformanceRun = {
  host: SKYLAKE,
  design: (h, o) => new EmulatedVcpu(h, o),
  expectations: EMULATED_EXPECTATIONS,
};

describe('property 1, conformance (quiet host): guest observations equal bare metal, #GP included', () => {
  it('holds for the emulated vPMU up to its declared divergences (1000 programs)', () => {
    const known = new Map<string, number>();
    fc.assert(conformanceProperty({ ...emulated, known }), { numRuns: 1000 });
    // The declared divergences are met, so the generator reaches what they describe.
    expect(known.size).toBeGreaterThan(0);
  });

  it('finds bug #41 (fast RDPMC honoured, fixed by 5728a4a0ea79) and shrinks it to one command', () => {
    const d = fc.check(conformanceProperty({ ...emulated, design: emulatedWith(PRE_FAST_RDPMC_FIX_OPS) }), {
      numRuns: 1000,
    });
    expect(d.failed).toBe(true);
    expect(d.errorInstance).toBeInstanceOf(Divergence);
    // fast-check's command iterable prints the commands that ran, plus the replay path.
    const program = (d.counterexample![0][1] as { toString(): string })
      .toString()
      .replace(/ \/\*replayPath=.*\*\//, '');
    // Any ECX with bit 31 (the "fast" flag) set, e.g. 0x80000000 or 0xc0000000.
    expect(program).toMatch(/^new GuestRdpmc\(\d+, 0x[89a-f][0-9a-f]{7}, [03]\)$/);
  });
});
