// `npm run fuzz`: the long fuzz run (test/fuzz/long.fuzz.ts), outside the regular suite.
// FUZZ_CASES (default 100000), FUZZ_SEED (default: the time) and FUZZ_TARGETS (comma-separated
// name prefixes) steer it; the report goes to stdout and bench/results/fuzz.json.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: fileURLToPath(new URL("../..", import.meta.url)),
    include: ["test/fuzz/long.fuzz.ts"],
    pool: "forks",
    execArgv: ["--experimental-wasm-relaxed-simd", "--expose-gc"],
    testTimeout: 3 * 60 * 60 * 1000,
    hookTimeout: 120_000,
  },
});
