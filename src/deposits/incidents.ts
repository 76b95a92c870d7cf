import type { IncidentKind } from '../db/schema.ts';
import { recordAudit } from './audit.ts';
import type { WalletContext } from './context.ts';

export interface Incident {
  operatorPubkey: string;
  /** The user whose deposit was affected, who is told through the audit log. */
  userPubkey?: string | null | undefined;
  kind: IncidentKind;
  message: string;
  evidence?: unknown;
}

/**
 * Records an operator's misbehaviour with its evidence, tells the affected user (audit log),
 * and lowers the operator's standing at once (docs/reputation.md).
 */
export async function recordIncident(ctx: WalletContext, incident: Incident): Promise<void> {
  const op = ctx.operators.get(incident.operatorPubkey);
  ctx.logger.warn({ operator: op?.name ?? incident.operatorPubkey, kind: incident.kind, reason: incident.message }, 'operator incident');
  await ctx.db
    .insertInto('operator_incidents')
    .values({
      operator_pubkey: incident.operatorPubkey,
      user_pubkey: incident.userPubkey ?? null,
      kind: incident.kind,
      message: incident.message.slice(0, 500),
      evidence: JSON.stringify(incident.evidence ?? null, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
    })
    .execute();
  if (incident.userPubkey) {
    await recordAudit(ctx.db, {
      userPubkey: incident.userPubkey,
      code: 'OPERATOR_INCIDENT',
      message: `${op?.name ?? 'a vault operator'}: ${incident.message}`,
    });
  }
  await ctx.operators.noteIncident(incident.operatorPubkey);
}
