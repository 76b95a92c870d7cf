/** Formats msat amounts (decimal strings or bigints) as sats for people; never through a float. */
export function sats(msat: string | bigint | number): string {
  const v = BigInt(msat);
  const negative = v < 0n;
  const abs = negative ? -v : v;
  const whole = (abs / 1000n).toLocaleString('en-US');
  const rest = abs % 1000n;
  const text = rest === 0n ? whole : `${whole}.${rest.toString().padStart(3, '0').replace(/0+$/, '')}`;
  return `${negative ? '−' : ''}${text} sat`;
}

export function time(unixSeconds: number | null | undefined): string {
  if (unixSeconds === null || unixSeconds === undefined) return '—';
  return new Date(unixSeconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function shortKey(hex: string): string {
  return hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

/** A sat amount typed by a person ("1000", "1,000") as msats, or null when it is not a whole number. */
export function parseSats(text: string): bigint | null {
  const clean = text.replace(/[,_\s]/g, '');
  if (!/^[0-9]{1,15}$/.test(clean)) return null;
  return BigInt(clean) * 1000n;
}

export function percent(ppm: number): string {
  return `${(ppm / 10_000).toFixed(1)} %`;
}
