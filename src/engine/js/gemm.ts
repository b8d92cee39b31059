// Plain TypeScript twins of assembly/gemm.ts: the reference the WASM kernels are
// tested against. Sums accumulate in f64 (JS numbers) and round to f32 once on
// store, so the twin is at least as accurate as any blocked f32 kernel.
import { bf16BitsToF32Bits, f16BitsToF32Bits, f32BitsToBf16Bits, f32BitsToF16Bits } from "../../io/half.js";
import { GemmActivation } from "../kernels.js";
import { geluExact, geluNew, silu } from "./activations.js";

/**
 * C = A·op(B) + bias, or C += A·op(B) + bias when `accumulate` is 1.
 * a: [m, k] (lda) ; b: [k, n] (ldb) when transB = 0, [n, k] (ldb) when transB = 1
 * c: [m, n] (ldc) ; bias: [n] or 0
 */
export function gemm(heap: Float32Array, a: number, lda: number, b: number, ldb: number, c: number, ldc: number,
  bias: number, m: number, n: number, k: number, transB: number, accumulate: number): void {
  const A = a >>> 2;
  const B = b >>> 2;
  const C = c >>> 2;
  const bi = bias >>> 2;
  // One f64 row of the product; i-p-j order walks B row by row when transB = 0.
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    const ai = A + i * lda;
    if (transB === 0) {
      for (let p = 0; p < k; p++) {
        const aip = heap[ai + p]!;
        const bp = B + p * ldb;
        for (let j = 0; j < n; j++) row[j]! += aip * heap[bp + j]!;
      }
    } else {
      for (let j = 0; j < n; j++) {
        const bj = B + j * ldb;
        let s = 0;
        for (let p = 0; p < k; p++) s += heap[ai + p]! * heap[bj + p]!;
        row[j] = s;
      }
    }
    const ci = C + i * ldc;
    for (let j = 0; j < n; j++) {
      let s = row[j]!;
      if (bias !== 0) s += heap[bi + j]!;
      if (accumulate !== 0) s += heap[ci + j]!;
      heap[ci + j] = s;
    }
  }
}

/** Floats per sliver row of a packed B (assembly/gemm.ts NR). */
const NR = 8;
/** Deepest K block of a packed B (assembly/gemm.ts KC). */
const KC = 512;

/** Depth of the K blocks of a packed B of depth k: k split into equal blocks of at most KC. */
export function packedBlockDepth(k: number): number {
  const blocks = Math.ceil(k / KC);
  return Math.ceil(k / blocks);
}

/** Float index of B[p, j] in a packed B of depth k and width n (the layout prepackB documents). */
function packedIndex(p: number, j: number, k: number, n: number): number {
  const kcMax = packedBlockDepth(k);
  const nPad = Math.ceil(n / NR) * NR;
  const block = Math.floor(p / kcMax);
  const pc = block * kcMax;
  const kc = Math.min(kcMax, k - pc);
  return pc * nPad + kc * (j - (j % NR)) + (p - pc) * NR + (j % NR);
}

/**
 * Packs a whole B for gemmPacked. b: [k, n] (ldb), or [n, k] when transB = 1.
 * out: [K blocks][ceil(n / 8) slivers][kc][8] floats (k·ceil(n / 8)·8 in all), columns past n zero.
 */
export function prepackB(heap: Float32Array, b: number, ldb: number, k: number, n: number, transB: number, out: number): void {
  const B = b >>> 2;
  const O = out >>> 2;
  const nPad = Math.ceil(n / NR) * NR;
  for (let p = 0; p < k; p++) {
    for (let j = 0; j < nPad; j++) {
      const value = j >= n ? 0 : transB === 0 ? heap[B + p * ldb + j]! : heap[B + j * ldb + p]!;
      heap[O + packedIndex(p, j, k, n)] = value;
    }
  }
}

/**
 * gemm with a B packed by prepackB: C[:, j0:j1] = act(A·B[:, j0:j1] + bias), or act(C + ...)
 * when `accumulate` is 1. n is B's full width; c and bias point at column 0; j0 is a multiple
 * of 32; act is a GemmActivation.
 */
export function gemmPacked(heap: Float32Array, a: number, lda: number, packed: number, c: number, ldc: number,
  bias: number, m: number, n: number, k: number, accumulate: number, j0: number, j1: number, act: number): void {
  const P = packed >>> 2;
  packedProduct(heap, (i) => heap[P + i]!, a, lda, c, ldc, bias, m, n, k, accumulate, j0, j1, act);
}

/**
 * gemmPacked with B's packed elements stored as bf16 (u16, the upper half of each f32): each
 * widened to the f32 it stands for, then multiplied as gemmPacked does.
 */
export function gemmPacked16(heap: Float32Array, a: number, lda: number, packed16: number, c: number, ldc: number,
  bias: number, m: number, n: number, k: number, accumulate: number, j0: number, j1: number, act: number): void {
  packedProduct(heap, halfElement(heap, packed16, bf16BitsToF32Bits), a, lda, c, ldc, bias, m, n, k, accumulate, j0, j1, act);
}

/** Packed element i of a 16-bit B at byte `packed16`, read as the f32 whose bits `toF32Bits` gives. */
function halfElement(heap: Float32Array, packed16: number, toF32Bits: (h: number) => number): (i: number) => number {
  const halves = new Uint16Array(heap.buffer, heap.byteOffset);
  const widened = new Float32Array(1);
  const bits = new Uint32Array(widened.buffer);
  const P = packed16 >>> 1;
  return (i) => { bits[0] = toF32Bits(halves[P + i]!); return widened[0]!; };
}

/** x: [n] f32 -> out: [n] bf16 (u16), rounded to nearest, ties to even; NaN stays a quiet NaN. */
export function toBf16(heap: Float32Array, x: number, out: number, n: number): void {
  const words = new Uint32Array(heap.buffer, heap.byteOffset);
  const halves = new Uint16Array(heap.buffer, heap.byteOffset);
  for (let i = 0; i < n; i++) halves[(out >>> 1) + i] = f32BitsToBf16Bits(words[(x >>> 2) + i]!);
}

/** gemmPacked with B's packed elements stored as IEEE half floats (u16): each widened exactly to f32. */
export function gemmPackedF16(heap: Float32Array, a: number, lda: number, packed16: number, c: number, ldc: number,
  bias: number, m: number, n: number, k: number, accumulate: number, j0: number, j1: number, act: number): void {
  packedProduct(heap, halfElement(heap, packed16, f16BitsToF32Bits), a, lda, c, ldc, bias, m, n, k, accumulate, j0, j1, act);
}

/** x: [n] f32 -> out: [n] f16 (u16), rounded to nearest, ties to even; ±inf beyond ±65504; NaN stays a quiet NaN. */
export function toF16(heap: Float32Array, x: number, out: number, n: number): void {
  const words = new Uint32Array(heap.buffer, heap.byteOffset);
  const halves = new Uint16Array(heap.buffer, heap.byteOffset);
  for (let i = 0; i < n; i++) halves[(out >>> 1) + i] = f32BitsToF16Bits(words[(x >>> 2) + i]!);
}

/** The product of gemmPacked, gemmPacked16 and gemmPackedF16, reading packed element i through `element`. */
function packedProduct(heap: Float32Array, element: (i: number) => number, a: number, lda: number, c: number, ldc: number,
  bias: number, m: number, n: number, k: number, accumulate: number, j0: number, j1: number, act: number): void {
  const activate = activation(act);
  if (j1 <= j0) return;
  const A = a >>> 2;
  const C = c >>> 2;
  const bi = bias >>> 2;
  const kcMax = packedBlockDepth(k);
  const nPad = Math.ceil(n / NR) * NR;
  const width = j1 - j0;
  // Unpack the asked columns once into a plain [k, width] copy, then multiply as gemm does.
  const plain = new Float32Array(k * width);
  for (let pc = 0; pc < k; pc += kcMax) {
    const kc = Math.min(kcMax, k - pc);
    for (let p = pc; p < pc + kc; p++) {
      const rowBase = pc * nPad + (p - pc) * NR;
      for (let j = j0; j < j1; j++) plain[p * width + j - j0] = element(rowBase + kc * (j - (j % NR)) + (j % NR));
    }
  }
  const row = new Float64Array(width);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    const ai = A + i * lda;
    for (let p = 0; p < k; p++) {
      const aip = heap[ai + p]!;
      const bp = p * width;
      for (let j = 0; j < width; j++) row[j]! += aip * plain[bp + j]!;
    }
    const ci = C + i * ldc;
    for (let j = j0; j < j1; j++) {
      let s = row[j - j0]!;
      if (bias !== 0) s += heap[bi + j]!;
      if (accumulate !== 0) s += heap[ci + j]!;
      heap[ci + j] = s;
    }
    activate?.(heap, (ci + j0) * 4, (ci + j0) * 4, width);
  }
}

/** The twin kernel of a GemmActivation (undefined for none). */
function activation(act: number): ((heap: Float32Array, x: number, out: number, n: number) => void) | undefined {
  switch (act) {
    case GemmActivation.none: return undefined;
    case GemmActivation.geluNew: return geluNew;
    case GemmActivation.gelu: return geluExact;
    case GemmActivation.silu: return silu;
    default: throw new Error(`gemmPacked: unknown activation ${act}`);
  }
}
