import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    globalSetup: ['test/global_setup.ts'],
    testTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    // The JSON file is what .ci/run turns into the "N passed, N failed" line.
    reporters: ['default', ['json', { outputFile: 'reports/out/vitest.json' }]],
    coverage: {
      provider: 'v8',
      include: [
        'model/**/*.ts',
        'scenarios/**/*.ts',
        'properties/**/*.ts',
        'designs/**/*.ts',
        'reports/**/*.ts',
        'catalogue/**/*.ts',
        'compare/**/*.ts',
      ],
      exclude: ['reports/out/**'],
      reporter: ['text-summary', 'json-summary'],
      reportsDirectory: 'coverage',
      // A shard (--shard i/n, .github/workflows/shards.yml) covers part of the code: the thresholds hold for the merged run.
      thresholds: process.argv.some((a) => a.startsWith('--shard'))
        ? {}
        : {
            'model/hw/**': { lines: 90, branches: 90 },
          },
    },
  },
});
