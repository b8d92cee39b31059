// Node's numbers for the browser explorer's views: the page's own computations (analyses.js)
// run here on the same models and prompts the Chromium test gives the page. The demo model
// with the demo prompts (token ids), and the text model (text-model.mjs) with an IOI pair typed
// as text.
// analyses.mjs: examples/browser/analyses.js, copied beside this file by run.mjs (the scratch project is CommonJS by default).
import { activationPatching, attentionPatterns, logitLens } from "./analyses.mjs";
import { IOI_TEXT, textModelFiles } from "./text-model.mjs";

/** Which view the page is asked for, and with what: the same requests as the page's worker gets. */
export async function pageViews(hl, engine) {
  const demo = await hl.HookedTransformer.fromPretrained(hl.demoModelFiles(), { engine, tokenizer: false });
  const p = hl.demoPrompts();
  const text = await hl.HookedTransformer.fromPretrained(textModelFiles(hl), { engine });
  const ioi = {
    clean: text.toTokens([IOI_TEXT.clean]), corrupted: text.toTokens([IOI_TEXT.corrupted]),
    correct: [text.toSingleToken(IOI_TEXT.correct)], incorrect: [text.toSingleToken(IOI_TEXT.incorrect)],
  };
  return {
    demoPatterns: attentionPatterns(hl, demo, { tokens: p.clean, row: 0 }),
    demoLens: logitLens(hl, demo, { tokens: p.clean, row: 0, correct: p.correct, incorrect: p.incorrect }),
    demoAct: (await activationPatching(hl, demo, { ...p, kind: "resid_pre" })).result,
    textTokens: { clean: ioi.clean[0], corrupted: ioi.corrupted[0], correct: ioi.correct[0], incorrect: ioi.incorrect[0] },
    textPatterns: attentionPatterns(hl, text, { tokens: ioi.clean, row: 0 }),
    textLens: logitLens(hl, text, { tokens: ioi.clean, row: 0, correct: ioi.correct, incorrect: ioi.incorrect }),
    textAct: (await activationPatching(hl, text, { ...ioi, kind: "head_out_all_pos" })).result,
  };
}
