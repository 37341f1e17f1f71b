/**
 * What /readyz asks. Each check answers null when fine, or a sentence saying what is wrong and
 * how to fix it. Features register their own checks (the reply lanes add paused Pages).
 */
export type ReadinessCheck = () => Promise<string | null> | string | null;

export class Readiness {
  readonly #checks = new Map<string, ReadinessCheck>();
  #stopping = false;

  /** `clean` takes secrets out of what a check says (a driver's error may quote a URL's token). */
  constructor(private readonly clean: (text: string) => string = (text) => text) {}

  add(name: string, check: ReadinessCheck): void {
    this.#checks.set(name, check);
  }

  /** From now on the instance reports not ready (it is shutting down). */
  markStopping(): void {
    this.#stopping = true;
  }

  async evaluate(): Promise<{ ready: boolean; checks: Record<string, string> }> {
    const checks: Record<string, string> = {};
    let ready = !this.#stopping;
    if (this.#stopping) checks.process = "shutting down";
    for (const [name, check] of this.#checks) {
      let problem: string | null;
      try {
        problem = await check();
      } catch (error) {
        problem = (error as Error).message;
      }
      checks[name] = problem === null ? "ok" : this.clean(problem);
      if (problem) ready = false;
    }
    return { ready, checks };
  }
}
