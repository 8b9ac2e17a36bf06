import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Interop and crash tests start real servers and clients; running files one at a time keeps
    // them from fighting over this machine's two cores.
    fileParallelism: false,
  },
});
