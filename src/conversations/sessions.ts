/**
 * Sessions (SPEC §8): one current session per (endpoint, Page, user). After `expiration_minutes`
 * without input (0 = never) the next input starts a new session with an empty context; the old
 * one is ended, not deleted. The session is written in the same commit that finishes the turn.
 */
import { randomBytes } from "node:crypto";
import { and, eq, isNull } from "drizzle-orm";
import type { InStatement } from "@libsql/client";
import type { Db } from "../db/client.ts";
import { sessions } from "../db/schema.ts";
import { statement } from "../db/statement.ts";

export interface SessionKey {
  endpointId: string;
  pageId: string;
  userId: string;
}

export interface SessionState {
  id: string;
  context: Record<string, unknown>;
  /** True when this turn starts the session (nothing stored yet). */
  isNew: boolean;
  /** The expired session this one replaces. */
  endsId: string | null;
}

export function newSessionId(): string {
  return `s_${randomBytes(12).toString("base64url")}`;
}

export async function currentSession(db: Db, key: SessionKey, now: number, expirationMinutes: number): Promise<SessionState> {
  const [row] = await db
    .select({ id: sessions.id, context: sessions.context, lastActiveAt: sessions.lastActiveAt })
    .from(sessions)
    .where(and(eq(sessions.endpointId, key.endpointId), eq(sessions.pageId, key.pageId), eq(sessions.userId, key.userId), isNull(sessions.endedAt)))
    .limit(1);
  if (row) {
    const expired = expirationMinutes > 0 && now - row.lastActiveAt > expirationMinutes * 60_000;
    if (!expired) return { id: row.id, context: parseContext(row.context), isNew: false, endsId: null };
    return { id: newSessionId(), context: {}, isNew: true, endsId: row.id };
  }
  return { id: newSessionId(), context: {}, isNew: true, endsId: null };
}

/** The statements that store the session after a turn, with the context the flow left. */
export function saveSession(db: Db, key: SessionKey, session: SessionState, context: Record<string, unknown>, now: number): InStatement[] {
  const out: InStatement[] = [];
  if (session.endsId) out.push(statement(db.update(sessions).set({ endedAt: now }).where(eq(sessions.id, session.endsId))));
  if (session.isNew) {
    out.push(
      statement(
        db.insert(sessions).values({ id: session.id, ...key, context: JSON.stringify(context), createdAt: now, lastActiveAt: now }).onConflictDoNothing(),
      ),
    );
  } else {
    out.push(statement(db.update(sessions).set({ context: JSON.stringify(context), lastActiveAt: now }).where(eq(sessions.id, session.id))));
  }
  return out;
}

function parseContext(text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}
