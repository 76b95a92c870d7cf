import type { AuditorReportContent } from '../protocol/auditor-report.ts';

/**
 * Operator reputation (docs/reputation.md). Every input is a "good" metric or a count of bad
 * events, and the score only ever moves with the good ones and against the bad: better metrics
 * never lower it. The numbers here are the ones the account page explains.
 */

/** What an operator nobody has audited yet scores: enough for a test amount, never to lead. */
export const PRIOR_SCORE = 0.2;
export const REPORT_RETENTION_SECONDS = 90 * 24 * 3600;
/** Newer reports and observations weigh more: a week-old one counts half. */
const HALF_LIFE_SECONDS = 7 * 24 * 3600;
/** A p95 latency up to this is fully timely; the timeliness factor then falls to its floor at 10 s. */
const TIMELY_P95_MS = 1_000;
const SLOW_P95_MS = 10_000;
const TIMELINESS_FLOOR = 0.5;
/** The bridge's own figures count once it has made this many calls (recency-weighted). */
const MIN_OBSERVED_CALLS = 10;
/** A call slower than this counts as slow in the bridge's own observations. */
export const SLOW_CALL_MS = 2_000;

export interface AttributedReport extends AuditorReportContent {
  auditor: string;
}

/** The bridge's own record of one operator over one hour. */
export interface Observation {
  hourStartSec: number;
  calls: number;
  failures: number;
  slowCalls: number;
}

export interface ReputationInput {
  reports: readonly AttributedReport[];
  observations: readonly Observation[];
  /** Incidents the bridge recorded against the operator in 90 days, integrity ones included. */
  incidents: number;
  /** Of those, proven vault integrity failures (a payment taken without a signed credit). */
  integrityIncidents: number;
  nowSec: number;
}

/** The score with every figure it came from, for the API and the account page. */
export interface ScoreDetail {
  score: number;
  reasons: string[];
  prior: number;
  auditors: { pubkey: string; reports: number; uptime: number; correctness: number; timeliness: number; metric: number }[];
  /** (mean + lowest) / 2 of the auditors' metrics: disagreement pulls it down. */
  combined: number | null;
  /** How far the auditors move the score from the prior: 1 − 0.5^auditors. */
  confidence: number;
  bridge: { calls: number; failures: number; slowCalls: number; factor: number } | null;
  incidents: number;
  integrityIncidents: number;
  hardFail: string | null;
}

/** 1 up to TIMELY_P95_MS, falling linearly to TIMELINESS_FLOOR at SLOW_P95_MS and beyond. */
export function timelinessOf(p95Ms: number): number {
  if (p95Ms <= TIMELY_P95_MS) return 1;
  const slowness = Math.min(1, (p95Ms - TIMELY_P95_MS) / (SLOW_P95_MS - TIMELY_P95_MS));
  return 1 - slowness * (1 - TIMELINESS_FLOOR);
}

function recencyWeight(ageSec: number): number {
  return 0.5 ** (Math.max(0, ageSec) / HALF_LIFE_SECONDS);
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const short = (key: string) => `${key.slice(0, 8)}…`;

export function scoreOperator(input: ReputationInput): ScoreDetail {
  const since = input.nowSec - REPORT_RETENTION_SECONDS;
  const reports = input.reports.filter((r) => r.window_end > since);
  const detail: ScoreDetail = {
    score: PRIOR_SCORE,
    reasons: [],
    prior: PRIOR_SCORE,
    auditors: [],
    combined: null,
    confidence: 0,
    bridge: null,
    incidents: input.incidents,
    integrityIncidents: input.integrityIncidents,
    hardFail: null,
  };

  // Proven failures end the matter: no metric outweighs money that is not there or was pocketed.
  const reserveFail = reports.find((r) => r.reserve_ratio_ppm !== null && r.reserve_ratio_ppm < 1_000_000);
  const reportedIntegrity = reports.find((r) => r.integrity_incidents > 0);
  if (input.integrityIncidents > 0) detail.hardFail = `${input.integrityIncidents} payment(s) taken into a vault without a signed credit, caught by this bridge`;
  else if (reportedIntegrity) detail.hardFail = `auditor ${short(reportedIntegrity.auditor)} reported ${reportedIntegrity.integrity_incidents} vault integrity incident(s)`;
  else if (reserveFail) detail.hardFail = `auditor ${short(reserveFail.auditor)} reported a reserve ratio of ${((reserveFail.reserve_ratio_ppm ?? 0) / 1e6).toFixed(3)}, below 1`;
  if (detail.hardFail) {
    detail.score = 0;
    detail.reasons = [`${detail.hardFail}: score 0`];
    return detail;
  }

  const byAuditor = new Map<string, AttributedReport[]>();
  for (const r of reports) byAuditor.set(r.auditor, [...(byAuditor.get(r.auditor) ?? []), r]);
  for (const [pubkey, own] of [...byAuditor].sort(([a], [b]) => (a < b ? -1 : 1))) {
    let weights = 0;
    let uptime = 0;
    let correctness = 0;
    let timeliness = 0;
    let metric = 0;
    for (const r of own) {
      const w = recencyWeight(input.nowSec - r.window_end);
      const u = r.uptime_ppm / 1e6;
      const c = r.correctness_ppm / 1e6;
      const t = timelinessOf(r.latency_p95_ms);
      weights += w;
      uptime += w * u;
      correctness += w * c;
      timeliness += w * t;
      metric += w * u * c * t;
    }
    detail.auditors.push({ pubkey, reports: own.length, uptime: uptime / weights, correctness: correctness / weights, timeliness: timeliness / weights, metric: metric / weights });
  }

  let score = PRIOR_SCORE;
  if (detail.auditors.length === 0) {
    detail.reasons.push(`no auditor report in 90 days: new-operator prior ${PRIOR_SCORE}`);
  } else {
    const metrics = detail.auditors.map((a) => a.metric);
    const mean = metrics.reduce((s, m) => s + m, 0) / metrics.length;
    const lowest = Math.min(...metrics);
    detail.combined = (mean + lowest) / 2;
    detail.confidence = 1 - 0.5 ** detail.auditors.length;
    score = PRIOR_SCORE + detail.confidence * (detail.combined - PRIOR_SCORE);
    for (const a of detail.auditors) {
      detail.reasons.push(
        `auditor ${short(a.pubkey)}: ${a.reports} report(s), uptime ${pct(a.uptime)}, correctness ${pct(a.correctness)}, timeliness ${pct(a.timeliness)} → ${a.metric.toFixed(3)}`,
      );
    }
    detail.reasons.push(
      `${detail.auditors.length} auditor(s): mean ${mean.toFixed(3)}, lowest ${lowest.toFixed(3)} → ${detail.combined.toFixed(3)}; ` +
        `weight ${pct(detail.confidence)} against the prior ${PRIOR_SCORE} → ${score.toFixed(3)}`,
    );
  }

  let calls = 0;
  let failures = 0;
  let slowCalls = 0;
  for (const o of input.observations) {
    if (o.hourStartSec <= since) continue;
    const w = recencyWeight(input.nowSec - o.hourStartSec);
    calls += w * o.calls;
    failures += w * Math.min(o.failures, o.calls);
    slowCalls += w * Math.min(o.slowCalls, o.calls);
  }
  if (calls >= MIN_OBSERVED_CALLS) {
    const availability = 1 - failures / calls;
    const timely = 1 - slowCalls / calls;
    const factor = availability * (0.75 + 0.25 * timely);
    detail.bridge = { calls: Math.round(calls), failures: Math.round(failures), slowCalls: Math.round(slowCalls), factor };
    score *= factor;
    detail.reasons.push(`this bridge's calls (recency-weighted): ${Math.round(calls)}, ${pct(1 - availability)} unanswered, ${pct(1 - timely)} slower than ${SLOW_CALL_MS} ms → × ${factor.toFixed(3)}`);
  }

  if (input.incidents > 0) {
    score *= 0.5 ** Math.min(input.incidents, 20);
    detail.reasons.push(`${input.incidents} incident(s) recorded by this bridge in 90 days: score halved for each`);
  }
  detail.score = Math.min(1, Math.max(0, score));
  return detail;
}
