import { sql } from 'kysely';
import type { Event } from 'nostr-tools/pure';
import type { Db } from '../db/database.ts';
import { Batcher } from '../db/batcher.ts';
import { retryingLostRaces } from '../db/lost-race.ts';

/** A request to claim before it is acted on, with what its row needs. */
export interface RequestClaim {
  eventId: string;
  connectionPubkey: string;
  /** The grant the request was read with: the claim holds only while the connection still holds it; null: whatever it holds. */
  grantCreatedAt: bigint | null;
  /** The event as stored (storable characters only). */
  event: string;
  method: string | null;
  instance: string;
  leaseUntil: Date;
}

/**
 * Writes the rows of requests, many in one statement under load (`Batcher`): claims before a
 * request is acted on, and the completion of a claimed one with its answer.
 */
export class RequestRecords {
  readonly #claims: Batcher<RequestClaim, boolean>;
  readonly #completed: Batcher<{ requestId: string; response: string }, undefined>;

  constructor(db: Db) {
    this.#claims = new Batcher(async (items) => {
      // Two batches inserting the same ids (the same request at two instances) may deadlock: run again.
      const { rows } = await retryingLostRaces(() =>
        sql<{ event_id: string }>`
          insert into nwc_requests (event_id, connection_pubkey, event, method, state, claimed_by, lease_until)
          select claim.event_id, connections.pubkey, claim.event, claim.method, 'processing', claim.instance, claim.lease_until
          from unnest(
            ${items.map((i) => i.eventId)}::text[],
            ${items.map((i) => i.connectionPubkey)}::text[],
            ${items.map((i) => i.grantCreatedAt)}::bigint[],
            ${items.map((i) => i.event)}::jsonb[],
            ${items.map((i) => i.method)}::text[],
            ${items.map((i) => i.instance)}::text[],
            ${items.map((i) => i.leaseUntil)}::timestamptz[]
          ) as claim (event_id, connection_pubkey, grant_created_at, event, method, instance, lease_until)
          join connections on connections.pubkey = claim.connection_pubkey
            and (claim.grant_created_at is null or connections.grant_created_at = claim.grant_created_at)
          on conflict (event_id) do nothing
          returning event_id
        `.execute(db),
      );
      return firstOfEach(items.map((i) => i.eventId), new Set(rows.map((r) => r.event_id)));
    });
    this.#completed = new Batcher(async (items) => {
      const ids = items.map((i) => i.requestId);
      // Rows locked in event id order, as every statement locking several of them does: no deadlock among them.
      await retryingLostRaces(() =>
        sql`
          with ordered as (select event_id from nwc_requests where event_id = any(${ids}::text[]) order by event_id for update)
          update nwc_requests
          set state = 'done', response_event = answered.response, finished_at = now()
          from unnest(${ids}::text[], ${items.map((i) => i.response)}::jsonb[]) as answered (event_id, response)
          where nwc_requests.event_id = answered.event_id and nwc_requests.event_id in (select event_id from ordered)
        `.execute(db),
      );
      return items.map(() => undefined);
    });
  }

  /** Claims a request; false when it was not (claimed before, or the connection's grant changed). */
  claim(claim: RequestClaim): Promise<boolean> {
    return this.#claims.add(claim);
  }

  /** Marks a claimed request done with its signed response; resolves once that is stored. */
  complete(requestId: string, response: Event): Promise<undefined> {
    return this.#completed.add({ requestId, response: JSON.stringify(response) });
  }
}

/** For each id of a batch, whether its row was written: only the first of an id twice in one batch (delivered by two relays at once) was. */
function firstOfEach(ids: readonly string[], written: ReadonlySet<string>): boolean[] {
  const seen = new Set<string>();
  return ids.map((id) => {
    const first = written.has(id) && !seen.has(id);
    seen.add(id);
    return first;
  });
}
