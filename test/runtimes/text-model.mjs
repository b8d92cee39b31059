// A small GPT-2-shaped model with a real byte-level BPE tokenizer, for the browser explorer's
// tests and screenshots: random weights (written with the package's own safetensors writer)
// and a GPT-2-style tokenizer whose merges make IOI sentences' words single tokens.
//   textModelFiles(hl) → { "config.json", "model.safetensors", "tokenizer.json" } (Uint8Array each)
//   node test/runtimes/text-model.mjs DIR   writes them into DIR (with the repo's dist/)

/** The words (GPT-2's byte-level spelling: Ġ is a leading space) that become single tokens. */
const WORDS = ["When", "Then", "The", "ĠMary", "ĠJohn", "ĠTom", "ĠAnna", "Ġand", "Ġwent", "Ġto", "Ġthe", "Ġstore", "Ġpark",
  "Ġgave", "Ġa", "Ġdrink", "Ġbook", "Ġball", "Ġhad", "Ġlot", "Ġof", "Ġfun", "Ġat", "Ġlunch", "Ġsaid", "Ġhello", ","];

/** The IOI pair the browser test types into the page (Node tokenizes the same text). */
export const IOI_TEXT = Object.freeze({
  clean: "When Mary and John went to the store, John gave a drink to",
  corrupted: "When Mary and John went to the store, Mary gave a drink to",
  correct: " Mary",
  incorrect: " John",
});

export const TEXT_MODEL_SPEC = Object.freeze({ nLayer: 2, nHead: 4, nEmbd: 64, nPositions: 64, seed: 7 });

/** GPT-2's byte → printable-character table (bytes that are printable stay themselves). */
function byteToUnicode() {
  const printable = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const table = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  return table;
}

/** tokenizer.json of a byte-level BPE: the 256 byte tokens, prefix merges building WORDS, then <|endoftext|>. */
export function textTokenizerJson() {
  const vocab = {};
  byteToUnicode().forEach((ch, b) => { vocab[ch] = b; });
  const merges = [];
  for (const word of WORDS) {
    const chars = [...word];
    let prefix = chars[0];
    for (const ch of chars.slice(1)) {
      if (vocab[prefix + ch] === undefined) {
        merges.push(`${prefix} ${ch}`);
        vocab[prefix + ch] = Object.keys(vocab).length;
      }
      prefix += ch;
    }
  }
  const eot = "<|endoftext|>";
  vocab[eot] = Object.keys(vocab).length;
  const byteLevel = (prefixSpace, trim) => ({ type: "ByteLevel", add_prefix_space: prefixSpace, trim_offsets: trim, use_regex: true });
  return {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [{ id: vocab[eot], content: eot, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null, pre_tokenizer: byteLevel(false, true), post_processor: byteLevel(true, false), decoder: byteLevel(true, true),
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

/** A seeded standard normal generator (Box–Muller on a 32-bit LCG). */
function normal(seed) {
  let s = seed >>> 0;
  const uniform = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** config.json, model.safetensors and tokenizer.json of the model (deterministic). */
export function textModelFiles(hl, spec = TEXT_MODEL_SPEC) {
  const tokenizer = textTokenizerJson();
  const V = Object.keys(tokenizer.model.vocab).length;
  const { nLayer, nHead, nEmbd: D, nPositions } = spec;
  const next = normal(spec.seed);
  const t = (shape, std, mean = 0) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = mean + std * next();
    return { shape, data };
  };
  const tensors = { "wte.weight": t([V, D], 0.5), "wpe.weight": t([nPositions, D], 0.2), "ln_f.weight": t([D], 0.1, 1), "ln_f.bias": t([D], 0.1) };
  for (let l = 0; l < nLayer; l++) {
    Object.assign(tensors, {
      [`h.${l}.ln_1.weight`]: t([D], 0.1, 1), [`h.${l}.ln_1.bias`]: t([D], 0.1),
      [`h.${l}.attn.c_attn.weight`]: t([D, 3 * D], 0.25), [`h.${l}.attn.c_attn.bias`]: t([3 * D], 0.1),
      [`h.${l}.attn.c_proj.weight`]: t([D, D], 0.2), [`h.${l}.attn.c_proj.bias`]: t([D], 0.05),
      [`h.${l}.ln_2.weight`]: t([D], 0.1, 1), [`h.${l}.ln_2.bias`]: t([D], 0.1),
      [`h.${l}.mlp.c_fc.weight`]: t([D, 4 * D], 0.2), [`h.${l}.mlp.c_fc.bias`]: t([4 * D], 0.05),
      [`h.${l}.mlp.c_proj.weight`]: t([4 * D, D], 0.1), [`h.${l}.mlp.c_proj.bias`]: t([D], 0.05),
    });
  }
  const config = {
    architectures: ["GPT2LMHeadModel"], model_type: "gpt2", n_layer: nLayer, n_head: nHead, n_embd: D, n_positions: nPositions,
    n_ctx: nPositions, n_inner: null, vocab_size: V, layer_norm_epsilon: 1e-5, activation_function: "gelu_new",
    bos_token_id: V - 1, eos_token_id: V - 1, tie_word_embeddings: true,
  };
  const enc = (value) => new TextEncoder().encode(JSON.stringify(value));
  return { "config.json": enc(config), "model.safetensors": hl.writeSafetensors(tensors), "tokenizer.json": enc(tokenizer) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [{ mkdirSync, writeFileSync }, { join, resolve }, { fileURLToPath }] = await Promise.all([import("node:fs"), import("node:path"), import("node:url")]);
  const dir = resolve(process.argv[2] ?? "text-model");
  const hl = await import(new URL("../../dist/index.js", import.meta.url).href);
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(textModelFiles(hl))) writeFileSync(join(dir, name), bytes);
  console.log(`wrote ${dir} (${fileURLToPath(import.meta.url)})`);
}
