// Where model files come from: openSource picks the ModelSource (model-source.ts) for what
// the caller has, a folder on disk, a URL, a hub repository or files already in memory.

import type { ModelSource } from "./model-source.js";
import { bytesSource, type BytesInput, type BytesSourceOptions } from "./source-bytes.js";
import { folderSource } from "./source-folder.js";
import { hubSource, urlSource, type DownloadProgress, type HubSourceOptions, type UrlSourceOptions } from "./source-url.js";

/** Everything {@link openSource} accepts. */
export type SourceInput = string | URL | ModelSource | HubSourceOptions | BytesInput;

/**
 * Opens a model folder from whatever the caller has:
 * - a string starting with `http://` or `https://`, or an http(s) `URL`: a URL folder ({@link urlSource});
 * - any other string, or a `file:` URL: a folder on disk ({@link folderSource});
 * - `{ repo, revision?, endpoint? }`: a Hugging Face hub repository ({@link hubSource});
 * - a `Record<string, Uint8Array>` or `Map` of file bytes: in-memory files ({@link bytesSource});
 * - an existing {@link ModelSource}: returned as is.
 *
 * Opening never touches the disk or the network; files are read when asked for.
 *
 * @param input - the folder, URL, hub repository or files
 * @param options - fetch options for URL and hub sources (a custom `fetch`, headers, an AbortSignal)
 * @example
 * ```ts
 * const local = openSource("./models/gpt2");
 * const hub = openSource({ repo: "openai-community/gpt2" });  // downloads only when files are read
 * const edge = openSource({ "config.json": configBytes, "model.safetensors": weightBytes });
 * ```
 */
export function openSource(input: SourceInput, options: UrlSourceOptions = {}): ModelSource {
  if (typeof input === "string") {
    return /^https?:\/\//i.test(input) ? urlSource(input, options) : folderSource(input);
  }
  if (input instanceof URL) {
    if (input.protocol === "file:") return folderSource(input);
    return urlSource(input, options);
  }
  if (typeof input !== "object" || input === null) {
    throw new TypeError(`openSource: expected a folder path, URL, { repo } or file bytes, got ${input === null ? "null" : typeof input}`);
  }
  if (isModelSource(input)) return input;
  if (input instanceof Map) return bytesSource(input);
  if (typeof (input as { repo?: unknown }).repo === "string") return hubSource({ ...options, ...(input as HubSourceOptions) });
  return bytesSource(input as BytesInput);
}

function isModelSource(value: object): value is ModelSource {
  const v = value as Partial<ModelSource>;
  return typeof v.readFile === "function" && typeof v.readText === "function" && typeof v.exists === "function";
}

export { bytesSource, folderSource, hubSource, urlSource };
export type { BytesInput, BytesSourceOptions, DownloadProgress, HubSourceOptions, ModelSource, UrlSourceOptions };
