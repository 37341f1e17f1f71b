/**
 * Secrets that ride in URLs. The rule: secrets never appear in output, logs or stored errors,
 * whatever their type or where they sit in a URL. A configured URL (a flow's `url`, `storage.url`,
 * `graph.url`) may carry a password (`https://user:pass@host/`) or a key in its query (`?code=…`
 * as Azure Functions use, `?authToken=…` for libSQL, `?sig=…` ...). So:
 *
 * - a configured URL is only ever shown in its display form (`displayUrl`): no userinfo, every
 *   query value replaced by `…`, which still tells the operator which URL it is;
 * - free text we did not write (a driver's error, an agent's answer, any finished log line) goes
 *   through `redactUrlCredentials`: userinfo and the values of credential-like query parameters
 *   of any URL in it become `[redacted]`;
 * - `scrub` does both that and the removal of known secret values, for text that leaves the
 *   process without passing the logger (the command line's failure messages, stored errors).
 */

export const REDACTED = "[redacted]";

/**
 * Query parameter names whose values are credentials: `code` (Azure Functions), `key`, `api_key`,
 * `apikey`, `token`, `access_token`, `authToken`, `sig`/`signature` (Azure SAS, AWS), `secret`,
 * `password`, `X-Amz-Credential` ... A substring match on purpose: over-redacting a log line costs
 * little, a leaked key a lot.
 */
const CREDENTIAL_PARAM = /token|secret|key|sig|pass|pwd|auth|code|credential/i;

/** Secrets shorter than this are not searched for: they would redact ordinary words; real tokens and secrets are long. */
export const MIN_SECRET_LENGTH = 6;

/** `scheme://userinfo@` at the start of a URL; userinfo is everything up to the last `@` before the path. */
const LEADING_USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i;
/** The same anywhere in free text, where a URL ends at whitespace, a quote or a JSON escape. */
const USERINFO_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"'<>\\]*@/gi;
/** `?name=value` or `&name=value` anywhere in free text. */
const PARAM_IN_TEXT = /([?&])([^\s=&#?"'<>\\]+)=([^\s&#"'<>\\]+)/g;

/**
 * How a configured URL is shown: `https://user:pass@agent.example/api?code=abc&x=1` →
 * `https://agent.example/api?code=…&x=…`. Every query value goes, not only credential-like
 * ones: which parameter carries the key is the URL owner's choice.
 */
export function displayUrl(url: string): string {
  const hash = url.indexOf("#");
  const fragment = hash >= 0 ? url.slice(hash) : "";
  const beforeHash = hash >= 0 ? url.slice(0, hash) : url;
  const question = beforeHash.indexOf("?");
  const base = (question >= 0 ? beforeHash.slice(0, question) : beforeHash).replace(LEADING_USERINFO, "$1");
  const query =
    question >= 0
      ? "?" +
        beforeHash
          .slice(question + 1)
          .split("&")
          .map((part) => (part === "" ? "" : part.includes("=") ? `${part.slice(0, part.indexOf("="))}=…` : "…"))
          .join("&")
      : "";
  return base + query + (fragment.length > 1 ? "#…" : fragment);
}

/**
 * The secret parts of a configured URL: the userinfo password and the values of credential-like
 * query parameters, as written and decoded. They join the settings' secrets (config/secrets.ts), so
 * the logger and `scrub` remove them even where they appear outside the URL (an agent that echoes
 * its key in an error page, say). Other query values are not taken: `?api-version=2024-06-01`
 * would otherwise redact every date in the log.
 */
export function urlSecrets(url: string): string[] {
  const found: string[] = [];
  const add = (value: string) => {
    found.push(value);
    try {
      found.push(decodeURIComponent(value.replace(/\+/g, " ")));
    } catch {
      // not valid percent-encoding: the raw form is all there is
    }
  };
  const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(url)?.[1];
  if (userinfo?.includes(":")) add(userinfo.slice(userinfo.indexOf(":") + 1));
  const question = url.indexOf("?");
  if (question >= 0) {
    for (const part of url
      .slice(question + 1)
      .replace(/#.*$/s, "")
      .split("&")) {
      const eq = part.indexOf("=");
      if (eq > 0 && eq < part.length - 1 && CREDENTIAL_PARAM.test(part.slice(0, eq))) add(part.slice(eq + 1));
    }
  }
  return [...new Set(found)].filter((s) => s.length >= MIN_SECRET_LENGTH);
}

/** Userinfo and credential-like query values of every URL in `text`, replaced by `[redacted]`. */
export function redactUrlCredentials(text: string): string {
  let out = text;
  if (out.includes("://")) out = out.replace(USERINFO_IN_TEXT, `$1${REDACTED}@`);
  if (out.includes("=")) {
    out = out.replace(PARAM_IN_TEXT, (match, separator: string, name: string, value: string) => {
      // Already hidden (a display form's `…`), or not a credential by its name.
      if (value.startsWith("…") || value.startsWith(REDACTED) || !CREDENTIAL_PARAM.test(name)) return match;
      // A URL at the end of a sentence or before `: reason` keeps that punctuation outside.
      const punctuation = /[.,:;)\]]*$/.exec(value)![0];
      const trailing = punctuation.length < value.length ? punctuation : "";
      return `${separator}${name}=${REDACTED}${trailing}`;
    });
  }
  return out;
}

/** `text` without any of `secrets` (longest first) and without URL credentials. */
export function scrub(text: string, secrets: Iterable<string | undefined>): string {
  const known = [...new Set(secrets)].filter((s): s is string => typeof s === "string" && s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  let out = text;
  for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return redactUrlCredentials(out);
}
