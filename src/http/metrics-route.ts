import type { FastifyPluginAsync } from 'fastify';
import type { BridgeMetrics } from '../metrics/metrics.ts';

/** A plugin serving GET /metrics: the instance's Prometheus metrics in the text exposition format. */
export function metricsRoute(metrics: BridgeMetrics): FastifyPluginAsync {
  return async (app) => {
    app.get('/metrics', async (_req, reply) => {
      const { contentType, body } = await metrics.expose();
      return reply.header('content-type', contentType).send(body);
    });
  };
}
