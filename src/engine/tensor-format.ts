// Compact one-line previews of tensors for toString / console.log.
import { fmtShape, stridesOf } from "./tensor-shape.js";

/** Up to 4 significant digits, integers as integers, trailing zeros dropped. */
export function fmtNumber(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e6) return Object.is(x, -0) ? "-0" : String(x);
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  const s = abs >= 1e-4 && abs < 1e6 ? x.toPrecision(4) : x.toExponential(3);
  // 1.500 -> 1.5, 2.000e-5 -> 2e-5; zeros before the point (1200) stay.
  return s.replace(/(\.\d*?)0+(?=e|$)/, "$1").replace(/\.(?=e|$)/, "");
}

/**
 * `Tensor([2, 3]) [[1, 2, 3], [4, 5, 6]]`. Large tensors show the first and last few entries
 * of each dim around `...`; fewer per dim the more dims there are, so a preview stays short.
 */
export function formatTensor(data: Float32Array, shape: readonly number[]): string {
  const edge = shape.length <= 2 ? 3 : shape.length === 3 ? 2 : 1;
  const truncate = data.length > 64;
  const strides = stridesOf(shape);
  const render = (dim: number, off: number): string => {
    if (dim === shape.length) return fmtNumber(data[off]!);
    const n = shape[dim]!;
    const parts: string[] = [];
    const show = (i: number): void => { parts.push(render(dim + 1, off + i * strides[dim]!)); };
    if (truncate && n > 2 * edge + 1) {
      for (let i = 0; i < edge; i++) show(i);
      parts.push("...");
      for (let i = n - edge; i < n; i++) show(i);
    } else {
      for (let i = 0; i < n; i++) show(i);
    }
    return `[${parts.join(", ")}]`;
  };
  return `Tensor(${fmtShape(shape)}) ${render(0, 0)}`;
}
