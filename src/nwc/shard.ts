import { z } from 'zod';

/**
 * This instance's share of the connections: the wallet service keys whose first 32 bits fall in
 * the `index`-th of `count` equal ranges. Keys are hashes, so the ranges hold about as many
 * connections each; every instance with the same `count` and its own `index` covers all of them.
 */
export interface Shard {
  index: number;
  count: number;
}

const KEY_SPACE = 2 ** 32;

/** `SHARD=<index>/<count>`, e.g. `0/3`, `1/3`, `2/3`. */
export const shardSchema = z
  .string()
  .regex(/^[0-9]{1,3}\/[1-9][0-9]{0,2}$/, 'expected <index>/<count>, e.g. 0/2')
  .transform((text) => {
    const [index, count] = text.split('/').map(Number) as [number, number];
    return { index, count };
  })
  .refine((s) => s.index < s.count, 'the index must be below the count');

/** Whether this instance answers requests sent to `servicePubkey` (64 hex characters). */
export function inShard(servicePubkey: string, shard: Shard | undefined): boolean {
  if (!shard || shard.count === 1) return true;
  const position = Number.parseInt(servicePubkey.slice(0, 8), 16);
  return Math.floor((position * shard.count) / KEY_SPACE) === shard.index;
}
