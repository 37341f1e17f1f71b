/**
 * Waiting for work in this process to reach a state, without sleeping: the event loop turns
 * (setImmediate) until the condition holds. For unit tests on a manual clock (manual-clock.ts),
 * where nothing waits for real time: what is not there after many turns is not coming.
 */
export async function eventually(condition: () => boolean | Promise<boolean>, what = "the condition", turns = 2_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`${what} did not come about within ${turns} turns of the event loop`);
}
