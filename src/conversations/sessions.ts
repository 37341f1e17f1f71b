/**
 * Sessions (SPEC §8): one current session per (endpoint, Page, user). After `expiration_minutes`
 * without input (0 = never) the next input starts a new session with an empty context; the old
 * one is ended, not deleted. The session is written in the same commit that finishes the turn.
 * Read and written once per turn, so plain SQL (the table is defined in db/schema.ts).
 */
import { randomBytes } from "node:crypto";
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";

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

export async function currentSession(db: Database, key: SessionKey, now: number, expirationMinutes: number): Promise<SessionState> {
  const result = await db.client.execute({
    sql: "SELECT id, context, last_active_at FROM sessions WHERE endpoint_id = ? AND page_id = ? AND user_id = ? AND ended_at IS NULL LIMIT 1",
    args: [key.endpointId, key.pageId, key.userId],
  });
  const row = result.rows[0];
  if (row) {
    const expired = expirationMinutes > 0 && now - Number(row[2]) > expirationMinutes * 60_000;
    if (!expired) return { id: String(row[0]), context: parseContext(String(row[1])), isNew: false, endsId: null };
    return { id: newSessionId(), context: {}, isNew: true, endsId: String(row[0]) };
  }
  return { id: newSessionId(), context: {}, isNew: true, endsId: null };
}

/** The statements that store the session after a turn, with the context the flow left. */
export function saveSession(key: SessionKey, session: SessionState, context: Record<string, unknown>, now: number): InStatement[] {
  const out: InStatement[] = [];
  const json = JSON.stringify(context);
  if (session.endsId) out.push({ sql: "UPDATE sessions SET ended_at = ? WHERE id = ?", args: [now, session.endsId] });
  if (session.isNew) {
    out.push({
      sql: "INSERT INTO sessions (id, endpoint_id, page_id, user_id, context, created_at, last_active_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      args: [session.id, key.endpointId, key.pageId, key.userId, json, now, now],
    });
  } else {
    out.push({ sql: "UPDATE sessions SET context = ?, last_active_at = ? WHERE id = ?", args: [json, now, session.id] });
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
