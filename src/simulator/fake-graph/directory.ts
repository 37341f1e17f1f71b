/**
 * Who the fake knows: its Pages (by token and by id), the users of each Page, and who owns each
 * thread (the handover protocol's thread owner; by default the Page's own app).
 */
import type { Clock } from "../../core/clock.ts";
import { appIdOf, type FakePage, type FakeUser } from "./types.ts";

function userKey(pageId: string, psid: string): string {
  return `${pageId}\u0000${psid}`;
}

export class FakeDirectory {
  readonly #pagesByToken = new Map<string, FakePage>();
  readonly #pagesById = new Map<string, FakePage>();
  #users = new Map<string, FakeUser>();
  #owners = new Map<string, string | null>();

  constructor(
    pages: FakePage[],
    private readonly clock: Clock,
  ) {
    for (const page of pages) {
      this.#pagesByToken.set(page.token, page);
      this.#pagesById.set(page.id, page);
    }
  }

  /** A Page the test configured; anything else is a mistake in the test. */
  page(pageId: string): FakePage {
    const page = this.#pagesById.get(pageId);
    if (!page) throw new Error(`FakeGraph: unknown page ${pageId}`);
    return page;
  }

  pageByToken(token: string): FakePage | undefined {
    return this.#pagesByToken.get(token);
  }

  hasPage(pageId: string): boolean {
    return this.#pagesById.has(pageId);
  }

  pages(): FakePage[] {
    return [...this.#pagesById.values()];
  }

  /** Adds or updates a user of a Page (merged with what was set before). */
  setUser(pageId: string, psid: string, user: FakeUser): void {
    const key = userKey(pageId, psid);
    this.#users.set(key, { ...this.#users.get(key), ...user });
  }

  user(pageId: string, psid: string): FakeUser | undefined {
    return this.#users.get(userKey(pageId, psid));
  }

  /** Every user of `pageId`, in the order they were first set. */
  *usersOf(pageId: string): Iterable<[psid: string, user: FakeUser]> {
    for (const [key, user] of this.#users) {
      const [page, psid] = key.split("\u0000") as [string, string];
      if (page === pageId) yield [psid, user];
    }
  }

  /** The user wrote to the Page at `at` (default: now): opens the 24-hour window. */
  userMessaged(pageId: string, psid: string, at?: number): void {
    this.setUser(pageId, psid, { lastInboundAt: at ?? this.clock.now() });
  }

  /** The app owning the thread; `null` when idle. Default: the Page's app. */
  threadOwner(pageId: string, psid: string): string | null {
    const key = userKey(pageId, psid);
    return this.#owners.has(key) ? this.#owners.get(key)! : appIdOf(this.page(pageId));
  }

  setThreadOwner(pageId: string, psid: string, appId: string | null): void {
    this.#owners.set(userKey(pageId, psid), appId);
  }

  /** Whether the Page's app (the one our server is) owns the thread: its events then come in messaging[], else in standby[]. */
  ownedByPageApp(page: FakePage, psid: string): boolean {
    return this.threadOwner(page.id, psid) === appIdOf(page);
  }

  /** Users and thread owners are forgotten (the Pages stay). */
  reset(): void {
    this.#users = new Map();
    this.#owners = new Map();
  }
}
