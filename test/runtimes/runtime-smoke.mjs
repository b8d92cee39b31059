// Runs the smoke suite on the installed package in whichever runtime runs this file
// (node, deno run, bun), and prints the numbers as one JSON line. With --threads, only the
// two-thread check (threadCheck in smoke.mjs). With --patch, also the
// answers to the workerd test's POST /patch requests and the browser page's sweep, circuit and
// views (Node's reference for them).
import * as hl from "hooklens";
import { circuitFind, PAGE_REQUEST, PATCH_REQUESTS, patchSweep, smoke, threadCheck } from "./smoke.mjs";

const argv = globalThis.Deno?.args ?? globalThis.process?.argv.slice(2) ?? [];
if (argv.includes("--threads")) {
  console.log(JSON.stringify(await threadCheck(hl)));
  // Helper threads never hold a process open, but Deno and Bun are told to go explicitly.
  globalThis.Deno?.exit(0);
  globalThis.process?.exit(0);
}
const engine = await hl.Engine.create();
const out = await smoke(hl, engine);
if (argv.includes("--patch")) {
  const model = await hl.HookedTransformer.fromPretrained(hl.demoModelFiles(), { engine });
  out.patch = [];
  for (const request of PATCH_REQUESTS) out.patch.push(await patchSweep(hl, model, request));
  out.page = await patchSweep(hl, model, PAGE_REQUEST);
  out.circuit = await circuitFind(hl, model);
  // Imported only here: Deno and Bun run this file without the page's modules' tokenizer.
  const { pageViews } = await import("./page-views.mjs");
  out.views = await pageViews(hl, engine);
}
console.log(JSON.stringify(out));
