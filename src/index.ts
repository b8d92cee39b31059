// Public entry point of hooklens.
export { Engine, type BackendName, type EngineOptions } from "./engine/engine.js";
export type { Kernels } from "./engine/kernels.js";
export { Tensor } from "./engine/tensor.js";
export { supportsRelaxedSimd, supportsSimd, type WasmSource, type WasmVariant } from "./engine/wasm-loader.js";
