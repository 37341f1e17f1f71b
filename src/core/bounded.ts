/**
 * Bounded maps kept in insertion order (the in-memory caches and markers): `setNewest` puts the
 * entry last and drops the oldest beyond `capacity`, so a Map serves as an LRU.
 */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, capacity: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > capacity) map.delete(map.keys().next().value!);
}
