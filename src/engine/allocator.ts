/**
 * A first-fit allocator over one WebAssembly.Memory, kept entirely on the JS side
 * (the WASM module has no allocator of its own). Blocks are 64-byte aligned so
 * SIMD loads never straddle cache lines; freed blocks are coalesced with their
 * neighbours, so repeated allocate/free cycles of the same sizes reuse the same
 * memory and the WebAssembly.Memory stops growing after the first cycle.
 */
const ALIGN = 64;
const PAGE = 65536;

/** A free byte range [start, start + size). */
interface Span { start: number; size: number }

export class Allocator {
  /** Free spans sorted by start, never adjacent (always coalesced). */
  private readonly free: Span[] = [];
  /** Size of every live block, by start. */
  private readonly live = new Map<number, number>();
  private top: number;
  /** Bytes in live blocks, and their most since construction or the last resetPeak(). */
  private inUse = 0;
  private peak = 0;

  /**
   * @param memory the memory to carve up
   * @param base first usable byte (after the module's static data); 0 stays reserved as "null"
   * @param maxBytes upper bound of the memory (4 GiB for a 65536-page maximum)
   */
  constructor(private readonly memory: WebAssembly.Memory, base: number, private readonly maxBytes: number) {
    this.top = roundUp(Math.max(base, ALIGN), ALIGN);
  }

  /** Allocates `bytes` (rounded up to 64) and returns its byte offset. Grows memory when needed. */
  alloc(bytes: number): number {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`alloc: bytes must be a non-negative integer, got ${bytes}`);
    const size = roundUp(Math.max(bytes, 1), ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const span = this.free[i]!;
      if (span.size < size) continue;
      const start = span.start;
      if (span.size === size) this.free.splice(i, 1);
      else { span.start += size; span.size -= size; }
      this.track(start, size);
      return start;
    }
    // No free span fits: extend the top (free spans never touch the top, see insertFree).
    const start = this.top;
    const end = start + size;
    this.ensure(end);
    this.top = end;
    this.track(start, size);
    return start;
  }

  /** Returns a block from `alloc` to the free list. Freeing 0 is a no-op; anything else unknown throws. */
  release(ptr: number): void {
    if (ptr === 0) return;
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`release: ${ptr} is not a live allocation (double free?)`);
    this.live.delete(ptr);
    this.inUse -= size;
    this.insertFree(ptr, size);
  }

  /** Grows the memory so that bytes [0, end) exist. Growing detaches earlier views of memory.buffer. */
  ensure(end: number): void {
    if (end > this.maxBytes) {
      throw new RangeError(`out of WASM memory: need ${end} bytes, the maximum is ${this.maxBytes}`);
    }
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    // Grow by at least 1/8 of the current size to keep the number of grows logarithmic.
    const want = Math.max(end, Math.min(this.maxBytes, have + Math.floor(have / 8)));
    this.memory.grow(Math.ceil((want - have) / PAGE));
  }

  /** Bytes in live blocks. */
  get bytesInUse(): number {
    return this.inUse;
  }

  /** The most bytes in live blocks at any moment since construction or the last {@link resetPeak}. */
  get peakBytesInUse(): number {
    return this.peak;
  }

  /** Starts a new peak measurement from the bytes in use now. */
  resetPeak(): void {
    this.peak = this.inUse;
  }

  /** Number of live blocks. */
  get liveBlocks(): number {
    return this.live.size;
  }

  private track(start: number, size: number): void {
    this.live.set(start, size);
    this.inUse += size;
    this.peak = Math.max(this.peak, this.inUse);
  }

  private insertFree(start: number, size: number): void {
    // Binary search for the insertion index.
    let lo = 0;
    let hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.free[mid]!.start < start) lo = mid + 1;
      else hi = mid;
    }
    const prev = this.free[lo - 1];
    const next = this.free[lo];
    if (prev !== undefined && prev.start + prev.size === start) {
      prev.size += size;
      if (next !== undefined && prev.start + prev.size === next.start) {
        prev.size += next.size;
        this.free.splice(lo, 1);
      }
    } else if (next !== undefined && start + size === next.start) {
      next.start = start;
      next.size += size;
    } else {
      this.free.splice(lo, 0, { start, size });
    }
    // A free span that ends at the top is given back to the top.
    const tail = this.free[this.free.length - 1];
    if (tail !== undefined && tail.start + tail.size === this.top) {
      this.top = tail.start;
      this.free.pop();
    }
  }
}

function roundUp(x: number, to: number): number {
  return Math.ceil(x / to) * to;
}
