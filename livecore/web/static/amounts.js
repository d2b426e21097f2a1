// Money on the pages: amounts are integers in minor units (cents) with a lower-case ISO
// currency, as the API has them; people read and type them in major units ("5.00").

/** Digits after the decimal point in `currency` (2 for usd, 0 for jpy). */
export function fractionDigits(currency) {
  try {
    const format = new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() });
    return format.resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** "$5.00": `minor` units of `currency` in the reader's locale; `short`: "$5" when whole. */
export function formatMoney(minor, currency, short = false) {
  const digits = fractionDigits(currency);
  const whole = short && minor % 10 ** digits === 0;
  try {
    const options = { style: "currency", currency: currency.toUpperCase() };
    if (whole) options.minimumFractionDigits = options.maximumFractionDigits = 0;
    const format = new Intl.NumberFormat(undefined, options);
    return format.format(minor / 10 ** digits);
  } catch {
    return `${(minor / 10 ** digits).toFixed(digits)} ${currency.toUpperCase()}`;
  }
}

/**
 * What someone typed ("5", "5.5", "5,50", "$5.00") in minor units of `currency`, or null
 * when it is no amount (letters, more decimals than the currency has, nothing at all).
 */
export function parseAmount(text, currency) {
  const digits = fractionDigits(currency);
  // Symbols and spaces around the number are ignored; a comma is taken as the decimal mark
  // only when there is no dot ("5,50"), never as thousands.
  let clean = String(text).trim().replace(/^[^\d.,]+|[^\d.,]+$/g, "").replaceAll(" ", "");
  if (!clean.includes(".")) clean = clean.replace(",", ".");
  const found = /^(\d{1,9})(?:\.(\d*))?$/.exec(clean) || /^()\.(\d+)$/.exec(clean);
  if (!found) return null;
  const [, whole, fraction = ""] = found;
  if (fraction.length > digits) return null;
  return Number(whole || "0") * 10 ** digits + Number(fraction.padEnd(digits, "0") || "0");
}

/** A fresh Idempotency-Key: one per attempt to pay, kept for that attempt's retries. */
export function idempotencyKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  // Pages served over plain http on another host than localhost have no randomUUID.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** "1 min 5 s", "40 s", "2 h 3 min": a wait in words. */
export function waitWords(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h) return `${h} h${m ? ` ${m} min` : ""}`;
  if (m) return `${m} min${s % 60 ? ` ${s % 60} s` : ""}`;
  return `${s} s`;
}
