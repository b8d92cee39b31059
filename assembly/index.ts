// Entry point of the WASM module: every exported kernel takes byte pointers into
// linear memory and element counts, and never allocates.
export * from "./memory";
export { scratchBytes, useScratch } from "./scratch";
export * from "./gemm";
export * from "./layernorm";
export * from "./attention";
export * from "./activations";
export * from "./elementwise";
export * from "./rotary";
export * from "./backward-norm";
export * from "./backward-activations";
export * from "./backward-attention";
