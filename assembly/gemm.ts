// GEMM: C = A·op(B) (+ bias) (+ C), Goto/BLIS style with an unpacked A.
//
// Loops, outer to inner: KC depth -> MC rows -> NB·NR columns of B, packed ->
// every NR sliver of that group -> every MR rows of A -> the MR×NR register
// micro-kernel over KC. (Column groups outermost, finishing a wide C such as the
// unembedding group by group, measured no faster for small A and 25% slower at K = 3072.)
//
// Only B is packed. Its slivers (KC×NR) become unit-stride streams that
// stay in L1 while the micro-kernel sweeps all MR-row slivers of A; read in
// place, B would walk rows 3072 floats apart, which all map to one L1 set.
// A is read in place: an MR-row sliver is MR unit-stride streams, and the
// broadcast addresses cost the same adds as offsets into a packed copy would
// (V8 folds no offset into a load32_splat), so a packed A would buy nothing
// but a copy and 128 KiB more static scratch. B is packed NB slivers at a time
// so each row of B is read as whole cache lines.
// Ragged edges: a last sliver of fewer than MR rows is copied into a
// scratch of MR rows, B groups are zero-padded past n, and partial tiles are
// computed into a scratch tile and merged with scalar code.
//
// All byte arithmetic is in usize (u32) so operands above 2 GiB work; sizes
// arrive as i32 and are widened before they are multiplied.

import { madd } from "./simd";
import { packedB, aTail, edgeTile, PACKED_B_BYTES, A_TAIL_BYTES, EDGE_TILE_BYTES } from "./scratch";
import { geluNew, geluExact, silu } from "./activations";

/** Activations gemmPacked can apply to its output block by block (the MLP's, fused): ACT_NONE or one of these. */
const ACT_NONE = 0;
const ACT_GELU_NEW = 1;
const ACT_GELU = 2;
const ACT_SILU = 3;

/** Rows of C per register tile (one broadcast of A per row and k). */
const MR = 4;
/** Columns of C per register tile (two v128 of B per k). */
const NR = 8;
/** Slivers of B packed together: NB·NR floats (128 bytes, two cache lines) of each row of B per pass. */
const NB = 4;
/**
 * Depth of one block: a B sliver (KC×NR×4 = 16 KiB) and an A sliver (MR×KC×4 = 8 KiB) fit L1d together.
 * Deeper than the usual 256 because every block reloads and stores all of C: measured 2-4% faster.
 */
const KC = 512;
/** Rows of A per block: MC×KC×4 = 512 KiB of A stays in L2 while every B group reuses it. */
const MC = 256;

// Scratch (scratch.ts, one block per module instance):
// packedB: [NB][kc][NR] ; aTail: [MR][kc] ; edgeTile: [MR][NR]
if (<usize>(NB * KC * NR * 4) > PACKED_B_BYTES || <usize>(MR * KC * 4) > A_TAIL_BYTES || <usize>(MR * NR * 4) > EDGE_TILE_BYTES) {
  ERROR("gemm's blocking constants outgrew its scratch in scratch.ts");
}

/**
 * C = A·op(B) + bias, or C += A·op(B) + bias when `accumulate` is 1.
 * a: [m, k] (lda) ; b: [k, n] (ldb) when transB = 0, [n, k] (ldb) when transB = 1
 * c: [m, n] (ldc) ; bias: [n] or 0
 */
export function gemm(a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, bias: usize,
  m: i32, n: i32, k: i32, transB: i32, accumulate: i32): void {
  blockedProduct(a, lda, b, ldb, transB, 0, c, ldc, bias, m, n, k, accumulate, 0, n, ACT_NONE, 0);
}

/**
 * The loops of gemm and gemmPacked, on C[:, j0:j1]: each B group is packed into scratch from b
 * (packed = 0) or read in place from a prepackB layout, then multiplied the same way, so both
 * entries give the same bits. K block by K block; within one, a block of rows of A stays in L2
 * while every column group uses it. With an activation, the last K block applies it to each
 * block of C it has just finished, while that block is still in L1.
 */
function blockedProduct(a: usize, lda: i32, b: usize, ldb: i32, transB: i32, packed: usize,
  c: usize, ldc: i32, bias: usize, m: i32, n: i32, k: i32, accumulate: i32, j0: i32, j1: i32, act: i32, half: i32): void {
  // half: 0 packed (or plain) f32, HALF_BF16 or HALF_F16 packed 16-bit elements.
  if (m <= 0 || j1 <= j0) return;
  if (k <= 0) {
    biasOnly(c + (<usize>j0 << 2), ldc, bias != 0 ? bias + (<usize>j0 << 2) : 0, m, j1 - j0, accumulate);
    activateBlock(c + (<usize>j0 << 2), <usize>ldc << 2, m, j1 - j0, act);
    return;
  }
  // Even K blocks: 769 becomes 2×385 rather than 512 + 257.
  const kcMax = blockDepth(k);
  const nPad = <usize>((n + NR - 1) & ~(NR - 1));
  const ldaBytes = <usize>lda << 2;
  const ldbBytes = <usize>ldb << 2;
  const ldcBytes = <usize>ldc << 2;
  for (let pc = 0; pc < k; pc += kcMax) {
    const kc = min(kcMax, k - pc);
    // Only the first K block writes C from scratch (or adds to it with `accumulate`) and adds the bias.
    const first = pc == 0;
    const add = first ? accumulate : 1;
    const last = pc + kc >= k;
    for (let ic = 0; ic < m; ic += MC) {
      const mc = min(MC, m - ic);
      const aRows = a + (<usize>pc << 2) + <usize>ic * ldaBytes;
      // The block's last mc % MR rows, copied once for every column group (a 1-row unembedding has ~1,500).
      const mTail = mc & (MR - 1);
      if (mTail != 0) packATail(aRows + <usize>(mc - mTail) * ldaBytes, ldaBytes, mTail, kc);
      for (let jc = j0; jc < j1; jc += NB * NR) {
        const nc = min(NB * NR, j1 - jc);
        let pb = packedB;
        // A 16-bit packed B has the same layout at two bytes an element: its group is widened into
        // the scratch once (half the bytes read from memory), then multiplied as an f32 one.
        const at = <usize>pc * nPad + <usize>kc * <usize>jc;
        const groupLength = <usize>kc * <usize>((nc + NR - 1) & ~(NR - 1));
        if (packed != 0 && half == HALF_BF16) widenGroup(packedB, packed + (at << 1), groupLength);
        else if (packed != 0 && half == HALF_F16) widenGroupF16(packedB, packed + (at << 1), groupLength);
        else if (packed != 0) pb = packed + (at << 2);
        else packGroup(packedB, b, ldbBytes, transB, pc, jc, kc, nc);
        const biasCols: usize = first && bias != 0 ? bias + (<usize>jc << 2) : 0;
        const cBlock = c + <usize>ic * ldcBytes + (<usize>jc << 2);
        groupKernel(aRows, ldaBytes, pb, cBlock, ldcBytes, biasCols, mc, nc, kc, add);
        if (last) activateBlock(cBlock, ldcBytes, mc, nc, act);
      }
    }
  }
}

/** Packs the B group of K block pc (depth kc) and columns jc..jc+nc into dst ([ceil(nc/NR)][kc][NR]). */
// @ts-ignore: decorator
@inline function packGroup(dst: usize, b: usize, ldbBytes: usize, transB: i32, pc: i32, jc: i32, kc: i32, nc: i32): void {
  if (transB) packBT(dst, b + (<usize>pc << 2) + <usize>jc * ldbBytes, ldbBytes, kc, nc);
  else packB(dst, b + <usize>pc * ldbBytes + (<usize>jc << 2), ldbBytes, kc, nc);
}

/** Depth of gemm's K blocks for depth k: the same split gemm and gemmPacked use. */
// @ts-ignore: decorator
@inline function blockDepth(k: i32): i32 {
  const kBlocks = (k + KC - 1) / KC;
  return (k + kBlocks - 1) / kBlocks;
}

/**
 * Packs a whole B once, for any number of gemmPacked calls: the layout gemm builds
 * group by group in its scratch, kept for good. b: [k, n] (ldb), or [n, k] when transB = 1.
 * out: [k / kc blocks][ceil(n / NR) slivers][kc][NR] floats, k·ceil(n / NR)·NR in all;
 * K block p starts at float p·kcMax·nPad, sliver s of a block of depth kc at kc·NR·s.
 */
export function prepackB(b: usize, ldb: i32, k: i32, n: i32, transB: i32, out: usize): void {
  if (k <= 0 || n <= 0) return;
  const kcMax = blockDepth(k);
  const ldbBytes = <usize>ldb << 2;
  const nPad = <usize>((n + NR - 1) & ~(NR - 1));
  for (let pc = 0; pc < k; pc += kcMax) {
    const kc = min(kcMax, k - pc);
    for (let jc = 0; jc < n; jc += NB * NR) {
      packGroup(out + ((<usize>pc * nPad + <usize>kc * <usize>jc) << 2), b, ldbBytes, transB, pc, jc, kc, min(NB * NR, n - jc));
    }
  }
}

/**
 * gemm with a B that prepackB packed: C[:, j0:j1] = act(A·B[:, j0:j1] + bias) (or act(C + ...)),
 * bit for bit what gemm and then the activation's own kernel compute. n is B's full width (it
 * fixes the packed layout); j0 must be a multiple of NR·NB (32) and j1 <= n, so callers can
 * split the columns of one product between threads. c and bias point at column 0.
 * act: ACT_NONE (0), ACT_GELU_NEW (1), ACT_GELU (2) or ACT_SILU (3).
 */
export function gemmPacked(a: usize, lda: i32, packed: usize, c: usize, ldc: i32, bias: usize,
  m: i32, n: i32, k: i32, accumulate: i32, j0: i32, j1: i32, act: i32): void {
  if (act < ACT_NONE || act > ACT_SILU) unreachable(); // an unknown activation: trap rather than skip it
  blockedProduct(a, lda, 0, 0, 0, packed, c, ldc, bias, m, n, k, accumulate, j0, j1, act, 0);
}

const HALF_BF16: i32 = 1;
const HALF_F16: i32 = 2;

/** dst: count f32 = src: count bf16 widened (each the upper half of its f32); count a multiple of 8. */
function widenGroup(dst: usize, src: usize, count: usize): void {
  for (let i: usize = 0; i < count; i += 8) {
    const raw = v128.load(src + (i << 1));
    v128.store(dst + (i << 2), i32x4.shl(i32x4.extend_low_i16x8_u(raw), 16));
    v128.store(dst + (i << 2), i32x4.shl(i32x4.extend_high_i16x8_u(raw), 16), 16);
  }
}

/**
 * gemmPacked with B's packed elements stored as bf16 (the upper 16 bits of an f32, see toBf16):
 * each group of B is widened to f32 into the scratch as it is needed (gemm's own packing step) and
 * the products accumulate in f32, so the result is gemmPacked's on the bf16-rounded B, bit for bit. packed16: packedBLength(k, n) u16.
 */
export function gemmPacked16(a: usize, lda: i32, packed16: usize, c: usize, ldc: i32, bias: usize,
  m: i32, n: i32, k: i32, accumulate: i32, j0: i32, j1: i32, act: i32): void {
  if (act < ACT_NONE || act > ACT_SILU) unreachable();
  blockedProduct(a, lda, 0, 0, 0, packed16, c, ldc, bias, m, n, k, accumulate, j0, j1, act, HALF_BF16);
}

/**
 * dst: count f32 = src: count IEEE half floats, exactly (every half is an f32). The half's
 * exponent and mantissa, moved up 13 bits, read as an f32 are the value times 2^-112 (a normal
 * half lands on a normal f32, a subnormal on a subnormal one), so one multiply by 2^112 rebases
 * both exactly; an infinity or NaN (exponent 31) lands at 2^16 or above and gets the f32
 * maximum exponent, mantissa (NaN payload) kept. count a multiple of 8.
 */
function widenGroupF16(dst: usize, src: usize, count: usize): void {
  const magnitude = i32x4.splat(0x7fff);
  const signBit = i32x4.splat(0x8000);
  const rebase = f32x4.splat(reinterpret<f32>(0x77800000)); // 2^112
  const infNanFrom = f32x4.splat(65536); // 2^16: the rebased exponent 31
  const maxExponent = i32x4.splat(0x7f800000);
  for (let i: usize = 0; i < count; i += 8) {
    const raw = v128.load(src + (i << 1));
    for (let part = 0; part < 2; part++) {
      const h = part == 0 ? i32x4.extend_low_i16x8_u(raw) : i32x4.extend_high_i16x8_u(raw);
      const value = f32x4.mul(i32x4.shl(v128.and(h, magnitude), 13), rebase);
      const special = v128.and(f32x4.ge(value, infNanFrom), maxExponent);
      v128.store(dst + (i << 2) + (<usize>part << 4), v128.or(v128.or(value, special), i32x4.shl(v128.and(h, signBit), 16)));
    }
  }
}

/**
 * gemmPacked with B's packed elements stored as IEEE half floats (see toF16), widened to f32 group
 * by group as gemmPacked16 widens bf16: the result is gemmPacked's on the f16-rounded B, bit for bit.
 */
export function gemmPackedF16(a: usize, lda: i32, packed16: usize, c: usize, ldc: i32, bias: usize,
  m: i32, n: i32, k: i32, accumulate: i32, j0: i32, j1: i32, act: i32): void {
  if (act < ACT_NONE || act > ACT_SILU) unreachable();
  blockedProduct(a, lda, 0, 0, 0, packed16, c, ldc, bias, m, n, k, accumulate, j0, j1, act, HALF_F16);
}

/**
 * x: [n] f32 -> out: [n] IEEE half floats (u16), rounded to nearest, ties to even; beyond ±65504
 * (after rounding) ±inf, below 2^-25 ±0, NaN stays a (quiet) NaN. Packing a weight as f16 is
 * prepackB, then this on the packed floats.
 */
export function toF16(x: usize, out: usize, n: i32): void {
  for (let i: usize = 0; i < <usize>n; i++) store<u16>(out + (i << 1), <u16>f16Bits(load<u32>(x + (i << 2))));
}

// @ts-ignore: decorator
@inline function f16Bits(bits: u32): u32 {
  const sign = (bits >> 16) & 0x8000;
  const exp = <i32>((bits >> 23) & 0xff);
  const mant = bits & 0x7fffff;
  if (exp == 0xff) return mant == 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >> 13);
  const e = exp - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = <u32>(14 - e);
    let h = full >> shift;
    const rem = full & ((1 << shift) - 1);
    const tie: u32 = 1 << (shift - 1);
    if (rem > tie || (rem == tie && (h & 1) == 1)) h++;
    return sign | h;
  }
  let h = (<u32>e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1)) h++;
  return sign | h;
}

/**
 * x: [n] f32 -> out: [n] bf16 (u16), rounded to nearest, ties to even; NaN stays a (quiet) NaN.
 * Packing a weight as bf16 is prepackB, then this on the packed floats.
 */
export function toBf16(x: usize, out: usize, n: i32): void {
  for (let i: usize = 0; i < <usize>n; i++) {
    const bits = load<u32>(x + (i << 2));
    const rounded = (bits & 0x7fffffff) > 0x7f800000 ? (bits >> 16) | 0x40 : (bits + 0x7fff + ((bits >> 16) & 1)) >> 16;
    store<u16>(out + (i << 1), <u16>rounded);
  }
}

/** C[rows, cols] (ldcBytes) = act(C), row by row through the activation's own kernel (the same bits). */
function activateBlock(c: usize, ldcBytes: usize, rows: i32, cols: i32, act: i32): void {
  if (act == ACT_NONE) return;
  for (let i = 0; i < rows; i++) {
    const row = c + <usize>i * ldcBytes;
    if (act == ACT_GELU_NEW) geluNew(row, row, cols);
    else if (act == ACT_GELU) geluExact(row, row, cols);
    else silu(row, row, cols);
  }
}

/** k = 0: the product is empty, so C = bias (or 0), or C += bias. */
function biasOnly(c: usize, ldc: i32, bias: usize, m: i32, n: i32, accumulate: i32): void {
  const ldcBytes = <usize>ldc << 2;
  for (let i = 0; i < m; i++) {
    const row = c + <usize>i * ldcBytes;
    for (let j = 0; j < n; j++) {
      const o = <usize>j << 2;
      let t: f32 = bias != 0 ? load<f32>(bias + o) : 0;
      if (accumulate) t += load<f32>(row + o);
      store<f32>(row + o, t);
    }
  }
}

/**
 * C[mc, nc] (=|+=) A[mc, kc] · B slivers at pb ([nc/NR][kc][NR], nc <= NB·NR), sliver by sliver.
 * The last mc % MR rows of A are read from aTail, where packATail has put them.
 */
function groupKernel(a: usize, ldaBytes: usize, pb: usize, c: usize, ldcBytes: usize, bias: usize,
  mc: i32, nc: i32, kc: i32, add: i32): void {
  const bSliver = <usize>(kc * NR) << 2;
  const mFull = mc & ~(MR - 1);
  const mTail = mc - mFull;
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    const cCol = c + (<usize>jr << 2);
    const biasCol: usize = bias != 0 ? bias + (<usize>jr << 2) : 0;
    let pa = a;
    let pc = cCol;
    const aStep = ldaBytes * MR;
    const cStep = ldcBytes * MR;
    if (nr == NR) {
      for (let ir = 0; ir < mFull; ir += MR) {
        microKernel(kc, pa, ldaBytes, pb, pc, ldcBytes, biasCol, add);
        pa += aStep;
        pc += cStep;
      }
    } else {
      for (let ir = 0; ir < mFull; ir += MR) {
        microKernel(kc, pa, ldaBytes, pb, edgeTile, NR << 2, 0, 0);
        mergeEdge(pc, ldcBytes, biasCol, MR, nr, add);
        pa += aStep;
        pc += cStep;
      }
    }
    if (mTail != 0) {
      microKernel(kc, aTail, <usize>kc << 2, pb, edgeTile, NR << 2, 0, 0);
      mergeEdge(pc, ldcBytes, biasCol, mTail, nr, add);
    }
    pb += bSliver;
  }
}

/**
 * The register tile: C[4, 8] (=|+=) A[4, kc] · Bpacked[kc, 8] (+ bias), A rows ldaBytes apart.
 * Eight v128 accumulators, two B vectors and four A broadcasts fill the 15
 * xmm registers V8 allocates on x64 (with one to spare for the plain build's
 * mul temporary). The loop is not unrolled: TurboFan hoists every load of an
 * unrolled body to its top, and the extra live broadcasts spill accumulators.
 */
function microKernel(kc: i32, a: usize, ldaBytes: usize, pb: usize, c: usize, ldcBytes: usize,
  bias: usize, add: i32): void {
  let c00 = f32x4.splat(0); let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0); let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0); let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0); let c31 = f32x4.splat(0);
  const l2 = ldaBytes << 1;
  const l3 = l2 + ldaBytes;
  const end = a + (<usize>kc << 2);
  for (let pa = a; pa < end; pa += 4) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let av = v128.load32_splat(pa);
    c00 = madd(av, b0, c00); c01 = madd(av, b1, c01);
    av = v128.load32_splat(pa + ldaBytes);
    c10 = madd(av, b0, c10); c11 = madd(av, b1, c11);
    av = v128.load32_splat(pa + l2);
    c20 = madd(av, b0, c20); c21 = madd(av, b1, c21);
    av = v128.load32_splat(pa + l3);
    c30 = madd(av, b0, c30); c31 = madd(av, b1, c31);
    pb += NR << 2;
  }
  if (bias != 0) {
    const v0 = v128.load(bias);
    const v1 = v128.load(bias, 16);
    c00 = f32x4.add(c00, v0); c01 = f32x4.add(c01, v1);
    c10 = f32x4.add(c10, v0); c11 = f32x4.add(c11, v1);
    c20 = f32x4.add(c20, v0); c21 = f32x4.add(c21, v1);
    c30 = f32x4.add(c30, v0); c31 = f32x4.add(c31, v1);
  }
  const r1 = c + ldcBytes;
  const r2 = r1 + ldcBytes;
  const r3 = r2 + ldcBytes;
  if (add) {
    c00 = f32x4.add(c00, v128.load(c)); c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(r1)); c11 = f32x4.add(c11, v128.load(r1, 16));
    c20 = f32x4.add(c20, v128.load(r2)); c21 = f32x4.add(c21, v128.load(r2, 16));
    c30 = f32x4.add(c30, v128.load(r3)); c31 = f32x4.add(c31, v128.load(r3, 16));
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(r1, c10); v128.store(r1, c11, 16);
  v128.store(r2, c20); v128.store(r2, c21, 16);
  v128.store(r3, c30); v128.store(r3, c31, 16);
}

/** Merges the valid mr×nr corner of edgeTile into C, in the same order of additions as microKernel. */
function mergeEdge(c: usize, ldcBytes: usize, bias: usize, mr: i32, nr: i32, add: i32): void {
  for (let i = 0; i < mr; i++) {
    const row = c + <usize>i * ldcBytes;
    const tileRow = edgeTile + (<usize>(i * NR) << 2);
    for (let j = 0; j < nr; j++) {
      const o = <usize>j << 2;
      let t = load<f32>(tileRow + o);
      if (bias != 0) t += load<f32>(bias + o);
      if (add) t += load<f32>(row + o);
      store<f32>(row + o, t);
    }
  }
}

/**
 * The last mr < MR rows of an A block, a: [mr, kc] (ldaBytes) -> aTail: [MR][kc].
 * Rows past mr only feed tile rows that mergeEdge drops; they are zeroed so that
 * stale values (denormals) cannot slow the kernel down.
 */
function packATail(a: usize, ldaBytes: usize, mr: i32, kc: i32): void {
  const rowBytes = <usize>kc << 2;
  for (let i = 0; i < MR; i++) {
    const dst = aTail + <usize>i * rowBytes;
    if (i < mr) memory.copy(dst, a + <usize>i * ldaBytes, rowBytes);
    else memory.fill(dst, 0, rowBytes);
  }
}

/** B group b: [kc, nc] (ldbBytes), nc <= NB·NR -> dst: [ceil(nc/NR)][kc][NR], zero columns past nc. */
function packB(dst: usize, b: usize, ldbBytes: usize, kc: i32, nc: i32): void {
  const sliver = <usize>(kc * NR) << 2;
  if (nc == NB * NR) {
    // Row by row, so each row of B is read as whole cache lines; unrolled over the NB = 4 slivers.
    if (NB != 4) ERROR("packB unrolls NB = 4 slivers per row");
    const s2 = sliver << 1;
    const s3 = s2 + sliver;
    let src = b;
    for (let p = 0; p < kc; p++) {
      v128.store(dst, v128.load(src));
      v128.store(dst, v128.load(src, 16), 16);
      v128.store(dst + sliver, v128.load(src, 32));
      v128.store(dst + sliver, v128.load(src, 48), 16);
      v128.store(dst + s2, v128.load(src, 64));
      v128.store(dst + s2, v128.load(src, 80), 16);
      v128.store(dst + s3, v128.load(src, 96));
      v128.store(dst + s3, v128.load(src, 112), 16);
      src += ldbBytes;
      dst += NR << 2;
    }
    return;
  }
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    let src = b + (<usize>jr << 2);
    if (nr == NR) {
      for (let p = 0; p < kc; p++) {
        v128.store(dst, v128.load(src));
        v128.store(dst, v128.load(src, 16), 16);
        src += ldbBytes;
        dst += NR << 2;
      }
    } else {
      for (let p = 0; p < kc; p++) {
        for (let j = 0; j < NR; j++) {
          store<f32>(dst + (<usize>j << 2), j < nr ? load<f32>(src + (<usize>j << 2)) : 0);
        }
        src += ldbBytes;
        dst += NR << 2;
      }
    }
  }
}

/** B group stored transposed, b: [nc, kc] (ldbBytes), nc <= NB·NR -> dst: [ceil(nc/NR)][kc][NR]. */
function packBT(dst: usize, b: usize, ldbBytes: usize, kc: i32, nc: i32): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    const r0 = b + <usize>jr * ldbBytes;
    if (nr == NR) {
      const r1 = r0 + ldbBytes;
      const r2 = r1 + ldbBytes;
      const r3 = r2 + ldbBytes;
      const r4 = r3 + ldbBytes;
      const r5 = r4 + ldbBytes;
      const r6 = r5 + ldbBytes;
      const r7 = r6 + ldbBytes;
      let p = 0;
      // Two 4×4 transposes per four k: columns 0-3 and 4-7 of each packed row.
      for (; p + 4 <= kc; p += 4) {
        const o = <usize>p << 2;
        transposeStore4(dst, v128.load(r0 + o), v128.load(r1 + o), v128.load(r2 + o), v128.load(r3 + o), NR << 2);
        transposeStore4(dst + 16, v128.load(r4 + o), v128.load(r5 + o), v128.load(r6 + o), v128.load(r7 + o), NR << 2);
        dst += NR << 4;
      }
      for (; p < kc; p++) {
        const o = <usize>p << 2;
        for (let j = 0; j < NR; j++) {
          store<f32>(dst + (<usize>j << 2), load<f32>(r0 + <usize>j * ldbBytes + o));
        }
        dst += NR << 2;
      }
    } else {
      for (let p = 0; p < kc; p++) {
        const o = <usize>p << 2;
        for (let j = 0; j < NR; j++) {
          store<f32>(dst + (<usize>j << 2), j < nr ? load<f32>(r0 + <usize>j * ldbBytes + o) : 0);
        }
        dst += NR << 2;
      }
    }
  }
}

/** Rows x0..x3 (four lanes each) stored as columns: lane l of every row goes to dst + l*stride. */
// @ts-ignore: decorator
@inline function transposeStore4(dst: usize, x0: v128, x1: v128, x2: v128, x3: v128, stride: usize): void {
  const lo01 = f32x4.shuffle(x0, x1, 0, 4, 1, 5); // x0[0] x1[0] x0[1] x1[1]
  const lo23 = f32x4.shuffle(x2, x3, 0, 4, 1, 5);
  const hi01 = f32x4.shuffle(x0, x1, 2, 6, 3, 7); // x0[2] x1[2] x0[3] x1[3]
  const hi23 = f32x4.shuffle(x2, x3, 2, 6, 3, 7);
  v128.store(dst, f32x4.shuffle(lo01, lo23, 0, 1, 4, 5));
  v128.store(dst + stride, f32x4.shuffle(lo01, lo23, 2, 3, 6, 7));
  v128.store(dst + 2 * stride, f32x4.shuffle(hi01, hi23, 0, 1, 4, 5));
  v128.store(dst + 3 * stride, f32x4.shuffle(hi01, hi23, 2, 3, 6, 7));
}
