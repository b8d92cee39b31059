import type { HookedTransformerConfig } from "./config.js";

/**
 * The shape of one forward pass, as far as its activation memory depends on it. The forward
 * allocates its arena from these sizes and the sweep planner estimates a pass's memory from
 * the same function, so the two cannot drift apart (llm.c's `fill_in_activation_sizes`).
 */
export interface ForwardShape {
  batch: number;
  /** Sequence length, including any kept prefix. */
  pos: number;
  /** First position computed; earlier ones are a kept prefix whose keys and values are given. */
  posStart: number;
  /** The pass starts at the embeddings (false: from a given residual stream). */
  embeds: boolean;
  /** Some block materialises attention scores and pattern (a hook reads or writes them). */
  scores: boolean;
  /** The last block computes all but its keys and values at each row's last position only. */
  pruneLastLayer: boolean;
  /** An attention mask is given (ragged rows). */
  attentionMask: boolean;
  /** Rows unembedded (0, the batch for the last position only, or every computed row). */
  logitRows: number;
  /** Some block's split q/k/v inputs are hooked: each head's input is its own copy (see HookedTransformerConfig.useSplitQkvInput). */
  splitInputs?: boolean;
  /** Some block's hook_mlp_in is hooked: the MLP reads its own copy of resid_mid. */
  mlpIn?: boolean;
}

/**
 * Floats of every buffer of the forward's activation arena; 0 for buffers the pass does not
 * use. Each block reuses the same buffers, so nothing here grows with the number of layers.
 */
export function activationSizes(cfg: HookedTransformerConfig, shape: ForwardShape) {
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V } = cfg;
  const { batch: B, pos: P, posStart } = shape;
  const rotary = cfg.positionalEmbeddingType === "rotary";
  const rows = B * (P - posStart); // computed rows; a pruned last block computes fewer
  const kept = posStart > 0;
  return {
    resid: rows * D,
    embed: shape.embeds ? rows * D : 0,
    posEmbed: shape.embeds && !rotary ? rows * D : 0,
    norm: rows * D,
    scale: rows,
    q: rows * H * d,
    k: rows * Hk * d,
    v: rows * Hk * d,
    /** Keys and values of the whole sequence (kept prefix + computed positions). */
    kFull: kept ? B * P * Hk * d : 0,
    vFull: kept ? B * P * Hk * d : 0,
    /** Rotary cos/sin of every computed row, [rows, d/2] each, built once per pass. */
    cos: rotary ? rows * (d / 2) : 0,
    sin: rotary ? rows * (d / 2) : 0,
    /** The same for each row's last position, which a pruned last block's queries read. */
    cosLast: rotary && shape.pruneLastLayer ? B * (d / 2) : 0,
    sinLast: rotary && shape.pruneLastLayer ? B * (d / 2) : 0,
    residLast: shape.pruneLastLayer ? B * D : 0,
    // Soft-capped scores always take the unfused path (the fused kernel does not cap).
    scores: shape.scores || cfg.attnSoftcap !== undefined ? B * H * (P - posStart) * P : 0,
    pattern: shape.scores || cfg.attnSoftcap !== undefined ? B * H * (P - posStart) * P : 0,
    z: rows * H * d,
    result: cfg.useAttnResult ? rows * H * D : 0,
    attnOut: rows * D,
    pre: rows * M,
    preLinear: cfg.gatedMlp ? rows * M : 0,
    post: rows * M,
    mlpOut: rows * D,
    mask: shape.attentionMask ? B * P : 0,
    logits: shape.logitRows * V,
    /** Each head's copy of its input, and one head's normalised copy at a time. */
    qInput: shape.splitInputs ? rows * H * D : 0,
    kInput: shape.splitInputs ? rows * Hk * D : 0,
    vInput: shape.splitInputs ? rows * Hk * D : 0,
    headNorm: shape.splitInputs ? rows * D : 0,
    headScale: shape.splitInputs ? rows : 0,
    mlpIn: shape.mlpIn ? rows * D : 0,
  };
}

/** The backward's shape: it always runs over every position of every row. */
export interface BackwardShape {
  batch: number;
  pos: number;
  /** Rows of the logits' gradient: batch × pos, or the batch for a metric reading each row's last position. */
  logitRows: number;
  /** An attention mask is given (ragged rows). */
  attentionMask: boolean;
  /** A backward hook watches some block's split q/k/v inputs (their per-head gradients are formed). */
  splitInputs?: boolean;
  /** A backward hook watches some block's hook_mlp_in. */
  mlpIn?: boolean;
}

/**
 * Floats of every buffer of the backward's arena: gradients (g*) and, one block at a time, the
 * stored forward activations the block's backward reads (s*, copied in from the forward's cache).
 */
export function backwardSizes(cfg: HookedTransformerConfig, shape: BackwardShape) {
  const { dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V } = cfg;
  const { batch: B, pos: P } = shape;
  const rows = B * P;
  const rotary = cfg.positionalEmbeddingType === "rotary";
  return {
    gLogits: shape.logitRows * V,
    gResid: rows * D,
    gNorm: rows * D,
    gScale: rows,
    gDelta: rows * D,
    /** Attention and MLP in parallel: resid_post's gradient, kept for attn_out while the MLP's path joins gResid. */
    gParallel: cfg.parallelAttnMlp ? rows * D : 0,
    gResult: cfg.useAttnResult ? rows * H * D : 0,
    gz: rows * H * d,
    gq: rows * H * d,
    gk: rows * Hk * d,
    gv: rows * Hk * d,
    gPattern: B * H * P * P,
    gScores: B * H * P * P,
    gPost: rows * M,
    gPre: rows * M,
    gPreLinear: cfg.gatedMlp ? rows * M : 0,
    sNorm: rows * D,
    sScale: rows,
    sQ: rows * H * d,
    sK: rows * Hk * d,
    sV: rows * Hk * d,
    sPattern: B * H * P * P,
    sPre: rows * M,
    sPreLinear: cfg.gatedMlp ? rows * M : 0,
    cos: rotary ? rows * (d / 2) : 0,
    sinNeg: rotary ? rows * (d / 2) : 0,
    /** One norm input's gradient at a time (hook_mlp_in, or one head's split input). */
    gIn: shape.mlpIn || shape.splitInputs ? rows * D : 0,
    /** Every head's split-input gradient of one of q, k, v: [rows, H or Hk, D]. */
    gSplit: shape.splitInputs ? rows * H * D : 0,
    /** One head's own ln1 output and scale, recomputed from its kept (possibly changed) split input. */
    sHeadNorm: shape.splitInputs ? rows * D : 0,
    sHeadScale: shape.splitInputs ? rows : 0,
    mask: shape.attentionMask ? B * P : 0,
  };
}

/** The backward arena's buffers by name. */
export type BackwardBuffer = keyof ReturnType<typeof backwardSizes>;

/** The arena's buffers by name. */
export type ActivationBuffer = keyof ReturnType<typeof activationSizes>;

/** Every arena buffer starts on a 64-byte boundary (16 floats), as the engine's allocations do. */
export const ARENA_ALIGN_FLOATS = 16;

/** Float offsets of each buffer inside one arena, and its total length in floats. */
export function arenaLayout<K extends string>(sizes: Record<K, number>): { offsets: Record<K, number>; floats: number } {
  const offsets = {} as Record<K, number>;
  let floats = 0;
  for (const key of Object.keys(sizes) as K[]) {
    offsets[key] = floats;
    floats += Math.ceil(sizes[key] / ARENA_ALIGN_FLOATS) * ARENA_ALIGN_FLOATS;
  }
  return { offsets, floats };
}

/** Bytes of the activation arena of one forward pass of this shape. */
export function activationBytes(cfg: HookedTransformerConfig, shape: ForwardShape): number {
  return 4 * arenaLayout(activationSizes(cfg, shape)).floats;
}

/**
 * The memory of a forward + backward pass (activation gradients), in bytes. The backward keeps
 * from the forward, per block, what its steps read: both norms' outputs and scales, the (rotated)
 * queries and keys, the values, the attention pattern and the MLP's pre-activations (the gated
 * MLP's both), plus ln_final's; it recomputes nothing. These `stored` copies, in the engine's
 * memory, live through the backward, beside its arena (the forward's arena is freed first). The packed transposed weights
 * are allocated once per model, at its first backward.
 */
export function gradientMemory(cfg: HookedTransformerConfig,
  shape: {
    batch: number; pos: number; lastPositionOnly: boolean;
    /** Split q/k/v inputs and hook_mlp_in are hooked. */
    readerInputs?: boolean;
    /** Heads' split-input copies a forward hook watches (each kept for the backward): their total number of heads. */
    keptSplitHeads?: number;
    /** Bytes a stored weight element takes: 4 (f32, default) or 2 (bf16 / f16), for the transposed weights. */
    weightBytes?: 2 | 4;
  }) {
  const { nLayers: L, dModel: D, nHeads: H, nKeyValueHeads: Hk, dHead: d, dMlp: M, dVocab: V } = cfg;
  const { batch: B, pos: P } = shape;
  const rows = B * P;
  const perBlock = 2 * (rows + rows * D) + rows * (H + 2 * Hk) * d + B * H * P * P + rows * M * (cfg.gatedMlp ? 2 : 1);
  const stored = 4 * (L * perBlock + rows + rows * D + rows * D * (shape.keptSplitHeads ?? 0));
  const logitRows = shape.lastPositionOnly ? B : rows;
  const forwardArena = activationBytes(cfg, {
    batch: B, pos: P, posStart: 0, embeds: true, scores: true, pruneLastLayer: false, attentionMask: true, logitRows,
    splitInputs: shape.readerInputs ?? false, mlpIn: shape.readerInputs ?? false,
  });
  const backwardArena = 4 * arenaLayout(backwardSizes(cfg, {
    batch: B, pos: P, logitRows, attentionMask: true, splitInputs: shape.readerInputs ?? false, mlpIn: shape.readerInputs ?? false,
  })).floats;
  const packed = (k: number, n: number) => (shape.weightBytes ?? 4) * k * Math.ceil(n / 8) * 8;
  const transposedWeights = L * (packed(H * d, D) + 2 * packed(Hk * d, D) + packed(D, H * d) + packed(M, D) * (cfg.gatedMlp ? 2 : 1) +
    packed(D, M));
  return {
    stored, forwardArena, backwardArena, transposedWeights,
    /** W_Uᵀ, packed at the first backward of a metric that reads every logit (not for one that declares its tokens). */
    transposedUnembed: packed(V, D),
    /** The most a gradient run holds at once, beyond the model's weights: stored copies and the larger arena. */
    peak: stored + Math.max(forwardArena, backwardArena),
  };
}
