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
  it('runs an item alone at once, and the items that arrive meanwhile together, in order, at most `maxBatch` a time', async () => {
    const { batcher, batches, releaseNext } = doubling();
    const first = batcher.add(1);
    const later = [2, 3, 4, 5].map((i) => batcher.add(i));
    await releaseNext();
    expect(await first).toBe(2);
    await releaseNext();
    await releaseNext();
    expect(await Promise.all(later)).toEqual([4, 6, 8, 10]);
    expect(batches).toEqual([[1], [2, 3, 4], [5]]);
  });

  it('refuses every item of a batch whose run fails, and goes on with the next batch', async () => {
    let calls = 0;
    const batcher = new Batcher<string, string>(async (items) => {
      calls += 1;
      if (calls === 2) throw new Error('the database is gone');
      return items.map((i) => i.toUpperCase());
    });
    const first = batcher.add('a');
    const failing = [batcher.add('b'), batcher.add('c')];
    expect(await first).toBe('A');
    for (const p of failing) await expect(p).rejects.toThrow('the database is gone');
    expect(await batcher.add('d')).toBe('D');
  });

  it('refuses a batch answered with the wrong number of results instead of handing out misplaced ones', async () => {
    const batcher = new Batcher<number, number>(async () => [1]);
    const first = batcher.add(1);
    const pair = [batcher.add(2), batcher.add(3)];
    expect(await first).toBe(1);
    for (const p of pair) await expect(p).rejects.toThrow(/answered with 1 results/);
  });
});
