// The prompt form: clean and corrupted prompts (one per line) and their answers, as text
// (tokenized in the worker with the model's tokenizer) or as token ids. Shows each prompt's
// tokens as chips and checks what the views need: one answer token per prompt, and every
// prompt, clean and corrupted, of the same number of tokens.

/** Whitespace- or comma-separated integers (anything else is kept, so the check can name it). */
const idsOf = (line) => line.split(/[\s,]+/).filter(Boolean).map((s) => (/^-?\d+$/.test(s) ? Number(s) : s));
/** The non-empty lines of a textarea; ids mode drops brackets, so JSON rows paste as they are. */
const linesOf = (text, mode) => text.split("\n").map((l) => (mode === "ids" ? l.replace(/[[\]]/g, " ").trim() : l)).filter((l) => l.trim() !== "");

/**
 * What the worker must tokenize for the form: items in order clean rows, corrupted rows, correct
 * answers, incorrect answers. In text mode prompts get BOS, answers do not; ids mode sends ids.
 * Answers in ids mode may also sit on one line ("12 40").
 */
export function formItems(form) {
  const { mode } = form;
  const prompts = (text) => linesOf(text, mode).map((l) => (mode === "text" ? { text: l, bos: true } : { ids: idsOf(l) }));
  const answers = (text) => (mode === "text"
    ? linesOf(text, mode).map((l) => ({ text: l }))
    : linesOf(text, mode).flatMap((l) => idsOf(l)).map((id) => ({ ids: [id] })));
  const groups = { clean: prompts(form.clean), corrupted: prompts(form.corrupted), correct: answers(form.correct), incorrect: answers(form.incorrect) };
  return { groups, items: [...groups.clean, ...groups.corrupted, ...groups.correct, ...groups.incorrect] };
}

/** Splits the worker's rows back into the groups formItems made. */
export function splitRows(groups, rows) {
  const out = {};
  let at = 0;
  for (const name of ["clean", "corrupted", "correct", "incorrect"]) {
    out[name] = rows.slice(at, at + groups[name].length);
    at += groups[name].length;
  }
  return out;
}

/**
 * The token ids the views need, or the first problem in words: a token that did not encode,
 * a missing prompt or answer, an answer of several tokens, or prompts of different lengths
 * (naming the pair and the first position where their tokens differ).
 */
export function checkTokens(split, mode) {
  const problem = (message) => ({ ok: false, message });
  for (const [group, rows] of Object.entries(split)) {
    const bad = rows.findIndex((r) => r.error !== undefined);
    if (bad >= 0) return problem(`${group} ${rows.length > 1 ? `${bad + 1} ` : ""}: ${rows[bad].error}`);
  }
  const { clean, corrupted, correct, incorrect } = split;
  if (clean.length === 0) return problem("give at least one clean prompt");
  if (corrupted.length !== clean.length) return problem(`give one corrupted prompt per clean prompt: ${clean.length} clean, ${corrupted.length} corrupted`);
  for (const [name, rows] of [["correct", correct], ["incorrect", incorrect]]) {
    if (rows.length !== clean.length) return problem(`give one ${name} answer per prompt (${clean.length} prompt${clean.length === 1 ? "" : "s"}, ${rows.length} ${name} answer${rows.length === 1 ? "" : "s"})`);
    const long = rows.findIndex((r) => r.ids.length !== 1);
    if (long >= 0) {
      const r = rows[long];
      return problem(`${name} answer ${long + 1} is ${r.ids.length} tokens (${r.labels.join(" | ") || "none"}); an answer must be exactly one token` +
        (mode === "text" && !/^\s/.test(r.text ?? "") ? " (most tokenizers need a leading space, e.g. \" Mary\")" : ""));
    }
  }
  for (let i = 0; i < clean.length; i++) {
    const [a, b] = [clean[i], corrupted[i]];
    if (a.ids.length !== b.ids.length) {
      const at = firstDifference(a.ids, b.ids);
      return problem(`clean prompt ${i + 1} has ${a.ids.length} tokens but corrupted prompt ${i + 1} has ${b.ids.length}; ` +
        `they first differ at token ${at}: ${a.labels[at] ?? "(end)"} vs ${b.labels[at] ?? "(end)"}`);
    }
    if (a.ids.length !== clean[0].ids.length) {
      return problem(`prompt ${i + 1} has ${a.ids.length} tokens and prompt 1 has ${clean[0].ids.length}: every prompt of a batch needs the same number of tokens`);
    }
  }
  return {
    ok: true,
    tokens: { clean: clean.map((r) => r.ids), corrupted: corrupted.map((r) => r.ids), correct: correct.map((r) => r.ids[0]), incorrect: incorrect.map((r) => r.ids[0]) },
  };
}

function firstDifference(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Token chips of some rows into `box`: each token's text over its id; differing tokens of a clean/corrupted pair marked. */
export function renderChips(box, rows, other) {
  box.replaceChildren();
  rows.forEach((row, i) => {
    const line = document.createElement("div");
    line.className = "chips";
    if (row.error !== undefined) {
      line.textContent = row.error;
      line.classList.add("chip-error");
    } else {
      row.ids.forEach((id, j) => {
        const chip = document.createElement("span");
        chip.className = "chip";
        if (other?.[i]?.ids && other[i].ids[j] !== id) chip.classList.add("differs");
        chip.title = `position ${j}, id ${id}`;
        const text = document.createElement("span");
        text.textContent = row.labels[j];
        chip.append(text);
        if (row.labels[j] !== `#${id}`) { // a model without a tokenizer labels tokens by id alone
          const idLine = document.createElement("small");
          idLine.textContent = String(id);
          chip.append(idLine);
        }
        line.append(chip);
      });
    }
    box.append(line);
  });
}
