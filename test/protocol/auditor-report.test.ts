import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { auditorReportsResponseSchema, signAuditorReport, verifyAuditorReport, type AuditorReportContent } from '../../src/protocol/auditor-report.ts';
import { KIND } from '../../src/protocol/kinds.ts';
import type { VaultErrorCode } from '../../src/protocol/result.ts';

const auditor = generateSecretKey();
const operator = '02' + 'a1'.repeat(32);
const otherOperator = '03' + 'b2'.repeat(32);
const content: AuditorReportContent = {
  operator,
  window_start: 1_700_000_000,
  window_end: 1_700_000_600,
  samples: 60,
  uptime_ppm: 999_000,
  correctness_ppm: 1_000_000,
  latency_p50_ms: 3,
  latency_p95_ms: 9,
  reserve_ratio_ppm: 1_050_000,
  integrity_incidents: 0,
};

describe('auditor reports', () => {
  it('round trips: verifyAuditorReport returns the content, the auditor and the event', () => {
    const event = signAuditorReport(content, auditor);
    expect(verifyAuditorReport(event, operator)).toEqual({ ok: true, value: { ...content, auditor: getPublicKey(auditor), event } });
  });

  it('is a kind 31350 event dated at the window end, addressed by operator and window start', () => {
    const event = signAuditorReport(content, auditor);
    expect(event.kind).toBe(KIND.auditorReport);
    expect(event.kind).toBe(31350);
    expect(event.created_at).toBe(content.window_end);
    expect(event.tags).toEqual([['d', `${operator}:${content.window_start}`]]);
  });

  it('survives the auditor API response schema and a JSON round trip', () => {
    const wire = auditorReportsResponseSchema.parse(JSON.parse(JSON.stringify({ reports: [signAuditorReport(content, auditor)] })));
    expect(wire.reports).toHaveLength(1);
    expect(verifyAuditorReport(wire.reports[0]!, operator).ok).toBe(true);
  });

  const signedWith = (body: unknown) => finalizeEvent({ kind: KIND.auditorReport, created_at: 1, tags: [], content: JSON.stringify(body) }, auditor);

  it.each<[string, () => Event, VaultErrorCode]>([
    ['refuses a report about another operator', () => signAuditorReport({ ...content, operator: otherOperator }, auditor), 'BAD_REQUEST'],
    ['refuses a report whose figures were changed after signing', () => ({ ...signAuditorReport(content, auditor), content: JSON.stringify({ ...content, uptime_ppm: 1_000_000 }) }), 'UNAUTHORIZED'],
    ['refuses a report claimed for another auditor', () => ({ ...signAuditorReport(content, generateSecretKey()), pubkey: getPublicKey(auditor) }), 'UNAUTHORIZED'],
    ['refuses an event of another kind', () => finalizeEvent({ kind: 1, created_at: 1, tags: [], content: JSON.stringify(content) }, auditor), 'BAD_REQUEST'],
    ['refuses signed content that is not JSON', () => finalizeEvent({ kind: KIND.auditorReport, created_at: 1, tags: [], content: 'uptime: 100%' }, auditor), 'BAD_REQUEST'],
    ['refuses a ratio written as a float', () => signedWith({ ...content, uptime_ppm: 0.999 }), 'BAD_REQUEST'],
    ['refuses a ratio above one million ppm', () => signedWith({ ...content, correctness_ppm: 1_000_001 }), 'BAD_REQUEST'],
    ['refuses a reserve ratio above ten times', () => signedWith({ ...content, reserve_ratio_ppm: 10_000_001 }), 'BAD_REQUEST'],
    ['refuses negative incidents', () => signedWith({ ...content, integrity_incidents: -1 }), 'BAD_REQUEST'],
    ['refuses an unknown field', () => signedWith({ ...content, score: 1 }), 'BAD_REQUEST'],
    ['refuses an operator given as an x-only key', () => signedWith({ ...content, operator: operator.slice(2) }), 'BAD_REQUEST'],
  ])('%s', (_, make, code) => {
    const result = verifyAuditorReport(make(), operator);
    expect(result.ok ? 'accepted' : result.error.code).toBe(code);
  });
});
