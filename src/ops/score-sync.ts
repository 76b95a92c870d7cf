import { z } from 'zod';
import type { Db } from '../db/database.ts';
import type { KnownOperator } from '../deposits/operators.ts';

const reasonsSchema = z.array(z.string());

/**
 * Copies the operators' scores the leading instance computed (from auditor reports and
 * incidents, stored in `vault_operators`) into this instance's operator directory, so an
 * instance that does not run the score refresh allocates with the same scores.
 */
export async function loadScores(db: Db, operators: readonly Pick<KnownOperator, 'nodePubkey' | 'score' | 'scoreReasons'>[]): Promise<void> {
  if (operators.length === 0) return;
  const rows = await db
    .selectFrom('vault_operators')
    .select(['node_pubkey', 'score', 'score_reasons'])
    .where(
      'node_pubkey',
      'in',
      operators.map((o) => o.nodePubkey),
    )
    .execute();
  const byKey = new Map(rows.map((r) => [r.node_pubkey, r]));
  for (const op of operators) {
    const row = byKey.get(op.nodePubkey);
    if (!row) continue;
    op.score = row.score;
    const reasons = reasonsSchema.safeParse(row.score_reasons);
    if (reasons.success) op.scoreReasons = reasons.data;
  }
}
