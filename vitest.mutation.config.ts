import { defineConfig } from 'vitest/config';

// `npm run mutation`: the tests that exercise the KVM designs and the host perf model directly, in-process.
// CLI tests spawn processes Stryker cannot see into; the reference model's own tests cannot kill a KVM
// or host perf mutant.
export default defineConfig({
  test: {
    include: [
      'test/model/kvm/**/*.test.ts',
      'test/model/host/**/*.test.ts',
      'test/scenarios/**/*.test.ts',
      'test/catalogue/**/*.test.ts',
      'test/regressions/**/*.test.ts',
      'test/properties/**/*.test.ts',
      'test/compare/**/*.test.ts',
    ],
    setupFiles: ['test/setup.ts'],
    globalSetup: ['test/global_setup.ts'],
    testTimeout: 120_000,
  },
});
