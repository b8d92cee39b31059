// Runs benchmark suites and saves each one's rows to bench/results/<suite>.json.
//
//   node --experimental-wasm-relaxed-simd bench/run.js [suite ...] [--quick]
//
// With no suite names every suite runs but those in ON_REQUEST. --quick (or BENCH_QUICK=1) asks each
// suite for a short smoke run, saved as bench/results/<suite>.quick.json (not committed). A suite is a module exporting
// `run({ quick, args })`, which prints its own table and returns JSON-able rows;
// adding one is one line in SUITES.
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";

const SUITES = {
  gemm: () => import("./gemm.js"),
  builds: () => import("./builds.js"),
  forward: () => import("./forward.js"),
  patching: () => import("./patching.js"),
  kernels: () => import("./kernels.js"),
  llama: () => import("./llama.js"),
  threads: () => import("./threads.js"),
  peers: () => import("./peers/model.js"),
  fusion: () => import("./fusion.js"),
  stream: () => import("./stream.js"),
  chunking: () => import("./chunking.js"),
  backward: () => import("./backward.js"),
  versions: () => import("./versions.js"),
  circuits: () => import("./circuits.js"),
  families: () => import("./families.js"),
  bf16: () => import("./bf16.js"),
  "half-accuracy": () => import("./half-accuracy.js"),
  "llama-1b": () => import("./llama-1b.js"),
  "half-memory": async () => ({ run: (await import("./llama-1b.js")).runQwenHalf }),
};

const args = process.argv.slice(2);
const quick = args.includes("--quick") || process.env.BENCH_QUICK === "1";
const asked = args.filter((a) => !a.startsWith("--"));
/** Suites that run only when named: they need arguments (builds, versions: --base=DIR) or much memory (llama-1b). */
const ON_REQUEST = new Set(["builds", "versions", "llama-1b", "half-memory"]);
const unknown = asked.filter((name) => !(name in SUITES));
if (unknown.length > 0) {
  console.error(`unknown suite(s): ${unknown.join(", ")}; available: ${Object.keys(SUITES).join(", ")}`);
  process.exit(2);
}

const resultsDir = new URL("./results/", import.meta.url);
await mkdir(resultsDir, { recursive: true });
for (const name of asked.length > 0 ? asked : Object.keys(SUITES).filter((s) => !ON_REQUEST.has(s))) {
  console.log(`\n## ${name}${quick ? " (quick)" : ""}\n`);
  const suite = await SUITES[name]();
  const rows = await suite.run({ quick, args });
  const record = {
    suite: name,
    date: new Date().toISOString(),
    command: `node ${process.execArgv.join(" ")} bench/run.js ${args.join(" ")}`.replace(/\s+/g, " ").trim(),
    quick,
    node: process.version,
    cpu: os.cpus()[0]?.model ?? "unknown",
    rows,
  };
  // A quick run is a smoke test: its rows go beside the committed full results, not over them.
  await writeFile(new URL(`${name}${quick ? ".quick" : ""}.json`, resultsDir), `${JSON.stringify(record, null, 2)}\n`);
}
