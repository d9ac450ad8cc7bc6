import { defineConfig } from 'vitest/config';

// `npm run mutation`: the tests that exercise the KVM designs and the host perf model directly, in-process, and
// test/mutation's sweep. Each surviving mutant costs a run of every test that covers it, so the generated-program
// search is the sweep's (every design, host and check on a small fixed budget, about 12 s), not npm test's deep
// runs on one host: the property files whose checks the sweep runs (designs, vmm_faithful, no-leak, invisible,
// the mediated conformance sweep), the catalogue (ported bugs, each a design of its own that the mutated faithful
// code serves only through the sweep's designs), the priced workloads of compare and the distribution of the
// generation profiles are left out. CLI tests spawn processes Stryker cannot see into; the reference model's own
// tests cannot kill a KVM or host perf mutant.
export default defineConfig({
  test: {
    include: [
      'test/mutation/**/*.test.ts',
      'test/model/kvm/**/*.test.ts',
      'test/model/host/**/*.test.ts',
      'test/scenarios/**/*.test.ts',
      'test/regressions/**/*.test.ts',
      'test/properties/**/*.test.ts',
    ],
    exclude: [
      'test/model/kvm/mediated/conformance.test.ts',
      'test/scenarios/generation.test.ts',
      'test/properties/designs.test.ts',
      'test/properties/vmm_faithful.test.ts',
      'test/properties/noninterference.test.ts',
      'test/properties/invisible.test.ts',
    ],
    // A mutant's run loads the model once for all its test files, not once per file: the suite takes 27 s instead of
    // 63 s on one core. Stryker starts each mutant's run afresh, so no module state crosses from one mutant to the next.
    isolate: false,
    setupFiles: ['test/setup.ts'],
    globalSetup: ['test/global_setup.ts'],
    testTimeout: 120_000,
  },
});
