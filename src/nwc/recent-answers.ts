import type { Event } from 'nostr-tools/pure';

/**
 * The answers published to the newest requests, by request id, so that a repeat (a second
 * relay's copy) gets the very same response event. Two generations instead of an ordered
 * eviction per answer: the newer fills to half the capacity, then becomes the older, and the
 * older is dropped whole. Holds the newest `capacity / 2` answers at least, `capacity` at most.
 */
export class RecentAnswers {
  readonly #half: number;
  #newer = new Map<string, Event>();
  #older = new Map<string, Event>();

  constructor(capacity: number) {
    this.#half = Math.max(1, Math.floor(capacity / 2));
  }

  get(requestId: string): Event | undefined {
    return this.#newer.get(requestId) ?? this.#older.get(requestId);
  }

  add(requestId: string, answer: Event): void {
    if (this.#newer.size >= this.#half) {
      this.#older = this.#newer;
      this.#newer = new Map();
    }
    this.#newer.set(requestId, answer);
  }
}
