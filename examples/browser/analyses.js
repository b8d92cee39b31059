// The page's computations: plain functions of the library (`hl`), a loaded model and a request,
// each returning plain JSON for the page to draw. The Web Worker runs them in the browser; the
// tests run the same functions in Node and hold the page's numbers to Node's.

/**
 * What a token looks like on an axis or a chip: its text (spaces shown as ·), its vocabulary
 * form when it is part of a character (a lone byte of a multi-byte letter decodes to �), or
 * `#id` without a tokenizer.
 */
export function tokenLabels(model, ids) {
  const tokenizer = model.tokenizer;
  if (tokenizer === undefined) return ids.map((id) => `#${id}`);
  return ids.map((id) => {
    const text = tokenizer.decode([id]);
    return text.includes("\uFFFD") ? tokenizer.idToToken?.(id) ?? visible(text) : visible(text);
  });
}

/** A token's text with its spaces and line breaks made visible. */
export function visible(text) {
  return text.replace(/ /g, "·").replace(/\n/g, "⏎").replace(/\t/g, "⇥") || "∅";
}

/** The most pattern values the attention view sends to the page (64 MB as numbers in a message). */
export const MAX_PATTERN_VALUES = 16 * 2 ** 20;

/**
 * Every head's attention pattern on one prompt: `patterns[l][h]` is the [dest × src] matrix,
 * row-major (row = the position attending, column = the position attended to).
 */
export function attentionPatterns(hl, model, { tokens, row = 0 }) {
  const { nLayers, nHeads } = model.cfg;
  const ids = tokens[row];
  // Every head's [P × P] goes to the page: keep it to 16M numbers (GPT-2 small: 341 tokens).
  const maxTokens = Math.floor(Math.sqrt(MAX_PATTERN_VALUES / (nLayers * nHeads)));
  if (ids.length > maxTokens) {
    throw new Error(`the attention view shows prompts of up to ${maxTokens} tokens for ${nLayers} × ${nHeads} heads; this one has ${ids.length}`);
  }
  const { cache } = model.runWithCache([ids], { namesFilter: (name) => name.endsWith("attn.hook_pattern") });
  const patterns = [];
  for (let l = 0; l < nLayers; l++) {
    const pattern = cache.get(`blocks.${l}.attn.hook_pattern`); // [1, H, P, P]
    const P = ids.length;
    patterns.push(Array.from({ length: nHeads }, (_, h) => Array.from(pattern.data.subarray(h * P * P, (h + 1) * P * P))));
  }
  return { kind: "patterns", row, labels: tokenLabels(model, ids), ids, nLayers, nHeads, patterns };
}

/**
 * The logit lens: the residual stream before each layer (and after the last), put through the
 * final norm on its own and unembedded (the library's accumulatedResid with applyLn, then
 * model.unembed). For prompt `row`, the top `k` tokens at every layer and position with their
 * probabilities; for every layer, the mean over prompts of logit[correct] − logit[incorrect] at
 * the last position (the metric the patching views use).
 */
export function logitLens(hl, model, { tokens, correct, incorrect, row = 0, k = 5, inclMid = false }) {
  const names = (name) => /hook_resid_(pre|mid|post)$/.test(name);
  const { cache } = model.runWithCache(tokens, { namesFilter: names });
  const [stack, layerLabels] = cache.accumulatedResid(undefined, { applyLn: true, inclMid, returnLabels: true }); // [C, B, P, D]
  const [C, B, P] = stack.shape;
  // One layer's logits at a time ([P, V]: 20 MB for GPT-2 at 100 tokens), so long prompts and
  // large vocabularies never hold every layer's logits at once.
  const top = [];
  for (let c = 0; c < C; c++) {
    const logits = model.unembed(stack.select(0, c).select(0, row)); // [P, V]
    const V = logits.shape[1];
    top.push(Array.from({ length: P }, (_, p) => topTokens(logits.data.subarray(p * V, (p + 1) * V), k)));
  }
  // The metric needs only each prompt's last position: [C, B, V].
  const last = model.unembed(stack.select(2, P - 1));
  const V = last.shape[2];
  const logitDiff = [];
  for (let c = 0; c < C; c++) {
    let sum = 0;
    for (let b = 0; b < B; b++) {
      const at = (c * B + b) * V;
      sum += last.data[at + correct[b]] - last.data[at + incorrect[b]];
    }
    logitDiff.push(sum / B);
  }
  const label = (id) => tokenLabels(model, [id])[0];
  for (const perPos of top) for (const cell of perPos) for (const t of cell) t.label = label(t.id);
  return {
    kind: "lens", row, layerLabels, labels: tokenLabels(model, tokens[row]), ids: tokens[row], top, logitDiff,
    correct: correct.map(label), incorrect: incorrect.map(label),
  };
}

/** The k largest logits of one vocabulary row with their softmax probabilities. */
function topTokens(row, k) {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - max);
  const best = []; // ascending by logit, at most k
  for (let i = 0; i < row.length; i++) {
    if (best.length === k && row[i] <= best[0].logit) continue;
    const entry = { id: i, logit: row[i] };
    let j = 0;
    while (j < best.length && best[j].logit < entry.logit) j++;
    best.splice(j, 0, entry);
    if (best.length > k) best.shift();
  }
  return best.reverse().map((t) => ({ id: t.id, logit: t.logit, prob: Math.exp(t.logit - max) / z }));
}

/** The activation patching sweeps the page offers, by name. */
export const ACT_PATCH_KINDS = {
  resid_pre: { title: "residual stream (resid_pre) by layer × position", sweep: "getActPatchResidPre" },
  head_out_all_pos: { title: "head outputs, all positions (layer × head)", sweep: "getActPatchAttnHeadOutAllPos" },
  head_out_by_pos: { title: "head outputs by position (layer.head × position)", sweep: "getActPatchAttnHeadOutByPos" },
};

/**
 * Activation patching (TransformerLens's patching.py): each activation of the clean run patched
 * into the corrupted run, one at a time; the metric is the mean logit difference. Returns the
 * library's PatchResult as JSON (scores, normalized, baseline, clean) plus the axis labels.
 */
export async function activationPatching(hl, model, { clean, corrupted, correct, incorrect, kind, signal, onProgress }) {
  const spec = ACT_PATCH_KINDS[kind];
  if (spec === undefined) throw new Error(`unknown activation patching kind ${JSON.stringify(kind)}; one of ${Object.keys(ACT_PATCH_KINDS).join(", ")}`);
  const metric = hl.logitDiff({ correct, incorrect });
  const { cache: cleanCache } = model.runWithCache(clean);
  const result = await hl[spec.sweep](model, corrupted, cleanCache, metric, { signal, onProgress });
  return { kind: "act", patchKind: kind, title: spec.title, labels: tokenLabels(model, clean[0]), result: result.toJSON() };
}

/** Direct path patching from one source head, or from every source (`src` "all"), into q, k or v. */
export async function directPath(hl, model, { clean, corrupted, correct, incorrect, src, component, mode, signal, onProgress }) {
  const metric = hl.logitDiff({ correct, incorrect });
  const { cache: cleanCache } = model.runWithCache(clean);
  const { cache: corruptedCache } = model.runWithCache(corrupted);
  const options = { component, mode, signal, onProgress };
  const result = src === "all"
    ? await hl.getActPatchDirectPathAllSources(model, corrupted, cleanCache, corruptedCache, metric, options)
    : await hl.getActPatchDirectPath(model, corrupted, cleanCache, corruptedCache, metric, { ...options, srcLayer: src[0], srcHead: src[1] });
  return { kind: "direct", result: result.toJSON() };
}

/** Rank every edge by EAP-IG, patch the top exactly, keep the smallest faithful circuit, and draw it. */
export async function findCircuit(hl, model, { clean, corrupted, correct, incorrect, options, signal, onProgress }) {
  const metric = hl.logitDiff({ correct, incorrect });
  const { cache: cleanCache } = model.runWithCache(clean);
  const { cache: corruptedCache } = model.runWithCache(corrupted);
  const found = await hl.discoverCircuit(model, corrupted, cleanCache, corruptedCache, metric, { ...options, signal, onProgress });
  const svg = hl.renderCircuitSvg(hl.discoveredCircuitDrawing(found, model.cfg, options.method));
  return { kind: "circuit", found, svg };
}
