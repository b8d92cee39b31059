// Regression guard: this tree against a base revision of hooklens, both measured in one process on
// the same machine at the same minute, alternating call by call, so the check holds on any machine
// (ratios committed from another CPU are documentation, not a baseline). The base is built in a
// scratch git worktree: by default the last commit that touched bench/results/, or `--against REF`.
// Fails (exit 1), naming each case, when this build is more than THRESHOLD slower than the base;
// a case past the threshold is measured once more before it counts. Writes nothing.
//
//   npm run bench:check [-- --against REF] [-- --threshold 0.2]
//
// Cases: the GEMM and attention kernels of bench/builds.js (the two .wasm builds, one thread) and
// whole GPT-2-small forwards at 1 x 16 and 8 x 16 (the two dist/ builds, relaxed SIMD).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { run as runBuilds } from "./builds.js";
import { gpt2SmallWeights, randomTokens } from "./gpt2-small.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2);
const option = (name) => {
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  return args[i].includes("=") ? args[i].slice(args[i].indexOf("=") + 1) : args[i + 1];
};
const THRESHOLD = Number(option("threshold") ?? 0.2);
if (!(THRESHOLD > 0 && THRESHOLD < 1)) throw new Error(`--threshold must be in (0, 1), got ${option("threshold")}`);

const git = (...a) => execFileSync("git", ["-C", repo, ...a], { encoding: "utf8" }).trim();
const ref = option("against") ?? git("log", "-1", "--format=%H", "--", "bench/results");
const sha = git("rev-parse", "--verify", `${ref}^{commit}`);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** The base revision checked out and built (npm run build) in a scratch worktree. */
function buildBase() {
  const dir = mkdtempSync(join(tmpdir(), `hooklens-guard-${sha.slice(0, 8)}-`));
  git("worktree", "add", "--detach", "--force", dir, sha);
  symlinkSync(join(repo, "node_modules"), join(dir, "node_modules"), "dir");
  console.log(`bench:check: building the base ${sha.slice(0, 12)} (${ref}) in ${dir} ...`);
  execFileSync("npm", ["run", "build"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  if (!existsSync(join(dir, "dist", "index.js")) || !existsSync(join(dir, "build"))) throw new Error(`the base ${sha} did not build`);
  return dir;
}

/** base / this per kernel case (above 1: this build is faster), paired round by round. */
async function kernelRatios(baseDir) {
  const rows = await quietly(() => runBuilds({ args: [`--base=${join(baseDir, "build")}`, "--allow-diff"], budgetMs: 1500 }));
  return Object.fromEntries(rows.map((r) => [`kernel ${r.shape}`, r.pairedSpeedup]));
}

/** base / this for whole forwards, the two dist/ builds taking turns call by call. */
async function forwardRatios(baseDir) {
  const libs = [await import("../dist/index.js"), await import(pathToFileURL(join(baseDir, "dist", "index.js")).href)];
  const { cfg, weights } = gpt2SmallWeights();
  const models = await Promise.all(libs.map(async (lib) => new lib.HookedTransformer(cfg, weights, await lib.Engine.create({ variant: "relaxed" }))));
  const out = {};
  for (const [batch, pos, rounds] of [[1, 16, 21], [8, 16, 9]]) {
    const tokens = randomTokens(batch, pos, batch * 1000 + pos);
    for (const m of models) m.forward(tokens);
    const ratios = [];
    for (let r = 0; r < rounds; r++) {
      const t = [0, 0];
      for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
        const s = performance.now();
        models[i].forward(tokens);
        t[i] = performance.now() - s;
      }
      ratios.push(t[1] / t[0]);
    }
    out[`forward GPT-2-small ${batch}x${pos}`] = median(ratios);
  }
  for (const m of models) { m.engine.dispose(); }
  return out;
}

async function quietly(fn) {
  const log = console.log;
  console.log = () => {};
  try {
    return await fn();
  } finally {
    console.log = log;
  }
}

const baseDir = buildBase();
try {
  const measure = async () => ({ ...(await kernelRatios(baseDir)), ...(await forwardRatios(baseDir)) });
  console.log("bench:check: measuring this tree against the base, call by call ...");
  const ratios = await measure();
  let slower = Object.keys(ratios).filter((k) => ratios[k] < 1 - THRESHOLD);
  if (slower.length > 0) {
    console.log(`${slower.length} case(s) more than ${THRESHOLD * 100}% slower; measuring again to confirm ...`);
    const again = await measure();
    for (const k of slower) ratios[k] = Math.max(ratios[k], again[k] ?? -Infinity);
    slower = slower.filter((k) => ratios[k] < 1 - THRESHOLD);
  }
  const width = Math.max(...Object.keys(ratios).map((k) => k.length));
  console.log(`\n${"case".padEnd(width)}  base / this (above 1: this is faster)`);
  for (const [k, r] of Object.entries(ratios)) console.log(`${k.padEnd(width)}  ${r.toFixed(3).padStart(7)}${slower.includes(k) ? "  SLOWER" : ""}`);
  if (slower.length > 0) {
    console.error(`\nbench:check FAILED: ${slower.length} case(s) more than ${THRESHOLD * 100}% slower than ${sha.slice(0, 12)} on this machine:`);
    for (const k of slower) console.error(`  ${k}: base / this ${ratios[k].toFixed(3)}`);
    process.exitCode = 1;
  } else {
    console.log(`\nbench:check passed: ${Object.keys(ratios).length} cases, none more than ${THRESHOLD * 100}% slower than ${sha.slice(0, 12)}`);
  }
} finally {
  git("worktree", "remove", "--force", baseDir);
  rmSync(baseDir, { recursive: true, force: true });
}
