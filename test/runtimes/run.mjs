#!/usr/bin/env node
// Runs the packed package in every runtime and checks each against Node's numbers.
//   node test/runtimes/run.mjs --project DIR [--report FILE] [--screenshots DIR]
// DIR is a scratch project with hooklens installed from its tarball, plus the npm packages
// deno, bun, workerd and playwright-core (.ci/runtimes.sh makes it). A runtime that is not
// installed is skipped; one that runs and disagrees fails. Prints one line per check and
// writes {passed, failed, skipped, checks} to the report.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { compareSmoke } from "./compare.mjs";
import { PATCH_REQUESTS } from "./smoke.mjs";
import { writeWorkerdProject } from "./workerd-config.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");
const args = process.argv.slice(2);
const flag = (name) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
const project = resolve(flag("project") ?? "");
const reportFile = flag("report");
const screenshots = flag("screenshots");
const packageDir = join(project, "node_modules", "hooklens");
const CHROMIUM = "/usr/bin/chromium";

const checks = [];
function record(runtime, name, ok, detail) {
  const status = ok === undefined ? "skip" : ok ? "ok" : "FAIL";
  checks.push({ runtime, name, status, detail });
  console.log(`${status.padEnd(4)} ${runtime}/${name}${detail ? `  ${detail}` : ""}`);
}
const recordComparison = (runtime, prefix, actual, expected) => {
  for (const c of compareSmoke(actual, expected)) record(runtime, `${prefix}${c.name}`, c.ok, c.detail);
};
const skipAll = (runtime, names, why) => names.forEach((n) => record(runtime, n, undefined, why));
const SMOKE_SECTIONS = ["forward", "runWithCache", "sweepAllSources", "sweepExact"];

/** Runs a command in the project; the parsed JSON of its last stdout line. */
function runJson(command, argv, label) {
  const r = spawnSync(command, argv, { cwd: project, encoding: "utf8", timeout: 180_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${label} exited with ${r.status ?? r.signal}: ${(r.stderr || r.error?.message || "").trim().split("\n").slice(-5).join(" | ")}`);
  return JSON.parse(r.stdout.trim().split("\n").pop());
}

function binary(name) {
  const bin = join(project, "node_modules", ".bin", name);
  if (!existsSync(bin)) return undefined;
  const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 30_000 });
  return r.status === 0 ? { bin, version: r.stdout.trim().split("\n")[0] } : undefined;
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().once("error", fail).listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Resolves once `url` answers (any status), or rejects after `ms`. */
async function waitForHttp(url, ms, child) {
  const until = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode} before answering`);
    try {
      await fetch(url, { method: "HEAD" });
      return;
    } catch {
      if (Date.now() > until) throw new Error(`${url} did not answer within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function start(command, argv, options) {
  const child = spawn(command, argv, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => { log += d; });
  child.stderr.on("data", (d) => { log += d; });
  return { child, log: () => log, stop: () => new Promise((ok) => { if (child.exitCode !== null) ok(); else { child.once("exit", ok); child.kill("SIGTERM"); } }) };
}

// ---- the package as installed -----------------------------------------------------------

const installed = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
const missing = ["dist/index.js", "dist/index.d.ts", "dist/worker.js", "dist/worker.d.ts", "build/hooklens-simd.wasm", "build/hooklens-relaxed.wasm",
  "build/hooklens-simd-mt.wasm", "build/hooklens-relaxed-mt.wasm"]
  .filter((f) => !existsSync(join(packageDir, f)));
const extra = ["src", "test", "assembly", "bench", "examples", "dist/index.js.map"].filter((f) => existsSync(join(packageDir, f)));
record("package", "contents", missing.length === 0 && extra.length === 0,
  missing.length || extra.length ? `missing ${missing.join(", ") || "-"}; unwanted ${extra.join(", ") || "-"}` : `hooklens ${installed.version}: entries, types and the four .wasm builds, nothing else`);

// ---- Node: the reference ------------------------------------------------------------------

for (const f of ["smoke.mjs", "runtime-smoke.mjs", "page-views.mjs", "text-model.mjs"]) copyFileSync(join(here, f), join(project, f));
// The page's own computations, so Node's numbers for its views come from the same code.
copyFileSync(join(repo, "examples", "browser", "analyses.js"), join(project, "analyses.mjs"));
let expected;
try {
  expected = runJson(process.execPath, ["runtime-smoke.mjs", "--patch"], "node");
  const planted = expected.sweepAllSources.normalized[((0 * 4 + 2) * 2 + 1) * 4 + 1]; // src 0.2 -> dst 1.1
  const ok = expected.forward.metricClean > 1 && expected.forward.metricCorrupted < -1 && planted > 0.5;
  record("node", "reference", ok, `variant ${expected.variant}; logit diff clean ${expected.forward.metricClean.toFixed(4)}, corrupted ${expected.forward.metricCorrupted.toFixed(4)}; planted path 0.2→1.1 k normalized ${planted.toFixed(4)}`);
  // The other build on Node too, so both kernel variants are held to the same numbers.
  const relaxed = runJson(process.execPath, ["--experimental-wasm-relaxed-simd", "runtime-smoke.mjs"], "node (relaxed)");
  recordComparison("node-relaxed", "", relaxed, withoutPatch(expected));
} catch (e) {
  record("node", "reference", false, e.message);
}

function withoutPatch(x) {
  const { patch: _p, page: _g, circuit: _c, views: _v, ...rest } = x;
  return rest;
}

// ---- Deno and Bun: the same script ----------------------------------------------------------

for (const [runtime, argv] of [["deno", ["run", "--allow-read", "runtime-smoke.mjs"]], ["bun", ["runtime-smoke.mjs"]]]) {
  const bin = binary(runtime);
  if (bin === undefined) { skipAll(runtime, SMOKE_SECTIONS, `the npm package ${runtime} is not installed or does not run here`); continue; }
  if (expected === undefined) { skipAll(runtime, SMOKE_SECTIONS, "no Node reference"); continue; }
  try {
    const actual = runJson(bin.bin, argv, runtime);
    console.log(`     ${runtime} ${bin.version}, kernels ${actual.variant}`);
    recordComparison(runtime, "", actual, withoutPatch(expected));
  } catch (e) {
    record(runtime, "run", false, e.message);
  }
}

// ---- Threads: Node, Deno and Bun run two-thread engines with the one-thread bits ------------

for (const [runtime, cmd, argv] of [
  ["node", process.execPath, ["runtime-smoke.mjs", "--threads"]],
  ["deno", binary("deno")?.bin, ["run", "--allow-read", "runtime-smoke.mjs", "--threads"]],
  ["bun", binary("bun")?.bin, ["runtime-smoke.mjs", "--threads"]],
]) {
  if (cmd === undefined) { skipAll(runtime, ["threads"], `the npm package ${runtime} is not installed or does not run here`); continue; }
  try {
    const t = runJson(cmd, argv, `${runtime} --threads`);
    record(runtime, "threads", t.threads === 2 && t.identical === true,
      `${t.threads} thread(s)${t.note ? ` (${t.note})` : ""}; a split 64×768×300 gemm ${t.identical ? "gives" : "does NOT give"} the one-thread bits`);
  } catch (e) {
    record(runtime, "threads", false, e.message);
  }
}

// ---- workerd: a Worker answering POST /patch -----------------------------------------------

await (async () => {
  const names = [...SMOKE_SECTIONS, ...PATCH_REQUESTS.map((_, i) => `POST /patch #${i + 1}`)];
  const bin = binary("workerd");
  if (bin === undefined) return skipAll("workerd", names, "the npm package workerd is not installed or does not run here");
  if (expected === undefined) return skipAll("workerd", names, "no Node reference");
  const port = await freePort();
  const hl = await import(pathToFileURL(join(packageDir, installed.exports["."].default)).href);
  const config = writeWorkerdProject({ dir: join(project, "worker"), packageDir, here, demoFiles: hl.demoModelFiles(), port });
  const server = start(bin.bin, ["serve", config], { cwd: project });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(base, 60_000, server.child);
    console.log(`     workerd ${bin.version} on ${base}`);
    const post = async (path, body) => {
      const res = await fetch(base + path, { method: "POST", body: JSON.stringify(body ?? {}), headers: { "content-type": "application/json" } });
      const json = await res.json();
      if (!res.ok) throw new Error(`POST ${path}: HTTP ${res.status}: ${json.error ?? JSON.stringify(json)}`);
      return json;
    };
    recordComparison("workerd", "", await post("/smoke"), withoutPatch(expected));
    for (const [i, request] of PATCH_REQUESTS.entries()) {
      const [c] = compareSmoke({ answer: await post("/patch", request) }, { answer: expected.patch[i] });
      record("workerd", `POST /patch #${i + 1} (${request.component}, ${request.mode})`, c.ok, c.detail);
    }
  } catch (e) {
    record("workerd", "run", false, `${e.message}; workerd said: ${server.log().trim().split("\n").slice(-5).join(" | ")}`);
  } finally {
    await server.stop();
  }
})();

// ---- Chromium: the page ---------------------------------------------------------------------

await (async () => {
  const names = [...SMOKE_SECTIONS, "page"];
  if (!existsSync(CHROMIUM)) return skipAll("chromium", names, `${CHROMIUM} is not installed`);
  if (!existsSync(join(project, "node_modules", "playwright-core"))) return skipAll("chromium", names, "playwright-core is not installed");
  if (expected?.views === undefined) return skipAll("chromium", names, "no Node reference");
  const { chromium } = await import(pathToFileURL(join(project, "node_modules", "playwright-core", "index.mjs")).href);
  const { runBrowser } = await import("./browser.mjs");
  // The GPT-2-shaped model with a tokenizer the page loads by URL, written by the package itself.
  const hl = await import(pathToFileURL(join(packageDir, installed.exports["."].default)).href);
  const { textModelFiles } = await import(pathToFileURL(join(project, "text-model.mjs")).href);
  const modelDir = join(project, "models", "tiny-gpt2-text");
  mkdirSync(modelDir, { recursive: true });
  for (const [name, bytes] of Object.entries(textModelFiles(hl))) writeFileSync(join(modelDir, name), bytes);
  // A GPT-2-shaped config.json of about 2.4 billion parameters and no weights: refused from its config alone.
  mkdirSync(join(project, "models", "too-big"), { recursive: true });
  writeFileSync(join(project, "models", "too-big", "config.json"), JSON.stringify({ architectures: ["GPT2LMHeadModel"], model_type: "gpt2",
    n_layer: 48, n_head: 32, n_embd: 2048, n_positions: 1024, vocab_size: 50257, layer_norm_epsilon: 1e-5, activation_function: "gelu_new" }));
  const port = await freePort();
  const server = start(process.execPath, [join(repo, "examples", "browser", "serve.mjs"), "--port", String(port), "--package", packageDir,
    "--models", join(project, "models")], {});
  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitForHttp(url, 20_000, server.child);
    const r = await runBrowser({ chromium, executablePath: CHROMIUM, url, smokeSource: readFileSync(join(here, "smoke.mjs"), "utf8"), screenshotDir: screenshots, expected });
    const version = spawnSync(CHROMIUM, ["--version"], { encoding: "utf8" }).stdout.trim();
    console.log(`     ${version}, kernels ${r.smoke?.variant}`);
    if (r.smoke === undefined) record("chromium", "smoke", false, "the smoke suite did not run in the page");
    else recordComparison("chromium", "", r.smoke, withoutPatch(expected));
    for (const c of r.checks) record("chromium", c.name, c.ok, c.detail);
    record("chromium", "no uncaught errors", r.errors.length === 0, r.errors.length ? r.errors.slice(0, 3).join(" | ") : "none in the page, the worker or the console");
    if (screenshots) console.log(`     screenshots: ${screenshots}`);
  } catch (e) {
    record("chromium", "run", false, `${e.message.split("\n")[0]}; server said: ${server.log().trim().split("\n").slice(-3).join(" | ")}`);
  } finally {
    await server.stop();
  }
})();

const count = (s) => checks.filter((c) => c.status === s).length;
const summary = { passed: count("ok"), failed: count("FAIL"), skipped: count("skip"), checks };
console.log(`runtimes: ${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
if (reportFile) writeFileSync(reportFile, JSON.stringify(summary, null, 2));
process.exit(summary.failed > 0 ? 1 : 0);
