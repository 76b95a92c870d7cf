/**
 * Fuzz: events with broken signatures never reach the NIP-47 handler.
 *
 * Signatures are checked by the relay client (nostr-tools' Relay inside RelayPool) before an
 * event reaches the responder, so the responder suite cannot show it. Here, generated broken
 * events (signature or id flipped, content, tags or created_at changed after signing, another
 * key's signature under the funded connection's pubkey, malformed fields) and malformed relay
 * messages travel two real paths:
 *
 * - through the devnet relay to the running bridge: the relay refuses each (OK false), and the
 *   bridge never records nor answers one, while a valid request sent after them is answered;
 * - from a hostile relay, which forwards them to a real RelayPool feeding a real NwcResponder:
 *   only the valid requests mixed in reach the handler and are answered, each once, and nothing
 *   crashes.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws';
import { generateSecretKey, type Event } from 'nostr-tools/pure';
import { SERVED_METHODS } from '../../src/nwc/methods/registry.ts';
import { RelayPool, type RelayTransport } from '../../src/nwc/relay-pool.ts';
import { NwcResponder } from '../../src/nwc/responder.ts';
import { waitFor } from '../helpers/world.ts';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { fastFinalizeEvent, fastPublicKey, fastSchnorrSign } from './fast-sign.ts';
import { startFuzzWorld, type FuzzWorld } from './fuzz-world.ts';
import { clientKeys, encryptFor, fuzzBudget, installCrashGuard, recordingLogger, type ClientKeys, type LoggedEntry } from './harness.ts';
import { register } from './setup.ts';

const budget = fuzzBudget();

type Breakage =
  | { t: 'sig-flip'; at: number }
  | { t: 'sig-random'; hex: string }
  | { t: 'sig-other-event' }
  | { t: 'sig-short' }
  | { t: 'id-flip'; at: number }
  | { t: 'id-other-event' }
  | { t: 'content-after'; suffix: string }
  | { t: 'tag-after'; tag: string[] }
  | { t: 'created-after'; delta: number }
  | { t: 'forged-pubkey' }
  | { t: 'malformed'; field: 'tags-number' | 'no-sig' | 'id-not-hex' | 'created-string' | 'content-number' | 'pubkey-short' | 'kind-string' };

const hexChars = fc.constantFrom(...'0123456789abcdef');
const breakage: fc.Arbitrary<Breakage> = fc.oneof(
  { weight: 4, arbitrary: fc.nat({ max: 127 }).map((at): Breakage => ({ t: 'sig-flip', at })) },
  { weight: 1, arbitrary: fc.string({ unit: hexChars, minLength: 128, maxLength: 128 }).map((hex): Breakage => ({ t: 'sig-random', hex })) },
  { weight: 1, arbitrary: fc.constantFrom<Breakage>({ t: 'sig-other-event' }, { t: 'sig-short' }, { t: 'id-other-event' }) },
  { weight: 2, arbitrary: fc.nat({ max: 63 }).map((at): Breakage => ({ t: 'id-flip', at })) },
  { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 4 }).map((suffix): Breakage => ({ t: 'content-after', suffix })) },
  { weight: 1, arbitrary: fc.array(fc.string({ maxLength: 10 }), { minLength: 1, maxLength: 3 }).map((tag): Breakage => ({ t: 'tag-after', tag: ['x', ...tag] })) },
  { weight: 1, arbitrary: fc.integer({ min: -30, max: 30 }).filter((d) => d !== 0).map((delta): Breakage => ({ t: 'created-after', delta })) },
  { weight: 3, arbitrary: fc.constant<Breakage>({ t: 'forged-pubkey' }) },
  { weight: 1, arbitrary: fc.constantFrom('tags-number', 'no-sig', 'id-not-hex', 'created-string', 'content-number', 'pubkey-short', 'kind-string').map((field): Breakage => ({ t: 'malformed', field: field as Extract<Breakage, { t: 'malformed' }>['field'] })) },
);

/** Relay messages that are not events at all. */
const junkMessage = fc.oneof(
  fc.constantFrom('', 'not json', '[', '["EVENT"]', '["EVENT","%SUB%"]', '["EVENT","%SUB%",null]', '["EVENT","%SUB%","x"]', '["EVENT","%SUB%",[]]', '["EVENT",5,{}]', '["EOSE",5]', '["NOTICE",{}]', '["OK"]', '["OK",null,true]', '["AUTH",5]', '["COUNT","%SUB%",{}]', '{}', 'null', '5', '["UNKNOWN","%SUB%"]'),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(['EVENT', '%SUB%', v])),
  fc.string({ maxLength: 200 }),
);

function flipHex(text: string, at: number): string {
  const i = at % text.length;
  const c = text[i] ?? '0';
  return text.slice(0, i) + (c === '0' ? '1' : '0') + text.slice(i + 1);
}

/** A valid get_info request from the connection, then broken as `b` says. */
function brokenEvent(b: Breakage, conn: ClientKeys, servicePubkey: string, other: Uint8Array): Record<string, unknown> {
  const content = encryptFor(conn, 'nip44_v2', JSON.stringify({ method: 'get_info', params: {} }));
  const template = { kind: 23194, created_at: Math.floor(Date.now() / 1000), tags: [['p', servicePubkey], ['encryption', 'nip44_v2']], content };
  const event: Record<string, unknown> = { ...fastFinalizeEvent(template, conn.secretKey) };
  const another = fastFinalizeEvent({ ...template, created_at: template.created_at - 1 }, conn.secretKey);
  switch (b.t) {
    case 'sig-flip':
      event.sig = flipHex(event.sig as string, b.at);
      break;
    case 'sig-random':
      event.sig = b.hex;
      break;
    case 'sig-other-event':
      event.sig = another.sig;
      break;
    case 'sig-short':
      event.sig = (event.sig as string).slice(0, 64);
      break;
    case 'id-flip':
      event.id = flipHex(event.id as string, b.at);
      break;
    case 'id-other-event':
      event.id = another.id;
      break;
    case 'content-after':
      event.content = `${content}${b.suffix}`;
      break;
    case 'tag-after':
      event.tags = [...template.tags, b.tag];
      break;
    case 'created-after':
      event.created_at = template.created_at + b.delta;
      break;
    case 'forged-pubkey':
      // The connection's event, id and all, signed by another key.
      event.sig = bytesToHex(fastSchnorrSign(hexToBytes(event.id as string), other));
      break;
    case 'malformed':
      if (b.field === 'tags-number') event.tags = [['p', servicePubkey], ['n', 5]];
      if (b.field === 'no-sig') delete event.sig;
      if (b.field === 'id-not-hex') event.id = 'z'.repeat(64);
      if (b.field === 'created-string') event.created_at = String(template.created_at);
      if (b.field === 'content-number') event.content = 5;
      if (b.field === 'pubkey-short') event.pubkey = (event.pubkey as string).slice(2);
      if (b.field === 'kind-string') event.kind = '23194';
      break;
  }
  return event;
}

describe(`broken signatures never reach the NIP-47 handler (${budget.relay} events per path)`, () => {
  const guard = installCrashGuard();
  const recording = recordingLogger('error');
  const logged: LoggedEntry[] = recording.entries;
  let world: FuzzWorld;
  let conn: ClientKeys;
  let service: string;
  const other = generateSecretKey();

  beforeAll(async () => {
    world = await startFuzzWorld(recording.logger);
    const connection = await register(world, [...SERVED_METHODS]);
    service = world.bridge.keys.forConnection(connection.pubkey).pubkey;
    conn = clientKeys(connection.secret, connection.pubkey, service);
  }, 120_000);

  afterAll(async () => {
    guard.dispose();
    await world?.stop();
  });

  const validRequest = () => fastFinalizeEvent({ kind: 23194, created_at: Math.floor(Date.now() / 1000), tags: [['p', service], ['encryption', 'nip44_v2']], content: encryptFor(conn, 'nip44_v2', JSON.stringify({ method: 'get_info', params: {} })) }, conn.secretKey);

  async function recorded(ids: string[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      if (chunk.length > 0) n += (await world.bridge.wallet.db.selectFrom('nwc_requests').select('event_id').where('event_id', 'in', chunk).execute()).length;
    }
    return n;
  }

  it('through the devnet relay: each is refused, none is recorded or answered by the bridge', async () => {
    const socket = new WebSocket(world.devnet.relayUrl);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    const oks = new Map<string, boolean>();
    const answered = new Set<string>();
    let notices = 0;
    socket.onmessage = (m) => {
      const message = JSON.parse(String(m.data)) as unknown[];
      if (message[0] === 'OK') oks.set(String(message[1]), message[2] === true);
      if (message[0] === 'NOTICE') notices++;
      if (message[0] === 'EVENT') for (const t of (message[2] as Event).tags) if (t[0] === 'e' && t[1]) answered.add(t[1]);
    };
    socket.send(JSON.stringify(['REQ', 'answers', { kinds: [23195], authors: [service] }]));
    const sentIds: string[] = [];
    await fc.assert(
      fc.asyncProperty(breakage, async (b) => {
        const event = brokenEvent(b, conn, service, other);
        const id = typeof event.id === 'string' ? event.id : '';
        sentIds.push(id);
        const noticesBefore = notices;
        socket.send(JSON.stringify(['EVENT', event]));
        // The relay says OK false, or sends a NOTICE for what it cannot even read.
        await waitFor(() => oks.has(id) || notices > noticesBefore, `the relay's word on ${id}`, 10_000);
        if (oks.get(id) === true) throw new Error(`the devnet relay accepted a broken event: ${JSON.stringify(event)}`);
      }),
      { numRuns: Math.ceil(budget.relay / 2), ...(budget.seed !== undefined ? { seed: budget.seed } : {}) },
    );
    // A valid request after them is answered: the bridge was listening all along.
    const control = validRequest();
    socket.send(JSON.stringify(['EVENT', control]));
    await waitFor(() => answered.has(control.id), 'the answer to a valid request', 20_000);
    socket.close();
    expect(sentIds.filter((id) => answered.has(id))).toEqual([]);
    expect(await recorded(sentIds.filter((id) => /^[0-9a-f]{64}$/.test(id)))).toBe(0);
  }, 300_000);

  it('from a hostile relay into a real RelayPool and responder: only valid requests reach the handler, each answered once', async () => {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => server.once('listening', resolve));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    const sockets = new Set<ServerSocket>();
    let subscription: { socket: ServerSocket; id: string } | undefined;
    const responses: Event[] = [];
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as unknown[];
        if (message[0] === 'REQ') {
          subscription = { socket, id: String(message[1]) };
          socket.send(JSON.stringify(['EOSE', message[1]]));
        }
        if (message[0] === 'EVENT') {
          const event = message[1] as Event;
          responses.push(event);
          socket.send(JSON.stringify(['OK', event.id, true, '']));
        }
      });
    });

    const pool = new RelayPool([`ws://127.0.0.1:${address.port}`], recording.logger);
    const reached: Event[] = [];
    // The real pool, with what reaches the handler recorded on the way.
    const transport: RelayTransport = {
      onEvent: (handler) =>
        pool.onEvent((event) => {
          reached.push(event);
          handler(event);
        }),
      setSubscription: (id, filters) => pool.setSubscription(id, filters),
      publish: (event) => pool.publish(event),
    };
    const responder = new NwcResponder(world.bridge.wallet.db, transport, world.bridge.keys, world.bridge.wallet, { alias: 'hostile-relay', servedMethods: SERVED_METHODS }, recording.logger, { rateLimit: { perSecond: 1e9, burst: 1e9 } });
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const brokenIds: string[] = [];
    const controls: string[] = [];
    let junk = 0;
    let warned = 0;
    try {
      await responder.start();
      await waitFor(() => subscription !== undefined && pool.isLive(), 'the pool to subscribe', 20_000);
      const send = (text: string) => subscription?.socket.send(text.replaceAll('%SUB%', subscription.id));
      await fc.assert(
        fc.asyncProperty(fc.array(fc.oneof({ weight: 4, arbitrary: breakage.map((b) => ({ b })) }, { weight: 1, arbitrary: junkMessage.map((junk) => ({ junk })) }), { minLength: 1, maxLength: 10 }), async (batch) => {
          for (const item of batch) {
            if ('junk' in item) {
              junk++;
              send(item.junk);
              continue;
            }
            const event = brokenEvent(item.b, conn, service, other);
            if (typeof event.id === 'string') brokenIds.push(event.id);
            send(JSON.stringify(['EVENT', '%SUB%', event]));
          }
          // A valid request among them must get through and be answered.
          const control = validRequest();
          controls.push(control.id);
          send(JSON.stringify(['EVENT', '%SUB%', control]));
          await waitFor(() => responses.some((r) => r.tags.some((t) => t[0] === 'e' && t[1] === control.id)), 'the answer to the valid request', 20_000);
        }),
        { numRuns: Math.max(10, Math.ceil(budget.relay / 2 / 6)), ...(budget.seed !== undefined ? { seed: budget.seed } : {}) },
      );
      await responder.drain(10_000);
    } finally {
      warned = warn.mock.calls.length;
      warn.mockRestore();
      pool.close();
      for (const s of sockets) s.terminate();
      await new Promise((resolve) => server.close(resolve));
    }
    expect(brokenIds.length).toBeGreaterThan(0);
    expect(reached.map((e) => e.id).sort()).toEqual([...controls].sort());
    const answeredIds = responses.flatMap((r) => r.tags.filter((t) => t[0] === 'e').map((t) => t[1]));
    expect(answeredIds.sort()).toEqual([...controls].sort());
    expect(responses.every((r) => r.pubkey === service && r.kind === 23195)).toBe(true);
    expect(await recorded(brokenIds.filter((id) => /^[0-9a-f]{64}$/.test(id) && !controls.includes(id)))).toBe(0);
    console.log(`relay fuzz: ${brokenIds.length} broken events and ${controls.length} valid requests and ${junk} junk messages through a hostile relay (nostr-tools warned of ${warned})`);
  }, 300_000);

  it('never crashed and logged no error', () => {
    expect(guard.errors.map((e) => (e instanceof Error ? e.stack : String(e)))).toEqual([]);
    expect(logged.map((e) => e.line)).toEqual([]);
  });

  it('uses signatures nostr-tools accepts (the fast signer is sound)', async () => {
    const { verifyEvent } = await import('nostr-tools/pure');
    const key = generateSecretKey();
    for (let i = 0; i < 20; i++) {
      const event = fastFinalizeEvent({ kind: 1, created_at: 1_700_000_000 + i, tags: [['t', String(i)]], content: `n${i}` }, key);
      expect(event.pubkey).toBe(fastPublicKey(key));
      expect(verifyEvent({ ...event })).toBe(true);
    }
  });
});
