/** Running the command line in process with a collecting io. */
import { runCli, type CliIo } from "../../src/cli/main.ts";
import type { Env } from "../../src/config/load.ts";

export interface CollectingIo extends CliIo {
  readonly stdout: string[];
  readonly stderr: string[];
  /** stdout and stderr joined, for "is this mentioned anywhere" checks. */
  text(): string;
}

export function collectingIo(cwd: string, env: Env = {}): CollectingIo {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    out: (t) => void stdout.push(t),
    err: (t) => void stderr.push(t),
    env,
    cwd,
    stdout,
    stderr,
    text: () => [...stdout, ...stderr].join("\n"),
  };
}

export async function cli(argv: string[], cwd: string, env: Env = {}): Promise<{ code: number; io: CollectingIo }> {
  const io = collectingIo(cwd, env);
  const code = await runCli(argv, io);
  return { code, io };
}
