/**
 * What log lines must not carry in full: Lightning invoices (they name the payee, amount and
 * payment hash: metadata about users) and anything that is a secret by its shape (an nsec, a
 * NIP-47 connection URI's `secret=`). Applied to every log call at info level and above
 * (`src/log.ts`); debug and trace keep invoices whole for troubleshooting, never secrets.
 */

/** BOLT 11 invoices of any network, as they appear inside any text. */
const BOLT11 = /\bln(?:bc|tb|tbs|bcrt|sb)[0-9a-z]{20,}\b/gi;
const NSEC = /\bnsec1[02-9ac-hj-np-z]{20,}\b/gi;
const URI_SECRET = /(secret=)[0-9a-f]{64}/gi;

const MAX_DEPTH = 5;

/** An invoice shortened to its network prefix and a few characters: enough to match it, not to read it. */
function abbreviate(invoice: string): string {
  return `${invoice.slice(0, 12)}…${invoice.slice(-6)}`;
}

/** `text` with secrets removed and, when `invoices` is true, invoices abbreviated. */
export function scrubText(text: string, invoices: boolean): string {
  let out = text.replace(NSEC, '[redacted nsec]').replace(URI_SECRET, '$1[redacted]');
  if (invoices) out = out.replace(BOLT11, abbreviate);
  return out;
}

function mightHold(text: string): boolean {
  return /ln(?:bc|tb|tbs|bcrt|sb)|nsec1|secret=/i.test(text);
}

/**
 * A copy of a log argument with `scrubText` applied to every string inside it (objects, arrays
 * and errors, a few levels deep). Values with nothing to scrub are returned as they are, so
 * the common case allocates nothing.
 */
export function scrubValue(value: unknown, invoices: boolean, depth = 0): unknown {
  if (typeof value === 'string') return mightHold(value) ? scrubText(value, invoices) : value;
  if (value === null || typeof value !== 'object' || depth >= MAX_DEPTH) return value;
  if (value instanceof Error) {
    const message = scrubValue(value.message, invoices, depth + 1);
    const stack = scrubValue(value.stack, invoices, depth + 1);
    const cause = scrubValue(value.cause, invoices, depth + 1);
    if (message === value.message && stack === value.stack && cause === value.cause) return value;
    // Same class and own fields (a code, a status), with the text scrubbed.
    return Object.assign(Object.create(Object.getPrototypeOf(value) as object) as Error, value, { name: value.name, message, stack, cause });
  }
  if (Array.isArray(value)) {
    const mapped = value.map((v) => scrubValue(v, invoices, depth + 1));
    return mapped.some((v, i) => v !== value[i]) ? mapped : value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  let changed = false;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const s = scrubValue(v, invoices, depth + 1);
    if (s !== v) changed = true;
    out[k] = s;
  }
  return changed ? out : value;
}
