import { KERNEL_NAMES, type Kernels } from "../kernels.js";
import * as activations from "./activations.js";
import * as attention from "./attention.js";
import * as backwardActivations from "./backward-activations.js";
import * as backwardAttention from "./backward-attention.js";
import * as backwardNorm from "./backward-norm.js";
import * as elementwise from "./elementwise.js";
import * as gemm from "./gemm.js";
import * as layernorm from "./layernorm.js";
import * as rotary from "./rotary.js";

/**
 * Every twin takes the float heap as its first argument; binding it here gives
 * functions with exactly the WASM kernels' signatures.
 */
type Twin<F> = F extends (...args: infer A) => infer R ? (heap: Float32Array, ...args: A) => R : never;
type Twins = { [K in keyof Kernels]: Twin<Kernels[K]> };

const twins: Twins = {
  ...gemm, ...layernorm, ...attention, ...activations, ...elementwise, ...rotary,
  ...backwardNorm, ...backwardActivations, ...backwardAttention,
};

/** The plain TypeScript backend over a heap that may be replaced when memory grows. */
export function createJsKernels(heap: () => Float32Array): Kernels {
  const bound: Partial<Record<keyof Kernels, unknown>> = {};
  for (const name of KERNEL_NAMES) {
    const twin = twins[name] as (heap: Float32Array, ...args: number[]) => void | number;
    bound[name] = (...args: number[]) => twin(heap(), ...args);
  }
  return bound as Kernels;
}
