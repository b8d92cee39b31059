/**
 * Finds, compiles and instantiates the kernel module without assuming Node:
 * the caller may hand over bytes, a URL, a fetch Response or an already compiled
 * WebAssembly.Module (Cloudflare Workers only allow the last). With nothing given,
 * the .wasm file next to this package's build/ folder is read (Node, Deno, Bun)
 * or fetched (browsers).
 */
export type WasmVariant = "simd" | "relaxed";

/** Anything the kernel module can be loaded from. */
export type WasmSource = ArrayBuffer | ArrayBufferView | WebAssembly.Module | URL | string | Response;

/**
 * The smallest module using f32x4.relaxed_madd: () -> v128 { relaxed_madd(0, 0, 0) }.
 * `WebAssembly.validate` accepts it only where relaxed SIMD is on.
 */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: func [] -> [v128]
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x3d, 0x01, 0x3b, 0x00, // code section, one body of 59 bytes, no locals
  0xfd, 0x0c, ...new Array<number>(16).fill(0), // v128.const 0
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd (0xfd 0x105)
  0x0b, // end
]);

/** The same probe with f32x4.add instead: valid wherever SIMD128 is. */
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x2b, 0x01, 0x29, 0x00, // one body of 41 bytes, no locals
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0xe4, 0x01, // f32x4.add (0xfd 0xe4)
  0x0b,
]);

/** Whether this runtime validates relaxed SIMD instructions. */
export function supportsRelaxedSimd(): boolean {
  return WebAssembly.validate(RELAXED_PROBE);
}

/** Whether this runtime validates SIMD128 instructions. */
export function supportsSimd(): boolean {
  return WebAssembly.validate(SIMD_PROBE);
}

/** `instanceof WebAssembly.Module` fails across realms (edge-runtime), so check the tag instead. */
export function isWasmModule(x: unknown): boolean {
  return Object.prototype.toString.call(x) === "[object WebAssembly.Module]";
}

/** The URL of a variant's .wasm file inside this package (`-mt`: the shared-memory build for threads). */
export function defaultWasmUrl(variant: WasmVariant | `${WasmVariant}-mt`): URL {
  // src/engine/ and dist/engine/ both sit two levels below the package root.
  return new URL(`../../build/hooklens-${variant}.wasm`, import.meta.url);
}

/** Compiles a source into a WebAssembly.Module. */
export async function compileWasm(source: WasmSource): Promise<WebAssembly.Module> {
  const x: unknown = source;
  if (isWasmModule(x)) return x as WebAssembly.Module;
  if (typeof x === "string" || x instanceof URL) return compileWasm(await readUrl(new URL(x)));
  if (isResponse(x)) {
    if (!x.ok) throw new Error(`loading kernels: HTTP ${x.status} for ${x.url}`);
    const type = x.headers.get("content-type") ?? "";
    if (typeof WebAssembly.compileStreaming === "function" && type.startsWith("application/wasm")) {
      return WebAssembly.compileStreaming(x);
    }
    return WebAssembly.compile(await x.arrayBuffer());
  }
  if (x instanceof ArrayBuffer || ArrayBuffer.isView(x)) return WebAssembly.compile(toBytes(x));
  throw new TypeError("loading kernels: the wasm source must be bytes, a URL, a Response or a WebAssembly.Module");
}

async function readUrl(url: URL): Promise<Uint8Array<ArrayBuffer> | Response> {
  if (url.protocol === "file:") {
    const fs = await import("node:fs/promises");
    return new Uint8Array(await fs.readFile(url));
  }
  return fetch(url);
}

function isResponse(x: unknown): x is Response {
  return typeof Response !== "undefined" && Object.prototype.toString.call(x) === "[object Response]";
}

function toBytes(x: ArrayBuffer | ArrayBufferView): Uint8Array<ArrayBuffer> {
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer as ArrayBuffer, x.byteOffset, x.byteLength);
  return new Uint8Array(x);
}
