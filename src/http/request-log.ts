import type { FastifyPluginAsync } from 'fastify';

/**
 * Logs each HTTP request once it is answered, on the request's own child logger (which carries
 * its `request_id`): method, route pattern (never the raw URL, whose query could hold anything),
 * status and duration (health checks and metric scrapes at debug). The id is sent back in `x-request-id` so a user's report can be matched
 * to the log line. Applies to every route (not encapsulated).
 */
export const requestLog: FastifyPluginAsync = Object.assign(
  async (app: Parameters<FastifyPluginAsync>[0]) => {
    app.addHook('onRequest', async (req, reply) => {
      void reply.header('x-request-id', req.id);
    });
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url;
      // Health checks and scrapes come every few seconds: kept out of the info level.
      // (A 503 from /health while starting is an answer, not an error.)
      const level = route === '/health' || route === '/metrics' ? 'debug' : reply.statusCode >= 500 ? 'error' : 'info';
      req.log[level]({ method: req.method, route: route ?? 'unmatched', status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'http request answered');
    });
  },
  // What fastify-plugin does: the hooks apply to the whole server, not to a child context.
  { [Symbol.for('skip-override')]: true },
);
