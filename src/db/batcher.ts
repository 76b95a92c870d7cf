/** The most items one statement carries. */
const DEFAULT_MAX_BATCH = 500;

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/**
 * Runs the same statement for many callers at once (group commit): the items added in one turn
 * of the event loop go together (the requests of one read from a relay's socket), and an item
 * that arrives while a batch runs goes into the next one. Alone, an item waits for the end of
 * the turn only; under load, a round trip to the database serves many. `run` answers each item
 * of its batch, in order; when it throws, every item of that batch is refused with its error.
 */
export class Batcher<I, O> {
  readonly #run: (items: readonly I[]) => Promise<readonly O[]>;
  readonly #maxBatch: number;
  #waiting: Waiting<I, O>[] = [];
  #running = false;

  constructor(run: (items: readonly I[]) => Promise<readonly O[]>, maxBatch = DEFAULT_MAX_BATCH) {
    this.#run = run;
    this.#maxBatch = maxBatch;
  }

  add(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0, this.#maxBatch);
      try {
        const out = await this.#run(batch.map((w) => w.item));
        if (out.length !== batch.length) throw new Error(`a batch of ${batch.length} was answered with ${out.length} results`);
        batch.forEach((w, i) => w.resolve(out[i]!));
      } catch (error) {
        for (const w of batch) w.reject(error);
      }
    }
    this.#running = false;
  }
}
