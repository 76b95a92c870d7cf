/** PostgreSQL's codes for a statement or transaction it aborted to break a deadlock or a serialization conflict. */
const LOST_RACE_CODES: ReadonlySet<string> = new Set(['40P01', '40001']);

/** True for an error PostgreSQL raised to break a deadlock or a serialization conflict: the work can simply run again. */
export function isLostRace(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' && LOST_RACE_CODES.has(error.code);
}

/** Runs `work`, again (up to `attempts` times in all) when PostgreSQL aborted it as a deadlock's or a serialization conflict's loser. */
export async function retryingLostRaces<T>(work: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= attempts || !isLostRace(error)) throw error;
    }
  }
}
