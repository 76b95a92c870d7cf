import type { Logger } from 'pino';
import { KIND } from '../protocol/kinds.ts';
import { nowSeconds, signEvent } from '../protocol/nostr-event.ts';
import { SUPPORTED_ENCRYPTIONS } from '../protocol/nwc-encryption.ts';
import type { BridgeKeys } from './keys.ts';
import type { RelayPool } from './relay-pool.ts';

/** Some relays drop replaceable events; clients fail without one, so it is sent again hourly. */
const REPUBLISH_INTERVAL_MS = 3600_000;

/**
 * Publishes the NIP-47 info event (kind 13194): the methods served and the encryption schemes
 * spoken. Retries until a relay takes it, republishes whenever a relay (re)connects and
 * periodically. Returns a stopper.
 */
export function publishInfoEvent(pool: RelayPool, keys: BridgeKeys, methods: readonly string[], logger: Logger): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const publish = async (attempt: number): Promise<void> => {
    if (stopped) return;
    const event = signEvent(
      { kind: KIND.nwcInfo, created_at: nowSeconds(), tags: [['encryption', SUPPORTED_ENCRYPTIONS.join(' ')]], content: methods.join(' ') },
      keys.serviceSecret,
    );
    try {
      await pool.publish(event);
      logger.info({ pubkey: keys.servicePubkey }, 'published the NIP-47 info event');
      timer = setTimeout(() => void publish(0), REPUBLISH_INTERVAL_MS);
    } catch {
      timer = setTimeout(() => void publish(attempt + 1), Math.min(250 * 2 ** attempt, 10_000));
    }
    timer.unref();
  };
  void publish(0);
  pool.onConnect(() => {
    if (stopped) return;
    clearTimeout(timer);
    void publish(0);
  });
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
