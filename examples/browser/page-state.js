// The page's state in the URL hash, so a finding can be shared as a link: the model (demo or a
// URL), the weights' storage, the prompts and answers, the view and its options. A dropped
// folder cannot travel in a link; the hash then says so and the page loads the demo.

const KEYS = ["model", "dtype", "mode", "clean", "corrupted", "correct", "incorrect", "view", "row", "layer", "head", "act", "src", "component", "pmode", "mid"];

/** The state as a hash string ("#model=demo&view=patterns&..."). */
export function toHash(state) {
  const params = new URLSearchParams();
  for (const key of KEYS) if (state[key] !== undefined && state[key] !== "") params.set(key, String(state[key]));
  return `#${params.toString()}`;
}

/** The state in a hash string (unknown keys ignored); {} for an empty hash. */
export function fromHash(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const state = {};
  for (const key of KEYS) if (params.has(key)) state[key] = params.get(key);
  return state;
}
