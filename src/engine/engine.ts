import { Allocator } from "./allocator.js";
import { KERNEL_NAMES, type Kernels } from "./kernels.js";
import { createJsKernels } from "./js/index.js";
import {
  compileWasm, defaultWasmUrl, supportsRelaxedSimd, supportsSimd, type WasmSource, type WasmVariant,
} from "./wasm-loader.js";

/** Which implementation runs the kernels. */
export type BackendName = "wasm" | "js";

export interface EngineOptions {
  /** `wasm` (default) runs the AssemblyScript SIMD kernels; `js` runs their plain TypeScript twins. */
  backend?: BackendName;
  /** Which WASM build to use; `auto` (default) picks relaxed SIMD where the runtime validates it. */
  variant?: WasmVariant | "auto";
  /**
   * Where the kernel module comes from: bytes, a URL, a Response or a compiled module, for the
   * chosen variant. Default: `build/hooklens-<variant>.wasm` inside this package.
   */
  wasm?: WasmSource;
}

const MAX_MEMORY_BYTES = 65536 * 65536; // 4 GiB: the module's maximumMemory

/**
 * Owns one linear memory, the allocator over it and the kernels that work on it.
 * There is no global engine: every model holds the engine it was built with.
 *
 * @example
 * ```ts
 * const engine = await Engine.create();            // WASM SIMD, relaxed where available
 * const p = engine.upload(new Float32Array([1, 2, 3, 4]));
 * engine.kernels.scale(p, 2, p, 4);
 * engine.download(p, 4);                            // Float32Array [2, 4, 6, 8]
 * engine.free(p);
 * ```
 */
export class Engine {
  readonly kernels: Kernels;
  private readonly allocator: Allocator;
  private heapView: Float32Array;

  private constructor(
    readonly backend: BackendName,
    /** `simd` or `relaxed` for the wasm backend, `js` for the twin. */
    readonly variant: WasmVariant | "js",
    readonly memory: WebAssembly.Memory,
    heapBase: number,
    kernels: (heap: () => Float32Array) => Kernels,
  ) {
    this.allocator = new Allocator(memory, heapBase, MAX_MEMORY_BYTES);
    this.heapView = new Float32Array(memory.buffer);
    this.kernels = kernels(() => this.heap());
  }

  /** Creates an engine; see {@link EngineOptions}. */
  static async create(options: EngineOptions = {}): Promise<Engine> {
    const backend = options.backend ?? "wasm";
    if (backend === "js") return Engine.createJs();
    if (backend !== "wasm") throw new Error(`Engine.create: backend must be "wasm" or "js", got ${JSON.stringify(backend)}`);
    const variant = pickVariant(options.variant ?? "auto");
    const module = await compileWasm(options.wasm ?? defaultWasmUrl(variant));
    return Engine.fromModule(module, variant);
  }

  /** Synchronous construction from a compiled module (e.g. a Worker's imported .wasm). */
  static fromModule(module: WebAssembly.Module, variant: WasmVariant): Engine {
    const instance = new WebAssembly.Instance(module, {});
    const exports = instance.exports as Record<string, unknown>;
    const memory = exports["memory"] as WebAssembly.Memory | undefined;
    if (memory === undefined) throw new Error("kernel module exports no memory: is it a hooklens build?");
    for (const name of [...KERNEL_NAMES, "heapBase"]) {
      if (typeof exports[name] !== "function") throw new Error(`kernel module lacks the export "${name}": rebuild with npm run build:wasm`);
    }
    const relaxed = (exports["isRelaxed"] as () => number)() === 1;
    if (relaxed !== (variant === "relaxed")) {
      throw new Error(`kernel module is the ${relaxed ? "relaxed" : "simd"} build, but variant "${variant}" was asked for`);
    }
    const heapBase = (exports["heapBase"] as () => number)() >>> 0;
    return new Engine("wasm", variant, memory, heapBase, () => exports as unknown as Kernels);
  }

  /** An engine running the plain TypeScript kernels (the reference backend). */
  static createJs(): Engine {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
    return new Engine("js", "js", memory, 64, createJsKernels);
  }

  /** The whole memory as floats. Re-derived after the memory grows (growing detaches old views). */
  heap(): Float32Array {
    if (this.heapView.buffer !== this.memory.buffer) this.heapView = new Float32Array(this.memory.buffer);
    return this.heapView;
  }

  /** Allocates room for `floats` f32 values and returns the byte pointer. May grow the memory. */
  alloc(floats: number): number {
    return this.allocator.alloc(floats * 4);
  }

  /** Frees a pointer from {@link alloc}. */
  free(ptr: number): void {
    this.allocator.release(ptr);
  }

  /** Grows the memory now so that `bytes` more can be allocated without a grow (views stay valid). */
  reserve(bytes: number): void {
    const ptr = this.allocator.alloc(bytes);
    this.allocator.release(ptr);
  }

  /** A live view of `n` floats at `ptr`; valid until the memory next grows. */
  view(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }

  /** Copies floats into a new allocation and returns its pointer. */
  upload(data: Float32Array): number {
    const ptr = this.alloc(data.length);
    this.heap().set(data, ptr >>> 2);
    return ptr;
  }

  /** Copies `n` floats at `ptr` out of linear memory. */
  download(ptr: number, n: number): Float32Array {
    return this.heap().slice(ptr >>> 2, (ptr >>> 2) + n);
  }

  /** Bytes currently allocated, and the memory's size. */
  stats(): { bytesInUse: number; liveBlocks: number; memoryBytes: number } {
    return {
      bytesInUse: this.allocator.bytesInUse,
      liveBlocks: this.allocator.liveBlocks,
      memoryBytes: this.memory.buffer.byteLength,
    };
  }
}

function pickVariant(asked: WasmVariant | "auto"): WasmVariant {
  if (!supportsSimd()) {
    throw new Error("this runtime does not support WebAssembly SIMD; use Engine.create({ backend: \"js\" })");
  }
  if (asked === "simd") return "simd";
  if (asked === "relaxed") {
    if (!supportsRelaxedSimd()) {
      throw new Error("variant \"relaxed\" asked for, but this runtime does not validate relaxed SIMD (Node 20 needs --experimental-wasm-relaxed-simd)");
    }
    return "relaxed";
  }
  if (asked !== "auto") throw new Error(`Engine.create: variant must be "auto", "simd" or "relaxed", got ${JSON.stringify(asked)}`);
  return supportsRelaxedSimd() ? "relaxed" : "simd";
}
