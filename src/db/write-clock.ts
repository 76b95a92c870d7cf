/** A statement that reads only: nothing in the schema writes from a SELECT (its functions are a trigger's and a check that raises). */
const PLAIN_SELECT = /^\s*select\b/i;

/**
 * Counts the statements that may have changed a database that only this process can change:
 * the embedded PGlite one, a single session inside this process. What was read after the count
 * was taken is still what the database holds while the count stays the same, so a read can be
 * answered again from memory without asking the database. Every statement but a plain SELECT
 * counts once it ends, committed, failed or rolled back. No clock exists for PostgreSQL, where
 * other instances write.
 */
export class WriteClock {
  #count = 0;

  get now(): number {
    return this.#count;
  }

  /** Called by the driver when a statement ended, before its caller sees the outcome. */
  ended(sqlText: string): void {
    if (!PLAIN_SELECT.test(sqlText)) this.#count++;
  }
}
