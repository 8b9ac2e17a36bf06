import { defineConfig } from 'vitest/config';

/**
 * Two parts: `fast` checks handlers, stores and parsers in this process, from src/ with no build
 * (`npm run test:fast`, for the edit-test loop); `slow` drives real clients, server and CLI
 * processes from dist/, crashes and the benchmark (`npm run test:slow`, after `npm run build`).
 * A test file that starts `custody serve` or the CLI as a process belongs in `slow`. `npm test`
 * and CI run both.
 */
const slow = [
  'test/clients/**/*.test.ts',
  'test/crash.test.ts',
  'test/replicas.test.ts',
  'test/bench-smoke.test.ts',
  'test/npm-start.test.ts',
  'test/serve-startup.test.ts',
  'test/cli*.test.ts',
  'test/trust-hostile-sbom.test.ts',
  // `custody serve` as a process behind a configuration file, and with and without its Node flags
  'test/proxies.test.ts',
  'test/buffer-gc.test.ts',
  // garbage collection under load and killed mid-sweep: seconds of concurrent clients, real kills
  'test/gc-fire.test.ts',
  'test/gc-crash.test.ts',
  // three replicas behind a balancer on PostgreSQL and S3, one SIGKILLed under load
  'test/replicas-balancer.test.ts',
  // three replicas' periodic jobs, once per interval between them; one SIGKILLed holding a lease
  'test/jobs-replicas.test.ts',
  // three replicas on PostgreSQL and a client spread over them for seconds: the shared request rate
  'test/rate-limit-replicas.test.ts',
  // usage events written when `custody serve` stops on SIGTERM
  'test/insight-sigterm.test.ts',
];

const shared = {
  testTimeout: 60_000,
  hookTimeout: 120_000,
  // Interop and crash tests start real servers and clients; running files one at a time keeps
  // them from fighting over this machine's two cores.
  fileParallelism: false,
};

export default defineConfig({
  test: {
    fileParallelism: false,
    projects: [{ test: { ...shared, name: 'fast', include: ['test/**/*.test.ts'], exclude: slow } }, { test: { ...shared, name: 'slow', include: slow } }],
  },
});
