import { describe, expect, it } from 'vitest';
import type { Event } from 'nostr-tools/pure';
import { RecentAnswers } from '../../src/nwc/recent-answers.ts';

const answer = (n: number) => ({ id: `answer-${n}` }) as unknown as Event;

describe('answers kept for repeats of recent requests', () => {
  it('keeps the newest half of its capacity at least and never more than its capacity', () => {
    const recent = new RecentAnswers(8);
    for (let n = 0; n < 100; n++) {
      recent.add(`request-${n}`, answer(n));
      const kept = Array.from({ length: n + 1 }, (_, i) => i).filter((i) => recent.get(`request-${i}`) !== undefined);
      // The newest four always, each with its own answer; eight at most, and always the newest ones.
      for (let i = Math.max(0, n - 3); i <= n; i++) expect(recent.get(`request-${i}`)).toEqual(answer(i));
      expect(kept.length).toBeLessThanOrEqual(8);
      expect(kept).toEqual(kept.length === 0 ? [] : Array.from({ length: kept.length }, (_, i) => n - kept.length + 1 + i));
    }
    expect(recent.get('request-never')).toBeUndefined();
  });
});
