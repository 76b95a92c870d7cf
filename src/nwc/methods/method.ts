import type { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import type { Connection } from '../../deposits/connections.ts';
import type { WalletContext } from '../../deposits/context.ts';
import type { NwcEncryption } from '../../protocol/nwc-encryption.ts';
import type { GrantHeld } from '../connection-cache.ts';

/** What the bridge says about itself in get_info. */
export interface BridgeIdentity {
  alias: string;
  /** NIP-47 methods this bridge serves (the registry's names). */
  servedMethods: readonly string[];
}

/** Everything a method handler may use to answer one request. */
export interface MethodContext {
  wallet: WalletContext;
  connection: Connection;
  /** The request event exactly as the app signed it. */
  request: Event;
  encryption: NwcEncryption;
  /** The shared key of (connection, wallet service). */
  key: Uint8Array;
  bridge: BridgeIdentity;
  /** The wallet service key the request was addressed to. */
  servicePubkey: string;
  /** The params exactly as decrypted, for paying methods that re-read them as vaults do. */
  rawParams: Record<string, unknown>;
  /** The request was claimed before this answer began (taken over after its claim lapsed): it may have been acted on already. */
  resumed: boolean;
  /**
   * Read-only requests, which are not claimed: the check, run while the answer is made, that the
   * connection's row still holds the grant it is made on, with what the user could spend then
   * (null: the grant no longer holds, and the answer is made again on the new one).
   */
  grantCheck?: Promise<GrantHeld | null> | undefined;
}

/** One NIP-47 method: its name, its params schema, and its handler returning the `result`. */
export interface Method<S extends z.ZodType = z.ZodType> {
  name: string;
  params: S;
  handle(ctx: MethodContext, params: z.output<S>): Promise<Record<string, unknown>>;
}

/** Types a method's handler by its params schema. */
export function defineMethod<S extends z.ZodType>(method: Method<S>): Method<S> {
  return method;
}
