// What 16-bit weight storage costs in accuracy, bf16 and f16 against f32 storage of the same
// checkpoint, on every Hugging Face-anchored reference checkpoint (../shared/reference): the max
// |Δ logit| on the clean prompts, and the max |Δ| of two patching results (resid_pre activation
// patching, and exact direct path 0.1 → k), each beside the f32 result's largest |value|.
// A measurement, not a timing: one run gives the table (the numbers are deterministic).
//
//   node --experimental-wasm-relaxed-simd bench/run.js half-accuracy
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Engine, getActPatchDirectPath, getActPatchResidPre, HookedTransformer, logitDiff } from "../dist/index.js";

const CHECKPOINTS = ["tiny-gpt2-random", "tiny-llama-random", "tiny-gpt_neox-random", "tiny-qwen2-random", "tiny-llama3-random",
  "tiny-mistral-random", "tiny-olmo-random", "tiny-gemma2-random"];

/** shared/reference beside the checkout or one of its parents. */
function referenceRoot() {
  for (let dir = dirname(fileURLToPath(new URL("..", import.meta.url))); ; dir = dirname(dir)) {
    const candidate = join(dir, "shared", "reference");
    if (existsSync(join(candidate, "README.md"))) return candidate;
    if (dirname(dir) === dir) throw new Error("no shared/reference folder beside the checkout");
  }
}

const maxAbs = (x) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** Logits, resid_pre patching and exact direct path scores of one checkpoint stored as `dtype`. */
async function measure(dir, dtype, inputs, engine) {
  const model = await HookedTransformer.fromPretrained(dir, { engine, dtype });
  const metric = logitDiff(inputs);
  const logits = Array.from(model.forward(inputs.clean).logits.data);
  const clean = model.runWithCache(inputs.clean).cache;
  const corrupted = model.runWithCache(inputs.corrupted).cache;
  const resid = Array.from((await getActPatchResidPre(model, inputs.corrupted, clean, metric)).scores.data);
  const path = Array.from((await getActPatchDirectPath(model, inputs.corrupted, clean, corrupted, metric,
    { srcLayer: 0, srcHead: 1, component: "k", mode: "exact" })).scores.data);
  model.dispose();
  return { logits, resid, path };
}

export async function run() {
  const root = referenceRoot();
  const engine = await Engine.create();
  const rows = [];
  const fmt = (d, of) => `${d.toExponential(1)} (${of.toFixed(2)})`;
  console.log("| checkpoint | storage | max \\|Δ logit\\| (of max \\|logit\\|) | resid_pre patching | direct path |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const name of CHECKPOINTS) {
    const dir = join(root, name);
    const inputs = JSON.parse(readFileSync(join(dir, "golden", "inputs.json"), "utf8"));
    const f32 = await measure(dir, "f32", inputs, engine);
    for (const dtype of ["bf16", "f16"]) {
      const half = await measure(dir, dtype, inputs, engine);
      const row = {
        suite: "half-accuracy", checkpoint: name, dtype,
        logitError: maxDiff(half.logits, f32.logits), logitMax: maxAbs(f32.logits),
        residError: maxDiff(half.resid, f32.resid), residMax: maxAbs(f32.resid),
        pathError: maxDiff(half.path, f32.path), pathMax: maxAbs(f32.path),
      };
      rows.push(row);
      console.log(`| ${name} | ${dtype} | ${fmt(row.logitError, row.logitMax)} | ${fmt(row.residError, row.residMax)} | ${fmt(row.pathError, row.pathMax)} |`);
    }
  }
  engine.dispose();
  return rows;
}
