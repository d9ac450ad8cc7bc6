import { defineConfig } from 'vitest/config';

// `npm run mutation`: the tests that exercise the KVM designs and the host perf model directly, in-process.
// CLI tests spawn processes Stryker cannot see into; the reference model's own tests cannot kill a KVM or
// host perf mutant. Left out for time, each mutant's surviving run being the sum of the tests that cover it:
// the priced workloads of compare, the distribution of generation profiles, and the property files whose
// checks designs.test.ts and the catalogue already run on the same designs (no-leak, invisible, the mediated
// conformance sweep).
export default defineConfig({
  test: {
    include: [
      'test/model/kvm/**/*.test.ts',
      'test/model/host/**/*.test.ts',
      'test/scenarios/**/*.test.ts',
      'test/catalogue/**/*.test.ts',
      'test/regressions/**/*.test.ts',
      'test/properties/**/*.test.ts',
    ],
    exclude: [
      'test/model/kvm/mediated/conformance.test.ts',
      'test/scenarios/generation.test.ts',
      'test/properties/noninterference.test.ts',
      'test/properties/invisible.test.ts',
      'test/catalogue/faults.test.ts',
    ],
    setupFiles: ['test/setup.ts'],
    globalSetup: ['test/global_setup.ts'],
    testTimeout: 120_000,
  },
});
