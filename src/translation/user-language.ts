/**
 * `user_language = "auto"`: each user's language, detected from their first typed inputs and
 * locked after `lock_after` of them. Every detection is a vote; the user's language is the one
 * with the most votes (a tie goes to the latest), so one short "ok" does not switch a German
 * speaker to English. Once locked, inputs are translated from that language without detection.
 * Kept in the database (store.ts) and, for the recently active users, in memory.
 */
import { setNewest } from "../core/bounded.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import type { StoredLanguage, TranslationStore } from "./store.ts";

/** Users whose language is kept in memory. */
const REMEMBERED = 10_000;

export class UserLanguages {
  /** null: known to have no row. */
  readonly #memory = new Map<string, StoredLanguage | null>();

  constructor(private readonly store: TranslationStore) {}

  async get(key: UserKey): Promise<StoredLanguage | null> {
    const id = userKeyId(key);
    if (this.#memory.has(id)) return this.#memory.get(id)!;
    const stored = await this.store.language(key);
    setNewest(this.#memory, id, stored, REMEMBERED);
    return stored;
  }

  /** The state to keep after this input (its message id, so that a turn run again counts once). */
  remember(key: UserKey, state: StoredLanguage): void {
    setNewest(this.#memory, userKeyId(key), state, REMEMBERED);
  }

  forget(key: UserKey): void {
    this.#memory.delete(userKeyId(key));
  }

  /** After the retention purge: what memory holds may be gone from the database. */
  forgetAll(): void {
    this.#memory.clear();
  }
}

/**
 * The state after one more input detected as `detected`. The same input again (`mid`, a turn run
 * again after a crash) changes nothing; at `lockAfter` inputs the language is locked.
 */
export function withDetection(state: StoredLanguage | null, detected: string, mid: string | null, lockAfter: number, now: number): StoredLanguage {
  if (state && (state.lockedAt !== null || (mid !== null && state.lastMid === mid))) return state;
  const votes = { ...(state?.votes ?? {}) };
  votes[detected] = (votes[detected] ?? 0) + 1;
  const current = state?.language;
  const language = current === undefined || votes[detected]! >= (votes[current] ?? 0) ? detected : current;
  const inputs = (state?.inputs ?? 0) + 1;
  return { language, votes, inputs, lockedAt: inputs >= lockAfter ? now : null, lastMid: mid };
}
