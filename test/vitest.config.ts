import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: fileURLToPath(new URL("..", import.meta.url)),
    include: ["test/**/*.test.ts"],
    pool: "forks",
    // Node 20 runs relaxed SIMD only behind this flag (it is refused in NODE_OPTIONS);
    // with it, the tests exercise both WASM variants. --expose-gc lets a test check that a
    // dropped threaded engine's helpers stop.
    execArgv: ["--experimental-wasm-relaxed-simd", "--expose-gc"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
