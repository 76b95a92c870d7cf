import type { EventTemplate } from 'nostr-tools/pure';
import { KIND } from '../../src/protocol/kinds.ts';

export type Renewal = 'daily' | 'weekly' | 'monthly' | 'yearly' | 'never';

/** What the user allows one connection key (the same terms as src/protocol/grant.ts). */
export interface GrantTerms {
  connectionPubkey: string;
  name: string;
  methods: string[];
  budget: { amountMsat: bigint; renewal: Renewal } | null;
  maxAmountMsat: bigint | null;
  feeLimit: { baseMsat: bigint; ppm: number };
  expiresAt: number | null;
  vaultOperators: string[] | null;
  velocity: { paymentsPerHour: number | null; amountMsatPerHour: bigint | null } | null;
  /** The one place the connection may pay (a sweep connection's grant); absent for any. */
  destination?: { type: 'keysend'; node: string } | { type: 'lightning_address'; address: string };
  revoked: boolean;
}

/** Alby Hub's default fee limit, as the CLI's: max(1 %, 10 sat). */
export const DEFAULT_FEE_LIMIT = { baseMsat: 10_000n, ppm: 10_000 };

/** The grant event to sign (kind 31347, `d` and `p` = the connection key). */
export function grantTemplate(terms: GrantTerms, createdAt: number): EventTemplate {
  const content = {
    v: 1,
    connection: terms.connectionPubkey,
    name: terms.name,
    methods: terms.methods,
    budget: terms.budget ? { amount_msat: terms.budget.amountMsat.toString(), renewal: terms.budget.renewal } : null,
    max_amount_msat: terms.maxAmountMsat === null ? null : terms.maxAmountMsat.toString(),
    fee_limit: { base_msat: terms.feeLimit.baseMsat.toString(), ppm: terms.feeLimit.ppm },
    expires_at: terms.expiresAt,
    vault_operators: terms.vaultOperators,
    ...(terms.velocity
      ? {
          velocity: {
            payments_per_hour: terms.velocity.paymentsPerHour,
            amount_msat_per_hour: terms.velocity.amountMsatPerHour === null ? null : terms.velocity.amountMsatPerHour.toString(),
          },
        }
      : {}),
    // Kept when limits are edited: without it the grant would let the connection pay anyone.
    ...(terms.destination ? { destination: terms.destination } : {}),
    revoked: terms.revoked,
  };
  return {
    kind: KIND.grant,
    created_at: createdAt,
    tags: [
      ['d', terms.connectionPubkey],
      ['p', terms.connectionPubkey],
    ],
    content: JSON.stringify(content),
  };
}

/** The user's request to open deposits at the operators (moves no money). */
export function depositOpenTemplate(createdAt: number): EventTemplate {
  return { kind: KIND.depositOpen, created_at: createdAt, tags: [], content: '' };
}

/** The emergency lock or unlock of every deposit of the user. */
export function lockTemplate(locked: boolean, createdAt: number): EventTemplate {
  return { kind: KIND.depositLock, created_at: createdAt, tags: [['d', 'deposit-lock']], content: JSON.stringify({ locked }) };
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
