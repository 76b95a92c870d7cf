import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { explainAllocation } from '../deposits/allocation-view.ts';
import { policyFromJson, policyJsonSchema, policyToJson, setUserPolicy, userPolicy } from '../deposits/policy.ts';
import type { ScoreDetail } from '../deposits/reputation.ts';
import { jsonBody, requestSigner } from './request-parsing.ts';
import type { HttpDependencies } from './server.ts';

function scoreDetailJson(detail: ScoreDetail | undefined) {
  if (!detail) return null;
  return {
    prior: detail.prior,
    auditors: detail.auditors.map((a) => ({ pubkey: a.pubkey, reports: a.reports, uptime: a.uptime, correctness: a.correctness, timeliness: a.timeliness, metric: a.metric })),
    combined: detail.combined,
    confidence: detail.confidence,
    bridge: detail.bridge && { calls: detail.bridge.calls, failures: detail.bridge.failures, slow_calls: detail.bridge.slowCalls, factor: detail.bridge.factor },
    incidents: detail.incidents,
    integrity_incidents: detail.integrityIncidents,
    hard_fail: detail.hardFail,
  };
}

/**
 * Reputation and spreading: every operator's score with the figures behind it (public), and
 * the user's allocation and policy (NIP-98 signed by the user, rate limited).
 */
export function registerAllocationRoutes<L extends FastifyBaseLogger>(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>, deps: HttpDependencies): void {
  const signer = requestSigner(deps.publicUrl);
  void app.register(async (scope) => {
    await scope.register(rateLimit, { global: true, max: 300, timeWindow: 60_000 });

    scope.get('/api/operators', async () => ({
      operators: deps.wallet.operators.all().map((op) => ({
        name: op.name,
        url: op.url,
        node_pubkey: op.nodePubkey,
        available: op.available,
        score: op.score,
        score_reasons: op.scoreReasons,
        score_detail: scoreDetailJson(op.scoreDetail),
      })),
    }));

    scope.get('/api/allocation', async (req) => {
      const view = await explainAllocation(deps.wallet, signer(req));
      return {
        total_msat: view.totalMsat.toString(),
        relaxed: view.relaxed,
        policy: policyToJson(view.policy),
        operators: view.operators.map((o) => ({
          name: o.name,
          node_pubkey: o.nodePubkey,
          score: o.score,
          score_reasons: o.scoreReasons,
          available: o.available,
          tier: o.tier,
          balance_msat: o.balanceMsat.toString(),
          target_msat: o.targetMsat.toString(),
          cap_msat: o.capMsat === null ? null : o.capMsat.toString(),
          actual_share_ppm: o.actualSharePpm,
          target_share_ppm: o.targetSharePpm,
        })),
      };
    });

    scope.get('/api/policy', async (req) => policyToJson(await userPolicy(deps.db, signer(req))));

    scope.put('/api/policy', async (req) => {
      const user = signer(req);
      const policy = policyFromJson(
        jsonBody(req, policyJsonSchema, '{"max_share_ppm": 1..1000000, "test_amount_msat": "<msat>", "trusted_score": 0..1, "min_score": 0..1, "exponent": 0.25..8}'),
      );
      await setUserPolicy(deps.db, user, policy);
      deps.logger.info({ user, policy: policyToJson(policy) }, 'allocation policy set');
      return policyToJson(policy);
    });
  });
}
