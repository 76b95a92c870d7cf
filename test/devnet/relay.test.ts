/** The devnet relay, driven by nostr-tools' own Relay client. */
import { afterEach, describe, expect, it } from 'vitest';
import { finalizeEvent, type Event } from 'nostr-tools/pure';
import type { Filter } from 'nostr-tools/filter';
import { Relay } from 'nostr-tools/relay';
import { startRelay, type DevnetRelay } from '../../src/devnet/relay.ts';
import { newKeypair, type Keypair } from '../helpers/authorization.ts';
import { eventually } from '../helpers/devnet.ts';

function sign(author: Keypair, kind: number, tags: string[][] = [], content = '', createdAt = Math.floor(Date.now() / 1000)): Event {
  return finalizeEvent({ kind, created_at: createdAt, tags, content }, author.secretKey);
}

/** The ids of the events a one-shot REQ returns (up to EOSE), in the relay's order. */
async function query(relay: Relay, filter: Filter): Promise<string[]> {
  const found: string[] = [];
  await new Promise<void>((resolve) => {
    const sub = relay.subscribe([filter], {
      onevent: (e) => found.push(e.id),
      oneose: () => {
        sub.close();
        resolve();
      },
    });
  });
  return found;
}

describe('devnet relay', () => {
  const running: DevnetRelay[] = [];
  const clients: Relay[] = [];
  const start = async (options: Parameters<typeof startRelay>[0] = {}) => {
    const relay = await startRelay({ port: 0, ...options });
    running.push(relay);
    return relay;
  };
  const connect = async (url: string) => {
    const client = await Relay.connect(url);
    clients.push(client);
    return client;
  };

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const r of running.splice(0)) await r.stop();
  });

  it('delivers a published event to a #p subscriber, and not to a subscriber of another #p', async () => {
    const relay = await start();
    const [alice, bob, sender] = [newKeypair(), newKeypair(), newKeypair()];
    const forAlice: Event[] = [];
    const sub = await connect(relay.url);
    sub.subscribe([{ kinds: [23194], '#p': [alice.pubkey] }], { onevent: (e) => forAlice.push(e) });
    // A raw socket shows what the relay itself sends (nostr-tools would drop non-matching events).
    const raw = new WebSocket(relay.url);
    const rawMessages: unknown[] = [];
    raw.onmessage = (m) => rawMessages.push(JSON.parse(String(m.data)));
    await new Promise((resolve) => (raw.onopen = resolve));
    raw.send(JSON.stringify(['REQ', 'bob', { kinds: [23194], '#p': [bob.pubkey] }]));
    await eventually(() => rawMessages.length === 1, 'EOSE for bob');
    expect(rawMessages).toEqual([['EOSE', 'bob']]);

    const pub = await connect(relay.url);
    const event = sign(sender, 23194, [['p', alice.pubkey]], 'ciphertext');
    await pub.publish(event);
    await eventually(() => forAlice.length === 1, 'delivery to the #p subscriber');
    expect(forAlice.map((e) => e.id)).toEqual([event.id]);
    const toBob = sign(sender, 23194, [['p', bob.pubkey]], 'for bob');
    await pub.publish(toBob);
    await eventually(() => rawMessages.length === 2, 'delivery to bob');
    expect(rawMessages[1]).toEqual(['EVENT', 'bob', JSON.parse(JSON.stringify(toBob))]);
    raw.close();
    // Ephemeral kinds other than NWC's are forwarded, never stored.
    const other = sign(sender, 20001, [['p', alice.pubkey]], 'ephemeral');
    await pub.publish(other);
    expect(await query(pub, { ids: [other.id] })).toEqual([]);
  });

  it('matches live events against every filter of a REQ, with hundreds of #p values, and every tag filter of one', async () => {
    const relay = await start();
    const sender = newKeypair();
    const keys = Array.from({ length: 300 }, () => newKeypair().pubkey);
    const raw = new WebSocket(relay.url);
    const received: unknown[][] = [];
    raw.onmessage = (m) => received.push(JSON.parse(String(m.data)) as unknown[]);
    await new Promise((resolve) => (raw.onopen = resolve));
    // The shape a bridge subscribes with: many filters of many keys each, in one REQ.
    raw.send(JSON.stringify(['REQ', 'keys', { kinds: [23194], '#p': keys.slice(0, 250) }, { kinds: [23194], '#p': keys.slice(250) }]));
    raw.send(JSON.stringify(['REQ', 'both', { kinds: [1], '#t': ['a'], '#e': [keys[0]!] }]));
    await eventually(() => received.length === 2, 'EOSE for both subscriptions');

    const pub = await connect(relay.url);
    const inFirst = sign(sender, 23194, [['p', keys[137]!]]);
    const inSecond = sign(sender, 23194, [['p', keys[299]!]]);
    const otherKey = sign(sender, 23194, [['p', newKeypair().pubkey]]);
    const otherKind = sign(sender, 23195, [['p', keys[0]!]]);
    const onlyA = sign(sender, 1, [['t', 'a']]);
    const aAndB = sign(sender, 1, [['t', 'b'], ['e', keys[0]!], ['t', 'a']]);
    for (const event of [otherKey, otherKind, onlyA, inFirst, inSecond, aAndB]) await pub.publish(event);
    await eventually(() => received.length === 5, 'three deliveries');
    const delivered = received.slice(2).map((m) => [m[1], (m[2] as Event).id]);
    expect(delivered).toEqual([
      ['keys', inFirst.id],
      ['keys', inSecond.id],
      ['both', aAndB.id],
    ]);
    raw.close();
  });

  it('keeps only the newest kind 13194 replaceable event and returns it to a later REQ', async () => {
    const relay = await start();
    const wallet = newKeypair();
    const client = await connect(relay.url);
    const now = Math.floor(Date.now() / 1000);
    const older = sign(wallet, 13194, [['encryption', 'nip44_v2']], 'pay_invoice', now - 10);
    const newer = sign(wallet, 13194, [['encryption', 'nip44_v2 nip04']], 'pay_invoice get_balance', now);
    await client.publish(older);
    await client.publish(newer);
    // An older version arriving late does not replace the newer one.
    await client.publish(sign(wallet, 13194, [], 'stale', now - 20));
    expect(await query(client, { kinds: [13194], authors: [wallet.pubkey] })).toEqual([newer.id]);
  });

  it('answers a REQ with since, until, limit and tag filters', async () => {
    const relay = await start();
    const author = newKeypair();
    const target = newKeypair();
    const client = await connect(relay.url);
    const now = Math.floor(Date.now() / 1000);
    const notes = [0, 1, 2, 3].map((i) => sign(author, 1, i % 2 === 0 ? [['p', target.pubkey]] : [], `note ${i}`, now - 100 + i));
    for (const note of notes) await client.publish(note);
    expect(await query(client, { kinds: [1], authors: [author.pubkey], '#p': [target.pubkey] })).toEqual([notes[2]?.id, notes[0]?.id]);
    expect(await query(client, { kinds: [1], authors: [author.pubkey], since: now - 99, until: now - 98 })).toEqual([notes[2]?.id, notes[1]?.id]);
    expect(await query(client, { kinds: [1], authors: [author.pubkey], limit: 1 })).toEqual([notes[3]?.id]);
  });

  it('refuses an event with a bad signature', async () => {
    const relay = await start();
    const client = await connect(relay.url);
    const event = sign(newKeypair(), 1, [], 'hello');
    await expect(client.publish({ ...event, content: 'tampered' })).rejects.toThrow(/invalid/);
  });

  it('stops cleanly and restarts on the same port, keeping events when given the same store', async () => {
    const first = await start();
    const author = newKeypair();
    const client = await connect(first.url);
    const note = sign(author, 1, [], 'survives');
    await client.publish(note);
    let closed = false;
    client.onclose = () => {
      closed = true;
    };
    await first.stop();
    running.splice(running.indexOf(first), 1);
    await eventually(() => closed, 'client sees the relay close');

    const second = await start({ port: first.port, repository: first.repository });
    expect(second.url).toBe(first.url);
    const again = await connect(second.url);
    expect(await query(again, { authors: [author.pubkey] })).toEqual([note.id]);
  });

  describe('retention of NWC events for subscribers that come (back) later', () => {
    it('gives a subscriber that connects after a request was published, with since, that request; other #p and other kinds are not stored', async () => {
      const relay = await start({ ephemeralRetentionSeconds: 60 });
      const [wallet, app] = [newKeypair(), newKeypair()];
      const pub = await connect(relay.url);
      const now = Math.floor(Date.now() / 1000);
      const request = sign(app, 23194, [['p', wallet.pubkey]], 'request sent while the wallet was away', now);
      const forOther = sign(app, 23194, [['p', newKeypair().pubkey]], 'for another wallet', now);
      const otherEphemeral = sign(app, 21000, [['p', wallet.pubkey]], 'not NWC', now);
      for (const e of [request, forOther, otherEphemeral]) await pub.publish(e);

      const late = await connect(relay.url);
      expect(await query(late, { kinds: [23194, 21000], '#p': [wallet.pubkey], since: now - 10 })).toEqual([request.id]);
      // A since after the request leaves it out, as for stored events.
      expect(await query(late, { kinds: [23194], '#p': [wallet.pubkey], since: now + 1 })).toEqual([]);
      // Responses and notifications are retained too.
      const response = sign(wallet, 23195, [['p', app.pubkey], ['e', request.id]], 'response', now);
      const notification = sign(wallet, 23197, [['p', app.pubkey]], 'notification', now);
      await pub.publish(response);
      await pub.publish(notification);
      expect(new Set(await query(late, { kinds: [23195, 23197], '#p': [app.pubkey], since: now - 10 }))).toEqual(new Set([response.id, notification.id]));
    });

    it('keeps them only for the retention time', async () => {
      const relay = await start({ ephemeralRetentionSeconds: 1 });
      const [wallet, app] = [newKeypair(), newKeypair()];
      const pub = await connect(relay.url);
      const now = Math.floor(Date.now() / 1000);
      const request = sign(app, 23194, [['p', wallet.pubkey]], 'short-lived', now);
      await pub.publish(request);
      const filter = { kinds: [23194], '#p': [wallet.pubkey], since: now - 10 };
      expect(await query(pub, filter)).toEqual([request.id]);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const late = await connect(relay.url);
      expect(await query(late, filter)).toEqual([]);
    });

    it('retains nothing with a retention of 0, as a plain relay', async () => {
      const relay = await start({ ephemeralRetentionSeconds: 0 });
      const [wallet, app] = [newKeypair(), newKeypair()];
      const pub = await connect(relay.url);
      const request = sign(app, 23194, [['p', wallet.pubkey]], 'gone');
      await pub.publish(request);
      expect(await query(pub, { ids: [request.id] })).toEqual([]);
    });

    it('delivers a retained request once to a live subscriber and again to a resubscription', async () => {
      const relay = await start();
      const [wallet, app] = [newKeypair(), newKeypair()];
      const sub = await connect(relay.url);
      const seen: string[] = [];
      const now = Math.floor(Date.now() / 1000);
      const live = sub.subscribe([{ kinds: [23194], '#p': [wallet.pubkey], since: now - 10 }], { onevent: (e) => seen.push(e.id) });
      const pub = await connect(relay.url);
      const request = sign(app, 23194, [['p', wallet.pubkey]], 'live', now);
      await pub.publish(request);
      await eventually(() => seen.length === 1, 'live delivery');
      live.close();
      // The wallet reconnects and subscribes again with since: the request is there again.
      expect(await query(sub, { kinds: [23194], '#p': [wallet.pubkey], since: now - 10 })).toEqual([request.id]);
      expect(seen).toEqual([request.id]);
    });
  });

  it('counts the open subscriptions of each connected client', async () => {
    const relay = await start();
    expect(relay.subscriptionCounts()).toEqual([]);
    const raw = new WebSocket(relay.url);
    const messages: unknown[] = [];
    raw.onmessage = (m) => messages.push(JSON.parse(String(m.data)));
    await new Promise((resolve) => (raw.onopen = resolve));
    raw.send(JSON.stringify(['REQ', 'a', { kinds: [23194] }]));
    raw.send(JSON.stringify(['REQ', 'b', { kinds: [23195] }]));
    raw.send(JSON.stringify(['REQ', 'a', { kinds: [23196] }]));
    await eventually(() => messages.length === 3, 'three EOSE');
    expect(relay.subscriptionCounts()).toEqual([2]);
    const other = await connect(relay.url);
    other.subscribe([{ kinds: [1] }], { onevent: () => undefined });
    await eventually(() => relay.subscriptionCounts().length === 2 && relay.subscriptionCounts()[1] === 1, 'second client subscribed');
    raw.send(JSON.stringify(['CLOSE', 'b']));
    await eventually(() => relay.subscriptionCounts()[0] === 1, 'CLOSE counted');
    raw.close();
    await eventually(() => relay.subscriptionCounts().length === 1, 'disconnect counted');
    expect(relay.subscriptionCounts()).toEqual([1]);
  });
});
