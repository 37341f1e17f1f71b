/**
 * Stored values as the admin API shows them (views, the GDPR export): times are stored as
 * milliseconds since the epoch and shown as ISO strings; JSON is stored as text and shown as its
 * value.
 */

export const isoTime = (ms: number): string => new Date(Number(ms)).toISOString();

export const isoTimeOrNull = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : isoTime(ms));

/** The value of stored JSON text; text that is not JSON as it is; null for no text. */
export function storedJson(text: string | null | undefined): any {
  if (typeof text !== "string") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
