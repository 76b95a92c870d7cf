import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import * as z from 'zod/mini';
import type { Signer } from './signer.ts';

/** NIP-98 HTTP auth kind. */
const HTTP_AUTH_KIND = 27235;

/** An answer of the bridge that is an error: its code and message, and the HTTP status. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const errorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

function base64(text: string): string {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * Calls the bridge's JSON API, each request signed by the user (NIP-98: a kind 27235 event
 * naming the absolute URL, the method and the body's SHA-256), and checks the answer's shape.
 */
export class BridgeApi {
  readonly #signer: Signer;
  readonly #origin: string;

  constructor(signer: Signer, origin = location.origin) {
    this.#signer = signer;
    this.#origin = origin;
  }

  get pubkey(): string {
    return this.#signer.pubkey;
  }

  async #authorization(url: string, method: string, body: string | undefined): Promise<string> {
    const tags = [
      ['u', url],
      ['method', method],
    ];
    if (body !== undefined && body.length > 0) tags.push(['payload', bytesToHex(sha256(new TextEncoder().encode(body)))]);
    const event = await this.#signer.sign({ kind: HTTP_AUTH_KIND, created_at: Math.floor(Date.now() / 1000), tags, content: '' });
    return `Nostr ${base64(JSON.stringify(event))}`;
  }

  /** Sends a request and parses the JSON answer with `schema`; an error answer throws ApiError. */
  async call<S extends z.ZodMiniType>(method: 'GET' | 'POST' | 'PUT', path: string, schema: S, payload?: unknown): Promise<z.output<S>> {
    const url = this.#origin + path;
    const body = payload === undefined ? undefined : JSON.stringify(payload);
    const headers: Record<string, string> = { authorization: await this.#authorization(url, method, body) };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiError(response.status, 'BAD_RESPONSE', `${path} answered ${response.status} with a body that is not JSON`);
    }
    if (!response.ok) {
      const err = errorBodySchema.safeParse(json);
      throw err.success ? new ApiError(response.status, err.data.error.code, err.data.error.message) : new ApiError(response.status, 'HTTP_' + response.status, text.slice(0, 200));
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ApiError(response.status, 'BAD_RESPONSE', `${path} answered with an unexpected body: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`);
    return parsed.data;
  }
}

/** Public, unsigned JSON (GET /api/info). */
export async function getPublic<S extends z.ZodMiniType>(path: string, schema: S): Promise<z.output<S>> {
  const response = await fetch(path);
  const parsed = schema.safeParse(await response.json());
  if (!response.ok || !parsed.success) throw new ApiError(response.status, 'BAD_RESPONSE', `${path} answered unexpectedly`);
  return parsed.data;
}

const msat = z.string().check(z.regex(/^-?[0-9]+$/));

export const infoSchema = z.object({
  wallet_service_pubkey: z.string(),
  relays: z.array(z.string()),
  network: z.nullable(z.string()),
  methods: z.array(z.string()),
  operators: z.array(z.object({ name: z.string(), node_pubkey: z.string(), score: z.number(), score_reasons: z.array(z.string()), available: z.boolean() })),
});

export const txSchema = z.object({
  id: z.string(),
  type: z.enum(['incoming', 'outgoing']),
  kind: z.enum(['payment', 'maintenance_fee', 'transfer', 'deposit_moved']),
  state: z.string(),
  amount_msat: msat,
  routing_fee_msat: msat,
  fee_reserve_msat: msat,
  payment_hash: z.string(),
  invoice: z.string(),
  description: z.nullable(z.string()),
  failure_reason: z.nullable(z.string()),
  hold: z.boolean(),
  connection_pubkey: z.nullable(z.string()),
  connection_name: z.nullable(z.string()),
  operator_pubkey: z.string(),
  parts: z.array(z.object({ operator_pubkey: z.string(), amount_msat: msat, routing_fee_msat: msat, state: z.string() })),
  created_at: z.number(),
  settled_at: z.nullable(z.number()),
  expires_at: z.nullable(z.number()),
});
export type Tx = z.infer<typeof txSchema>;

export const accountSchema = z.object({
  user_pubkey: z.string(),
  known: z.boolean(),
  locked: z.boolean(),
  lock_changed_at: z.nullable(z.number()),
  totals: z.object({ confirmed_msat: msat, reserved_msat: msat, available_msat: msat, pending_out_msat: msat, open_invoices_msat: msat }),
  operators: z.array(
    z.object({
      name: z.string(),
      node_pubkey: z.string(),
      score: z.number(),
      score_reasons: z.array(z.string()),
      available: z.boolean(),
      confirmed_msat: msat,
      reserved_msat: msat,
      available_msat: msat,
      vault_balance_msat: z.nullable(msat),
      pending_out_msat: msat,
      open_invoices_msat: msat,
      max_deposit_msat: z.nullable(msat),
      fees: z.nullable(
        z.object({ routing_base_msat: msat, routing_ppm: z.number(), maintenance_unit_msat: msat, maintenance_rate_ppm: z.number(), maintenance_period_blocks: z.number() }),
      ),
    }),
  ),
  pending: z.array(txSchema),
});
export type Account = z.infer<typeof accountSchema>;

export const historySchema = z.object({
  transactions: z.array(txSchema),
  next_before: z.nullable(z.string()),
  fees: z.object({
    routing_msat: msat,
    maintenance_msat: msat,
    maintenance: z.array(z.object({ operator_pubkey: z.string(), amount_msat: msat, at: z.number() })),
  }),
});

export const balanceHistorySchema = z.object({ points: z.array(z.object({ at: z.number(), balance_msat: msat })) });

export const connectionSchema = z.object({
  pubkey: z.string(),
  name: z.string(),
  wallet_service_pubkey: z.string(),
  relays: z.array(z.string()),
  methods: z.array(z.string()),
  revoked: z.boolean(),
  created_at: z.number(),
  grant_created_at: z.number(),
  expires_at: z.nullable(z.number()),
  max_amount_msat: z.nullable(msat),
  fee_limit: z.object({ base_msat: msat, ppm: z.number() }),
  budget: z.nullable(z.object({ amount_msat: msat, renewal: z.enum(['daily', 'weekly', 'monthly', 'yearly', 'never']), used_msat: msat, renews_at: z.nullable(z.number()) })),
  velocity: z.nullable(z.object({ payments_per_hour: z.nullable(z.number()), amount_msat_per_hour: z.nullable(msat) })),
  vault_operators: z.nullable(z.array(z.string())),
  destination: z.nullable(z.union([z.object({ type: z.literal('keysend'), node: z.string() }), z.object({ type: z.literal('lightning_address'), address: z.string() })])),
  last_hour: z.object({ payments: z.number(), amount_msat: msat }),
  last_used_at: z.nullable(z.number()),
});
export type ConnectionInfo = z.infer<typeof connectionSchema>;
export const connectionsSchema = z.object({ connections: z.array(connectionSchema) });
export const oneConnectionSchema = z.object({ connection: connectionSchema });

export const registeredSchema = z.object({
  revoked: z.boolean(),
  wallet_service_pubkey: z.string(),
  relays: z.array(z.string()).check(z.minLength(1)),
  connection_pubkey: z.string(),
  methods: z.array(z.string()),
});

export const auditSchema = z.object({
  entries: z.array(z.object({ id: z.string(), created_at: z.number(), connection_pubkey: z.nullable(z.string()), method: z.nullable(z.string()), code: z.string(), message: z.string() })),
});

export const incidentsSchema = z.object({
  incidents: z.array(
    z.object({ id: z.string(), operator_pubkey: z.string(), operator_name: z.nullable(z.string()), kind: z.string(), message: z.string(), mine: z.boolean(), evidence: z.unknown(), created_at: z.number() }),
  ),
});

export const lockSchema = z.object({ locked: z.boolean(), operators: z.array(z.object({ name: z.string(), ok: z.boolean(), error: z.optional(z.string()) })) });

/** POST /api/restore: each vault operator's outcome (src/ops/restore.ts, `restoreToJson`). */
export const restoreSchema = z.object({
  operators: z.array(
    z.object({
      name: z.string(),
      node_pubkey: z.string(),
      ok: z.boolean(),
      deposit_id: z.nullable(z.string()),
      balance_msat: z.nullable(msat),
      balance_change_msat: msat,
      created: z.boolean(),
      transactions_added: z.number(),
      transactions_known: z.number(),
      events_seq: z.nullable(z.number()),
      error: z.optional(z.string()),
    }),
  ),
});
export type RestoreOutcome = z.infer<typeof restoreSchema>['operators'][number];

// The allocation and policy API (GET /api/allocation, GET/PUT /api/policy).
export const allocationSchema = z.object({
  total_msat: msat,
  relaxed: z.enum(['none', 'share-cap', 'score-tiers']),
  operators: z.array(
    z.object({
      name: z.string(),
      node_pubkey: z.string(),
      score: z.number(),
      score_reasons: z.array(z.string()),
      available: z.boolean(),
      balance_msat: msat,
      target_msat: msat,
      cap_msat: z.nullable(msat),
      actual_share_ppm: z.number(),
      target_share_ppm: z.number(),
    }),
  ),
});
export type Allocation = z.infer<typeof allocationSchema>;

export const policySchema = z.object({
  max_share_ppm: z.number(),
  test_amount_msat: msat,
  trusted_score: z.number(),
  min_score: z.number(),
  exponent: z.number(),
});
export type Policy = z.infer<typeof policySchema>;
