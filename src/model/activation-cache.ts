import type { Tensor } from "../engine/tensor.js";
import { assertHookName, getActName } from "./hook-points.js";

/**
 * The activations saved by `runWithCache`, by TransformerLens hook name. Tensors are
 * copies (ordinary Float32Arrays), so they outlive the forward pass.
 *
 * @example
 * ```ts
 * const { cache } = model.runWithCache(tokens);
 * cache.get("blocks.0.attn.hook_pattern"); // [batch, n_heads, pos, pos]
 * cache.get("q", 3);                       // blocks.3.attn.hook_q
 * cache.get("scale", 1, "ln2");            // blocks.1.ln2.hook_scale
 * ```
 */
export class ActivationCache {
  private readonly store: Map<string, Tensor>;

  constructor(entries: Iterable<[string, Tensor]>) {
    this.store = new Map(entries);
  }

  /** The activation by full name, or by short name and layer as {@link getActName} reads them. */
  get(name: string, layer?: number, layerType?: "ln1" | "ln2"): Tensor {
    const full = getActName(name, layer, layerType);
    const t = this.store.get(full);
    if (t === undefined) {
      if (this.store.size === 0) throw new Error(`cache has no entry "${full}": the cache is empty`);
      assertHookName(full, [...this.store.keys()]);
    }
    return t!;
  }

  /** Whether the cache holds this activation. */
  has(name: string, layer?: number, layerType?: "ln1" | "ln2"): boolean {
    return this.store.has(getActName(name, layer, layerType));
  }

  /** Cached hook names, in the order the forward pass produced them. */
  keys(): string[] {
    return [...this.store.keys()];
  }

  /** [name, tensor] pairs in forward order. */
  entries(): [string, Tensor][] {
    return [...this.store.entries()];
  }

  /** Number of cached activations. */
  get size(): number {
    return this.store.size;
  }
}
