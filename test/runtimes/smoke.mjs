// The runtime smoke suite: the same computation in every runtime (Node, Deno, Bun, workerd,
// Chromium), returning plain numbers that compare.mjs checks against Node's. It uses only the
// public API of the installed package, handed in as `hl`, so it imports nothing itself.

/** The fixed inputs every runtime runs on. */
export const SMOKE_PROMPTS = { batch: 3, halfLength: 6, seed: 7 };

/**
 * Loads the demo model from its Hugging Face files (bytes, no filesystem), then a forward, a
 * runWithCache and direct path sweeps. `files` defaults to `hl.demoModelFiles()`; a Worker
 * passes the bytes bundled with it.
 */
export async function smoke(hl, engine, files = hl.demoModelFiles()) {
  const model = await hl.HookedTransformer.fromPretrained(files, { engine });
  const p = hl.demoPrompts(SMOKE_PROMPTS);
  const metric = hl.logitDiff({ correct: p.correct, incorrect: p.incorrect });
  const V = model.cfg.dVocab;
  const P = p.clean[0].length;

  const logits = model.forward(p.clean).logits; // [batch, pos, vocab]
  const lastRow0 = Array.from(logits.data.subarray((P - 1) * V, P * V));

  const { cache: clean } = model.runWithCache(p.clean);
  const { cache: corrupted } = model.runWithCache(p.corrupted);
  const pattern = clean.get("blocks.1.attn.hook_pattern"); // [batch, heads, pos, pos]
  const inductionRow = (1 * P + (P - 1)) * P; // row 0, head 1, last query
  const sum = (t) => t.data.reduce((a, b) => a + b, 0);

  const all = await hl.getActPatchDirectPathAllSources(model, p.corrupted, clean, corrupted, metric, { component: "k" });
  const exact = await hl.getActPatchDirectPath(model, p.corrupted, clean, corrupted, metric,
    { srcLayer: 0, srcHead: 2, component: "k", mode: "exact" });

  return {
    variant: engine.variant,
    forward: {
      shape: [...logits.shape],
      metricClean: metric(logits),
      metricCorrupted: metric(model.forward(p.corrupted).logits),
      lastLogitsRow0: lastRow0,
    },
    runWithCache: {
      cachedNames: clean.keys().length,
      inductionPattern: Array.from(pattern.data.subarray(inductionRow, inductionRow + P)),
      ln1Scale0: Array.from(clean.get("blocks.0.ln1.hook_scale").data.subarray(0, P)),
      residPostSum: sum(clean.get(`blocks.${model.cfg.nLayers - 1}.hook_resid_post`)),
    },
    sweepAllSources: resultNumbers(all),
    sweepExact: resultNumbers(exact),
  };
}

function resultNumbers(result) {
  const json = result.toJSON();
  return { op: json.op, shape: json.shape, scores: json.scores, baseline: json.baseline, clean: json.clean, normalized: json.normalized };
}

/** The requests the workerd test sends to POST /patch; Node answers the same ones. */
export const PATCH_REQUESTS = [
  { component: "k", mode: "linear", prompts: { batch: 4, halfLength: 8, seed: 3 } },
  { component: "v", mode: "exact", prompts: { batch: 2, halfLength: 5, seed: 11 } },
];

/** The answer to POST /patch: an all-sources direct path sweep on the demo prompts, as PatchResult JSON. */
export async function patchSweep(hl, model, request) {
  const p = hl.demoPrompts(request.prompts);
  const metric = hl.logitDiff({ correct: p.correct, incorrect: p.incorrect });
  const { cache: clean } = model.runWithCache(p.clean);
  const { cache: corrupted } = model.runWithCache(p.corrupted);
  const result = await hl.getActPatchDirectPathAllSources(model, p.corrupted, clean, corrupted, metric,
    { component: request.component, mode: request.mode });
  return result.toJSON();
}

/**
 * The circuit the browser page's circuit view finds on the demo model with the demo prompts:
 * EAP-IG (5 steps) ranking, the top 20 verified exactly, the smallest circuit of faithfulness 0.8.
 */
export async function circuitFind(hl, model) {
  const p = hl.demoPrompts();
  const metric = hl.logitDiff({ correct: p.correct, incorrect: p.incorrect });
  const { cache: clean } = model.runWithCache(p.clean);
  const { cache: corrupted } = model.runWithCache(p.corrupted);
  const found = await hl.discoverCircuit(model, p.corrupted, clean, corrupted, metric, CIRCUIT_OPTIONS);
  return { edges: found.edges, metric: found.metric, faithfulness: found.faithfulness };
}

export const CIRCUIT_OPTIONS = { method: "eap-ig", steps: 5, verify: 20, target: 0.8 };

/** The sweep the browser page runs by default: demo prompts, every source head, keys, linear. */
export const PAGE_REQUEST = { component: "k", mode: "linear", prompts: {} };

/**
 * A two-thread engine next to a one-thread one: how many threads really run here (and why not,
 * if fewer), and whether a product big enough to be split gives the same bits.
 */
export async function threadCheck(hl) {
  const one = await hl.Engine.create();
  const two = await hl.Engine.create({ threads: 2 });
  const [m, n, k] = [64, 768, 300];
  const outs = [];
  for (const e of [one, two]) {
    const a = e.upload(Float32Array.from({ length: m * k }, (_, i) => Math.sin(i)));
    const b = e.upload(Float32Array.from({ length: k * n }, (_, i) => Math.cos(i)));
    const c = e.alloc(m * n);
    e.kernels.gemm(a, k, b, n, c, n, 0, m, n, k, 0, 0);
    outs.push(e.download(c, m * n));
  }
  const result = { threads: two.threads, note: two.threadsNote ?? null, identical: outs[0].every((x, i) => Object.is(x, outs[1][i])) };
  two.dispose();
  return result;
}
