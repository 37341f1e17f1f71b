/**
 * JSON-lines logging. Every line is one object with `time`, `level`, `msg` and the context fields
 * the caller bound (`endpoint`, `request_id`, `session_id`, ...). Secrets registered with the
 * logger are replaced by `[redacted]` in the finished line, so a token that slips into an error
 * message from a library still never reaches the log. As a last line of defence, so are the
 * userinfo and credential-like query values of any URL in the line, registered or not (scrub.ts).
 */
import { MIN_SECRET_LENGTH, REDACTED, redactUrlCredentials } from "./scrub.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "pretty";
export type LogFields = Record<string, unknown>;

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
  enabled(level: LogLevel): boolean;
  /**
   * A settings reload (config/live.ts): the level from now on, and more strings to redact (a
   * rotated token). For this logger, the one it was made from and every child of either.
   */
  reconfigure(options: { level?: LogLevel; secrets?: Iterable<string> }): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where finished lines go; stdout by default. Tests pass an array collector. */
  write?: (line: string) => void;
  /** Strings that must never appear in a log line (tokens, app secrets, API keys). */
  secrets?: Iterable<string>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  let threshold = LEVEL_RANK[options.level ?? "info"];
  const format = options.format ?? "json";
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const known = new Set(options.secrets ?? []);
  let secrets: string[] = [];
  const prepare = () => {
    secrets = [...known]
      .filter((s) => s.length >= MIN_SECRET_LENGTH)
      // Lines are redacted after JSON encoding, where `"`, `\` and control characters are escaped.
      .flatMap((s) => [s, JSON.stringify(s).slice(1, -1)])
      .filter((s, i, all) => all.indexOf(s) === i)
      // Longest first, so a secret that contains another is redacted whole.
      .sort((a, b) => b.length - a.length);
  };
  prepare();
  const reconfigure = ({ level, secrets: more }: { level?: LogLevel; secrets?: Iterable<string> }) => {
    if (more) {
      for (const s of more) known.add(s);
      prepare();
    }
    if (level) threshold = LEVEL_RANK[level];
  };

  const redact = (line: string): string => {
    for (const secret of secrets) if (line.includes(secret)) line = line.split(secret).join(REDACTED);
    return redactUrlCredentials(line);
  };

  const emit = (level: LogLevel, bound: LogFields, msg: string, fields?: LogFields) => {
    if (LEVEL_RANK[level] < threshold) return;
    const record: LogFields = { time: new Date().toISOString(), level, msg, ...bound, ...fields };
    write(redact(format === "json" ? toJson(record) : toPretty(record)));
  };

  const make = (bound: LogFields): Logger => ({
    debug: (msg, fields) => emit("debug", bound, msg, fields),
    info: (msg, fields) => emit("info", bound, msg, fields),
    warn: (msg, fields) => emit("warn", bound, msg, fields),
    error: (msg, fields) => emit("error", bound, msg, fields),
    child: (fields) => make({ ...bound, ...fields }),
    enabled: (level) => LEVEL_RANK[level] >= threshold,
    reconfigure,
  });
  return make({});
}

/** A logger that drops everything; for code paths that need one before settings are read. */
export const silentLogger: Logger = createLogger({ write: () => {} });

function toJson(record: LogFields): string {
  try {
    return JSON.stringify(record, replacer);
  } catch {
    return JSON.stringify({ time: record.time, level: record.level, msg: record.msg, log_error: "unserializable fields" });
  }
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const out: LogFields = { name: value.name, message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    if (value.cause !== undefined) out.cause = value.cause instanceof Error ? value.cause.message : String(value.cause);
    return out;
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

function toPretty(record: LogFields): string {
  const { time, level, msg, ...rest } = record;
  const clock = String(time).slice(11, 23);
  const extras = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v, replacer)}`)
    .join(" ");
  return `${clock} ${String(level).toUpperCase().padEnd(5)} ${msg}${extras ? `  ${extras}` : ""}`;
}
