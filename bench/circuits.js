// Edge-level circuits on a GPT-2-small-architecture model (random weights written by the bench),
// batch 8 x 16: EAP over every edge and EAP-IG with 5 steps, in forward-pass equivalents (their
// time over one forward's); exact edge patching of the 100 edges EAP ranks highest, planned
// against one forward per edge (TransformerLens's loop); and how EAP and EAP-IG rank those 100
// against the exact scores (Spearman).
//
//   node --experimental-wasm-relaxed-simd bench/run.js circuits [--quick]
import { pathToFileURL } from "node:url";
import { Engine, EdgeGraph, HookedTransformer, getEdgeAttrEap, getEdgeAttrEapIg, getEdgePatchExact, logitDiff, spearman } from "../dist/index.js";
import { gpt2SmallWeights, randomTokens } from "./gpt2-small.js";

/** Options: `quick` (batch 2 x 16, 20 edges), `threads` (default [1, 2]). */
export async function run(options = {}) {
  const [batch, pos, nEdges] = options.quick ? [2, 16, 20] : [8, 16, 100];
  const { cfg, weights } = gpt2SmallWeights();
  const rows = [];
  for (const threads of options.threads ?? [1, 2]) {
    const engine = await Engine.create({ variant: "relaxed", threads });
    const model = new HookedTransformer({ ...cfg, useSplitQkvInput: true, useHookMlpIn: true }, weights, engine);
    const clean = randomTokens(batch, pos, 5);
    const corrupted = clean.map((row, b) => row.map((t, p) => (p === 3 || p === 7 ? (t + 1 + b) % 50257 : t)));
    const metric = logitDiff({ correct: clean.map((row) => row[pos - 1]), incorrect: corrupted.map((row) => row[pos - 2]) });
    const cc = model.runWithCache(clean).cache;
    const rc = model.runWithCache(corrupted).cache;
    const time = async (fn) => { const t = performance.now(); const r = await fn(); return [performance.now() - t, r]; };
    model.forward(corrupted);
    const [forwardMs] = await time(() => model.forward(corrupted));
    await getEdgeAttrEap(model, corrupted, cc, rc, metric); // packs the transposed weights once
    const [eapMs, eap] = await time(() => getEdgeAttrEap(model, corrupted, cc, rc, metric));
    const [igMs, ig] = await time(() => getEdgeAttrEapIg(model, corrupted, cc, rc, metric, { steps: 5 }));
    const graph = new EdgeGraph(model.cfg);
    const ranked = [];
    graph.edgeMask.forEach((x, i) => { if (x) ranked.push(i); });
    ranked.sort((a, b) => Math.abs(eap.scores.data[b] - eap.baseline) - Math.abs(eap.scores.data[a] - eap.baseline));
    const top = ranked.slice(0, nEdges).map((f) => [Math.floor(f / graph.nReaders), f % graph.nReaders]);
    const [plannedMs, exact] = await time(() => getEdgePatchExact(model, corrupted, cc, rc, metric, { edges: top }));
    let naiveMs;
    if (threads === 1) [naiveMs] = await time(() => getEdgePatchExact(model, corrupted, cc, rc, metric, { edges: top, strategy: "naive" }));
    const pick = (r) => top.map(([u, v]) => r.scores.data[u * graph.nReaders + v]);
    const row = {
      suite: "circuits", threads, batch, pos, edges: ranked.length, forwardMs, eapMs, eapForwards: eapMs / forwardMs, eapIg5Ms: igMs,
      eapIg5Forwards: igMs / forwardMs, verified: nEdges, exactPlannedMs: plannedMs, exactNaiveMs: naiveMs,
      plannedSpeedup: naiveMs === undefined ? undefined : naiveMs / plannedMs,
      spearmanEap: spearman(pick(eap), pick(exact)), spearmanEapIg5: spearman(pick(ig), pick(exact)),
    };
    rows.push(row);
    console.log(`${threads} thread(s), ${batch}x${pos}, ${ranked.length} edges: forward ${forwardMs.toFixed(0)} ms; EAP ${eapMs.toFixed(0)} ms ` +
      `(${row.eapForwards.toFixed(1)} forwards); EAP-IG(5) ${igMs.toFixed(0)} ms (${row.eapIg5Forwards.toFixed(1)} forwards); ` +
      `exact ${nEdges} edges planned ${plannedMs.toFixed(0)} ms${naiveMs === undefined ? "" : `, one forward each ${naiveMs.toFixed(0)} ms (x${row.plannedSpeedup.toFixed(1)})`}; ` +
      `Spearman vs exact: EAP ${row.spearmanEap.toFixed(3)}, EAP-IG(5) ${row.spearmanEapIg5.toFixed(3)}`);
    model.dispose();
    engine.dispose();
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes("--quick") });
}
