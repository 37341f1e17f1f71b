/** A logger that collects its lines, so tests can read what was logged. */
import { createLogger, type Logger, type LoggerOptions } from "../../src/log/logger.ts";

export interface LogRecord {
  time: string;
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface CollectingLogger {
  readonly log: Logger;
  /** Finished lines, exactly as the logger wrote them. */
  readonly lines: string[];
  /** Every line parsed as JSON (the default format). */
  records(): LogRecord[];
  clear(): void;
}

export function collectingLogger(options: Omit<LoggerOptions, "write"> = {}): CollectingLogger {
  const lines: string[] = [];
  const log = createLogger({ level: "debug", ...options, write: (line) => lines.push(line) });
  return {
    log,
    lines,
    records: () => lines.map((l) => JSON.parse(l) as LogRecord),
    clear: () => void lines.splice(0),
  };
}
