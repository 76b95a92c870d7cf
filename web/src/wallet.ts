import { NWCClient } from '@getalby/sdk/nwc';
import { byId, fill, h, say, show, table } from './dom.ts';
import { parseSats, sats, time } from './format.ts';
import { qrImage } from './qr.ts';
import { loadSecret, storeSecret } from './signer.ts';

/**
 * The web wallet: an NWC client of the bridge in the page, over the relay named in the
 * connection (Alby's NWCClient, bundled). The connection's secret stays in the browser; it can
 * be kept in the browser's password manager.
 */

const status = byId('status');
const errorBox = byId('error');
let client: NWCClient | undefined;
let unsubscribe: (() => void) | undefined;
let shownInvoiceHash: string | undefined;

const CREDENTIAL_PREFIX = 'nwc:';

function message(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' && error instanceof Error) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

function action(button: HTMLButtonElement | null, work: () => Promise<void>): void {
  say(errorBox, '');
  if (button) button.disabled = true;
  work()
    .catch((error: unknown) => say(errorBox, message(error), 'error'))
    .finally(() => {
      if (button) button.disabled = false;
    });
}

function submitButton(form: HTMLFormElement): HTMLButtonElement | null {
  const b = form.querySelector('button[type=submit]');
  return b instanceof HTMLButtonElement ? b : null;
}

function parseConnection(text: string): string {
  // Also take BTCPay's form: type=nwc;key=<uri>.
  const uri = text.trim().replace(/^type=nwc;key=/, '');
  if (!/^nostr\+walletconnect:\/\/[0-9a-f]{64}\?/.test(uri)) throw new Error('That is not a connection: expected nostr+walletconnect://<key>?relay=…&secret=…');
  return uri;
}

async function connect(uri: string): Promise<void> {
  disconnect();
  const nwc = new NWCClient({ nostrWalletConnectUrl: uri });
  const info = await nwc.getInfo();
  client = nwc;
  byId('wallet-alias').textContent = `Connected to ${info.alias || 'the bridge'} (${info.network}).`;
  show(byId('connect'), false);
  show(byId('wallet'), true);
  if ((info.notifications?.length ?? 0) > 0) {
    unsubscribe = await nwc.subscribeNotifications((n) => {
      const tx = n.notification;
      const text = n.notification_type === 'payment_received' ? `Received ${sats(tx.amount)}` : n.notification_type === 'payment_sent' ? `Sent ${sats(tx.amount)} (fee ${sats(tx.fees_paid)})` : `Payment held: ${sats(tx.amount)}`;
      byId('notifications').prepend(h('li', { 'data-type': n.notification_type }, `${time(tx.settled_at || tx.created_at)}: ${text}`));
      if (n.notification_type === 'payment_received' && tx.payment_hash === shownInvoiceHash) say(byId('invoice-state'), 'Paid.', 'ok');
      void refresh().catch((error: unknown) => say(errorBox, message(error), 'error'));
    });
  }
  say(status, 'Connected.', 'ok');
  await refresh();
}

function disconnect(): void {
  unsubscribe?.();
  unsubscribe = undefined;
  client?.close();
  client = undefined;
}

function need(): NWCClient {
  if (!client) throw new Error('connect first');
  return client;
}

async function refresh(): Promise<void> {
  const nwc = need();
  const [balance, list] = await Promise.all([nwc.getBalance(), nwc.listTransactions({ limit: 50, unpaid: false })]);
  byId('balance').textContent = sats(balance.balance);
  fill(
    byId('transactions'),
    table(
      ['When', 'Type', 'State', 'Amount', 'Fee', 'Description'],
      list.transactions,
      (t) => [time(t.settled_at || t.created_at), t.type === 'incoming' ? 'received' : 'paid', t.state, sats(t.amount), t.type === 'outgoing' ? sats(t.fees_paid) : '—', t.description],
      'No transactions yet.',
    ),
  );
  document.body.dataset.loaded = String(Date.now());
}

byId('connect-form', HTMLFormElement).addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget as HTMLFormElement;
  action(submitButton(form), async () => {
    const uri = parseConnection(byId('nwc-uri', HTMLTextAreaElement).value);
    await connect(uri);
    byId('nwc-uri', HTMLTextAreaElement).value = '';
    if (byId('nwc-remember', HTMLInputElement).checked) {
      const walletKey = /^nostr\+walletconnect:\/\/([0-9a-f]{64})/.exec(uri)?.[1] ?? '';
      // Not awaited: the browser may ask the user, and the wallet works meanwhile.
      void storeSecret(`${CREDENTIAL_PREFIX}${walletKey.slice(0, 16)}`, uri, 'deposit-bridge web wallet').then((saved) => {
        if (!saved) say(status, 'Connected. This browser did not save the connection; keep it yourself.');
      });
    }
  });
});

byId('connect-stored', HTMLButtonElement).addEventListener('click', (e) =>
  action(e.currentTarget as HTMLButtonElement, async () => {
    const stored = await loadSecret(CREDENTIAL_PREFIX);
    if (!stored) throw new Error('No connection is saved in this browser (or the browser cannot keep one).');
    await connect(parseConnection(stored.secret));
  }),
);

byId('disconnect', HTMLButtonElement).addEventListener('click', () => {
  disconnect();
  show(byId('wallet'), false);
  show(byId('connect'), true);
  say(status, 'Disconnected.');
});

byId('refresh', HTMLButtonElement).addEventListener('click', (e) => action(e.currentTarget as HTMLButtonElement, refresh));

byId('receive-form', HTMLFormElement).addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget as HTMLFormElement;
  action(submitButton(form), async () => {
    const amount = parseSats(byId('receive-amount', HTMLInputElement).value);
    if (amount === null || amount === 0n) throw new Error('The amount must be a whole number of sats above 0');
    const description = byId('receive-description', HTMLInputElement).value.trim();
    const made = await need().makeInvoice({ amount: Number(amount), description });
    shownInvoiceHash = made.payment_hash;
    byId('invoice', HTMLTextAreaElement).value = made.invoice;
    fill(byId('invoice-qr'), await qrImage(made.invoice.toUpperCase(), `QR code of the invoice for ${sats(made.amount)}`));
    say(byId('invoice-state'), `Waiting for ${sats(made.amount)}…`);
    show(byId('invoice-box'), true);
  });
});

byId('pay-form', HTMLFormElement).addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget as HTMLFormElement;
  action(submitButton(form), async () => {
    const invoice = byId('pay-invoice', HTMLTextAreaElement).value.trim().replace(/^lightning:/i, '');
    if (!/^ln[a-z0-9]+$/i.test(invoice)) throw new Error('That is not a BOLT 11 invoice');
    say(byId('pay-result'), 'Paying…');
    try {
      const paid = await need().payInvoice({ invoice });
      say(byId('pay-result'), `Paid. Fee ${sats(paid.fees_paid ?? 0)}. Preimage ${paid.preimage}`, 'ok');
      byId('pay-invoice', HTMLTextAreaElement).value = '';
    } catch (error) {
      say(byId('pay-result'), `Not paid: ${message(error)}`, 'error');
      return;
    }
    await refresh();
  });
});
