import type { Engine } from "../engine/engine.js";
import type { HookedTransformerConfig } from "./config.js";
import type { Weights } from "./weights.js";

/** Byte pointers of one block's parameters in the engine's memory, in the layouts the kernels read. */
export interface BlockPointers {
  wq: number; wk: number; wv: number; // [D, H*d]: x @ w gives q in [rows, H, d] order
  bq: number; bk: number; bv: number; // [H*d]
  wo: number; bo: number;             // [H*d, D], [D]
  win: number; bin: number;           // [D, M], [M]
  wout: number; bout: number;         // [M, D], [D]
}

export interface DevicePointers {
  wE: number;   // [V, D]
  wPos: number; // [nCtx, D]
  blocks: BlockPointers[];
  wU: number;   // [D, V]
  bU: number;   // [V]
}

/**
 * Uploads a model's weights once. LayerNorm weights are folded into the matrices that
 * read them (without centring: that is foldLn's job and it changes hook values), so
 * every norm kernel call is the same affine-free one and `hook_normalized` is what
 * TransformerLens shows before the w/b multiply.
 */
export function uploadWeights(engine: Engine, cfg: HookedTransformerConfig, weights: Weights): DevicePointers {
  const { dModel: D, nHeads: H, dHead: d } = cfg;
  const hasLn = cfg.normalizationType === "LN" || cfg.normalizationType === "RMS";
  const get = (name: string): Float32Array => {
    const t = weights.get(name);
    if (t === undefined) throw new Error(`uploadWeights: missing parameter ${name}`);
    return t.data;
  };
  const lnOf = (name: string) => hasLn ? { w: get(`${name}.w`), b: cfg.normalizationType === "LN" ? get(`${name}.b`) : undefined } : undefined;

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
  // [H, D, d] -> [D, H*d]
  const headsToColumns = (W: Float32Array) => {
    const out = new Float32Array(D * H * d);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < D; i++) out.set(W.subarray((h * D + i) * d, (h * D + i + 1) * d), i * H * d + h * d);
    }
    return out;
  };
  const up = (data: Float32Array) => engine.upload(data);

  const blocks: BlockPointers[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const a = `blocks.${l}.attn.`;
    const m = `blocks.${l}.mlp.`;
    const ln1 = lnOf(`blocks.${l}.ln1`);
    const ln2 = lnOf(`blocks.${l}.ln2`);
    const [q, k, v] = ["Q", "K", "V"].map((x) => foldInto(headsToColumns(get(`${a}W_${x}`)), get(`${a}b_${x}`), H * d, ln1));
    const mlpIn = foldInto(get(`${m}W_in`), get(`${m}b_in`), cfg.dMlp, ln2);
    blocks.push({
      wq: up(q!.W), wk: up(k!.W), wv: up(v!.W), bq: up(q!.bias), bk: up(k!.bias), bv: up(v!.bias),
      wo: up(get(`${a}W_O`)), bo: up(get(`${a}b_O`)),
      win: up(mlpIn.W), bin: up(mlpIn.bias), wout: up(get(`${m}W_out`)), bout: up(get(`${m}b_out`)),
    });
  }
  const unembed = foldInto(get("unembed.W_U"), get("unembed.b_U"), cfg.dVocab, lnOf("ln_final"));
  return {
    wE: up(get("embed.W_E")),
    wPos: up(get("pos_embed.W_pos")),
    blocks,
    wU: up(unembed.W),
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
