import type { Tokenizer } from "../io/tokenizer.js";

/** Options of `toTokens`. */
export interface ToTokensOptions {
  /** Prepend the BOS token to every row (default true, as TransformerLens). */
  prependBos?: boolean;
  /** Where rows of a ragged batch are padded (default "right"). */
  paddingSide?: "left" | "right";
}

/** Padded token rows and their attention mask (1 = token, 0 = padding). */
export interface EncodedBatch {
  tokens: number[][];
  attentionMask: number[][];
}

/** Encodes one text or a batch; ragged rows are padded with the pad (EOS, else BOS, else 0) id. */
export function encodeBatch(tokenizer: Tokenizer, input: string | readonly string[], options: ToTokensOptions = {}): EncodedBatch {
  const texts = typeof input === "string" ? [input] : input;
  if (!Array.isArray(texts) || texts.length === 0 || texts.some((t) => typeof t !== "string")) {
    throw new Error("toTokens: expected a string or a non-empty array of strings");
  }
  const prependBos = options.prependBos ?? true;
  const side = options.paddingSide ?? "right";
  if (side !== "left" && side !== "right") throw new Error(`toTokens: paddingSide must be "left" or "right", got ${JSON.stringify(side)}`);
  const bos = tokenizer.bosTokenId;
  if (prependBos && bos === undefined) throw new Error("toTokens: this tokenizer has no BOS token; pass { prependBos: false }");
  const rows = texts.map((t) => (prependBos ? [bos!, ...tokenizer.encode(t)] : tokenizer.encode(t)));
  const width = Math.max(...rows.map((r) => r.length));
  if (width === 0) throw new Error("toTokens: every text encoded to zero tokens");
  const pad = tokenizer.eosTokenId ?? bos ?? 0;
  const tokens: number[][] = [];
  const attentionMask: number[][] = [];
  for (const row of rows) {
    const padding = new Array<number>(width - row.length).fill(pad);
    const ones = new Array<number>(row.length).fill(1);
    const zeros = new Array<number>(width - row.length).fill(0);
    tokens.push(side === "right" ? [...row, ...padding] : [...padding, ...row]);
    attentionMask.push(side === "right" ? [...ones, ...zeros] : [...zeros, ...ones]);
  }
  return { tokens, attentionMask };
}

/** Each id's text, as TransformerLens `to_str_tokens`. */
export function strTokens(tokenizer: Tokenizer, ids: readonly number[]): string[] {
  return ids.map((id) => tokenizer.decode([id]));
}

/** The id of a text that must be exactly one token. */
export function singleToken(tokenizer: Tokenizer, text: string): number {
  const ids = tokenizer.encode(text);
  if (ids.length !== 1) throw new Error(`toSingleToken: ${JSON.stringify(text)} is ${ids.length} tokens (${JSON.stringify(ids)}), not one`);
  return ids[0]!;
}
