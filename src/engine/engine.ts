import { Allocator } from "./allocator.js";
import { KERNEL_NAMES, type Kernels } from "./kernels.js";
import { createJsKernels } from "./js/index.js";
import { parallelKernels } from "./parallel-kernels.js";
import { CONTROL_BYTES, COUNTER_BYTES, ThreadPool } from "./thread-pool.js";
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
  /**
   * Threads that run the kernels (default 1). With 2 or more, the engine loads the shared-memory
   * build (`build/hooklens-<variant>-mt.wasm`; a `wasm` source must then be that build) and
   * starts `threads - 1` helpers (worker_threads in Node, Web Workers elsewhere) that split
   * each large kernel call with the calling thread. Results are bit for bit the same as with one
   * thread. Where shared memory or workers are missing (Cloudflare Workers, browser pages without
   * cross-origin isolation) the engine runs on one thread: check {@link Engine.threads} and
   * {@link Engine.threadsNote}. A threaded engine's calls block the calling thread, which in a
   * browser should be a Worker.
   */
  threads?: number;
}

/** How the kernel calls of a threaded engine were split; see {@link Engine.threadStats}. */
export interface ThreadStats {
  /** Kernel calls split between the threads since the helpers started. */
  jobs: number;
  /** Chunks of those calls each thread ran: `[0]` the calling thread, `[1..]` the helpers. */
  chunks: number[];
}

const MAX_MEMORY_BYTES = 65536 * 65536; // 4 GiB: the module's maximumMemory

/**
 * Stops an engine's helper threads once the engine itself is garbage: helpers hold the shared
 * memory, so without this an engine dropped without dispose() would keep its memory alive.
 */
const helperReaper = typeof FinalizationRegistry === "function"
  ? new FinalizationRegistry<ThreadPool>((pool) => pool.dispose())
  : undefined;

/**
 * Owns one linear memory, the allocator over it and the kernels that work on it.
 * There is no global engine: every model holds the engine it was built with.
 *
 * @example
 * ```ts
 * const engine = await Engine.create();            // WASM SIMD, relaxed where available
 * const p = engine.upload(new Float32Array([1, 2, 3, 4]));
 * engine.kernels.add(p, p, p, 4);
 * engine.download(p, 4);                            // Float32Array [2, 4, 6, 8]
 * engine.free(p);
 * ```
 */
export class Engine {
  private kernelSet: Kernels;
  private readonly allocator: Allocator;
  private heapView: Float32Array;
  private pool: ThreadPool | undefined;
  private threadCount = 1;
  private note: string | undefined;
  /** This thread's own kernels (what helpers split calls with). */
  private singleKernels: Kernels;
  /** Bytes of kernel scratch one module instance needs (each helper gets its own block). */
  private scratchBytes = 0;

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
    this.kernelSet = kernels(() => this.heap());
    this.singleKernels = this.kernelSet;
  }

  /** The kernels, on this engine's memory (split between threads when {@link threads} > 1). */
  get kernels(): Kernels {
    return this.kernelSet;
  }

  /** Threads running the kernels: 1, or the `threads` asked for when helpers could start. */
  get threads(): number {
    return this.threadCount;
  }

  /** Why fewer threads run than were asked for, if so. */
  get threadsNote(): string | undefined {
    return this.note;
  }

  /**
   * How the kernel calls were split between threads so far: a check that the helpers really do
   * work, and how evenly. An engine on one thread splits nothing: `{ jobs: 0, chunks: [0] }`
   * (also after {@link dispose}).
   *
   * @example
   * ```ts
   * const engine = await Engine.create({ threads: 2 });
   * model.forward(tokens);
   * engine.threadStats(); // { jobs: 40, chunks: [151, 169] }
   * ```
   */
  threadStats(): ThreadStats {
    return this.pool?.stats() ?? { jobs: 0, chunks: [0] };
  }

  /**
   * Stops the helper threads (a no-op for one thread). The engine keeps working on one thread.
   * Helpers never keep a Node process alive, and those of an engine that is garbage-collected
   * are stopped then, so calling this is only needed to free them early.
   */
  dispose(): void {
    if (this.pool === undefined) return;
    helperReaper?.unregister(this);
    this.pool.dispose();
    this.pool = undefined;
    this.threadCount = 1;
    this.kernelSet = this.singleKernels;
  }

  /** Creates an engine; see {@link EngineOptions}. */
  static async create(options: EngineOptions = {}): Promise<Engine> {
    const backend = options.backend ?? "wasm";
    if (backend === "js") return Engine.createJs();
    if (backend !== "wasm") throw new Error(`Engine.create: backend must be "wasm" or "js", got ${JSON.stringify(backend)}`);
    const variant = pickVariant(options.variant ?? "auto");
    const threads = options.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
      throw new RangeError(`Engine.create: threads must be an integer from 1 to 64, got ${threads}`);
    }
    if (threads === 1) return Engine.fromModule(await compileWasm(options.wasm ?? defaultWasmUrl(variant)), variant);
    const shared = await compileWasm(options.wasm ?? defaultWasmUrl(`${variant}-mt`));
    const engine = Engine.fromModule(shared, variant);
    await engine.startHelpers(shared, threads - 1);
    if (engine.threads === 1 && options.wasm === undefined) {
      // No threads here: the plain build, with its own unshared memory, is the faster single thread.
      const single = Engine.fromModule(await compileWasm(defaultWasmUrl(variant)), variant);
      single.note = engine.note;
      return single;
    }
    return engine;
  }

  /** Starts `helpers` threads on this engine's shared memory; on failure stays single-threaded with a note. */
  private async startHelpers(module: WebAssembly.Module, helpers: number): Promise<void> {
    if (!(this.memory.buffer instanceof SharedArrayBuffer)) {
      this.note = "the kernel module is not the shared-memory (-mt) build";
      return;
    }
    const scratchFloats = this.scratchBytes / 4;
    const blocks = Array.from({ length: helpers }, () => {
      const control = this.alloc(CONTROL_BYTES / 4);
      this.heap().fill(0, control >>> 2, (control + CONTROL_BYTES) >>> 2);
      return { control, scratch: this.alloc(scratchFloats) };
    });
    const counter = this.alloc(COUNTER_BYTES / 4);
    const pool = await ThreadPool.start(module, this.memory, blocks, counter);
    if (!(pool instanceof ThreadPool)) {
      for (const b of blocks) { this.free(b.control); this.free(b.scratch); }
      this.free(counter);
      this.note = `running on one thread: ${pool.unavailable}`;
      return;
    }
    this.pool = pool;
    helperReaper?.register(this, pool, this);
    this.threadCount = helpers + 1;
    this.kernelSet = parallelKernels(this.singleKernels, pool);
  }

  /** Synchronous construction from a compiled module (e.g. a Worker's imported .wasm). */
  static fromModule(module: WebAssembly.Module, variant: WasmVariant): Engine {
    // The shared-memory build imports its memory; the others export their own.
    const importsMemory = WebAssembly.Module.imports(module).some((i) => i.kind === "memory");
    const imported = importsMemory
      ? new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true } as WebAssembly.MemoryDescriptor)
      : undefined;
    const instance = new WebAssembly.Instance(module, imported ? { env: { memory: imported } } : {});
    const exports = instance.exports as Record<string, unknown>;
    const memory = imported ?? exports["memory"] as WebAssembly.Memory | undefined;
    if (memory === undefined) throw new Error("kernel module exports no memory: is it a hooklens build?");
    for (const name of [...KERNEL_NAMES, "heapBase"]) {
      if (typeof exports[name] !== "function") throw new Error(`kernel module lacks the export "${name}": rebuild with npm run build:wasm`);
    }
    const relaxed = (exports["isRelaxed"] as () => number)() === 1;
    if (relaxed !== (variant === "relaxed")) {
      throw new Error(`kernel module is the ${relaxed ? "relaxed" : "simd"} build, but variant "${variant}" was asked for`);
    }
    const heapBase = (exports["heapBase"] as () => number)() >>> 0;
    const engine = new Engine("wasm", variant, memory, heapBase, () => exports as unknown as Kernels);
    engine.scratchBytes = (exports["scratchBytes"] as () => number)() >>> 0;
    return engine;
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

  /** Starts a new measurement of `stats().peakBytesInUse` (the most bytes allocated at once) from now. */
  resetPeak(): void {
    this.allocator.resetPeak();
  }

  /** Bytes currently allocated, the most allocated at once since the last {@link resetPeak}, and the memory's size. */
  stats(): { bytesInUse: number; peakBytesInUse: number; liveBlocks: number; memoryBytes: number } {
    return {
      bytesInUse: this.allocator.bytesInUse,
      peakBytesInUse: this.allocator.peakBytesInUse,
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
