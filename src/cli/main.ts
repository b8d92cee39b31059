#!/usr/bin/env -S node --experimental-wasm-relaxed-simd
// The `hooklens` executable: wires the process's streams, environment and Ctrl-C to runCli.
// (Node 20 runs relaxed SIMD only behind the flag above, which NODE_OPTIONS refuses; without
// it the engine falls back to the plain SIMD build.)

import { runCli } from "./cli.js";

const controller = new AbortController();
let interrupts = 0;
process.on("SIGINT", () => {
  // The first Ctrl-C aborts the sweep cleanly; a second one exits at once.
  if (++interrupts > 1) process.exit(130);
  controller.abort();
});

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: controller.signal,
});
process.exitCode = code;
