/**
 * The load generator, the same for the peer and the bridge: NWC clients, each with its own
 * connection key and its own socket to the relay, one live subscription for its responses
 * (matched by their `e` tag), NIP-44 with the conversation key computed once. Requests are
 * signed with the bridge's own signer (libsecp256k1 in WASM, the public key derived once), and
 * responses are not signature-checked, so the generator takes as little of the shared CPU as it can.
 */
import { AbstractRelay } from 'nostr-tools/abstract-relay';
import { v2 as nip44 } from 'nostr-tools/nip44';
import type { Event } from 'nostr-tools/pure';
import { publicKeyOf, signEvent } from '../../src/protocol/nostr-event.ts';

export interface Answer {
  latencyMs: number;
  result: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
}

export class LoadClient {
  readonly secret: Uint8Array;
  readonly pubkey: string;
  readonly walletPubkey: string;
  readonly relayUrl: string;
  readonly #key: Uint8Array;
  #relay: AbstractRelay | undefined;
  readonly #pending = new Map<string, { sentAt: number; resolve: (a: Answer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  constructor(relayUrl: string, walletPubkey: string, secret: Uint8Array) {
    this.relayUrl = relayUrl;
    this.walletPubkey = walletPubkey;
    this.secret = secret;
    this.pubkey = publicKeyOf(secret);
    this.#key = nip44.utils.getConversationKey(secret, walletPubkey);
  }

  async connect(): Promise<void> {
    const relay = new AbstractRelay(this.relayUrl, { verifyEvent: () => true, enablePing: false, enableReconnect: false });
    await relay.connect({ timeout: 10_000 });
    this.#relay = relay;
    await new Promise<void>((resolve) => {
      relay.subscribe([{ kinds: [23195], authors: [this.walletPubkey], '#p': [this.pubkey], since: Math.floor(Date.now() / 1000) - 10 }], {
        onevent: (event) => this.#onResponse(event),
        oneose: () => resolve(),
      });
    });
  }

  #onResponse(event: Event): void {
    const requestId = event.tags.find((t) => t[0] === 'e')?.[1];
    const waiting = requestId === undefined ? undefined : this.#pending.get(requestId);
    if (!waiting || requestId === undefined) return;
    this.#pending.delete(requestId);
    clearTimeout(waiting.timer);
    const latencyMs = performance.now() - waiting.sentAt;
    try {
      const body = JSON.parse(nip44.decrypt(event.content, this.#key)) as { result?: Record<string, unknown> | null; error?: { code: string; message: string } | null };
      waiting.resolve({ latencyMs, result: body.result ?? null, error: body.error ?? null });
    } catch (error) {
      waiting.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Sends one request and resolves with its answer and round-trip time. */
  request(method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<Answer> {
    const relay = this.#relay;
    if (!relay) return Promise.reject(new Error('not connected'));
    const event = signEvent(
      {
        kind: 23194,
        created_at: Math.floor(Date.now() / 1000),
        tags: [
          ['p', this.walletPubkey],
          ['encryption', 'nip44_v2'],
        ],
        content: nip44.encrypt(JSON.stringify({ method, params }), this.#key),
      },
      this.secret,
    );
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(event.id);
        reject(new Error(`${method}: no response in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(event.id, { sentAt: performance.now(), resolve, reject, timer });
      relay.publish(event).catch(() => undefined);
    });
  }

  close(): void {
    for (const waiting of this.#pending.values()) clearTimeout(waiting.timer);
    this.#pending.clear();
    this.#relay?.close();
  }
}

export interface LoadResult {
  ok: number;
  errors: number;
  /** The first few distinct error texts. */
  errorSamples: string[];
  wallMs: number;
  latencies: number[];
}

function collector(): LoadResult & { add(a: Answer | Error): void } {
  const r: LoadResult & { add(a: Answer | Error): void } = {
    ok: 0,
    errors: 0,
    errorSamples: [],
    wallMs: 0,
    latencies: [],
    add(a) {
      const text = a instanceof Error ? a.message : a.error ? `${a.error.code}: ${a.error.message}` : null;
      if (text === null && !(a instanceof Error)) {
        r.ok++;
        r.latencies.push(a.latencyMs);
        return;
      }
      r.errors++;
      if (text && r.errorSamples.length < 5 && !r.errorSamples.includes(text)) r.errorSamples.push(text);
    },
  };
  return r;
}

/**
 * Closed loop: every client keeps one request in flight until `durationMs` has passed (or
 * `next` returns null for it), so the concurrency is the number of clients.
 */
export async function closedLoop(
  clients: readonly LoadClient[],
  durationMs: number,
  next: (clientIndex: number) => { method: string; params: Record<string, unknown> } | null,
): Promise<LoadResult> {
  const result = collector();
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  await Promise.all(
    clients.map(async (client, index) => {
      while (performance.now() < deadline) {
        const request = next(index);
        if (!request) return;
        try {
          result.add(await client.request(request.method, request.params));
        } catch (error) {
          result.add(error instanceof Error ? error : new Error(String(error)));
        }
      }
    }),
  );
  result.wallMs = performance.now() - t0;
  return result;
}

/** Open loop: requests at a fixed rate (round robin over the clients), whatever their latency. */
export async function openLoop(
  clients: readonly LoadClient[],
  ratePerSecond: number,
  durationMs: number,
  next: (clientIndex: number) => { method: string; params: Record<string, unknown> } | null,
): Promise<LoadResult> {
  const result = collector();
  const t0 = performance.now();
  const total = Math.floor((ratePerSecond * durationMs) / 1000);
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / ratePerSecond;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const index = i % clients.length;
    const request = next(index);
    if (!request) break;
    const client = clients[index];
    if (!client) break;
    inFlight.push(
      client.request(request.method, request.params).then(
        (a) => result.add(a),
        (e: unknown) => result.add(e instanceof Error ? e : new Error(String(e))),
      ),
    );
  }
  await Promise.all(inFlight);
  result.wallMs = performance.now() - t0;
  return result;
}

/** The p-th percentile (0–100) of a list of numbers, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? NaN;
}
