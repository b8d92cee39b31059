// The CLI's renderers and helpers in isolation: SVG and terminal heatmaps, colours,
// the progress bar, and the argv parser.
import { describe, expect, it } from "vitest";
import { parseArgs } from "../src/cli/args.js";
import { ansi256, divergingColour, hex, NO_PATH } from "../src/cli/colours.js";
import { layoutPanels, topEntries } from "../src/cli/grid.js";
import { renderSvgHeatmap } from "../src/cli/heatmap-svg.js";
import { renderTerminalHeatmap } from "../src/cli/heatmap-terminal.js";
import { actHeatmap, directPathHeatmap, toCsv } from "../src/cli/patch-report.js";
import { barLine, createProgress, formatDuration, plainLine } from "../src/cli/progress.js";
import { Tensor } from "../src/engine/tensor.js";
import { PatchResult } from "../src/index.js";

/** A direct path result from source (0, 1) on 3 layers × 4 heads, best path 2.3. */
function directPathResult(): PatchResult {
  const scores = new Float32Array([0, 0, 0, 0, 0.2, -0.4, 0.1, 0, 0.3, 0.05, -0.1, 1.5]);
  const noPath = new Uint8Array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  return new PatchResult("direct_path", new Tensor(scores, [3, 4]), 0, 2, { component: "k" }, noPath);
}

/**
 * Checks that `xml` is well-formed enough for an SVG viewer: one root, every tag closed in
 * order, attributes quoted, no raw & or < in text.
 */
function expectWellFormedXml(xml: string): void {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, "");
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!--[\s\S]*?-->/g;
  let last = 0;
  let roots = 0;
  for (let m = tag.exec(body); m !== null; m = tag.exec(body)) {
    const text = body.slice(last, m.index);
    expect(text, `text before ${m[0]}`).not.toMatch(/<|&(?!(amp|lt|gt|quot|apos|#\d+);)/);
    last = tag.lastIndex;
    if (m[0].startsWith("<!--")) continue;
    const [, close, name, , selfClose] = m;
    if (close) expect(stack.pop(), `closing </${name}>`).toBe(name);
    else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name!);
    } else if (stack.length === 0) roots++;
  }
  expect(body.slice(last).trim()).toBe("");
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
}

describe("SVG heatmap", () => {
  it("is well-formed, with a cell per entry, grey no-path cells, the source marked, axes, title and colour bar", () => {
    const result = directPathResult();
    const svg = renderSvgHeatmap(directPathHeatmap(result, { src: [0, 1], component: "k", mode: "linear" }));
    expectWellFormedXml(svg);
    expect(svg.match(/<rect class="cell/g)).toHaveLength(12);
    const grey = svg.match(/<rect class="cell no-path"[^>]*fill="([^"]+)"/g)!;
    expect(grey).toHaveLength(4);
    for (const cell of grey) expect(cell).toContain(`fill="${hex(NO_PATH)}"`);
    expect(svg.match(/<rect class="source"/g)).toHaveLength(1);
    expect(svg).toContain("<title>Direct path patching from head 0.1 into the k input of later heads (linear)</title>");
    expect(svg).toMatch(/>layer<\/text>/);
    expect(svg).toMatch(/>head<\/text>/);
    expect(svg).toContain("linearGradient");
    expect(svg).toContain("no causal path");
    // Diverging and centred on 0: the best cell (+0.75 normalized = the limit) is the full red, 0 near-white.
    expect(svg).toMatch(/layer 2, head 3: 0\.7500[^<]*<\/title>/);
    const fillOf = (label: string) => new RegExp(`fill="(#[0-9a-f]{6})"[^>]*><title>${label}:`).exec(svg)?.[1];
    expect(fillOf("layer 2, head 3")).toBe(hex(divergingColour(1, 1)));
    expect(fillOf("layer 1, head 1")).toBe(hex(divergingColour(-0.2, 0.75)));
    expect(fillOf("layer 1, head 3")).toBe(hex(divergingColour(0, 1)));
  });

  it("lays out all-sources results as a grid of source panels", () => {
    const L = 3;
    const H = 2;
    const scores = new Float32Array(L * H * L * H).map((_, i) => Math.sin(i));
    const noPath = new Uint8Array(scores.length).map((_, i) => (Math.floor(i / H) % L <= Math.floor(i / (H * L * H)) ? 1 : 0));
    const result = new PatchResult("direct_path_all_sources", new Tensor(scores, [L, H, L, H]), 0, 1, {}, noPath);
    const data = directPathHeatmap(result, { src: "all", component: "q", mode: "exact" });
    const layout = layoutPanels(data);
    expect(layout.panels).toHaveLength(L * H);
    expect(layout.columns).toBe(H);
    expect(layout.panels[3]!.title).toBe("src layer 1, src head 1");
    const svg = renderSvgHeatmap(data);
    expectWellFormedXml(svg);
    expect(svg.match(/<rect class="cell/g)).toHaveLength(L * H * L * H);
    expect(svg.match(/<rect class="source"/g)).toHaveLength(L * H);
    expect(svg.match(/<g class="panel">/g)).toHaveLength(L * H);
  });

  it("escapes text", () => {
    const result = new PatchResult("act", new Tensor(new Float32Array(4), [2, 2]), 0, 1, {});
    const svg = renderSvgHeatmap(actHeatmap(result, "a<b & \"c\"", [{ name: "layer" }, { name: "pos", labels: ["<bos>", "x&y"] }]));
    expectWellFormedXml(svg);
    expect(svg).toContain("&lt;bos&gt;");
    expect(svg).not.toContain("no causal path");
  });
});

describe("terminal heatmap", () => {
  const data = directPathHeatmap(directPathResult(), { src: [0, 1], component: "k", mode: "linear" });

  it("plain text: values with shade glyphs, the source and no-path cells, the top paths in order", () => {
    const text = renderTerminalHeatmap(data, { colour: false, width: 100, top: 3, topHeading: "top paths" });
    expect(text).not.toContain("\x1b[");
    expect(text).toContain("  [src] ");
    expect(text).toMatch(/ {6}2 [^\n]*█ \+0\.75/);
    expect(text).toContain("top paths (by |value|):\n   1. 0.1 → 2.3 k   +0.750  (metric 1.5000)\n   2. 0.1 → 1.1 k   -0.200");
    expect(text).toContain("   3. 0.1 → 2.0 k   +0.150");
  });

  it("colour: ANSI 256 backgrounds and a colour legend", () => {
    const text = renderTerminalHeatmap(data, { colour: true, width: 100, top: 1 });
    expect(text).toContain(`\x1b[48;5;${ansi256(divergingColour(1, 1))}m`);
    expect(text).toContain("grey = no causal path");
    expect(text).toContain("1. 0.1 → 2.3 k");
  });

  it("narrow terminals get two-column cells", () => {
    const wide = new PatchResult("act", new Tensor(new Float32Array(2 * 40).map((_, i) => i - 40), [2, 40]), 0, 1, {});
    const text = renderTerminalHeatmap(actHeatmap(wide, "resid_pre", [{ name: "layer" }, { name: "pos" }]), { colour: false, width: 90, top: 1 });
    const rows = text.split("\n").filter((l) => /^ {6}[01] /.test(l));
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row.length).toBeLessThanOrEqual(90);
    expect(rows[0]).toMatch(/^ {6}0 -█-█/);
    expect(rows[1]).toMatch(/^ {6}1 {3}\+ .*\+█$/);
    expect(text).toContain("1. layer 0, pos 0");
  });

  it("top entries skip no-path cells and rank by |value|", () => {
    expect(topEntries(data, 20).map((t) => t.index.join("."))).toEqual(["2.3", "1.1", "2.0", "1.0", "1.2", "2.2", "2.1", "1.3"]);
  });

  it("CSV names the axes and flags no-path entries", () => {
    const csv = toCsv(directPathResult(), data).trim().split("\n");
    expect(csv[0]).toBe("layer,head,score,normalized,no_path");
    expect(csv[12]).toBe(`2,3,${Math.fround(1.5)},0.75,0`);
  });
});

describe("colours", () => {
  it("diverge from near-white at 0 to blue and red at the limits", () => {
    expect(divergingColour(0, 1)).toEqual([247, 247, 247]);
    expect(divergingColour(-1, 1)).toEqual([33, 102, 172]);
    expect(divergingColour(5, 1)).toEqual([178, 24, 43]);
    expect(hex([255, 0, 16])).toBe("#ff0010");
    expect(ansi256([0, 0, 0])).toBe(16);
    expect(ansi256([255, 255, 255])).toBe(231);
    expect(ansi256([178, 24, 43])).toBe(16 + 36 * 3);
  });
});

describe("progress", () => {
  const p = (done: number, elapsedMs: number, etaMs?: number) => ({ done, total: 10, elapsedMs, etaMs });

  it("formats lines and durations", () => {
    expect(plainLine("sweep", p(3, 1500, 3500))).toBe("sweep: 3/10 (30%), 1.5s elapsed, ETA 3.5s");
    expect(plainLine("sweep", p(10, 65_000, 0))).toBe("sweep: 10/10 (100%), 1m05s elapsed, done");
    expect(barLine("sweep", p(5, 10, 10), 60)).toMatch(/^sweep █+░+  50% 5\/10 10ms, ETA 10ms$/);
    expect(barLine("sweep", p(5, 10, 10), 60).length).toBeLessThanOrEqual(59);
    expect(formatDuration(3_725_000)).toBe("1h02m");
  });

  it("plain streams get throttled lines, TTYs a redrawn line, quiet nothing", () => {
    let out = "";
    const stream = { write: (s: string) => { out += s; } };
    let now = 0;
    const plain = createProgress(stream, "s", { tty: false, intervalMs: 1000, now: () => now });
    for (let i = 1; i <= 10; i++) {
      now = i * 300;
      plain.update(p(i, now));
    }
    plain.finish();
    expect(out.trim().split("\n").map((l) => l.split(":")[1]!.trim().split(" ")[0])).toEqual(["1/10", "5/10", "9/10", "10/10"]);

    out = "";
    const tty = createProgress(stream, "s", { tty: true, width: 60 });
    tty.update(p(1, 1));
    tty.update(p(10, 2));
    tty.finish();
    tty.finish();
    expect(out.split("\r\x1b[2K")).toHaveLength(3);
    expect(out.endsWith("done\n")).toBe(true);

    out = "";
    const quiet = createProgress(stream, "s", { quiet: true });
    quiet.update(p(10, 1));
    quiet.finish();
    expect(out).toBe("");
  });
});

describe("argv parser", () => {
  const specs = [
    { name: "model", kind: "string" as const },
    { name: "top", kind: "int" as const },
    { name: "mode", kind: "string" as const, choices: ["linear", "exact"] },
    { name: "quiet", short: "q", kind: "switch" as const },
  ].map((s) => ({ help: "", ...s }));

  it("reads --name value, --name=value, switches and short aliases; - is a value", () => {
    const args = parseArgs("t", ["--model", "-", "--top=7", "-q", "--mode=exact"], specs);
    expect(args.string("model")).toBe("-");
    expect(args.int("top", 10, 1)).toBe(7);
    expect(args.switch("quiet")).toBe(true);
    expect(args.string("mode")).toBe("exact");
    expect(parseArgs("t", [], specs).int("top", 10, 1)).toBe(10);
  });

  it("rejects unknown, repeated, valueless and out-of-choice flags, and stray words", () => {
    const fails = (argv: string[], message: RegExp) => expect(() => parseArgs("t", argv, specs)).toThrow(message);
    fails(["--quite"], /^t: unknown flag --quite \(did you mean --quiet\?\)$/);
    fails(["--zzzzzz"], /^t: unknown flag --zzzzzz$/);
    fails(["-x"], /unknown flag -x/);
    fails(["--model", "a", "--model", "b"], /--model is given twice/);
    fails(["--model"], /--model needs a value/);
    fails(["--model", "--top", "3"], /--model needs a value/);
    fails(["--quiet=yes"], /--quiet takes no value/);
    fails(["--mode", "fast"], /--mode must be one of linear, exact, got "fast"/);
    fails(["extra"], /unexpected argument "extra"/);
    expect(() => parseArgs("t", ["--top", "1.5"], specs).int("top", 10, 1)).toThrow(/--top must be an integer >= 1, got "1.5"/);
    expect(() => parseArgs("t", ["--top", "0"], specs).int("top", 10, 1, 5)).toThrow(/in \[1, 5\]/);
    expect(() => parseArgs("t", [], specs).required("model")).toThrow(/^t: --model is required$/);
  });
});
