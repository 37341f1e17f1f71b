/** The last `limit` ids added (a set that forgets its oldest entries): "seen lately" without growing. */
export class RecentIds {
  readonly #ids = new Set<number>();

  constructor(private readonly limit: number) {}

  add(id: number): void {
    if (this.#ids.has(id)) return;
    this.#ids.add(id);
    if (this.#ids.size > this.limit) {
      const oldest = this.#ids.values().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
  }

  has(id: number): boolean {
    return this.#ids.has(id);
  }
}
