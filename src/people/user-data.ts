/**
 * What is stored about a person, feature by feature: the GDPR export and erasure.
 *
 * A person is known by their PSIDs (one per Page). Every feature that stores something about a
 * PSID registers a part (`UserDataPart`) here, in its own `user-data.ts` (inbox/, replies/,
 * conversations/, handover/, transformers/, simulator/; people/people-data.ts for the contacts and
 * the transcript); app.ts registers them. The export then shows each part's section, and the
 * erasure commits every part's deletes in one durable commit — no file has to know every table.
 *
 * A part is a plain object: features below people/ (the inbox) cannot import this file, and need
 * not; app.ts checks each part against `UserDataPart` where it registers it.
 */
import type { InStatement } from "@libsql/client";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Logger } from "../log/logger.ts";
import type { UserKey } from "../core/user-key.ts";
import { keysOf, type ContactView, type ContactViews } from "./contact-views.ts";

/** Whom an export or erasure is about: every PSID of the person, and their contact when they have one. */
export interface Subject {
  contact: ContactView | null;
  keys: UserKey[];
}

/** What a part is told about the subject. */
export interface PartSubject {
  readonly keys: readonly UserKey[];
  readonly contact: { readonly id: string } | null;
}

export interface UserDataPart {
  /** The export's section that shows it (a key of the export's JSON); in any case the part's name. */
  readonly name: string;
  /** What is stored about the subject, as the export shows it (in its order); without it the part is erased only. */
  export?(subject: PartSubject): Promise<unknown[]>;
  /** The statements that delete what is stored about the subject: committed with every other part's, in one commit. */
  erase(subject: PartSubject): InStatement[];
  /** False for a part whose statements delete nothing (a notice written with the erasure): not in the count of rows deleted. */
  readonly counted?: boolean;
  /** After the erasure is committed (a later second delete, say). Must not throw. */
  erased?(subject: PartSubject, log: Logger): void;
  /** The Pages the PSID has rows of this part on: whom a request by PSID is about when the PSID has no contact. */
  pagesOf?(endpointId: string, userId: string): Promise<string[]>;
  /** The Page this part last saw the PSID on (only `pageId`, when given), or null: see `UserData.locateWith`. */
  latestPage?(endpointId: string, userId: string, pageId?: string): Promise<string | null>;
  /** Whether this part knows the PSID (on the endpoint, or on any): see `UserData.knowsUser`. */
  knows?(userId: string, endpointId?: string): Promise<boolean>;
}

export type SubjectQuery = { contactId: string } | { endpointId: string; userId: string };

export class UserData {
  readonly #parts: UserDataPart[] = [];
  #locators: UserDataPart[] = [];

  constructor(private readonly deps: { contacts: ContactViews; writes: WriteQueue }) {}

  /** Adds parts; the export shows their sections in the order they were registered. */
  register(...parts: UserDataPart[]): this {
    for (const part of parts) {
      if (this.#parts.some((p) => p.name === part.name)) throw new Error(`two user-data parts are named ${part.name}: give each its own name`);
      this.#parts.push(part);
    }
    return this;
  }

  /** The parts `pageOf` asks, in this order (the first that knows the PSID answers): the most telling first. */
  locateWith(...parts: UserDataPart[]): this {
    const missing = parts.find((p) => !p.latestPage);
    if (missing) throw new Error(`the user-data part ${missing.name} cannot locate a PSID: it has no latestPage`);
    this.#locators = parts;
    return this;
  }

  /**
   * Whom a GDPR request is about: the contact's PSIDs, or a PSID of an endpoint (its contact's
   * PSIDs when it has one; else the PSID on every Page it has rows on). Null when nothing is known.
   */
  async subject(by: SubjectQuery): Promise<Subject | null> {
    if ("contactId" in by) {
      const contact = await this.deps.contacts.contact(by.contactId);
      return contact ? { contact, keys: keysOf(contact) } : null;
    }
    const linked = await this.deps.contacts.linkedContactId(by.endpointId, by.userId);
    if (linked !== null) return this.subject({ contactId: linked });
    const pages = new Set<string>();
    for (const part of this.#parts) for (const page of (await part.pagesOf?.(by.endpointId, by.userId)) ?? []) pages.add(page);
    if (pages.size === 0) return null;
    // In the order of the text (Page ids are digits), as one SQL UNION of the tables gave them before.
    const sorted = [...pages].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { contact: null, keys: sorted.map((pageId) => ({ endpointId: by.endpointId, pageId, userId: by.userId })) };
  }

  /** Everything stored about the subject (GDPR export): the contact, the PSIDs, then each part's section. */
  async export(subject: Subject): Promise<Record<string, unknown>> {
    const sections: Record<string, unknown[]> = {};
    for (const part of this.#parts) if (part.export) sections[part.name] = await part.export(subject);
    return {
      contact: subject.contact,
      users: subject.keys.map((k) => ({ endpoint_id: k.endpointId, page_id: k.pageId, user_id: k.userId })),
      ...sections,
      exported_at: new Date().toISOString(),
    };
  }

  /**
   * Erases the subject: everything every part stores about each of its PSIDs, and its contact, in
   * one durable commit; returns the rows deleted. The caller marks the PSIDs erased in the lanes
   * first (a turn in flight then keeps nothing) and clears the caches after.
   */
  async erase(subject: Subject, log: Logger): Promise<number> {
    const statements = this.#parts.map((part) => part.erase(subject));
    const results = await this.deps.writes.run(statements.flat());
    for (const part of this.#parts) part.erased?.(subject, log);
    let deleted = 0;
    let at = 0;
    this.#parts.forEach((part, i) => {
      const own = results.slice(at, (at += statements[i]!.length));
      if (part.counted !== false) deleted += own.reduce((n, r) => n + r.rowsAffected, 0);
    });
    return deleted;
  }

  /** The Page a PSID talks to on this endpoint (its latest), or null when the endpoint never saw it there. */
  async pageOf(endpointId: string, userId: string, pageId?: string): Promise<string | null> {
    for (const part of this.#locators) {
      const page = await part.latestPage!(endpointId, userId, pageId);
      if (page !== null) return page;
    }
    return null;
  }

  /** Whether the endpoint (or any) knows this PSID: a part that can tell (sessions, contacts) has it. */
  async knowsUser(userId: string, endpointId?: string): Promise<boolean> {
    for (const part of this.#parts) if (await part.knows?.(userId, endpointId)) return true;
    return false;
  }
}
