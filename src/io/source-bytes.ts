// In-memory model files, for runtimes without a file system (Workers, browsers with uploads).

import { ModelSourceError } from "./errors.js";
import { decodeUtf8 } from "./json.js";
import { unsafeNameReason } from "./paths.js";
import type { ModelSource } from "./model-source.js";

/** File bytes by name, as a plain object or a Map. */
export type BytesInput = Record<string, Uint8Array | ArrayBuffer> | Map<string, Uint8Array | ArrayBuffer>;

/** Options of {@link bytesSource}. */
export interface BytesSourceOptions {
  /** Name used in messages; default `memory`. */
  location?: string;
  /**
   * Hand out the caller's arrays instead of copies. Saves one copy of each file, but F32 weights
   * loaded from them are then views of the caller's bytes, so in-place weight processing
   * (e.g. folding LayerNorm) would edit those bytes and a second load would see edited weights.
   */
  share?: boolean;
}

/**
 * A model folder held in memory.
 *
 * `readFile` returns a copy of the stored bytes unless `options.share` is set, so nothing done
 * to loaded weights reaches the caller's buffers.
 *
 * @throws TypeError if a value is not a Uint8Array or ArrayBuffer
 * @example
 * ```ts
 * const source = bytesSource({ "config.json": new TextEncoder().encode("{}") });
 * await source.readText("config.json");  // "{}"
 * ```
 */
export function bytesSource(files: BytesInput, options: BytesSourceOptions = {}): ModelSource {
  const { location = "memory", share = false } = options;
  const entries = files instanceof Map ? [...files.entries()] : Object.entries(files);
  const table = new Map<string, Uint8Array>();
  for (const [name, value] of entries) {
    if (value instanceof Uint8Array) table.set(name, value);
    else if (value instanceof ArrayBuffer) table.set(name, new Uint8Array(value));
    else throw new TypeError(`bytesSource: file "${name}" must be a Uint8Array or ArrayBuffer, got ${describe(value)}`);
  }
  const readFile = async (name: string): Promise<Uint8Array> => {
    checkName(name);
    const bytes = table.get(name);
    if (bytes === undefined) throw new ModelSourceError(name, "not_found", `not found in ${location}`);
    return share ? bytes : bytes.slice();
  };
  return {
    location,
    readFile,
    readText: async (name) => decodeUtf8(await readFile(name), name),
    exists: async (name) => {
      checkName(name);
      return table.has(name);
    },
  };
}

function checkName(name: string): void {
  const reason = unsafeNameReason(name);
  if (reason !== undefined) throw new ModelSourceError(String(name), "bad_name", `file name ${reason}`);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  return typeof value === "object" ? (value.constructor?.name ?? "an object") : typeof value;
}
