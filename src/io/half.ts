// Bit-exact conversions between float32 and the two 16-bit float formats of safetensors.
// All work on raw bit patterns so NaN payloads, signed zeros and subnormals survive.

/** float16 bits → float32 bits (exact: every half value is a float32 value). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf or NaN, payload kept
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // 112 = 127 - 15
  if (mant === 0) return sign >>> 0;
  // Subnormal half: mant * 2^-24. Shift until the implicit bit appears, lowering the exponent.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** float32 bits → float16 bits, rounding to nearest, ties to even; overflow gives ±inf, NaN stays NaN. */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00;
    // Keep the top payload bits and force the quiet bit so a NaN never becomes inf.
    return sign | 0x7c00 | 0x200 | (mant >>> 13);
  }
  const e = exp - 112; // half exponent field for a normal result
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Below 2^-25 the value rounds to zero (2^-25 itself is a tie that goes to even zero).
    if (e < -10) return sign;
    const full = mant | 0x800000; // 24-bit significand with the implicit bit
    const shift = 14 - e; // from float32 significand units to half subnormal units (2^-24)
    let half = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const tie = 1 << (shift - 1);
    if (rem > tie || (rem === tie && (half & 1) === 1)) half++; // a carry lands in the exponent correctly
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++; // may carry up to 0x7c00 = inf
  return sign | half;
}

/** bfloat16 bits → float32 bits (exact: bfloat16 is the top half of a float32). */
export function bf16BitsToF32Bits(h: number): number {
  return (h << 16) >>> 0;
}

/** float32 bits → bfloat16 bits, rounding to nearest, ties to even; NaN stays a (quiet) NaN. */
export function f32BitsToBf16Bits(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  const rounding = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + rounding) >>> 16) & 0xffff;
}

/**
 * Converts float16 values to float32.
 *
 * @param src - half-float bit patterns
 * @returns a new Float32Array of the same length holding the exact values
 * @example
 * ```ts
 * f16ToF32(new Uint16Array([0x3c00, 0x0001]));  // Float32Array [1, 5.960464477539063e-8]
 * ```
 */
export function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = f16BitsToF32Bits(src[i]!);
  return out;
}

/**
 * Converts bfloat16 values to float32.
 *
 * @param src - bfloat16 bit patterns
 * @returns a new Float32Array of the same length holding the exact values
 */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

/**
 * Rounds float32 values to float16 (nearest, ties to even).
 *
 * @example
 * ```ts
 * f32ToF16(new Float32Array([1, 65520]));  // Uint16Array [0x3c00, 0x7c00]  (65520 rounds to inf)
 * ```
 */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(bits[i]!);
  return out;
}

/** Rounds float32 values to bfloat16 (nearest, ties to even). */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16Bits(bits[i]!);
  return out;
}
