import { describe, expect, it } from 'vitest';
import { Batcher } from '../../src/db/batcher.ts';

/** A batch runner that answers each item doubled, after `release` is called, and records its batches. */
function doubling() {
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const batcher = new Batcher<number, number>(
    async (items) => {
      batches.push([...items]);
      await new Promise<void>((resolve) => releases.push(resolve));
      return items.map((i) => i * 2);
    },
    3,
  );
  const releaseNext = async () => {
    while (releases.length === 0) await new Promise((r) => setImmediate(r));
    releases.shift()!();
  };
  return { batcher, batches, releaseNext };
}

describe('Batcher', () => {
  it('runs the items of one turn together, and those that arrive meanwhile in the next batches, in order, at most `maxBatch` a time', async () => {
    const { batcher, batches, releaseNext } = doubling();
    const first = [1, 2].map((i) => batcher.add(i));
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1, 2]]);
    const later = [3, 4, 5, 6].map((i) => batcher.add(i));
    await releaseNext();
    expect(await Promise.all(first)).toEqual([2, 4]);
    await releaseNext();
    await releaseNext();
    expect(await Promise.all(later)).toEqual([6, 8, 10, 12]);
    expect(batches).toEqual([[1, 2], [3, 4, 5], [6]]);
  });

  it('runs an item that arrives alone in a batch of its own', async () => {
    const { batcher, batches, releaseNext } = doubling();
    const alone = batcher.add(7);
    await releaseNext();
    expect(await alone).toBe(14);
    expect(batches).toEqual([[7]]);
  });

  it('refuses every item of a batch whose run fails, and goes on with the next batch', async () => {
    let calls = 0;
    const batcher = new Batcher<string, string>(async (items) => {
      calls += 1;
      if (calls === 2) throw new Error('the database is gone');
      return items.map((i) => i.toUpperCase());
    });
    expect(await batcher.add('a')).toBe('A');
    const failing = [batcher.add('b'), batcher.add('c')];
    for (const p of failing) await expect(p).rejects.toThrow('the database is gone');
    expect(await batcher.add('d')).toBe('D');
  });

  it('refuses a batch answered with the wrong number of results instead of handing out misplaced ones', async () => {
    const batcher = new Batcher<number, number>(async () => [1]);
    expect(await batcher.add(1)).toBe(1);
    const pair = [batcher.add(2), batcher.add(3)];
    for (const p of pair) await expect(p).rejects.toThrow(/answered with 1 results/);
  });
});
