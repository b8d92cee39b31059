import type { Engine } from "../engine/engine.js";
import { packedBLength } from "../engine/kernels.js";
import type { HookedTransformerConfig } from "./config.js";
import { kvName, type Weights } from "./weights.js";

/**
 * Byte pointers of one block's parameters in the engine's memory, in the layouts the kernels read.
 * Matrices marked "packed" are the [in, out] matrix packed once by `prepackB` for `gemmPacked`.
 */
export interface BlockPointers {
  wq: number; wk: number; wv: number; // packed [D, H*d] and [D, Hk*d]: x @ w gives q in [rows, H, d] order
  bq: number; bk: number; bv: number; // [H*d], [Hk*d]
  wo: number;                         // packed [H*d, D]
  woHeads: number;                    // [H*d, D] unpacked (rows h*d..(h+1)*d: head h's W_O) for hook_result, else 0
  bo: number;                         // [D]
  wgate: number;                      // packed [D, M], or 0 without a gated MLP
  win: number; bin: number;           // packed [D, M], [M]
  wout: number; bout: number;         // packed [M, D], [D]
}

export interface DevicePointers {
  wE: number;   // [V, D]
  wPos: number; // [nCtx, D], or 0 with rotary embeddings
  blocks: BlockPointers[];
  wU: number;   // packed [D, V]
  bU: number;   // [V]
}

/**
 * Uploads a model's weights once. LayerNorm weights are folded into the matrices that
 * read them (without centring: that is foldLn's job and it changes hook values), so
 * every norm kernel call is the same affine-free one and `hook_normalized` is what
 * TransformerLens shows before the w/b multiply.
 */
export function uploadWeights(engine: Engine, cfg: HookedTransformerConfig, weights: Weights): DevicePointers {
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d } = cfg;
  const hasNorm = cfg.normalizationType === "LN" || cfg.normalizationType === "RMS";
  const get = (name: string): Float32Array => {
    const t = weights.get(name);
    if (t === undefined) throw new Error(`uploadWeights: missing parameter ${name}`);
    return t.data;
  };
  const lnOf = (name: string) => hasNorm ? { w: get(`${name}.w`), b: cfg.normalizationType === "LN" ? get(`${name}.b`) : undefined } : undefined;

  // W: [D, n] rows scaled by ln.w; bias += ln.b @ W (original W).
  const foldInto = (W: Float32Array, bias: Float32Array, n: number, ln: ReturnType<typeof lnOf>) => {
    if (ln === undefined) return { W, bias };
    const Wf = new Float32Array(W.length);
    const bf = bias.slice();
    for (let i = 0; i < D; i++) {
      const w = ln.w[i]!;
      const b = ln.b?.[i] ?? 0;
      for (let j = 0; j < n; j++) {
        const x = W[i * n + j]!;
        Wf[i * n + j] = x * w;
        if (b !== 0) bf[j]! += x * b;
      }
    }
    return { W: Wf, bias: bf };
  };
  // [heads, D, d] -> [D, heads*d]
  const headsToColumns = (W: Float32Array, heads: number) => {
    const out = new Float32Array(D * heads * d);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < D; i++) out.set(W.subarray((h * D + i) * d, (h * D + i + 1) * d), i * heads * d + h * d);
    }
    return out;
  };
  const up = (data: Float32Array) => engine.upload(data);
  // A [rows, cols] matrix packed for gemmPacked; the unpacked copy lives only during the call.
  const upPacked = (data: Float32Array, rows: number, cols: number) => {
    const raw = engine.upload(data);
    const packed = engine.alloc(packedBLength(rows, cols));
    engine.kernels.prepackB(raw, cols, rows, cols, 0, packed);
    engine.free(raw);
    return packed;
  };

  const blocks: BlockPointers[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const a = `blocks.${l}.attn.`;
    const m = `blocks.${l}.mlp.`;
    const ln1 = lnOf(`blocks.${l}.ln1`);
    const ln2 = lnOf(`blocks.${l}.ln2`);
    const q = foldInto(headsToColumns(get(`${a}W_Q`), H), get(`${a}b_Q`), H * d, ln1);
    const k = foldInto(headsToColumns(get(`${a}${kvName(cfg, "W_K")}`), Hk), get(`${a}${kvName(cfg, "b_K")}`), Hk * d, ln1);
    const v = foldInto(headsToColumns(get(`${a}${kvName(cfg, "W_V")}`), Hk), get(`${a}${kvName(cfg, "b_V")}`), Hk * d, ln1);
    const mlpIn = foldInto(get(`${m}W_in`), cfg.gatedMlp ? new Float32Array(cfg.dMlp) : get(`${m}b_in`), cfg.dMlp, ln2);
    const gate = cfg.gatedMlp ? foldInto(get(`${m}W_gate`), new Float32Array(cfg.dMlp), cfg.dMlp, ln2) : undefined;
    const { dModel, dMlp } = cfg;
    blocks.push({
      wq: upPacked(q.W, dModel, H * d), wk: upPacked(k.W, dModel, Hk * d), wv: upPacked(v.W, dModel, Hk * d),
      bq: up(q.bias), bk: up(k.bias), bv: up(v.bias),
      wo: upPacked(get(`${a}W_O`), H * d, dModel), woHeads: cfg.useAttnResult ? up(get(`${a}W_O`)) : 0, bo: up(get(`${a}b_O`)),
      // A gated MLP adds b_in after the product (as TransformerLens); its projections carry no bias.
      wgate: gate ? upPacked(gate.W, dModel, dMlp) : 0,
      win: upPacked(mlpIn.W, dModel, dMlp), bin: up(cfg.gatedMlp ? get(`${m}b_in`) : mlpIn.bias),
      wout: upPacked(get(`${m}W_out`), dMlp, dModel), bout: up(get(`${m}b_out`)),
    });
  }
  const unembed = foldInto(get("unembed.W_U"), get("unembed.b_U"), cfg.dVocab, lnOf("ln_final"));
  return {
    wE: up(get("embed.W_E")),
    wPos: cfg.positionalEmbeddingType === "standard" ? up(get("pos_embed.W_pos")) : 0,
    blocks,
    wU: upPacked(unembed.W, D, cfg.dVocab),
    bU: up(unembed.bias),
  };
}

/** Frees everything {@link uploadWeights} allocated. */
export function freeWeights(engine: Engine, p: DevicePointers): void {
  engine.free(p.wE);
  engine.free(p.wPos);
  for (const b of p.blocks) for (const ptr of Object.values(b)) engine.free(ptr);
  engine.free(p.wU);
  engine.free(p.bU);
}
