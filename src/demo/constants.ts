/** Sizes of the embedded demo model (a GPT-2 architecture; nHeads * dHead == dModel as GPT-2 requires). */
export const DEMO_DIMS = Object.freeze({
  nLayers: 2,
  dModel: 128,
  nHeads: 4,
  dHead: 32,
  dMlp: 512,
  dVocab: 64,
  nCtx: 32,
});

/** The demo's beginning-of-sequence token id; it starts every demo prompt and never occurs elsewhere. */
export const DEMO_BOS = 0;
