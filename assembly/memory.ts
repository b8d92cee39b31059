/** First free byte after the module's static data; the JS allocator starts here. */
export function heapBase(): usize {
  return __heap_base;
}

/** 1 if this build uses relaxed SIMD (f32x4.relaxed_madd), else 0. */
export function isRelaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
