// Access to ../shared/reference: the PyTorch goldens every implementation must match.
import { readFileSync } from "node:fs";
import { expect } from "vitest";
import { REFERENCE_ROOT } from "./reference-root.js";

export { REFERENCE_ROOT };

/** Absolute path of a reference checkpoint folder, e.g. `tiny-gpt2-random`. */
export function referenceDir(name: string): string {
  return `${REFERENCE_ROOT}${name}/`;
}

/** A golden JSON file of a reference checkpoint. */
export function golden<T = GoldenTensor>(model: string, file: string): T {
  return JSON.parse(readFileSync(`${referenceDir(model)}golden/${file}`, "utf8")) as T;
}

export interface GoldenTensor { shape: number[]; data: number[] }
export interface GoldenInputs { clean: number[][]; corrupted: number[][]; correct: number[]; incorrect: number[] }
export interface GoldenScores { shape: number[]; scores: number[]; clean_baseline: number; corrupted_baseline: number }

/** Patching scores against a golden: the issues' tolerance, 1e-3 absolute + 1e-3 × the largest |score|. */
export function expectGoldenScores(got: ArrayLike<number>, want: GoldenScores, label: string): void {
  const tol = 1e-3 + 1e-3 * Math.max(...want.scores.map(Math.abs));
  expect(got.length, label).toBe(want.scores.length);
  for (let i = 0; i < want.scores.length; i++) expect(Math.abs(got[i]! - want.scores[i]!), `${label} [${i}]`).toBeLessThanOrEqual(tol);
}
