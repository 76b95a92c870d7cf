import { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import { compressedPubkeyHex } from './hex.ts';
import { KIND } from './kinds.ts';
import { hasValidSignature, nostrEventSchema, signEvent } from './nostr-event.ts';
import { fail, ok, type Result } from './result.ts';

const ppm = z.number().int().min(0).max(1_000_000);

/**
 * An auditor's measurement of one operator over a window. Ratios are integers in parts per
 * million so the signed content has no floats.
 */
export const auditorReportContentSchema = z.strictObject({
  operator: compressedPubkeyHex,
  window_start: z.number().int().nonnegative(),
  window_end: z.number().int().nonnegative(),
  samples: z.number().int().nonnegative(),
  uptime_ppm: ppm,
  /** Share of the operator's signed statements (proofs, balance updates) that verified. */
  correctness_ppm: ppm,
  latency_p50_ms: z.number().int().nonnegative(),
  latency_p95_ms: z.number().int().nonnegative(),
  /**
   * Reserve / deposits; below 1 000 000 means deposits are not fully backed. Capped at 10x.
   * Null when the window had no reading (the operator did not answer): unknown is not a shortfall.
   */
  reserve_ratio_ppm: z.number().int().min(0).max(10_000_000).nullable(),
  integrity_incidents: z.number().int().nonnegative(),
});
export type AuditorReportContent = z.infer<typeof auditorReportContentSchema>;

export interface AuditorReport extends AuditorReportContent {
  auditor: string;
  event: Event;
}

export const auditorReportsResponseSchema = z.object({ reports: z.array(nostrEventSchema) });

export function signAuditorReport(content: AuditorReportContent, auditorSecretKey: Uint8Array): Event {
  return signEvent(
    {
      kind: KIND.auditorReport,
      created_at: content.window_end,
      tags: [['d', `${content.operator}:${content.window_start}`]],
      content: JSON.stringify(content),
    },
    auditorSecretKey,
  );
}

/** Checks an auditor report's signature and content, and that it is about `operator`. */
export function verifyAuditorReport(event: Event, operator: string): Result<AuditorReport> {
  if (event.kind !== KIND.auditorReport) return fail('BAD_REQUEST', `report must be kind ${KIND.auditorReport}`);
  if (!hasValidSignature(event)) return fail('UNAUTHORIZED', 'report signature is invalid');
  let json: unknown;
  try {
    json = JSON.parse(event.content);
  } catch {
    return fail('BAD_REQUEST', 'report content is not JSON');
  }
  const parsed = auditorReportContentSchema.safeParse(json);
  if (!parsed.success) return fail('BAD_REQUEST', 'report content is invalid');
  if (parsed.data.operator !== operator) return fail('BAD_REQUEST', 'report is about another operator');
  return ok({ ...parsed.data, auditor: event.pubkey, event });
}
