import type { AuditorReportContent } from '../protocol/auditor-report.ts';

/** What a new operator with no reports scores: enough to hold a little, never to lead. */
export const PRIOR_SCORE = 0.2;
export const REPORT_RETENTION_SECONDS = 90 * 24 * 3600;

export interface Score {
  score: number;
  reasons: string[];
}

/**
 * A first reputation score in [0, 1] from auditor reports of the last 90 days (docs/reputation.md):
 * the mean of uptime × correctness over the reports, newer reports weighing more (half-life
 * 7 days); zero at once on any reserve ratio below 1 or any integrity incident. Monotone: a
 * better metric in any report never lowers it.
 */
export function scoreFromReports(reports: readonly AuditorReportContent[], nowSec: number): Score {
  const recent = reports.filter((r) => r.window_end > nowSec - REPORT_RETENTION_SECONDS);
  if (recent.length === 0) return { score: PRIOR_SCORE, reasons: ['no auditor report yet: new-operator prior'] };
  const reserveFail = recent.find((r) => r.reserve_ratio_ppm < 1_000_000);
  if (reserveFail) return { score: 0, reasons: [`reserve ratio ${reserveFail.reserve_ratio_ppm / 1e6} below 1 in a report`] };
  const incident = recent.find((r) => r.integrity_incidents > 0);
  if (incident) return { score: 0, reasons: [`${incident.integrity_incidents} vault integrity incident(s) reported`] };
  let weighted = 0;
  let weights = 0;
  for (const r of recent) {
    const ageDays = Math.max(0, nowSec - r.window_end) / 86_400;
    const weight = 0.5 ** (ageDays / 7);
    weighted += weight * (r.uptime_ppm / 1e6) * (r.correctness_ppm / 1e6);
    weights += weight;
  }
  const score = weighted / weights;
  return { score, reasons: [`${recent.length} auditor report(s): uptime × correctness ${score.toFixed(3)}`] };
}

/**
 * The bridge's own observations on top of the auditors': each incident it recorded against the
 * operator in the last 90 days (a fee above the limit, an invoice failing its vault proof, a
 * balance the journal disagrees with, a refused payment…) halves the score; a payment taken
 * into a vault without a signed credit (the selective-payment attack) sets it to zero.
 */
export function withIncidents(base: Score, incidents: number, integrityIncidents: number): Score {
  if (integrityIncidents > 0) {
    return { score: 0, reasons: [...base.reasons, `${integrityIncidents} payment(s) taken into a vault without a signed credit: score zero`] };
  }
  if (incidents === 0) return base;
  return {
    score: base.score * 0.5 ** Math.min(incidents, 20),
    reasons: [...base.reasons, `${incidents} incident(s) recorded by this bridge in 90 days: score halved for each`],
  };
}
