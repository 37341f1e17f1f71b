/**
 * A read-only map whose contents can be swapped as a whole: the parts that hold one read the
 * current contents at each use, so a settings reload (config/live.ts) reaches them without their
 * being rebuilt. A swap is one assignment: no reader sees half of the old and half of the new.
 */
export class LiveMap<K, V> implements ReadonlyMap<K, V> {
  #current: ReadonlyMap<K, V>;

  constructor(initial: ReadonlyMap<K, V> | Iterable<readonly [K, V]> = []) {
    this.#current = initial instanceof Map ? initial : new Map(initial as Iterable<readonly [K, V]>);
  }

  swap(next: ReadonlyMap<K, V>): void {
    this.#current = next;
  }

  get(key: K): V | undefined {
    return this.#current.get(key);
  }
  has(key: K): boolean {
    return this.#current.has(key);
  }
  get size(): number {
    return this.#current.size;
  }
  keys(): MapIterator<K> {
    return this.#current.keys();
  }
  values(): MapIterator<V> {
    return this.#current.values();
  }
  entries(): MapIterator<[K, V]> {
    return this.#current.entries();
  }
  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void): void {
    for (const [key, value] of this.#current) callback(value, key, this);
  }
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.#current.entries();
  }
}
