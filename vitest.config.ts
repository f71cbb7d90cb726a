import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The container image test takes minutes: `npm run test:image`.
    exclude: [...configDefaults.exclude, 'test/image/**'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // Generous: tests wait for conditions, never for a time (test/support/patience.ts).
    testTimeout: 300_000,
    hookTimeout: 300_000,
    teardownTimeout: 20_000,
  },
});
