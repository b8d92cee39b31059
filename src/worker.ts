/**
 * The entry for Cloudflare Workers (the `workerd` export condition). Workers refuse to
 * compile WebAssembly from bytes at run time ("Wasm code generation disallowed by
 * embedder"), so both kernel builds are imported as modules, which the Workers runtime
 * (or wrangler's bundler) compiles ahead of time. Everything else is the main entry.
 *
 * @example
 * ```ts
 * import { createWorkerEngine, loadDemoModel } from "hooklens";   // resolves here under workerd
 * const model = await loadDemoModel({ engine: createWorkerEngine() });
 * ```
 */
import relaxedModule from "../build/hooklens-relaxed.wasm";
import simdModule from "../build/hooklens-simd.wasm";
import { Engine } from "./engine/engine.js";
import { supportsRelaxedSimd, type WasmVariant } from "./engine/wasm-loader.js";

export * from "./index.js";

/**
 * An engine on the kernel modules bundled with the Worker, synchronously: relaxed SIMD where
 * the runtime validates it (the probe compiles nothing), plain SIMD otherwise.
 */
export function createWorkerEngine(options: { variant?: WasmVariant | "auto" } = {}): Engine {
  const asked = options.variant ?? "auto";
  if (asked !== "auto" && asked !== "simd" && asked !== "relaxed") {
    throw new Error(`createWorkerEngine: variant must be "auto", "simd" or "relaxed", got ${JSON.stringify(asked)}`);
  }
  const variant: WasmVariant = asked === "auto" ? (supportsRelaxedSimd() ? "relaxed" : "simd") : asked;
  return Engine.fromModule(variant === "relaxed" ? relaxedModule : simdModule, variant);
}
