import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PRIOR_SCORE, REPORT_RETENTION_SECONDS, scoreOperator, timelinessOf, type AttributedReport, type Observation, type ReputationInput } from '../../src/deposits/reputation.ts';

const NOW = 1_800_000_000;
const OPERATOR = `02${'ab'.repeat(32)}`;
const AUDITORS = ['a1'.repeat(32), 'b2'.repeat(32), 'c3'.repeat(32)];

const report = fc.record({
  auditor: fc.constantFrom(...AUDITORS),
  age: fc.integer({ min: 0, max: REPORT_RETENTION_SECONDS - 1 }),
  uptime_ppm: fc.integer({ min: 0, max: 1_000_000 }),
  correctness_ppm: fc.integer({ min: 0, max: 1_000_000 }),
  latency_p95_ms: fc.integer({ min: 0, max: 20_000 }),
  reserve_ratio_ppm: fc.oneof(fc.integer({ min: 1_000_000, max: 10_000_000 }), fc.integer({ min: 0, max: 999_999 }), fc.constant(null)),
  integrity_incidents: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }),
});
type ReportSeed = typeof report extends fc.Arbitrary<infer T> ? T : never;

const toReport = (r: ReportSeed, i: number): AttributedReport => ({
  operator: OPERATOR,
  auditor: r.auditor,
  window_start: NOW - r.age - 600 - i,
  window_end: NOW - r.age,
  samples: 60,
  uptime_ppm: r.uptime_ppm,
  correctness_ppm: r.correctness_ppm,
  latency_p50_ms: Math.floor(r.latency_p95_ms / 2),
  latency_p95_ms: r.latency_p95_ms,
  reserve_ratio_ppm: r.reserve_ratio_ppm,
  integrity_incidents: r.integrity_incidents,
});

const observation: fc.Arbitrary<Observation> = fc
  .record({ hoursAgo: fc.integer({ min: 0, max: 24 * 89 }), calls: fc.integer({ min: 0, max: 500 }), failures: fc.nat(500), slowCalls: fc.nat(500) })
  .map((o) => ({ hourStartSec: NOW - o.hoursAgo * 3600, calls: o.calls, failures: Math.min(o.failures, o.calls), slowCalls: Math.min(o.slowCalls, o.calls) }));

const input = fc.record({
  reports: fc.array(report, { maxLength: 12 }),
  observations: fc.array(observation, { maxLength: 6 }),
  incidents: fc.nat(4),
  integrityIncidents: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }),
});
type InputSeed = typeof input extends fc.Arbitrary<infer T> ? T : never;

const toInput = (seed: InputSeed): ReputationInput => ({
  reports: seed.reports.map(toReport),
  observations: seed.observations,
  incidents: Math.max(seed.incidents, seed.integrityIncidents),
  integrityIncidents: seed.integrityIncidents,
  nowSec: NOW,
});

/** One metric of one report or observation made better, or one bad event taken away. */
const improvement = fc.record({ which: fc.nat(), what: fc.integer({ min: 0, max: 8 }), by: fc.double({ min: 0, max: 1, noNaN: true }) });

function improve(seed: InputSeed, change: { which: number; what: number; by: number }): InputSeed {
  const reports = seed.reports.map((r) => ({ ...r }));
  const observations = seed.observations.map((o) => ({ ...o }));
  const r = reports.length > 0 ? reports[change.which % reports.length] : undefined;
  const o = observations.length > 0 ? observations[change.which % observations.length] : undefined;
  const up = (v: number, max: number) => Math.min(max, v + Math.ceil((max - v) * change.by));
  switch (change.what) {
    case 0:
      if (r) r.uptime_ppm = up(r.uptime_ppm, 1_000_000);
      break;
    case 1:
      if (r) r.correctness_ppm = up(r.correctness_ppm, 1_000_000);
      break;
    case 2:
      if (r) r.latency_p95_ms = Math.floor(r.latency_p95_ms * (1 - change.by));
      break;
    case 3:
      if (r && r.reserve_ratio_ppm !== null) r.reserve_ratio_ppm = up(r.reserve_ratio_ppm, 10_000_000);
      break;
    case 4:
      if (r) r.integrity_incidents = Math.max(0, r.integrity_incidents - 1);
      break;
    case 5:
      if (o) o.failures = Math.floor(o.failures * (1 - change.by));
      break;
    case 6:
      if (o) o.slowCalls = Math.floor(o.slowCalls * (1 - change.by));
      break;
    case 7:
      return { ...seed, reports, observations, incidents: Math.max(seed.integrityIncidents, seed.incidents - 1) };
    default:
      return { ...seed, reports, observations, integrityIncidents: 0 };
  }
  return { ...seed, reports, observations };
}

describe('operator score', () => {
  it('stays in [0, 1] and explains itself', () => {
    fc.assert(
      fc.property(input, (seed) => {
        const detail = scoreOperator(toInput(seed));
        expect(detail.score).toBeGreaterThanOrEqual(0);
        expect(detail.score).toBeLessThanOrEqual(1);
        expect(detail.reasons.length).toBeGreaterThan(0);
      }),
    );
  });

  it('is monotone: a better metric, or one bad event fewer, never lowers it', () => {
    fc.assert(
      fc.property(input, improvement, (seed, change) => {
        const before = scoreOperator(toInput(seed)).score;
        const after = scoreOperator(toInput(improve(seed, change))).score;
        expect(after).toBeGreaterThanOrEqual(before - 1e-12);
      }),
      { numRuns: 500 },
    );
  });

  it('is zero at once on a reserve below deposits or a proven integrity failure, whatever else is known', () => {
    fc.assert(
      fc.property(input, (seed) => {
        const reports = seed.reports.map(toReport);
        const failed = seed.integrityIncidents > 0 || reports.some((r) => (r.reserve_ratio_ppm !== null && r.reserve_ratio_ppm < 1_000_000) || r.integrity_incidents > 0);
        const detail = scoreOperator(toInput(seed));
        expect(detail.score === 0 && detail.hardFail !== null).toBe(failed);
      }),
    );
  });

  it('starts a new operator at the small prior', () => {
    const detail = scoreOperator({ reports: [], observations: [], incidents: 0, integrityIncidents: 0, nowSec: NOW });
    expect(detail.score).toBe(PRIOR_SCORE);
    expect(detail.reasons[0]).toMatch(/prior/);
  });

  const clean = (auditor: string, uptimePpm: number): AttributedReport =>
    toReport({ auditor, age: 3600, uptime_ppm: uptimePpm, correctness_ppm: 1_000_000, latency_p95_ms: 50, reserve_ratio_ppm: 2_000_000, integrity_incidents: 0 }, 0);
  const scoreOf = (reports: AttributedReport[]) => scoreOperator({ reports, observations: [], incidents: 0, integrityIncidents: 0, nowSec: NOW }).score;

  it('counts agreement: auditors that agree move the score more than one alone, or than two that disagree', () => {
    const one = scoreOf([clean(AUDITORS[0]!, 950_000)]);
    const twoAgree = scoreOf([clean(AUDITORS[0]!, 950_000), clean(AUDITORS[1]!, 950_000)]);
    const twoDisagree = scoreOf([clean(AUDITORS[0]!, 1_000_000), clean(AUDITORS[1]!, 900_000)]);
    expect(twoAgree).toBeGreaterThan(one);
    expect(twoAgree).toBeGreaterThan(twoDisagree);
    // One auditor moves halfway from the prior, two three quarters: 0.2 + 0.75 × (0.95 − 0.2).
    expect(one).toBeCloseTo(PRIOR_SCORE + 0.5 * (0.95 - PRIOR_SCORE), 9);
    expect(twoAgree).toBeCloseTo(PRIOR_SCORE + 0.75 * (0.95 - PRIOR_SCORE), 9);
  });

  it('forgets reports older than 90 days', () => {
    const old = { ...clean(AUDITORS[0]!, 1_000_000), window_end: NOW - REPORT_RETENTION_SECONDS - 1 };
    expect(scoreOf([old])).toBe(PRIOR_SCORE);
  });

  it('takes the bridge’s own failures and slow calls into account', () => {
    const reports = [clean(AUDITORS[0]!, 1_000_000), clean(AUDITORS[1]!, 1_000_000)];
    const quiet = scoreOperator({ reports, observations: [], incidents: 0, integrityIncidents: 0, nowSec: NOW });
    const failing = scoreOperator({ reports, observations: [{ hourStartSec: NOW - 3600, calls: 100, failures: 20, slowCalls: 0 }], incidents: 0, integrityIncidents: 0, nowSec: NOW });
    expect(failing.score).toBeCloseTo(quiet.score * 0.8, 9);
    expect(failing.bridge).toMatchObject({ calls: 100, failures: 20 });
    expect(failing.reasons.join('\n')).toMatch(/unanswered/);
  });

  it('rates latency: fully timely up to 1 s, half at 10 s and beyond', () => {
    expect(timelinessOf(1_000)).toBe(1);
    expect(timelinessOf(5_500)).toBeCloseTo(0.75, 9);
    expect(timelinessOf(10_000)).toBe(0.5);
    expect(timelinessOf(60_000)).toBe(0.5);
  });
});
