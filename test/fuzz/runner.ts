// Runs fuzz cases and judges each one. A case passes when it ends in success (and the target's
// oracle agrees) or in one of the target's typed errors, within the time limit, allocating no
// more ArrayBuffer memory than the target's bound, and leaving the process's invariants
// (prototypes, engine memory) as they were.
//
// Memory is measured as the growth of `process.memoryUsage().arrayBuffers` across the call,
// taken after a minor GC and read before the call's result is dropped: every ArrayBuffer the
// call allocated and still holds (its result, or garbage not yet swept) is counted. Tensor
// memory is ArrayBuffer memory, so an allocation sized by a hostile header shows up there;
// the JSON text and objects of a header live on the V8 heap and are bounded by the input.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import fc from "fast-check";
import { Rng } from "./rng.js";

/** What a fuzz target is: how to make inputs, run them, and which endings are acceptable. */
export interface Target<I> {
  /** Category in the report, e.g. `safetensors/header`. */
  name: string;
  /** Share of the cases of a run (relative to the other targets). */
  weight: number;
  /** Mutational targets draw inputs from a replayable Rng... */
  generate?: (rng: Rng) => I;
  /** ...property-based ones from a fast-check arbitrary (shrunk on failure). */
  arbitrary?: fc.Arbitrary<I>;
  run(input: I): unknown;
  /** The label of an acceptable (typed) error, e.g. `ModelFormatError:bad_shape`; undefined for anything else. */
  classify(error: unknown): string | undefined;
  /** A reason a typed refusal is wrong (the input was valid), or undefined. */
  checkRefusal?(input: I, label: string): string | undefined;
  /** A reason the successful result is wrong (an independent oracle), or undefined. */
  check?(input: I, value: unknown): string | undefined;
  /** Largest acceptable ArrayBuffer growth for this input; undefined skips the memory check. */
  memoryBound?(input: I): number | undefined;
  /** The outcome label of a success (default `ok`), e.g. the CLI's exit code. */
  label?(value: unknown): string;
  /** A reason the process is left in a bad state after the case (e.g. engine memory not back), or undefined. */
  after?(): string | undefined;
  /** A short description of the input for failure reports. */
  describe(input: I): string;
}

export type FailureKind = "leak" | "oracle" | "slow" | "alloc" | "invariant";

export interface Failure {
  target: string;
  kind: FailureKind;
  detail: string;
  /** How to replay: `rng seed/index` for mutational cases, the fast-check counterexample otherwise. */
  replay: string;
  input: string;
}

export interface TargetReport {
  cases: number;
  ok: number;
  refused: number;
  /** Count of each ending: `ok` or the typed error label. */
  outcomes: Record<string, number>;
  failures: number;
  maxMs: number;
  /** Largest measured ArrayBuffer growth over its bound (≤ 1 passes). */
  maxAllocRatio: number;
  ms: number;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  failures: Failure[];
  targets: Record<string, TargetReport>;
  ms: number;
}

export interface FuzzOptions {
  seed: number;
  /** Total cases, shared by weight. */
  cases: number;
  /** Milliseconds a single case may take. */
  timeLimitMs?: number;
  /** Failures kept per target (all are counted). */
  keepFailures?: number;
  onProgress?: (target: string, done: number, total: number) => void;
}

type Gc = (options?: { type?: "minor" | "major"; execution?: "sync" }) => void;

/** The V8 GC, exposing it at run time when the process was not started with --expose-gc. */
export function exposeGc(): Gc {
  const existing = (globalThis as { gc?: Gc }).gc;
  if (typeof existing === "function") return existing;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as Gc;
}

interface CaseResult {
  label?: string;
  succeeded: boolean;
  failure?: { kind: FailureKind; detail: string };
  ms: number;
  allocRatio: number;
}

function prototypeFingerprint(): string {
  return [Object.prototype, Array.prototype, Function.prototype, String.prototype]
    .map((p) => Object.getOwnPropertyNames(p).join(",")).join("|");
}

/** Runs one case of `target` and judges it. */
export async function runCase<I>(target: Target<I>, input: I, gc: Gc, fingerprint: string, timeLimitMs: number): Promise<CaseResult> {
  gc({ type: "minor" });
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  let value: unknown;
  let error: unknown;
  let threw = false;
  try {
    value = await target.run(input);
  } catch (e) {
    error = e;
    threw = true;
  }
  const ms = performance.now() - t0;
  const grown = process.memoryUsage().arrayBuffers - before;
  const bound = target.memoryBound?.(input);
  const allocRatio = bound === undefined ? 0 : grown / bound;

  let label: string | undefined;
  let failure: CaseResult["failure"];
  if (threw) {
    label = target.classify(error);
    if (label === undefined) failure = { kind: "leak", detail: describeError(error) };
    else {
      const wrong = target.checkRefusal?.(input, label);
      if (wrong !== undefined) failure = { kind: "oracle", detail: `${wrong}: ${describeError(error)}` };
    }
  } else {
    label = target.label?.(value) ?? "ok";
    const wrong = target.check?.(input, value);
    if (wrong !== undefined) failure = { kind: "oracle", detail: wrong };
  }
  if (failure === undefined && ms > timeLimitMs) failure = { kind: "slow", detail: `took ${ms.toFixed(0)} ms (limit ${timeLimitMs})` };
  if (failure === undefined && bound !== undefined && grown > bound) {
    failure = { kind: "alloc", detail: `ArrayBuffer memory grew by ${grown} bytes, bound ${bound}` };
  }
  if (failure === undefined) {
    const bad = target.after?.();
    if (bad !== undefined) failure = { kind: "invariant", detail: bad };
    else if (prototypeFingerprint() !== fingerprint) failure = { kind: "invariant", detail: "a built-in prototype gained or lost properties" };
  }
  return { label, succeeded: !threw, failure, ms, allocRatio };
}

function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message.slice(0, 300)}`;
  return `non-Error thrown: ${String(e).slice(0, 300)}`;
}

/** Runs `options.cases` cases over `targets` (split by weight) and reports every outcome. */
export async function runFuzz(targets: readonly Target<any>[], options: FuzzOptions): Promise<FuzzReport> {
  const gc = exposeGc();
  const timeLimitMs = options.timeLimitMs ?? 1000;
  const keep = options.keepFailures ?? 5;
  const fingerprint = prototypeFingerprint();
  const totalWeight = targets.reduce((a, t) => a + t.weight, 0);
  const report: FuzzReport = { seed: options.seed, cases: 0, failures: [], targets: {}, ms: 0 };
  const started = performance.now();

  for (const target of targets) {
    const n = Math.max(1, Math.round((options.cases * target.weight) / totalWeight));
    const tr: TargetReport = { cases: 0, ok: 0, refused: 0, outcomes: {}, failures: 0, maxMs: 0, maxAllocRatio: 0, ms: 0 };
    report.targets[target.name] = tr;
    const t0 = performance.now();
    const kept: Failure[] = [];
    let lastFailure: CaseResult["failure"];
    const record = (input: unknown, r: CaseResult, replay: string) => {
      tr.cases++;
      tr.maxMs = Math.max(tr.maxMs, r.ms);
      tr.maxAllocRatio = Math.max(tr.maxAllocRatio, r.allocRatio);
      if (r.label !== undefined) {
        tr.outcomes[r.label] = (tr.outcomes[r.label] ?? 0) + 1;
        if (r.succeeded) tr.ok++;
        else tr.refused++;
      }
      if (r.failure !== undefined) {
        tr.failures++;
        lastFailure = r.failure;
        if (kept.length < keep) kept.push({ target: target.name, ...r.failure, replay, input: safeDescribe(target, input) });
      }
      if (tr.cases % 500 === 0) options.onProgress?.(target.name, tr.cases, n);
    };

    if (target.generate !== undefined) {
      for (let i = 0; i < n; i++) {
        const input = target.generate(Rng.forCase(options.seed, target.name, i));
        record(input, await runCase(target, input, gc, fingerprint, timeLimitMs), `Rng.forCase(${options.seed}, "${target.name}", ${i})`);
      }
    } else if (target.arbitrary !== undefined) {
      const result = await fc.check(
        fc.asyncProperty(target.arbitrary, async (input) => {
          const r = await runCase(target, input, gc, fingerprint, timeLimitMs);
          record(input, r, `fast-check seed ${options.seed}`);
          return r.failure === undefined;
        }),
        { seed: options.seed, numRuns: n, endOnFailure: false },
      );
      if (result.failed && result.counterexample !== null) {
        kept.push({
          target: target.name, kind: lastFailure?.kind ?? "leak",
          detail: `shrunk counterexample; last failure: ${lastFailure?.detail ?? String(result.errorInstance)}`,
          replay: `fast-check seed ${options.seed}, path ${result.counterexamplePath}`,
          input: safeDescribe(target, result.counterexample[0]),
        });
      }
    }
    tr.ms = performance.now() - t0;
    report.cases += tr.cases;
    report.failures.push(...kept);
  }
  report.ms = performance.now() - started;
  return report;
}

function safeDescribe<I>(target: Target<I>, input: I): string {
  try {
    return target.describe(input).slice(0, 400);
  } catch (e) {
    return `(cannot describe: ${String(e)})`;
  }
}

/** A hex preview of bytes: length and the first bytes. */
export function previewBytes(bytes: Uint8Array, n = 96): string {
  const head = Array.from(bytes.subarray(0, n), (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`)).join("");
  return `${bytes.length} bytes: ${head}${bytes.length > n ? "…" : ""}`;
}
