/**
 * GET /metrics: the Prometheus text format (docs/insight.md, Metrics). Like every route it asks
 * the access controller: with `insight.metrics.access: admin` (the default) for the registry's
 * metrics access, which administrators have and tokens with the `metrics` scope carry; with
 * `open`, for nothing, so anyone who reaches it may scrape (credentials, if sent, must still be
 * valid). Refusals are the /api/v1 JSON shape.
 */
import type { FastifyInstance } from 'fastify';
import type { Access, AccessController } from '../auth/access.ts';
import type { Metrics } from '../insight/metrics.ts';
import { ask } from './context.ts';
import { installApiErrors } from './errors.ts';

/** What reading the metrics takes when they are not open. */
export const metricsAccess: Access = { type: 'registry', name: 'metrics', actions: [] };

export function registerMetricsRoute(app: FastifyInstance, deps: { metrics: Metrics; controller: AccessController; access: 'admin' | 'open' }): void {
  const accesses = deps.access === 'open' ? [] : [metricsAccess];
  app.register(
    async (scope) => {
      installApiErrors(scope);
      scope.get('/', async (req, reply) => {
        await ask(deps.controller, req, reply, accesses);
        const text = await deps.metrics.text();
        return reply.header('content-type', deps.metrics.contentType).header('cache-control', 'no-store').send(text);
      });
    },
    { prefix: '/metrics' },
  );
}
