/**
 * Lets the event loop handle I/O (incoming webhooks above all) before the caller goes on.
 * The local database driver is synchronous, so a loop of awaited queries never yields by
 * itself; the conversation engine and the reply lanes call this once per step, so that
 * acknowledging Facebook is never starved by background work.
 */
export function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
