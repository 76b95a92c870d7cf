import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { Relay } from 'nostr-tools/relay';
import * as nip04 from 'nostr-tools/nip04';
import { v2 as nip44 } from 'nostr-tools/nip44';
import { hexToBytes } from '@noble/hashes/utils.js';

/** A response as the client decrypts it, with the id of the response event. */
type NwcAnswer = { result_type: string; result: any; error: { code: string; message: string } | null; responseId: string };

/**
 * A NIP-47 client built only on nostr-tools, the way simple integrations (e.g. BTCPay's NNostr
 * connector) talk NWC: NIP-04 without an `encryption` tag, or NIP-44 with one. It can also send
 * malformed requests and deliver the same signed event twice.
 */
export class RawNwcClient {
  readonly relayUrl: string;
  readonly walletPubkey: string;
  readonly secret: Uint8Array;
  readonly encryption: 'nip04' | 'nip44_v2';
  #relay: Relay | undefined;

  constructor(uri: string, encryption: 'nip04' | 'nip44_v2' = 'nip04') {
    const url = new URL(uri.replace('nostr+walletconnect://', 'http://'));
    this.walletPubkey = url.hostname;
    this.relayUrl = url.searchParams.get('relay') ?? '';
    this.secret = hexToBytes(url.searchParams.get('secret') ?? '');
    this.encryption = encryption;
  }

  static withNewKey(walletPubkey: string, relayUrl: string, encryption: 'nip04' | 'nip44_v2' = 'nip44_v2'): RawNwcClient {
    const secret = Buffer.from(generateSecretKey()).toString('hex');
    return new RawNwcClient(`nostr+walletconnect://${walletPubkey}?relay=${encodeURIComponent(relayUrl)}&secret=${secret}`, encryption);
  }

  get pubkey(): string {
    return getPublicKey(this.secret);
  }

  async #connected(): Promise<Relay> {
    this.#relay ??= await Relay.connect(this.relayUrl);
    return this.#relay;
  }

  encrypt(plaintext: string): string {
    return this.encryption === 'nip04'
      ? nip04.encrypt(this.secret, this.walletPubkey, plaintext)
      : nip44.encrypt(plaintext, nip44.utils.getConversationKey(this.secret, this.walletPubkey));
  }

  decrypt(content: string): string {
    return this.encryption === 'nip04'
      ? nip04.decrypt(this.secret, this.walletPubkey, content)
      : nip44.decrypt(content, nip44.utils.getConversationKey(this.secret, this.walletPubkey));
  }

  /** Signs a request event with any content and extra tags. */
  signRequest(content: string, extraTags: string[][] = []): Event {
    const tags = [['p', this.walletPubkey], ...(this.encryption === 'nip44_v2' ? [['encryption', 'nip44_v2']] : []), ...extraTags];
    return finalizeEvent({ kind: 23194, created_at: Math.floor(Date.now() / 1000), tags, content }, this.secret);
  }

  /** Publishes a request event and resolves with the decrypted response to it. */
  send(event: Event, timeoutMs = 30_000): Promise<NwcAnswer> {
    return this.#response(event, timeoutMs, true);
  }

  /** Resolves with the decrypted response to a request event this client does not publish (one the bridge already holds). */
  responseTo(event: Event, timeoutMs = 30_000): Promise<NwcAnswer> {
    return this.#response(event, timeoutMs, false);
  }

  async #response(event: Event, timeoutMs: number, publish: boolean): Promise<NwcAnswer> {
    const relay = await this.#connected();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        sub.close();
        reject(new Error(`no response to ${event.id}`));
      }, timeoutMs);
      const sub = relay.subscribe([{ kinds: [23195], authors: [this.walletPubkey], '#e': [event.id] }], {
        onevent: (response) => {
          clearTimeout(timer);
          sub.close();
          try {
            resolve({ ...JSON.parse(this.decrypt(response.content)), responseId: response.id });
          } catch (error) {
            reject(error);
          }
        },
      });
      if (publish) relay.publish(event).catch(reject);
    });
  }

  /** Whether any response to `event` arrives within `ms`. */
  async silentFor(event: Event, ms: number): Promise<boolean> {
    try {
      await this.send(event, ms);
      return false;
    } catch {
      return true;
    }
  }

  request(method: string, params: Record<string, unknown> = {}) {
    return this.send(this.signRequest(this.encrypt(JSON.stringify({ method, params }))));
  }

  close(): void {
    this.#relay?.close();
  }
}
