/**
 * The users erased recently, each with the number of its erasure. Work that began before an
 * erasure (a turn whose flow was running, a round of state events that waited for the database)
 * takes a mark when it begins and asks before it writes: if the person was erased since, nothing
 * of theirs is written back (conversations/: the turns and state events; translation/: its cache
 * and the users' languages).
 */
import { setNewest } from "./bounded.ts";
import { userKeyId, type UserKey } from "./user-key.ts";

/** Enough for the turns and rounds in progress at any moment; older erasures have no work left behind. */
const REMEMBERED = 10_000;

export class RecentErasures {
  readonly #byUser = new Map<string, number>();
  #count = 0;

  /** Now, to compare with later (`since`). */
  mark(): number {
    return this.#count;
  }

  add(key: UserKey): void {
    setNewest(this.#byUser, userKeyId(key), ++this.#count, REMEMBERED);
  }

  /** Whether this person was erased after `mark` was taken. */
  since(key: UserKey, mark: number): boolean {
    return (this.#byUser.get(userKeyId(key)) ?? -1) > mark;
  }
}
