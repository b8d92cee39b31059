// Helper threads for the WASM engine: each runs its own instance of the kernel module over the
// engine's shared memory and waits for jobs in a small control block in that memory.
//
// The protocol is synchronous on purpose: a kernel call from the model must return with its
// output written, like the single-threaded call it replaces. A job is one kernel call cut into
// chunks (ranges of rows, columns, batch entries or elements). The caller writes the job into
// every helper's block, bumps each block's sequence number and wakes the helpers; then every
// thread, the caller included, claims chunk after chunk from one shared counter until none are
// left, and the caller waits, spinning briefly and then sleeping, until each helper publishes
// the job's sequence number as done. Claiming chunks (rather than a fixed share per thread)
// lets a thread that got less of the CPU, or woke up late, do less of the work, so no thread
// idles waiting for a slower one. Helpers never allocate, so the memory they share only grows
// from the engine's thread.
//
// A chunk [s, e) of the job's range runs the kernel with arguments base + perStart·s + perEnd·e,
// so a job describes every chunk's arguments with three vectors.
//
// Control block of one helper (Int32 slots, then Float64 vectors):
//   [0] seq: job number, bumped by the caller (-1 asks the helper to exit)
//   [1] done: the last job number the helper finished
//   [2] kernel: index into KERNEL_NAMES of the job's kernel
//   [3] failed: 1 when a chunk threw (the helper then claims no more)
//   [4] the length of the error's message, whose first MESSAGE_CHARS UTF-16 units follow the vectors
//   [5] total: the job's range is [0, total)
//   [6] chunk: the length of every chunk but the last
//   [7] chunks: how many chunks
//   [8] ran: chunks this helper has run since it started (its own running total, stored once per job)
//   bytes 64..: 16 f64 base arguments, 16 f64 perStart, 16 f64 perEnd; then the message
import { KERNEL_NAMES } from "./kernels.js";

const SEQ = 0;
const DONE = 1;
const KERNEL = 2;
const FAILED = 3;
const MESSAGE_LENGTH = 4;
const TOTAL = 5;
const CHUNK = 6;
const CHUNKS = 7;
const RAN = 8;
const ARGS_OFFSET = 64;
const MAX_ARGS = 16;
const PER_START_OFFSET = ARGS_OFFSET + MAX_ARGS * 8;
const PER_END_OFFSET = PER_START_OFFSET + MAX_ARGS * 8;
const MESSAGE_OFFSET = PER_END_OFFSET + MAX_ARGS * 8;
/** Bytes of one helper's control block (a multiple of 64, so blocks never share a cache line). */
export const CONTROL_BYTES = 1024;
/** Bytes of the pool's shared chunk counter (one cache line of its own). */
export const COUNTER_BYTES = 64;
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
  const { module, memory, control, scratch, counter } = init;
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const k = instance.exports;
  k.useScratch(scratch);
  const fns = names.map((name) => k[name]);
  const ctl = new Int32Array(memory.buffer, control, ${CONTROL_BYTES / 4});
  const base = new Float64Array(memory.buffer, control + ${ARGS_OFFSET}, ${MAX_ARGS});
  const perStart = new Float64Array(memory.buffer, control + ${PER_START_OFFSET}, ${MAX_ARGS});
  const perEnd = new Float64Array(memory.buffer, control + ${PER_END_OFFSET}, ${MAX_ARGS});
  const message = new Uint16Array(memory.buffer, control + ${MESSAGE_OFFSET}, ${MESSAGE_CHARS});
  const next = new Int32Array(memory.buffer, counter, 1);
  const a = new Float64Array(${MAX_ARGS});
  post("ready");
  let seen = 0;
  let ran = 0;
  for (;;) {
    let seq = Atomics.load(ctl, ${SEQ});
    for (let i = 0; seq === seen && i < ${SPINS}; i++) seq = Atomics.load(ctl, ${SEQ});
    while (seq === seen) {
      Atomics.wait(ctl, ${SEQ}, seen);
      seq = Atomics.load(ctl, ${SEQ});
    }
    if (seq < 0) return;
    seen = seq;
    const fn = fns[ctl[${KERNEL}]];
    const total = ctl[${TOTAL}], chunk = ctl[${CHUNK}], chunks = ctl[${CHUNKS}];
    try {
      for (let c = Atomics.add(next, 0, 1); c < chunks; c = Atomics.add(next, 0, 1)) {
        const s = c * chunk;
        const e = Math.min(total, s + chunk);
        for (let j = 0; j < ${MAX_ARGS}; j++) a[j] = base[j] + perStart[j] * s + perEnd[j] * e;
        fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]);
        ran++;
      }
    } catch (e) {
      const text = String(e && e.message ? e.message : e).slice(0, ${MESSAGE_CHARS});
      for (let i = 0; i < text.length; i++) message[i] = text.charCodeAt(i);
      ctl[${MESSAGE_LENGTH}] = text.length;
      ctl[${FAILED}] = 1;
    }
    ctl[${RAN}] = ran;
    Atomics.store(ctl, ${DONE}, seen);
    Atomics.notify(ctl, ${DONE});
  }
});
`;

// Node evaluates the helper as CommonJS or as an ES module depending on the parent's flags
// (--input-type=module is inherited), so the port comes from a dynamic import, which both allow.
const NODE_PORT = `
let port;
const post = (m) => port.postMessage(m);
const onStart = (f) => import("node:worker_threads").then((threads) => {
  port = threads.parentPort;
  port.once("message", f);
});
`;

const WEB_PORT = `
const post = (m) => self.postMessage(m);
const onStart = (f) => { self.onmessage = (e) => { self.onmessage = null; f(e.data); }; };
`;

/** What a helper needs to start: the module, the shared memory, its own blocks and the pool's counter. */
interface HelperInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: number;
  scratch: number;
  counter: number;
}

/**
 * One kernel call cut into chunks: chunk [s, e) of [0, total) (every chunk `chunk` long but the
 * last) runs the kernel with arguments base + perStart·s + perEnd·e.
 */
export interface SharedJob {
  kernel: number;
  total: number;
  chunk: number;
  base: readonly number[];
  perStart: readonly number[];
  perEnd: readonly number[];
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
 * Helper threads sharing one engine's memory. `share` runs one kernel call cut into chunks on
 * every helper and the calling thread at once, and returns when all chunks are done.
 */
export class ThreadPool {
  private readonly controls: Int32Array[];
  private readonly base: Float64Array[];
  private readonly perStart: Float64Array[];
  private readonly perEnd: Float64Array[];
  /** Each helper's error message slot. */
  private readonly messages: Uint16Array[];
  /** The next chunk to claim, shared by every thread. */
  private readonly next: Int32Array;
  private seq = 0;
  /** Jobs shared so far, and the chunks this thread ran of them (each helper counts its own). */
  private jobs = 0;
  private ranHere = 0;
  /** Whether Atomics.wait may block this thread (not on a browser's main thread). */
  private readonly canBlock: boolean;

  private constructor(
    memory: WebAssembly.Memory,
    controlPtrs: readonly number[],
    counter: number,
    private readonly helpers: readonly HelperHandle[],
  ) {
    const f64 = (p: number, offset: number) => new Float64Array(memory.buffer, p + offset, MAX_ARGS);
    this.controls = controlPtrs.map((p) => new Int32Array(memory.buffer, p, CONTROL_BYTES / 4));
    this.base = controlPtrs.map((p) => f64(p, ARGS_OFFSET));
    this.perStart = controlPtrs.map((p) => f64(p, PER_START_OFFSET));
    this.perEnd = controlPtrs.map((p) => f64(p, PER_END_OFFSET));
    this.messages = controlPtrs.map((p) => new Uint16Array(memory.buffer, p + MESSAGE_OFFSET, MESSAGE_CHARS));
    this.next = new Int32Array(memory.buffer, counter, 1);
    this.canBlock = blockingAllowed(this.controls[0]!);
  }

  /**
   * Starts helpers, one per control block, all claiming chunks from the counter at `counter`
   * (COUNTER_BYTES), or explains why threads aren't available here (`{ unavailable }`) so the
   * engine can run single-threaded.
   */
  static async start(module: WebAssembly.Module, memory: WebAssembly.Memory,
    blocks: readonly { control: number; scratch: number }[], counter: number): Promise<ThreadPool | { unavailable: string }> {
    const why = await helperUnavailable();
    if (why !== undefined) return { unavailable: why };
    const helpers = await Promise.all(blocks.map((b) => startHelper({ module, memory, counter, ...b })));
    try {
      await Promise.all(helpers.map((h) => h.ready));
    } catch (e) {
      for (const h of helpers) h.terminate();
      return { unavailable: `a helper thread failed to start: ${(e as Error).message}` };
    }
    return new ThreadPool(memory, blocks.map((b) => b.control), counter, helpers);
  }

  /** Number of helpers (the engine's thread count minus its own thread). */
  get size(): number {
    return this.helpers.length;
  }

  /**
   * Runs `job` on every helper and this thread: each claims chunks until none are left, this
   * thread calling `runHere(s, e)` for its own. Returns when every chunk is done. A thread stops
   * claiming at its first failed chunk (the others carry on); then the helper's error, or else
   * this thread's, is thrown.
   */
  share(job: SharedJob, runHere: (start: number, end: number) => void): void {
    if (job.base.length > MAX_ARGS) throw new Error(`thread pool: ${job.base.length} arguments, at most ${MAX_ARGS}`);
    const chunks = Math.ceil(job.total / job.chunk);
    this.seq = this.seq + 1 > 0x3fffffff ? 1 : this.seq + 1;
    Atomics.store(this.next, 0, 0);
    for (let i = 0; i < this.helpers.length; i++) {
      const ctl = this.controls[i]!;
      this.base[i]!.fill(0).set(job.base);
      this.perStart[i]!.fill(0).set(job.perStart);
      this.perEnd[i]!.fill(0).set(job.perEnd);
      ctl[KERNEL] = job.kernel;
      ctl[FAILED] = 0;
      ctl[TOTAL] = job.total;
      ctl[CHUNK] = job.chunk;
      ctl[CHUNKS] = chunks;
      Atomics.store(ctl, SEQ, this.seq);
      Atomics.notify(ctl, SEQ);
    }
    this.jobs++;
    let failedHere: unknown;
    try {
      for (let c = Atomics.add(this.next, 0, 1); c < chunks; c = Atomics.add(this.next, 0, 1)) {
        runHere(c * job.chunk, Math.min(job.total, (c + 1) * job.chunk));
        this.ranHere++;
      }
    } catch (e) {
      failedHere = e;
    }
    // A helper's error names the kernel; this thread's own is rethrown as it came.
    const failed = this.waitForHelpers();
    if (failed !== undefined) throw new Error(failed);
    if (failedHere !== undefined) throw failedHere;
  }

  /** Waits until every helper has finished the current job; the first helper error, if any. */
  private waitForHelpers(): string | undefined {
    let failed: string | undefined;
    for (let i = 0; i < this.helpers.length; i++) {
      const ctl = this.controls[i]!;
      let spins = 0;
      while (Atomics.load(ctl, DONE) !== this.seq) {
        if (this.canBlock && ++spins > SPINS) Atomics.wait(ctl, DONE, Atomics.load(ctl, DONE), 1);
      }
      if (ctl[FAILED] === 1 && failed === undefined) {
        const text = String.fromCharCode(...this.messages[i]!.subarray(0, ctl[MESSAGE_LENGTH]));
        failed = `${KERNEL_NAMES[ctl[KERNEL]!]} failed on a helper thread: ${text}`;
      }
    }
    return failed;
  }

  /**
   * Jobs shared since the pool started, and the chunks each thread ran of them: `chunks[0]` is
   * the calling thread, `chunks[i]` helper i. Read between jobs (share() is synchronous, so any
   * call from the engine's thread is), the counts are exact.
   */
  stats(): { jobs: number; chunks: number[] } {
    return { jobs: this.jobs, chunks: [this.ranHere, ...this.controls.map((ctl) => Atomics.load(ctl, RAN))] };
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
