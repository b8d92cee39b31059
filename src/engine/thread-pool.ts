// Helper threads for the WASM engine: each runs its own instance of the kernel module over the
// engine's shared memory and waits for jobs in a small control block in that memory.
//
// The protocol is synchronous on purpose: a kernel call from the model must return with its
// output written, like the single-threaded call it replaces. The caller writes a job (kernel
// index and up to 16 numeric arguments) into a helper's block, bumps the block's sequence number
// and wakes the helper; it then does its own share of the work and waits, spinning briefly and
// then sleeping, until the helper publishes the same sequence number as done. Helpers never
// allocate, so the memory they share only grows from the engine's thread.
//
// Control block of one helper (Int32 slots, then Float64 arguments):
//   [0] seq: job number, bumped by the caller (-1 asks the helper to exit)
//   [1] done: the last job number the helper finished
//   [2] kernel: index into KERNEL_NAMES of the job's kernel
//   [3] failed: 1 when the job threw
//   [4] the length of the error's message, whose first MESSAGE_CHARS UTF-16 units follow the arguments
//   bytes 24..151: 16 f64 arguments; bytes 152..: the message
import { KERNEL_NAMES } from "./kernels.js";

const SEQ = 0;
const DONE = 1;
const KERNEL = 2;
const FAILED = 3;
const MESSAGE_LENGTH = 4;
const ARGS_OFFSET = 24;
const MAX_ARGS = 16;
const MESSAGE_OFFSET = ARGS_OFFSET + MAX_ARGS * 8;
/** Bytes of one helper's control block (a multiple of 64, so blocks never share a cache line). */
export const CONTROL_BYTES = 512;
const MESSAGE_CHARS = (CONTROL_BYTES - MESSAGE_OFFSET) / 2;
/** Spin this many times before sleeping: a job takes tens of microseconds to milliseconds. */
const SPINS = 20000;

/**
 * The helper's whole program, as source text so that it needs no file of its own: Node starts it
 * with `eval: true`, browsers, Deno and Bun from a Blob URL. `PORT` is replaced per platform.
 */
const HELPER_SOURCE = `
const names = ${JSON.stringify(KERNEL_NAMES)};
PORT_SETUP
onStart((init) => {
  const { module, memory, control, scratch } = init;
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const k = instance.exports;
  k.useScratch(scratch);
  const fns = names.map((name) => k[name]);
  const ctl = new Int32Array(memory.buffer, control, ${CONTROL_BYTES / 4});
  const args = new Float64Array(memory.buffer, control + ${ARGS_OFFSET}, ${MAX_ARGS});
  const message = new Uint16Array(memory.buffer, control + ${MESSAGE_OFFSET}, ${MESSAGE_CHARS});
  post("ready");
  let seen = 0;
  for (;;) {
    let seq = Atomics.load(ctl, ${SEQ});
    for (let i = 0; seq === seen && i < ${SPINS}; i++) seq = Atomics.load(ctl, ${SEQ});
    while (seq === seen) {
      Atomics.wait(ctl, ${SEQ}, seen);
      seq = Atomics.load(ctl, ${SEQ});
    }
    if (seq < 0) return;
    seen = seq;
    try {
      const a = args;
      fns[ctl[${KERNEL}]](a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]);
    } catch (e) {
      const text = String(e && e.message ? e.message : e).slice(0, ${MESSAGE_CHARS});
      for (let i = 0; i < text.length; i++) message[i] = text.charCodeAt(i);
      ctl[${MESSAGE_LENGTH}] = text.length;
      ctl[${FAILED}] = 1;
    }
    Atomics.store(ctl, ${DONE}, seen);
    Atomics.notify(ctl, ${DONE});
  }
});
`;

const NODE_PORT = `
const { parentPort } = require("node:worker_threads");
const post = (m) => parentPort.postMessage(m);
const onStart = (f) => parentPort.once("message", f);
`;

const WEB_PORT = `
const post = (m) => self.postMessage(m);
const onStart = (f) => { self.onmessage = (e) => { self.onmessage = null; f(e.data); }; };
`;

/** What a helper needs to start: the module, the shared memory and its own blocks. */
interface HelperInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: number;
  scratch: number;
}

/** The least a Node worker_threads Worker or a web Worker offers, seen the same way. */
interface HelperHandle {
  ready: Promise<void>;
  terminate(): void;
}

/** Whether this runtime can run helper threads at all: shared memory and some kind of Worker. */
export function sharedMemorySupported(): boolean {
  if (typeof SharedArrayBuffer === "undefined" || typeof Atomics === "undefined") return false;
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true } as WebAssembly.MemoryDescriptor);
    return true;
  } catch {
    return false;
  }
}

/** Why helper threads can't start here, or undefined if they can. */
async function helperUnavailable(): Promise<string | undefined> {
  if (!sharedMemorySupported()) {
    return "this runtime has no shared WebAssembly memory (browsers need cross-origin isolation)";
  }
  if (typeof (globalThis as { Worker?: unknown }).Worker === "function") return undefined;
  if (await nodeWorkerThreads() !== undefined) return undefined;
  return "this runtime has no Worker";
}

type NodeWorkerModule = typeof import("node:worker_threads");

async function nodeWorkerThreads(): Promise<NodeWorkerModule | undefined> {
  const isNode = typeof process !== "undefined" && typeof process.versions?.node === "string";
  if (!isNode) return undefined;
  try {
    const name = "node:worker_threads";
    return (await import(/* @vite-ignore */ name)) as NodeWorkerModule;
  } catch {
    return undefined;
  }
}

async function startHelper(init: HelperInit): Promise<HelperHandle> {
  const web = (globalThis as { Worker?: typeof Worker }).Worker;
  const node = typeof web === "function" ? undefined : await nodeWorkerThreads();
  let resolveReady!: () => void;
  let rejectReady!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => { resolveReady = resolve; rejectReady = reject; });
  const onMessage = (m: unknown) => {
    if (m === "ready") resolveReady();
  };
  if (node !== undefined) {
    const worker = new node.Worker(HELPER_SOURCE.replace("PORT_SETUP", NODE_PORT), { eval: true });
    worker.on("message", onMessage);
    worker.on("error", (e: Error) => rejectReady(e));
    worker.postMessage(init);
    // Helpers must never keep a process alive on their own, but the engine's creation waits
    // for them to report ready, so they are let go only then.
    void ready.then(() => worker.unref(), () => undefined);
    return { ready, terminate: () => void worker.terminate() };
  }
  if (typeof web !== "function") throw new Error("no Worker in this runtime");
  const url = URL.createObjectURL(new Blob([HELPER_SOURCE.replace("PORT_SETUP", WEB_PORT)], { type: "text/javascript" }));
  const worker = new web(url, { type: "module" });
  worker.onmessage = (e: MessageEvent) => onMessage(e.data);
  worker.onerror = (e: ErrorEvent) => rejectReady(new Error(e.message));
  worker.postMessage(init);
  return {
    ready: ready.finally(() => URL.revokeObjectURL(url)),
    terminate: () => worker.terminate(),
  };
}

/**
 * Helper threads sharing one engine's memory. `run` hands a kernel call to a helper;
 * `wait` returns once every handed-out call has finished.
 */
export class ThreadPool {
  private readonly controls: Int32Array[];
  private readonly args: Float64Array[];
  /** Each helper's error message slot. */
  private readonly messages: Uint16Array[];
  private readonly seqs: number[];
  private readonly busy: boolean[];
  /** Whether Atomics.wait may block this thread (not on a browser's main thread). */
  private readonly canBlock: boolean;

  private constructor(
    memory: WebAssembly.Memory,
    controlPtrs: readonly number[],
    private readonly helpers: readonly HelperHandle[],
  ) {
    this.controls = controlPtrs.map((p) => new Int32Array(memory.buffer, p, CONTROL_BYTES / 4));
    this.args = controlPtrs.map((p) => new Float64Array(memory.buffer, p + ARGS_OFFSET, MAX_ARGS));
    this.messages = controlPtrs.map((p) => new Uint16Array(memory.buffer, p + MESSAGE_OFFSET, MESSAGE_CHARS));
    this.seqs = controlPtrs.map(() => 0);
    this.busy = controlPtrs.map(() => false);
    this.canBlock = blockingAllowed(this.controls[0]!);
  }

  /**
   * Starts helpers, one per control block, or explains why threads aren't available here
   * (`{ unavailable }`) so the engine can run single-threaded.
   */
  static async start(module: WebAssembly.Module, memory: WebAssembly.Memory,
    blocks: readonly { control: number; scratch: number }[]): Promise<ThreadPool | { unavailable: string }> {
    const why = await helperUnavailable();
    if (why !== undefined) return { unavailable: why };
    const helpers = await Promise.all(blocks.map((b) => startHelper({ module, memory, ...b })));
    try {
      await Promise.all(helpers.map((h) => h.ready));
    } catch (e) {
      for (const h of helpers) h.terminate();
      return { unavailable: `a helper thread failed to start: ${(e as Error).message}` };
    }
    return new ThreadPool(memory, blocks.map((b) => b.control), helpers);
  }

  /** Number of helpers (the engine's thread count minus its own thread). */
  get size(): number {
    return this.helpers.length;
  }

  /** Hands `kernel(...args)` to helper `i`, which must be idle. */
  run(i: number, kernel: number, args: readonly number[]): void {
    if (this.busy[i]) throw new Error(`thread pool: helper ${i} is still busy`);
    const ctl = this.controls[i]!;
    const a = this.args[i]!;
    for (let j = 0; j < args.length; j++) a[j] = args[j]!;
    ctl[KERNEL] = kernel;
    ctl[FAILED] = 0;
    const seq = this.seqs[i]! + 1 > 0x3fffffff ? 1 : this.seqs[i]! + 1;
    this.seqs[i] = seq;
    this.busy[i] = true;
    Atomics.store(ctl, SEQ, seq);
    Atomics.notify(ctl, SEQ);
  }

  /** Waits for every helper given a job; throws if one failed. */
  wait(): void {
    let failed: string | undefined;
    for (let i = 0; i < this.helpers.length; i++) {
      if (!this.busy[i]) continue;
      const ctl = this.controls[i]!;
      const seq = this.seqs[i]!;
      let spins = 0;
      while (Atomics.load(ctl, DONE) !== seq) {
        if (this.canBlock && ++spins > SPINS) Atomics.wait(ctl, DONE, Atomics.load(ctl, DONE), 1);
      }
      this.busy[i] = false;
      if (ctl[FAILED] === 1) {
        const text = String.fromCharCode(...this.messages[i]!.subarray(0, ctl[MESSAGE_LENGTH]));
        failed = `${KERNEL_NAMES[ctl[KERNEL]!]} failed on a helper thread: ${text}`;
      }
    }
    if (failed !== undefined) throw new Error(failed);
  }

  /** Stops every helper; the pool can't be used afterwards. */
  dispose(): void {
    for (let i = 0; i < this.helpers.length; i++) {
      Atomics.store(this.controls[i]!, SEQ, -1);
      Atomics.notify(this.controls[i]!, SEQ);
      this.helpers[i]!.terminate();
    }
  }
}

/** Atomics.wait throws on threads that must not block (a browser's main thread). */
function blockingAllowed(probe: Int32Array): boolean {
  try {
    Atomics.wait(probe, DONE, Atomics.load(probe, DONE) + 1, 0);
    return true;
  } catch {
    return false;
  }
}
