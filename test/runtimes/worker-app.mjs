// The Cloudflare Worker of the workerd test: imports the package (its "workerd" export),
// loads the demo model from the files bundled with the Worker, and answers
//   POST /patch  {component, mode, prompts}  -> an all-sources direct path sweep, as PatchResult JSON
//   POST /smoke                              -> the smoke suite's numbers
import * as hl from "hooklens";
import configJson from "./demo-model/config.json";
import safetensors from "./demo-model/model.safetensors";
import { patchSweep, smoke } from "./smoke.mjs";

let ready;

function load() {
  ready ??= (async () => {
    const engine = hl.createWorkerEngine();
    const files = { "config.json": new TextEncoder().encode(configJson), "model.safetensors": new Uint8Array(safetensors) };
    return { engine, files, model: await hl.HookedTransformer.fromPretrained(files, { engine }) };
  })();
  return ready;
}

export default {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (request.method !== "POST") return new Response("POST /patch or /smoke\n", { status: 405 });
    try {
      const { engine, files, model } = await load();
      if (pathname === "/patch") return Response.json(await patchSweep(hl, model, await request.json()));
      if (pathname === "/smoke") return Response.json(await smoke(hl, engine, files));
      return new Response("not found\n", { status: 404 });
    } catch (e) {
      return Response.json({ error: String(e?.stack ?? e) }, { status: 500 });
    }
  },
};
