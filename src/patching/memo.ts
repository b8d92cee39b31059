// Values a sweep computes once and reads many times.

/** `compute(key)` on the first call with a key; later calls with that key return the first result. */
export function memoize<K, V>(compute: (key: K) => V): (key: K) => V {
  const values = new Map<K, V>();
  return (key) => {
    if (!values.has(key)) values.set(key, compute(key));
    return values.get(key) as V;
  };
}

/**
 * A value shared by a known number of readers: `take(key, readers, compute)` computes it at the
 * first take and drops it after the `readers`-th, so a sweep holds only the values still to be read.
 */
export function sharedValues<V>(): (key: string, readers: number, compute: () => V) => V {
  const live = new Map<string, { value: V; left: number }>();
  return (key, readers, compute) => {
    let entry = live.get(key);
    if (entry === undefined) {
      entry = { value: compute(), left: readers };
      live.set(key, entry);
    }
    if (--entry.left === 0) live.delete(key);
    return entry.value;
  };
}
