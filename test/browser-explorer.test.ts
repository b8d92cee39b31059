// The browser explorer's own code, in Node: the computations its worker runs (analyses.js) held
// to the library computed another way, the prompt checks' messages, the figures' cell mapping
// and SVG, and the URL hash. The page itself runs in Chromium in test/runtimes (run.mjs).
import { beforeAll, describe, expect, test } from "vitest";
import * as hl from "../src/index.js";
import { Engine, HookedTransformer, Tensor } from "../src/index.js";
// @ts-expect-error: plain JavaScript modules of the page, without type declarations
import * as analyses from "../examples/browser/analyses.js";
// @ts-expect-error: see above
import { figureSvg, layoutOf } from "../examples/browser/figure.js";
// @ts-expect-error: see above
import { fromHash, toHash } from "../examples/browser/page-state.js";
// @ts-expect-error: see above
import { checkTokens, formItems, splitRows } from "../examples/browser/prompts.js";
// @ts-expect-error: see above
import { patchFigure } from "../examples/browser/views.js";
// @ts-expect-error: see above
import { textModelFiles, textTokenizerJson } from "./runtimes/text-model.mjs";

const IOI = {
  clean: "When Mary and John went to the store, John gave a drink to",
  corrupted: "When Mary and John went to the store, Mary gave a drink to",
};

let engine: Engine;
let model: HookedTransformer;
let tokens: { clean: number[][]; corrupted: number[][]; correct: number[]; incorrect: number[] };

beforeAll(async () => {
  engine = await Engine.create();
  model = await HookedTransformer.fromPretrained(textModelFiles(hl), { engine });
  tokens = {
    clean: model.toTokens([IOI.clean, IOI.clean.replace("store", "park")]),
    corrupted: model.toTokens([IOI.corrupted, IOI.corrupted.replace("store", "park")]),
    correct: [model.toSingleToken(" Mary"), model.toSingleToken(" Mary")],
    incorrect: [model.toSingleToken(" John"), model.toSingleToken(" John")],
  };
});

describe("the text model fixture", () => {
  test("its tokenizer makes the IOI sentence's words single tokens, BOS first", () => {
    expect(model.toStrTokens(IOI.clean)).toEqual(["<|endoftext|>", "When", " Mary", " and", " John", " went", " to", " the", " store", ",", " John", " gave", " a", " drink", " to"]);
    expect(model.cfg.dVocab).toBe(Object.keys(textTokenizerJson().model.vocab).length);
  });
});

describe("analyses.js (what the page's worker computes)", () => {
  test("attentionPatterns: each head's [dest × src] pattern of the chosen row, as the cache holds it", () => {
    const out = analyses.attentionPatterns(hl, model, { tokens: tokens.clean, row: 1 });
    const { cache } = model.runWithCache(tokens.clean);
    const P = tokens.clean[1]!.length;
    for (const [l, h] of [[0, 0], [1, 3]] as const) {
      const pattern = cache.get(`blocks.${l}.attn.hook_pattern`)!; // [B, H, P, P]
      const expected = Array.from(pattern.data.subarray(((1 * model.cfg.nHeads + h) * P) * P, ((1 * model.cfg.nHeads + h) * P + P) * P));
      expect(out.patterns[l][h].length).toBe(P * P);
      out.patterns[l][h].forEach((v: number, i: number) => expect(v).toBeCloseTo(expected[i]!, 6));
    }
    expect(out.labels[2]).toBe("·Mary");
  });

  test("attentionPatterns refuses a prompt whose patterns would be too many to send, naming the longest it takes", () => {
    const gpt2Small = { cfg: { nLayers: 12, nHeads: 12 } };
    expect(() => analyses.attentionPatterns(hl, gpt2Small, { tokens: [new Array(400).fill(0)] }))
      .toThrow("the attention view shows prompts of up to 341 tokens for 12 × 12 heads; this one has 400");
  });

  test("logitLens: the last layer is the model's own logits; an earlier layer is its residual normalised by hand and unembedded", () => {
    const out = analyses.logitLens(hl, model, { ...tokens, tokens: tokens.clean, row: 0, k: 3 });
    expect(out.layerLabels).toEqual(["0_pre", "1_pre", "final_post"]);
    const { logits, cache } = model.runWithCache(tokens.clean);
    const [, P, V] = [logits!.shape[0]!, logits!.shape[1]!, logits!.shape[2]!];
    const rowOf = (b: number, p: number) => logits!.data.subarray((b * P + p) * V, (b * P + p + 1) * V);
    const argmax = (row: ArrayLike<number>) => { let best = 0; for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i; return best; };
    for (let p = 0; p < P; p++) expect(out.top[2][p][0].id).toBe(argmax(rowOf(0, p)));
    const diff = (b: number) => rowOf(b, P - 1)[tokens.correct[b]!]! - rowOf(b, P - 1)[tokens.incorrect[b]!]!;
    expect(out.logitDiff[2]).toBeCloseTo((diff(0) + diff(1)) / 2, 4);
    // Layer 1's residual at position 4 of row 0, by hand: centre, divide by the RMS, · W_U + b_U.
    const resid = cache.get("blocks.1.hook_resid_pre")!.select(0, 0).select(0, 4);
    const centred = resid.sub(resid.mean());
    const normed = centred.div(Math.sqrt(centred.mul(centred).mean().item() + model.cfg.eps));
    const byHand = normed.unsqueeze(0).matmul(model.weights.get("unembed.W_U")!).add(model.weights.get("unembed.b_U")!).squeeze(0);
    const top = out.top[1][4];
    expect(top[0].id).toBe(argmax(byHand.data));
    expect(top[0].logit).toBeCloseTo(byHand.data[top[0].id]!, 3);
    const probs = byHand.softmax().data;
    top.forEach((t: { id: number; prob: number }) => expect(t.prob).toBeCloseTo(probs[t.id]!, 5));
    expect(top[0].prob).toBeGreaterThanOrEqual(top[1].prob);
    expect(top[1].prob).toBeGreaterThanOrEqual(top[2].prob);
  });

  test("activationPatching resid_pre: a cell equals patching that one activation by hand with a hook", async () => {
    const out = await analyses.activationPatching(hl, model, { ...tokens, kind: "resid_pre" });
    const { cache: cleanCache } = model.runWithCache(tokens.clean);
    const [layer, pos] = [1, 4];
    const P = tokens.clean[0]!.length;
    const { logits } = model.runWithHooks(tokens.corrupted, {
      fwdHooks: [[`blocks.${layer}.hook_resid_pre`, (act: Tensor) => {
        const clean = cleanCache.get(`blocks.${layer}.hook_resid_pre`)!;
        const D = model.cfg.dModel;
        const data = act.data.slice();
        for (let b = 0; b < 2; b++) data.set(clean.data.subarray((b * P + pos) * D, (b * P + pos + 1) * D), (b * P + pos) * D);
        return new Tensor(data, act.shape);
      }]],
    });
    const V = model.cfg.dVocab;
    const last = (b: number) => logits!.data.subarray((b * P + P - 1) * V, (b * P + P) * V);
    const metric = ((last(0)[tokens.correct[0]!]! - last(0)[tokens.incorrect[0]!]!) + (last(1)[tokens.correct[1]!]! - last(1)[tokens.incorrect[1]!]!)) / 2;
    expect(out.result.shape).toEqual([2, P]);
    expect(out.result.scores[layer * P + pos]).toBeCloseTo(metric, 4);
    expect(out.labels).toHaveLength(P);
    await expect(analyses.activationPatching(hl, model, { ...tokens, kind: "nope" })).rejects.toThrow(/unknown activation patching kind "nope"; one of resid_pre/);
  });

  test("tokenLabels: spaces shown as ·, a lone byte by its vocabulary form, ids without a tokenizer", () => {
    expect(analyses.tokenLabels(model, [model.toSingleToken(" store")])).toEqual(["·store"]);
    // Byte 0xC3 alone (the first byte of é) decodes to �, so its vocabulary form Ã is shown.
    expect(analyses.tokenLabels(model, [model.tokenizer!.tokenToId!("Ã")!])).toEqual(["Ã"]);
    const idsOnly = { tokenizer: undefined };
    expect(analyses.tokenLabels(idsOnly, [3, 14])).toEqual(["#3", "#14"]);
  });
});

describe("prompts.js: the checks' messages", () => {
  const row = (ids: number[], labels = ids.map((i) => `t${i}`)) => ({ ids, labels });
  const split = (over: Record<string, unknown>) => ({ clean: [row([0, 1, 2, 3])], corrupted: [row([0, 1, 5, 3])], correct: [row([7])], incorrect: [row([8])], ...over });

  test("a well-formed pair gives the ids", () => {
    expect(checkTokens(split({}), "ids")).toEqual({ ok: true, tokens: { clean: [[0, 1, 2, 3]], corrupted: [[0, 1, 5, 3]], correct: [7], incorrect: [8] } });
  });
  test("different lengths name the pair and the first token that differs", () => {
    const r = checkTokens(split({ corrupted: [row([0, 1, 9, 9, 3])] }), "text");
    expect(r.message).toBe("clean prompt 1 has 4 tokens but corrupted prompt 1 has 5; they first differ at token 2: t2 vs t9");
  });
  test("an answer of two tokens is refused with its pieces and the leading-space hint", () => {
    const r = checkTokens(split({ correct: [{ ids: [4, 5], labels: ["Ma", "ry"], text: "Mary" }] }), "text");
    expect(r.message).toBe('correct answer 1 is 2 tokens (Ma | ry); an answer must be exactly one token (most tokenizers need a leading space, e.g. " Mary")');
  });
  test("counts must match, and an encoding error is shown for its group", () => {
    expect(checkTokens(split({ incorrect: [] }), "ids").message).toBe("give one incorrect answer per prompt (1 prompt, 0 incorrect answers)");
    expect(checkTokens(split({ corrupted: [] }), "ids").message).toBe("give one corrupted prompt per clean prompt: 1 clean, 0 corrupted");
    expect(checkTokens(split({ clean: [{ error: "token id 99 is outside the vocabulary [0, 63]" }] }), "ids").message).toMatch(/clean : token id 99 is outside/);
    const twoRows = split({ clean: [row([0, 1, 2, 3]), row([0, 1, 2])], corrupted: [row([0, 1, 5, 3]), row([0, 1, 2])], correct: [row([7]), row([7])], incorrect: [row([8]), row([8])] });
    expect(checkTokens(twoRows, "ids").message).toBe("prompt 2 has 3 tokens and prompt 1 has 4: every prompt of a batch needs the same number of tokens");
  });
  test("formItems / splitRows: text prompts get BOS, answers do not; ids parse, brackets dropped", () => {
    const text = formItems({ mode: "text", clean: "a b\n\nc d", corrupted: "a c\nc e", correct: " x\n y", incorrect: " z\n w" });
    expect(text.items.slice(0, 2)).toEqual([{ text: "a b", bos: true }, { text: "c d", bos: true }]);
    expect(text.groups.correct).toEqual([{ text: " x" }, { text: " y" }]);
    const ids = formItems({ mode: "ids", clean: "[0, 4, 5]", corrupted: "0 4 6", correct: "9 10", incorrect: "11\n12" });
    expect(ids.groups.clean).toEqual([{ ids: [0, 4, 5] }]);
    expect(ids.groups.correct).toEqual([{ ids: [9] }, { ids: [10] }]);
    const rows = ids.items.map((_: unknown, i: number) => ({ ids: [i], labels: [] }));
    expect(splitRows(ids.groups, rows).incorrect).toEqual([{ ids: [4], labels: [] }, { ids: [5], labels: [] }]);
  });
});

describe("figures and the URL hash", () => {
  test("head outputs by position: row l·H + h, column p shows scores[l][p][h]", () => {
    const [L, P, H] = [2, 3, 4];
    const scores = Array.from({ length: L * P * H }, (_, i) => i / 10);
    const fig = patchFigure({ op: "act_patch_attn_head_out_by_pos", shape: [L, P, H], scores, normalized: scores, baseline: 0, clean: 1, options: {} }, ["a", "b", "c"]);
    expect([fig.rows, fig.cols]).toEqual([L * H, P]);
    expect(fig.value(1 * H + 2, 1)).toBeCloseTo(scores[(1 * P + 1) * H + 2]!);
    expect(fig.rowLabels[6]).toBe("1.2");
    expect(fig.tooltip(6, 1)).toBe(`head 1.2, pos 1 (b): score ${scores[(1 * P + 1) * H + 2]!.toFixed(4)}, normalized ${scores[(1 * P + 1) * H + 2]!.toFixed(4)}`);
  });

  test("the SVG has one cell per entry with its tooltip, escaped, and the canvas layout's size", () => {
    const fig = { title: "t", rows: 2, cols: 3, rowLabels: ["r0", "r1"], colLabels: ["<a>", "b", "c"], value: (r: number, c: number) => r + c, colour: () => "rgb(1,2,3)", tooltip: (r: number, c: number) => `cell ${r},${c} & more` };
    const svg = figureSvg(fig);
    expect(svg.match(/<g class="cell"/g)).toHaveLength(6);
    expect(svg).toContain("<title>cell 1,2 &amp; more</title>");
    expect(svg).toContain("&lt;a&gt;");
    const lay = layoutOf(fig);
    expect(svg).toContain(`width="${lay.width}" height="${lay.height}"`);
  });

  test("the hash round-trips the page state, text with spaces and newlines included", () => {
    const state = { model: "https://example.org/gpt2/", dtype: "bf16", mode: "text", clean: "When Mary and John,\n went", correct: " Mary", view: "lens", row: "clean:0" };
    const hash = toHash(state);
    expect(hash.startsWith("#model=https")).toBe(true);
    expect(fromHash(hash)).toEqual(state);
    expect(fromHash("#view=act&bogus=1")).toEqual({ view: "act" });
  });
});

describe("LLaMA-family models in the explorer's computations", () => {
  test("tiny-llama3-random (RMSNorm, rotary, no tokenizer): the lens's last layer is the logits; patterns are causal rows summing to 1", async () => {
    const { referenceDir } = await import("./reference.js");
    const llama = await HookedTransformer.fromPretrained(referenceDir("tiny-llama3-random"), { engine });
    const ids = [[1, 17, 42, 5, 90, 23, 8]];
    const lens = analyses.logitLens(hl, llama, { tokens: ids, row: 0, correct: [17], incorrect: [42], k: 2 });
    const { logits } = llama.runWithCache(ids);
    const V = llama.cfg.dVocab;
    const last = logits!.data.subarray(6 * V, 7 * V);
    expect(lens.logitDiff.at(-1)).toBeCloseTo(last[17]! - last[42]!, 4);
    expect(lens.labels).toEqual(ids[0]!.map((id) => `#${id}`));
    const patterns = analyses.attentionPatterns(hl, llama, { tokens: ids, row: 0 });
    const P = 7;
    const pattern = patterns.patterns[llama.cfg.nLayers - 1][0];
    for (let r = 0; r < P; r++) {
      let sum = 0;
      for (let c = 0; c < P; c++) { sum += pattern[r * P + c]; if (c > r) expect(pattern[r * P + c]).toBe(0); }
      expect(sum).toBeCloseTo(1, 5);
    }
    llama.dispose();
  });
});
