/**
 * Section 1, the physical limit: the cryptography one get_balance costs a wallet service, alone
 * in a tight loop, with the functions the bridge itself calls — verify the request's signature,
 * NIP-44 decrypt with a cached conversation key, NIP-44 encrypt the answer, sign the response.
 */
import { generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { v2 as nip44 } from 'nostr-tools/nip44';
import { hasValidSignature, signEvent } from '../../src/protocol/nostr-event.ts';
import { decryptContent, encryptContent, sharedKey } from '../../src/protocol/nwc-encryption.ts';

export interface CryptoLimit {
  iterations: number;
  /** CPU per request (process.cpuUsage), ms. */
  cpuMsPerRequest: number;
  /** Requests per second one core sustains: 1000 / cpuMsPerRequest. */
  requestsPerSecondPerCore: number;
  /** Wall time of each step per request, ms. */
  steps: { verify: number; decrypt: number; encrypt: number; sign: number };
  /** Deriving a NIP-44 conversation key once (what a cache saves on every request), ms. */
  conversationKeyMs: number;
}

/** Distinct requests signed ahead (not timed), and the service key that answers them. */
interface PreparedRequests {
  serviceSecret: Uint8Array;
  clientPubkeys: string[];
  events: Event[];
}

const ANSWER = JSON.stringify({ result_type: 'get_balance', result: { balance: 21_000_000 }, error: null });

function prepareRequests(count: number): PreparedRequests {
  const serviceSecret = generateSecretKey();
  const servicePubkey = getPublicKey(serviceSecret);
  const clients = Array.from({ length: 8 }, () => generateSecretKey());
  const clientPubkeys = clients.map((c) => getPublicKey(c));
  const keys = clients.map((c) => nip44.utils.getConversationKey(c, servicePubkey));
  // Each kept as JSON so every check starts from a fresh object; every one is distinct, as real
  // requests are, so no check repeats another (the warm-up has requests of its own).
  const warmup = 50;
  const wire = Array.from({ length: count + warmup }, (_, i) => {
    const c = i % clients.length;
    const content = nip44.encrypt(JSON.stringify({ method: 'get_balance', params: {} }), keys[c]!);
    return JSON.stringify(signEvent({ kind: 23194, created_at: Math.floor(Date.now() / 1000), tags: [['p', servicePubkey], ['encryption', 'nip44_v2']], content }, clients[c]!));
  });
  // Warm the JIT on copies first, so the loop measures steady-state cost.
  for (const text of wire.slice(count)) {
    const event = JSON.parse(text) as Event;
    hasValidSignature(event);
    signEvent({ kind: 23195, created_at: 0, tags: [], content: encryptContent('nip44_v2', keys[0]!, decryptContent('nip44_v2', keys[0]!, nip44.encrypt(ANSWER, keys[0]!))) }, serviceSecret);
  }
  return { serviceSecret, clientPubkeys, events: wire.slice(0, count).map((text) => JSON.parse(text) as Event) };
}

/**
 * Short bursts of the same loop while a section's timed loop runs, in the load generator's
 * process: the crypto-only cost under the same load and at the same moments as the service
 * measured, which a measurement before or after cannot give on a machine whose speed moves
 * within seconds.
 */
export class CryptoSampler {
  readonly #prepared: PreparedRequests;
  readonly #keys = new Map<string, Uint8Array>();
  #next = 0;
  /** CPU spent in bursts so far (ms), and the requests they handled. */
  cpuMs = 0;
  requests = 0;

  constructor(requests: number) {
    this.#prepared = prepareRequests(requests);
    // Conversation keys derived up front: a service derives one per connection, not per request.
    for (const pubkey of this.#prepared.clientPubkeys) this.#keys.set(pubkey, sharedKey('nip44_v2', this.#prepared.serviceSecret, pubkey));
  }

  /** Handles `count` more requests now (fewer when the prepared ones run out). */
  burst(count: number): void {
    const events = this.#prepared.events.slice(this.#next, this.#next + count);
    this.#next += events.length;
    const cpu0 = process.cpuUsage();
    for (const event of events) answerOne(event, this.#prepared.serviceSecret, this.#keys);
    const cpu = process.cpuUsage(cpu0);
    this.cpuMs += (cpu.user + cpu.system) / 1000;
    this.requests += events.length;
  }

  /** CPU per request over all bursts, ms. */
  get cpuMsPerRequest(): number {
    return this.requests === 0 ? NaN : this.cpuMs / this.requests;
  }
}

/** What a wallet service's crypto does for one request, its conversation key already cached (the caller times it). */
function answerOne(event: Event, serviceSecret: Uint8Array, keys: ReadonlyMap<string, Uint8Array>): void {
  if (!hasValidSignature(event)) throw new Error('bad signature in the crypto bench');
  const key = keys.get(event.pubkey);
  if (!key) throw new Error('no conversation key for a request of the crypto bench');
  JSON.parse(decryptContent('nip44_v2', key, event.content));
  signEvent({ kind: 23195, created_at: Math.floor(Date.now() / 1000), tags: [['p', event.pubkey], ['e', event.id]], content: encryptContent('nip44_v2', key, ANSWER) }, serviceSecret);
}

export function measureCryptoLimit(iterations: number): CryptoLimit {
  const { serviceSecret, clientPubkeys, events } = prepareRequests(iterations);
  const cached = new Map<string, Uint8Array>();
  const steps = { verify: 0, decrypt: 0, encrypt: 0, sign: 0 };

  const cpu0 = process.cpuUsage();
  for (const event of events) {
    let t = performance.now();
    if (!hasValidSignature(event)) throw new Error('bad signature in the crypto bench');
    let u = performance.now();
    steps.verify += u - t;
    let key = cached.get(event.pubkey);
    if (!key) {
      key = sharedKey('nip44_v2', serviceSecret, event.pubkey);
      cached.set(event.pubkey, key);
    }
    JSON.parse(decryptContent('nip44_v2', key, event.content));
    t = performance.now();
    steps.decrypt += t - u;
    const content = encryptContent('nip44_v2', key, ANSWER);
    u = performance.now();
    steps.encrypt += u - t;
    signEvent({ kind: 23195, created_at: Math.floor(Date.now() / 1000), tags: [['p', event.pubkey], ['e', event.id]], content }, serviceSecret);
    steps.sign += performance.now() - u;
  }
  const cpu = process.cpuUsage(cpu0);
  const cpuMsPerRequest = (cpu.user + cpu.system) / 1000 / iterations;

  const t0 = performance.now();
  const rounds = Math.max(5, Math.floor(iterations / 20));
  for (let i = 0; i < rounds; i++) sharedKey('nip44_v2', serviceSecret, clientPubkeys[i % clientPubkeys.length]!);
  const conversationKeyMs = (performance.now() - t0) / rounds;

  const per = (v: number) => v / iterations;
  return {
    iterations,
    cpuMsPerRequest,
    requestsPerSecondPerCore: 1000 / cpuMsPerRequest,
    steps: { verify: per(steps.verify), decrypt: per(steps.decrypt), encrypt: per(steps.encrypt), sign: per(steps.sign) },
    conversationKeyMs,
  };
}
