// A model folder behind HTTP(S), read with the global fetch (or one the caller passes).
// Each failure names the file and says what happened: the HTTP status, a network error,
// or a body that ended before the length the server announced.

import { ModelSourceError } from "./errors.js";
import { decodeUtf8 } from "./json.js";
import { unsafeNameReason } from "./paths.js";
import type { ModelSource } from "./model-source.js";

/** Options of URL and hub sources. */
export interface UrlSourceOptions {
  /** The fetch implementation; defaults to the global `fetch`. */
  fetch?: typeof globalThis.fetch;
  /** Extra request headers (e.g. `Authorization: Bearer ...` for gated hub repositories). */
  headers?: Record<string, string>;
  /** Aborts every request of this source. */
  signal?: AbortSignal;
  /**
   * Called as each file's body arrives (at least once per file, last with `received` equal to its
   * size): `total` is the server's content-length, when it sent one for an unencoded body.
   */
  onProgress?: (progress: DownloadProgress) => void;
}

/** How far the download of one file has come. */
export interface DownloadProgress {
  /** The file's name in the folder. */
  file: string;
  /** Bytes received so far. */
  received: number;
  /** The announced size in bytes, when known. */
  total?: number;
}

/** A Hugging Face hub repository: files are `{endpoint}/{repo}/resolve/{revision}/{file}`. */
export interface HubSourceOptions extends UrlSourceOptions {
  /** `owner/name` (or a bare `name`), e.g. `openai-community/gpt2`. */
  repo: string;
  /** Branch, tag or commit; default `main`. */
  revision?: string;
  /** Hub origin; default `https://huggingface.co`. */
  endpoint?: string;
}

/**
 * The base URL of a hub repository's files, ending with `/`.
 *
 * @throws TypeError if the repo name or endpoint is malformed
 * @example
 * ```ts
 * hubBaseUrl({ repo: "openai-community/gpt2" });
 * // "https://huggingface.co/openai-community/gpt2/resolve/main/"
 * ```
 */
export function hubBaseUrl(options: Pick<HubSourceOptions, "repo" | "revision" | "endpoint">): string {
  const { repo, revision = "main", endpoint = "https://huggingface.co" } = options;
  if (typeof repo !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/.test(repo) || repo.includes("..")) {
    throw new TypeError(`hubSource: repo must look like "owner/name", got ${JSON.stringify(repo)}`);
  }
  if (typeof revision !== "string" || revision.length === 0) {
    throw new TypeError(`hubSource: revision must be a non-empty string, got ${JSON.stringify(revision)}`);
  }
  const origin = toHttpUrl(endpoint, "hubSource: endpoint");
  const path = origin.pathname.endsWith("/") ? origin.pathname : `${origin.pathname}/`;
  // A revision such as "refs/pr/1" is one path segment on the hub, so its slashes are encoded.
  return `${origin.origin}${path}${repo}/resolve/${encodeURIComponent(revision)}/`;
}

/**
 * A Hugging Face hub repository as a model folder. Nothing is downloaded until a file is read.
 *
 * @example
 * ```ts
 * const source = hubSource({ repo: "openai-community/gpt2", revision: "main" });
 * const config = await source.readText("config.json");
 * ```
 */
export function hubSource(options: HubSourceOptions): ModelSource {
  return urlSource(hubBaseUrl(options), options);
}

/**
 * A model folder served over HTTP(S): file `name` is fetched from `new URL(name, base)`.
 *
 * @param base - the folder URL (`http://host/models/gpt2/`; a missing trailing slash is added)
 * @throws TypeError if `base` is not an http(s) URL
 * @example
 * ```ts
 * const source = urlSource("http://127.0.0.1:8080/gpt2/");
 * const weights = await source.readFile("model.safetensors");
 * ```
 */
export function urlSource(base: string | URL, options: UrlSourceOptions = {}): ModelSource {
  const baseUrl = toHttpUrl(base, "urlSource: base");
  if (!baseUrl.pathname.endsWith("/")) baseUrl.pathname += "/";
  baseUrl.search = "";
  baseUrl.hash = "";
  const location = baseUrl.href;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  if (typeof fetchImpl !== "function") throw new TypeError("urlSource: no global fetch in this runtime; pass options.fetch");

  const fileUrl = (name: string): URL => {
    const reason = unsafeNameReason(name);
    if (reason !== undefined) throw new ModelSourceError(String(name), "bad_name", `file name ${reason}`);
    const url = new URL(name.split("/").map(encodeURIComponent).join("/"), baseUrl);
    // unsafeNameReason already rules this out; checked again because it guards what is fetched.
    if (url.origin !== baseUrl.origin || !url.pathname.startsWith(baseUrl.pathname)) {
      throw new ModelSourceError(name, "bad_name", `file name leaves ${location}`);
    }
    return url;
  };

  const request = async (name: string, url: URL, method: "GET" | "HEAD"): Promise<Response> => {
    try {
      return await fetchImpl(url, { method, headers: options.headers, signal: options.signal });
    } catch (e) {
      if (isAbort(e)) throw e;
      throw new ModelSourceError(name, "network_error", `request to ${url.href} failed (${describeError(e)})`, { cause: e });
    }
  };

  const readFile = async (name: string): Promise<Uint8Array> => {
    const url = fileUrl(name);
    const response = await request(name, url, "GET");
    checkStatus(name, url, response);
    return readBody(name, url, response, options.onProgress);
  };

  return {
    location,
    readFile,
    readText: async (name) => decodeUtf8(await readFile(name), name),
    exists: async (name) => {
      const url = fileUrl(name);
      const response = await request(name, url, "HEAD");
      if (response.status === 404) return false;
      checkStatus(name, url, response);
      return true;
    },
  };
}

function checkStatus(name: string, url: URL, response: Response): void {
  if (response.ok) return;
  const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
  void response.body?.cancel().catch(() => undefined);
  if (response.status === 404) throw new ModelSourceError(name, "not_found", `not found at ${url.href} (${status})`, { status: 404 });
  throw new ModelSourceError(name, "http_error", `${url.href} answered ${status}`, { status: response.status });
}

/** Reads the body chunk by chunk, so memory follows the bytes actually received, not a declared length. */
async function readBody(name: string, url: URL, response: Response, onProgress?: (p: DownloadProgress) => void): Promise<Uint8Array> {
  const encoding = response.headers.get("content-encoding");
  const lengthHeader = response.headers.get("content-length");
  // After decompression the body length no longer matches content-length, so only identity bodies are checked.
  const declared =
    lengthHeader !== null && /^\d+$/.test(lengthHeader) && (encoding === null || encoding === "identity")
      ? Number(lengthHeader)
      : undefined;
  const chunks: Uint8Array[] = [];
  let received = 0;
  try {
    if (response.body === null) {
      const all = new Uint8Array(await response.arrayBuffer());
      chunks.push(all);
      received = all.length;
      onProgress?.({ file: name, received, total: declared });
    } else {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        received += value.length;
        onProgress?.({ file: name, received, total: declared });
        if (declared !== undefined && received > declared) {
          await reader.cancel().catch(() => undefined);
          throw new ModelSourceError(name, "truncated", `${url.href} sent more than its content-length of ${declared} bytes`, {
            status: response.status,
          });
        }
      }
    }
  } catch (e) {
    if (e instanceof ModelSourceError || isAbort(e)) throw e;
    const of = declared === undefined ? "" : ` of ${declared}`;
    throw new ModelSourceError(name, "truncated", `download from ${url.href} broke off after ${received}${of} bytes (${describeError(e)})`, {
      status: response.status,
      cause: e,
    });
  }
  if (declared !== undefined && received !== declared) {
    throw new ModelSourceError(name, "truncated", `download from ${url.href} ended after ${received} of ${declared} bytes`, {
      status: response.status,
    });
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function toHttpUrl(value: string | URL, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`${what} must be an absolute http(s) URL, got ${JSON.stringify(String(value))}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`${what} must be an http(s) URL, got ${JSON.stringify(url.href)}`);
  }
  return url;
}

function isAbort(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  return name === "AbortError" || name === "TimeoutError";
}

function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? `${e.message}: ${cause.message}` : e.message;
}
