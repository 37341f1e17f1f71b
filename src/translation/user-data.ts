/**
 * What the translation stores about a person — their detected language, and the translations
 * their turns put in the cache (their own texts, and the flow's replies to them, which may name
 * them) — for the GDPR export and erasure: a part of the user-data registry (people/user-data.ts),
 * registered by app.ts. The erasure also tells the translation (translation.ts `forgetUser`), so a
 * turn in flight stores nothing more of theirs.
 */
import type { UserKey } from "../core/user-key.ts";
import { isoTime, isoTimeOrNull, storedJson } from "../db/values.ts";
import type { Translation } from "./translation.ts";

export function translationData(translation: Translation) {
  const { store } = translation;
  return {
    name: "translation",
    async export(subject: { keys: readonly UserKey[] }) {
      const out = [];
      for (const k of subject.keys) {
        const [language] = await store.exportLanguage(k);
        const cached = await store.exportCache(k);
        if (!language && cached.length === 0) continue;
        out.push({
          page_id: k.pageId,
          language: language
            ? {
                language: language.language,
                votes: storedJson(language.votes),
                inputs: language.inputs,
                locked_at: isoTimeOrNull(language.lockedAt),
                updated_at: isoTime(language.updatedAt),
              }
            : null,
          cached_translations: cached.map((c) => ({
            kind: c.kind,
            translation: c.translation,
            detected: c.detected,
            created_at: isoTime(c.createdAt),
            expires_at: isoTime(c.expiresAt),
          })),
        });
      }
      return out;
    },
    erase(subject: { keys: readonly UserKey[] }) {
      // Before the deletes are queued: a turn's cache write that comes later is not made.
      for (const k of subject.keys) translation.forgetUser(k);
      return store.erase(subject.keys);
    },
    pagesOf: (endpointId: string, userId: string) => store.pagesOf(endpointId, userId),
  };
}
