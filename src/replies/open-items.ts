/**
 * Each reply lane's open items in `id` order: the lanes' work list, so a send does not start with
 * a query. The table stays the truth: filled from it at start, and after each commit that adds
 * items; an item leaves once its outcome is committed. If an echo marks an item sent behind the
 * list's back, the guarded "sending" mark (store.ts) finds it closed and nothing is sent.
 */
import { userKeyId, type UserKey } from "../core/user-key.ts";
import type { OutboxItem } from "./outbox.ts";

export class OpenItems {
  readonly #lists = new Map<string, OutboxItem[]>();

  /** The user's open items, first the head (undefined: none). */
  of(key: UserKey): readonly OutboxItem[] | undefined {
    return this.#lists.get(userKeyId(key));
  }

  /** Adds an item at the end of its lane (once). */
  add(item: OutboxItem): void {
    const id = userKeyId(item);
    let list = this.#lists.get(id);
    if (!list) this.#lists.set(id, (list = []));
    if (!list.some((i) => i.id === item.id)) list.push(item);
  }

  /** The item's outcome is committed: it leaves the lane. */
  remove(key: UserKey, item: OutboxItem): void {
    const id = userKeyId(key);
    const list = this.#lists.get(id);
    if (!list) return;
    const at = list.indexOf(item);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.#lists.delete(id);
  }

  /** Takes the items that match out of the user's lane, and returns them. */
  removeWhere(key: UserKey, match: (item: OutboxItem) => boolean): OutboxItem[] {
    const id = userKeyId(key);
    const list = this.#lists.get(id);
    if (!list) return [];
    const removed = list.filter(match);
    for (const item of removed) list.splice(list.indexOf(item), 1);
    if (list.length === 0) this.#lists.delete(id);
    return removed;
  }

  /** Forgets the user's items (an erasure). */
  forget(key: UserKey): void {
    this.#lists.delete(userKeyId(key));
  }

  /** Every lane's items. */
  lanes(): IterableIterator<readonly OutboxItem[]> {
    return this.#lists.values();
  }
}
