/**
 * A local world to run the bridge against: a Nostr relay, reference vault operators on a
 * simulated Lightning network, two auditors, an external payer and payee, and a control server.
 * With a data dir, everything lives under `<dataDir>/devnet/` and survives a restart.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { msatString, nip47Msat, type Msat } from '../protocol/amounts.ts';
import { bytesToHex, hex32 } from '../protocol/hex.ts';
import { tlvRecordsToWire } from '../protocol/nwc-request.ts';
import type { VaultsFile } from '../vault-client/vaults-file.ts';
import { silentLogger, type Logger } from '../log.ts';
import { DevnetAuditor, startAuditorServer } from './auditor.ts';
import { ExternalNodes, type KeysendReceipt, type PayeeInvoiceStatus } from './external-nodes.ts';
import type { FastifyReply } from 'fastify';
import { createApp, listen, parseJsonBody, parseWith, sendError, sendJson } from './http.ts';
import { LightningNetwork, type PaymentOutcome, type RoutingPolicy } from './lightning-network.ts';
import { startRelay } from './relay.ts';
import type { VaultFaults } from './vault-faults.ts';
import { VaultOperator } from './vault-operator.ts';
import { startVaultServer } from './vault-server.ts';

export interface DevnetOptions {
  /** Where state is kept (`<dataDir>/devnet/`); null keeps everything in memory. */
  dataDir: string | null;
  /** Run the relay (default true). */
  relay?: boolean;
  /** Run the Lightning network, vault operators, two auditors and control server (default true). */
  vaults?: boolean;
  host?: string;
  /** Ports; 0 picks a free one. Defaults 7447 (relay), 7450 (control), 7451–7453 (operators), 7454–7455 (auditors). */
  relayPort?: number;
  controlPort?: number;
  operatorPorts?: number[];
  /** The first auditor's port; the second takes the next one (0: both free ports). */
  auditorPort?: number;
  /** Each auditor's port, when they must be exact (a restart on the same ports). */
  auditorPorts?: number[];
  /** Number of vault operators, named vault-a, vault-b, … (default 3, at most 26). */
  operators?: number;
  /** Auditor probe interval (default 10 s) and report window (default 10 min). */
  auditIntervalMs?: number;
  auditWindowMs?: number;
  /** How long a payment call waits for the network before answering `pending` (default 2 s). */
  paymentWaitMs?: number;
  /** How long the relay retains NWC events (kinds 23194–23197) for later subscribers (default 60 s; 0: none). */
  relayRetentionSeconds?: number;
  logger?: Logger;
}

export interface DevnetOperator {
  name: string;
  url: string;
  nodePubkey: string;
  peerNodePubkey: string;
  vaultId: string;
  channelId: string;
  multisigPubkey: string;
  routingPolicy: RoutingPolicy;
  /** Live fault switches: `op.faults.down = true` takes effect at once. */
  faults: VaultFaults;
  /** Sends the payments held by the `holdPayments` fault. */
  releasePayments(): void;
}

/** What GET /api/devnet on the control server answers. */
export interface DevnetDescription {
  relay_url: string | null;
  /** The control server, which serves /network/pay, /network/invoice and /network/invoices/:hash. */
  network_url: string | null;
  operators: { name: string; url: string; node_pubkey: string }[];
  auditors: { url: string; pubkey: string }[];
  /** The external payee's node key (keysend destination), when the devnet runs the network. */
  payee_node_pubkey?: string | null;
  /** A working lightning address of the external payee (`payee@host:port`, served over http on loopback). */
  lightning_address?: string | null;
}

export interface Devnet {
  /** The relay's ws:// URL; reading it throws when the devnet was started with `relay: false`. */
  readonly relayUrl: string;
  /** For tests: open subscriptions of each client connected to the relay (throws with `relay: false`). */
  relaySubscriptionCounts(): number[];
  /** The control server's URL; reading it throws when the devnet was started with `vaults: false`. */
  readonly controlUrl: string;
  operators: DevnetOperator[];
  auditors: { url: string; pubkey: string }[];
  /** What `<dataDir>/devnet/vaults.json` holds (written only with a data dir and vaults). */
  vaultsFile: VaultsFile;
  vaultsFilePath: string | null;
  describe(): DevnetDescription;
  /** Pays an invoice from the external payer (unlimited funds); `amountMsat` for amountless invoices. */
  payInvoice(invoice: string, amountMsat?: Msat): Promise<PaymentOutcome>;
  /**
   * An invoice of the external payee; null amount for an amountless one. `options` commit to a
   * description hash instead (as a lightning address server does) or set the expiry (default 3600 s).
   */
  createPayeeInvoice(amountMsat: Msat | null, description?: string, options?: { descriptionHash?: string; expirySeconds?: number }): { invoice: string; paymentHash: string };
  payeeInvoiceStatus(paymentHash: string): PayeeInvoiceStatus | null;
  /** The external payee's node key: a keysend destination that records what it receives. */
  readonly payeeNodePubkey: string;
  /** A keysend the external payee received, by payment hash, or null. */
  payeeKeysend(paymentHash: string): KeysendReceipt | null;
  /**
   * The external payee's lightning address, `payee@<control host:port>`: the control server
   * answers LUD-16 for any name with invoices of the payee. Throws with `vaults: false`.
   */
  readonly lightningAddress: string;
  /** The chain's height (one block per 10 minutes of wall time, plus mined blocks). */
  blockHeight(): number;
  /** Mines blocks at once (held payments past their settle deadline are canceled); returns the new height. */
  mineBlocks(count: number): number;
  /** Stops everything in order; payments in flight are resent after the next start. */
  stop(): Promise<void>;
}

/** Routing fee policies of vault-a, vault-b, vault-c (then repeating). */
const POLICIES: RoutingPolicy[] = [
  { baseMsat: 1000n, ppm: 1000 },
  { baseMsat: 500n, ppm: 2000 },
  { baseMsat: 0n, ppm: 5000 },
];

export async function startDevnet(options: DevnetOptions): Promise<Devnet> {
  const host = options.host ?? '127.0.0.1';
  const log = options.logger ?? silentLogger;
  const dir = options.dataDir === null ? null : join(options.dataDir, 'devnet');
  if (dir !== null) mkdirSync(dir, { recursive: true });
  const dbPath = (name: string) => (dir === null ? null : join(dir, `${name}.sqlite`));

  // Undone in reverse order by stop() or by a failed start.
  const undo: (() => void | Promise<void>)[] = [];
  const stop = async () => {
    while (undo.length > 0) {
      const step = undo.pop();
      try {
        await step?.();
      } catch (error) {
        log.error({ err: error instanceof Error ? error.message : String(error) }, 'devnet stop step failed');
      }
    }
  };

  try {
    const relay =
      options.relay === false
        ? null
        : await startRelay({
            host,
            port: options.relayPort ?? 7447,
            logger: log,
            ...(options.relayRetentionSeconds === undefined ? {} : { ephemeralRetentionSeconds: options.relayRetentionSeconds }),
          });
    if (relay) undo.push(() => relay.stop());
    const relayUrl = relay?.url ?? null;
    const world = options.vaults === false ? null : await startVaults(options, host, dbPath, log, undo, relayUrl);
    const describe = (): DevnetDescription =>
      world?.describe() ?? { relay_url: relayUrl, network_url: null, operators: [], auditors: [], payee_node_pubkey: null, lightning_address: null };
    const vaultsFile: VaultsFile = { operators: describe().operators, auditors: describe().auditors };
    const needWorld = () => {
      if (world === null) throw new Error('this devnet runs no Lightning network (started with vaults: false)');
      return world;
    };
    const vaultsFilePath = dir === null || world === null ? null : join(dir, 'vaults.json');
    if (vaultsFilePath !== null) writeFileSync(vaultsFilePath, JSON.stringify(vaultsFile, null, 2) + '\n');
    log.info({ relay: relay?.url, control: world?.controlUrl, operators: vaultsFile.operators.map((o) => o.url) }, 'devnet started');

    const external = () => needWorld().external;
    return {
      get relayUrl() {
        if (relay === null) throw new Error('this devnet runs no relay (started with relay: false)');
        return relay.url;
      },
      relaySubscriptionCounts: () => {
        if (relay === null) throw new Error('this devnet runs no relay (started with relay: false)');
        return relay.subscriptionCounts();
      },
      get controlUrl() {
        if (world === null) throw new Error('this devnet runs no control server (started with vaults: false)');
        return world.controlUrl;
      },
      operators: world?.operators ?? [],
      auditors: world?.auditors ?? [],
      vaultsFile,
      vaultsFilePath,
      describe,
      payInvoice: (invoice, amountMsat) => external().pay(invoice, amountMsat ?? null),
      createPayeeInvoice: (amountMsat, description, options = {}) =>
        external().createInvoice(amountMsat, description, options.expirySeconds, options.descriptionHash === undefined ? {} : { descriptionHash: options.descriptionHash }),
      payeeInvoiceStatus: (paymentHash) => external().invoiceStatus(paymentHash),
      get payeeNodePubkey() {
        return external().payeePubkey;
      },
      payeeKeysend: (paymentHash) => external().keysendReceipt(paymentHash),
      get lightningAddress() {
        return needWorld().lightningAddress;
      },
      blockHeight: () => needWorld().network.blockHeight(),
      mineBlocks: (count) => needWorld().network.mineBlocks(count),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

interface VaultsWorld {
  network: LightningNetwork;
  external: ExternalNodes;
  lightningAddress: string;
  operators: DevnetOperator[];
  auditors: { url: string; pubkey: string }[];
  controlUrl: string;
  describe(): DevnetDescription;
}

/** The Lightning side: network, external nodes, operators and their servers, auditor, control server. */
async function startVaults(
  options: DevnetOptions,
  host: string,
  dbPath: (name: string) => string | null,
  log: Logger,
  undo: (() => void | Promise<void>)[],
  relayUrl: string | null,
): Promise<VaultsWorld> {
  const count = options.operators ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 26) throw new RangeError('operators must be between 1 and 26');
  const network = new LightningNetwork({ dbPath: dbPath('network') });
  undo.push(() => network.close());
  const external = new ExternalNodes(network, dbPath('external'));
  undo.push(() => external.close());
  // Two independent auditors, so agreement between them is part of every score.
  const auditorNames = ['auditor', 'auditor-2'];
  const auditorNodes = auditorNames.map((name) => {
    const auditor = new DevnetAuditor({ dbPath: dbPath(name), intervalMs: options.auditIntervalMs, windowMs: options.auditWindowMs, logger: log });
    undo.push(() => auditor.close());
    return auditor;
  });

  // Operators close one after another without awaiting, after their servers and before the
  // network: no payment can land between a payee's close and its payer's.
  const operators: VaultOperator[] = [];
  for (let i = 0; i < count; i += 1) {
    const name = `vault-${String.fromCharCode(97 + i)}`;
    const operator = new VaultOperator({
      name,
      dbPath: dbPath(name),
      nodeSecret: network.secretKey(name),
      peerSecret: network.secretKey(`${name}-peer`),
      network,
      routingPolicy: policyOf(i),
      auditors: auditorNodes.map((a) => a.pubkey),
      paymentWaitMs: options.paymentWaitMs,
      logger: log,
    });
    operators.push(operator);
    undo.push(() => operator.close());
  }
  const defaultPorts = [7451, 7452, 7453];
  const handles: DevnetOperator[] = [];
  for (const [i, operator] of operators.entries()) {
    const server = await startVaultServer({ operator, host, port: options.operatorPorts?.[i] ?? defaultPorts[i] ?? 0, logger: log });
    undo.push(() => server.close());
    handles.push({
      name: operator.name,
      url: server.url,
      nodePubkey: operator.nodePubkey,
      peerNodePubkey: operator.peerNodePubkey,
      vaultId: operator.vaultId,
      channelId: operator.channelId,
      multisigPubkey: operator.multisigPubkey,
      routingPolicy: policyOf(i),
      faults: operator.faults,
      releasePayments: () => operator.releasePayments(),
    });
  }

  const auditors: { url: string; pubkey: string }[] = [];
  for (const [i, auditor] of auditorNodes.entries()) {
    const port = options.auditorPorts?.[i] ?? (options.auditorPort === 0 ? 0 : (options.auditorPort ?? 7454) + i);
    const auditorServer = await startAuditorServer(auditor, host, port, log);
    undo.push(() => auditorServer.close());
    auditor.start(handles.map((h) => ({ url: h.url, nodePubkey: h.nodePubkey })));
    undo.push(() => auditor.stop());
    auditors.push({ url: auditorServer.url, pubkey: auditor.pubkey });
  }
  let controlUrl: string | null = null;
  const lightningAddress = () => (controlUrl === null ? null : `${PAYEE_ADDRESS_NAME}@${new URL(controlUrl).host}`);
  const describe = (): DevnetDescription => ({
    relay_url: relayUrl,
    network_url: controlUrl,
    operators: handles.map((h) => ({ name: h.name, url: h.url, node_pubkey: h.nodePubkey })),
    auditors,
    payee_node_pubkey: external.payeePubkey,
    lightning_address: lightningAddress(),
  });
  const control = await startControlServer(external, network, host, options.controlPort ?? 7450, log, describe);
  undo.push(() => control.close());
  controlUrl = control.url;
  return { network, external, lightningAddress: lightningAddress() ?? '', operators: handles, auditors, controlUrl: control.url, describe };
}

/** The name in the devnet's advertised lightning address (any name works). */
const PAYEE_ADDRESS_NAME = 'payee';
/** What the devnet's lightning addresses accept: 1 sat to 1 BTC; comments up to 255 characters. */
const LNURL_MIN_SENDABLE = 1_000;
const LNURL_MAX_SENDABLE = 100_000_000_000;
const LNURL_COMMENT_ALLOWED = 255;

function policyOf(index: number): RoutingPolicy {
  return POLICIES[index % POLICIES.length] ?? { baseMsat: 1000n, ppm: 1000 };
}

const amountField = z.union([msatString, nip47Msat]).refine((amount) => amount > 0n, 'amount must be positive');
const payBody = z.object({ invoice: z.string().min(1).max(8192), amount_msat: amountField.optional() });
const invoiceBody = z.object({ amount_msat: amountField.optional(), description: z.string().max(639).optional() });
const invoiceParams = z.object({ payment_hash: hex32 });
const addressParams = z.object({ name: z.string().regex(/^[a-z0-9\-_.+]{1,64}$/, 'expected a LUD-16 user name') });
const callbackQuery = z.object({
  amount: z.string().regex(/^[1-9][0-9]{0,15}$/, 'amount must be a positive integer of msats'),
  comment: z.string().max(1000).optional(),
});
const blocksBody = z.object({ count: z.number().int().min(1).max(100_000).default(1) });

/**
 * The control server: the devnet's description (GET /api/devnet), the external nodes
 * (POST /network/pay, POST /network/invoice, GET /network/invoices/:payment_hash,
 * GET /network/keysends/:payment_hash), the chain (POST /network/blocks), and the external
 * payee's lightning addresses (LUD-16 / LUD-06: GET /.well-known/lnurlp/:name and its callback).
 */
async function startControlServer(
  external: ExternalNodes,
  network: LightningNetwork,
  host: string,
  port: number,
  log: Logger,
  describe: () => DevnetDescription,
): Promise<{ url: string; close(): Promise<void> }> {
  const app = createApp(log);
  app.get('/api/devnet', async (_request, reply) => sendJson(reply, 200, describe()));
  app.post('/network/pay', async (request, reply) => {
    const body = parseJsonBody(request.body, payBody);
    if (!body.ok) return sendError(reply, 400, 'BAD_REQUEST', body.error.message);
    const outcome = await external.pay(body.value.invoice, body.value.amount_msat ?? null);
    if (outcome.state === 'failed') return sendError(reply, 402, 'PAYMENT_FAILED', outcome.reason);
    return sendJson(reply, 200, { payment_hash: outcome.paymentHash, preimage: outcome.preimage, fee_msat: outcome.feeMsat });
  });
  app.post('/network/invoice', async (request, reply) => {
    const body = parseJsonBody(typeof request.body === 'string' && request.body.length > 0 ? request.body : '{}', invoiceBody);
    if (!body.ok) return sendError(reply, 400, 'BAD_REQUEST', body.error.message);
    const created = external.createInvoice(body.value.amount_msat ?? null, body.value.description);
    return sendJson(reply, 201, { invoice: created.invoice, payment_hash: created.paymentHash });
  });
  app.get('/network/invoices/:payment_hash', async (request, reply) => {
    const params = parseWith(request.params, invoiceParams, 'path');
    if (!params.ok) return sendError(reply, 400, 'BAD_REQUEST', params.error.message);
    const status = external.invoiceStatus(params.value.payment_hash);
    if (status === null) return sendError(reply, 404, 'NOT_FOUND', 'no such invoice');
    return sendJson(reply, 200, {
      state: status.state,
      amount_msat: status.amountMsat,
      ...(status.preimage === null ? {} : { preimage: status.preimage }),
    });
  });
  app.get('/network/keysends/:payment_hash', async (request, reply) => {
    const params = parseWith(request.params, invoiceParams, 'path');
    if (!params.ok) return sendError(reply, 400, 'BAD_REQUEST', params.error.message);
    const receipt = external.keysendReceipt(params.value.payment_hash);
    if (receipt === null) return sendError(reply, 404, 'NOT_FOUND', 'no such keysend');
    return sendJson(reply, 200, {
      payment_hash: receipt.paymentHash,
      preimage: receipt.preimage,
      amount_msat: receipt.amountMsat,
      tlv_records: tlvRecordsToWire(receipt.tlvRecords),
      received_at: receipt.receivedAt,
    });
  });
  app.post('/network/blocks', async (request, reply) => {
    const body = parseJsonBody(typeof request.body === 'string' && request.body.length > 0 ? request.body : '{}', blocksBody);
    if (!body.ok) return sendError(reply, 400, 'BAD_REQUEST', body.error.message);
    return sendJson(reply, 200, { block_height: network.mineBlocks(body.value.count) });
  });

  // LUD-16: every name is an address of the external payee. LUD-06 errors are {status, reason}.
  const metadataFor = (name: string, hostPort: string) =>
    JSON.stringify([
      ['text/plain', `Payment to ${name} on the deposit-bridge devnet`],
      ['text/identifier', `${name}@${hostPort}`],
    ]);
  const lnurlError = (reply: FastifyReply, status: number, reason: string) => sendJson(reply, status, { status: 'ERROR', reason });
  app.get('/.well-known/lnurlp/:name', async (request, reply) => {
    const params = parseWith(request.params, addressParams, 'path');
    if (!params.ok) return lnurlError(reply, 400, params.error.message);
    const base = `http://${request.headers.host ?? ''}`;
    return sendJson(reply, 200, {
      tag: 'payRequest',
      callback: `${base}/lnurlp/${params.value.name}/callback`,
      minSendable: LNURL_MIN_SENDABLE,
      maxSendable: LNURL_MAX_SENDABLE,
      metadata: metadataFor(params.value.name, request.headers.host ?? ''),
      commentAllowed: LNURL_COMMENT_ALLOWED,
    });
  });
  app.get('/lnurlp/:name/callback', async (request, reply) => {
    const params = parseWith(request.params, addressParams, 'path');
    if (!params.ok) return lnurlError(reply, 400, params.error.message);
    const query = parseWith(request.query, callbackQuery, 'query');
    if (!query.ok) return lnurlError(reply, 400, query.error.message);
    const amount = BigInt(query.value.amount);
    if (amount < BigInt(LNURL_MIN_SENDABLE) || amount > BigInt(LNURL_MAX_SENDABLE)) return lnurlError(reply, 400, 'amount out of range');
    const comment = query.value.comment;
    if (comment !== undefined && comment.length > LNURL_COMMENT_ALLOWED) return lnurlError(reply, 400, 'comment too long');
    const metadata = metadataFor(params.value.name, request.headers.host ?? '');
    const created = external.createInvoice(amount, '', 600, {
      descriptionHash: bytesToHex(sha256(new TextEncoder().encode(metadata))),
      ...(comment === undefined ? {} : { comment }),
    });
    return sendJson(reply, 200, { pr: created.invoice, routes: [] });
  });
  const url = await listen(app, host, port);
  return { url, close: () => app.close() };
}
