// The backward's kernels (assembly/backward-*.ts) against their js twins on random and ragged
// shapes, and identities each must satisfy on its own: softmax's backward rows sum to 0, the
// activation derivatives match finite differences of the forward kernels, a norm's input gradient
// is blind to shifts (LayerNorm) and scalings of its input, and attention's gradients satisfy the
// bilinear identities <gPattern, pattern> = <gv, v> = <gz, z> and <gq, q> = <gk, k> = <gScores, scores>.
import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import type { Kernels } from "../src/engine/kernels.js";
import { randn, RAGGED, relError, rng, wasmEngines } from "./helpers.js";

const engines = await wasmEngines();
const js = Engine.createJs();

/**
 * Uploads `inputs`, then `outputs` (a size for a fresh buffer, or initial contents), runs `fn` with
 * the pointers (inputs first, then outputs) and downloads the outputs.
 */
function call(engine: Engine, inputs: Float32Array[], outputs: (number | Float32Array)[],
  fn: (k: Kernels, p: number[]) => void): Float32Array[] {
  const ptrs = inputs.map((x) => engine.upload(x));
  const outs = outputs.map((o) => (typeof o === "number" ? engine.alloc(Math.max(o, 1)) : engine.upload(o)));
  fn(engine.kernels, [...ptrs, ...outs]);
  const result = outs.map((p, i) => engine.download(p, typeof outputs[i] === "number" ? outputs[i] : outputs[i]!.length));
  for (const p of [...ptrs, ...outs]) engine.free(p);
  return result;
}

/** Σ a·b in f64, and Σ |a·b| (the scale an identity's error is measured against). */
function dot(a: ArrayLike<number>, b: ArrayLike<number>, skip?: (i: number) => boolean): [number, number] {
  let s = 0;
  let abs = 0;
  for (let i = 0; i < a.length; i++) {
    if (skip?.(i)) continue;
    s += a[i]! * b[i]!;
    abs += Math.abs(a[i]! * b[i]!);
  }
  return [s, abs];
}

const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

// ---- norms ----

const NORM_SHAPES: [number, number][] = [...RAGGED.map((d): [number, number] => [3, d]), [4, 768], [3, 769], [2, 3072]];

interface NormCase { gNorm: Float32Array; norm: Float32Array; scale: Float32Array; gScale: Float32Array; gx: Float32Array }

function normCase(rows: number, d: number, seed: number): NormCase {
  return {
    gNorm: randn(rows * d, seed), norm: randn(rows * d, seed + 1), scale: randn(rows, seed + 2).map((x) => Math.abs(x) + 0.3),
    gScale: randn(rows, seed + 3), gx: randn(rows * d, seed + 4),
  };
}

function normGrads(engine: Engine, c: NormCase, rows: number, d: number, centred: number): { gScale: Float32Array; gx: Float32Array } {
  const [gScale] = call(engine, [c.gNorm, c.norm, c.scale], [rows], (k, [gn, n, s, gs]) => k.normScaleGrad(gn!, n!, s!, gs!, rows, d));
  const [gx] = call(engine, [c.gNorm, c.norm, c.scale, c.gScale], [c.gx],
    (k, [gn, n, s, gs, gx]) => k.normInputGrad(gn!, n!, s!, gs!, gx!, rows, d, centred));
  return { gScale: gScale!, gx: gx! };
}

// ---- activations ----

const SPECIAL = [0, -0, 1e-8, -1e-8, 0.5, -0.5, 3, -3, 6, -6, 10, -10, 20, -20, 40, -40, 100, -100];

function activationInput(n: number, seed: number): Float32Array {
  const x = randn(n, seed, 3);
  x.set(SPECIAL.slice(0, n));
  return x;
}

type UnaryGrad = "geluNewGrad" | "geluExactGrad" | "siluGrad";
const FORWARD: Record<UnaryGrad, "geluNew" | "geluExact" | "silu"> = { geluNewGrad: "geluNew", geluExactGrad: "geluExact", siluGrad: "silu" };

function unaryGrad(engine: Engine, name: UnaryGrad, x: Float32Array, g: Float32Array): Float32Array {
  return call(engine, [x, g], [x.length], (k, [px, pg, out]) => k[name](px!, pg!, out!, x.length))[0]!;
}

function swigluGrad(engine: Engine, gate: Float32Array, up: Float32Array, g: Float32Array, name: "swigluGrad" | "gegluGrad" = "swigluGrad"):
  { gGate: Float32Array; gUp: Float32Array } {
  const n = gate.length;
  const [gGate, gUp] = call(engine, [gate, up, g], [n, n], (k, [a, u, pg, gg, gu]) => k[name](a!, u!, pg!, gg!, gu!, n));
  return { gGate: gGate!, gUp: gUp! };
}

// ---- attention ----

interface Case { batch: number; pos: number; nHeads: number; nKvHeads: number; dHead: number; mask: boolean }

const CASES: Case[] = [
  { batch: 1, pos: 1, nHeads: 1, nKvHeads: 1, dHead: 1, mask: false },
  { batch: 2, pos: 3, nHeads: 2, nKvHeads: 1, dHead: 7, mask: true },
  { batch: 1, pos: 7, nHeads: 2, nKvHeads: 2, dHead: 3, mask: false },
  { batch: 2, pos: 17, nHeads: 4, nKvHeads: 2, dHead: 16, mask: true },
  { batch: 2, pos: 5, nHeads: 6, nKvHeads: 3, dHead: 5, mask: true },
  { batch: 1, pos: 64, nHeads: 12, nKvHeads: 12, dHead: 64, mask: false }, // GPT-2 small
  { batch: 3, pos: 33, nHeads: 8, nKvHeads: 2, dHead: 24, mask: true }, // groups of 4
  { batch: 2, pos: 29, nHeads: 4, nKvHeads: 1, dHead: 37, mask: true }, // one kv head
  { batch: 1, pos: 45, nHeads: 4, nKvHeads: 4, dHead: 130, mask: true },
];
const caseName = (c: Case) => `b${c.batch} pos${c.pos} heads ${c.nHeads}/${c.nKvHeads} dHead ${c.dHead}${c.mask ? " masked" : ""}`;

interface AttnInputs {
  q: Float32Array; k: Float32Array; v: Float32Array; keyMask: Float32Array | undefined;
  scores: Float32Array; pattern: Float32Array; gz: Float32Array; gScores: Float32Array;
}

/**
 * A forward's q, k, v, scores and pattern (from the js kernels; batch 0 left-padded by a third,
 * later entries losing random keys), a random gz, and a random gScores that is nonzero everywhere,
 * also where a key is hidden: the kernels must pass nothing from there.
 */
function attnInputs(c: Case, seed: number): AttnInputs {
  const { batch, pos, nHeads, nKvHeads, dHead } = c;
  let keyMask: Float32Array | undefined;
  if (c.mask) {
    const next = rng(seed + 5);
    keyMask = new Float32Array(batch * pos).fill(1);
    for (let j = 0; j < Math.floor(pos / 3); j++) keyMask[j] = 0;
    for (let i = pos; i < batch * pos; i++) if (next() < 0.25) keyMask[i] = 0;
  }
  const q = randn(batch * pos * nHeads * dHead, seed, 1.5);
  const k = randn(batch * pos * nKvHeads * dHead, seed + 1, 1.5);
  const v = randn(batch * pos * nKvHeads * dHead, seed + 2);
  const sn = batch * nHeads * pos * pos;
  const [scores, pattern] = call(js, keyMask ? [q, k, keyMask] : [q, k], [sn, sn], (kn, p) => {
    const [pq, pk] = p;
    const pm = keyMask ? p[2]! : 0;
    const [ps, pp] = p.slice(keyMask ? 3 : 2);
    kn.attnScores(pq!, pk!, ps!, pm, batch, pos, pos, nHeads, nKvHeads, dHead, 1 / Math.sqrt(dHead), 0, nHeads);
    kn.softmax(ps!, pp!, batch * nHeads * pos, pos);
  });
  return {
    q, k, v, keyMask, scores: scores!, pattern: pattern!, gz: randn(batch * pos * nHeads * dHead, seed + 3), gScores: randn(sn, seed + 4),
  };
}

interface AttnGrads { gPattern: Float32Array; gv: Float32Array; gq: Float32Array; gk: Float32Array }

/** Attention's backward on one engine, over the heads [h0, h1) of each call in `ranges` (default: all at once). */
function attnGrads(engine: Engine, c: Case, inp: AttnInputs, ranges: [number, number][] = [[0, c.nHeads]]): AttnGrads {
  const { batch, pos, nHeads, nKvHeads, dHead } = c;
  const qn = batch * pos * nHeads * dHead;
  const kvn = batch * pos * nKvHeads * dHead;
  const sn = batch * nHeads * pos * pos;
  const mask = inp.keyMask ?? new Float32Array(1);
  const [gPattern, gv, gq, gk] = call(engine, [inp.gz, inp.v, inp.pattern, inp.gScores, inp.q, inp.k, mask], [sn, kvn, qn, kvn],
    (k, [gz, v, pattern, gScores, q, kk, m, gPattern, gv, gq, gk]) => {
      for (const [h0, h1] of ranges) {
        k.patternAndValueGrad(gz!, v!, pattern!, gPattern!, gv!, batch, pos, nHeads, nKvHeads, dHead, h0, h1);
        k.queryKeyGrad(gScores!, q!, kk!, inp.keyMask ? m! : 0, gq!, gk!, batch, pos, nHeads, nKvHeads, dHead, 1 / Math.sqrt(dHead), h0, h1);
      }
    });
  return { gPattern: gPattern!, gv: gv!, gq: gq!, gk: gk! };
}

describe("backward twins by hand", () => {
  it("softmaxGrad of a two-key row, and a norm's gradients on one row", () => {
    // p = [0.25, 0.75], g = [1, 3]: Σ p·g = 2.5, out = [0.25 · -1.5, 0.75 · 0.5].
    const [out] = call(js, [new Float32Array([0.25, 0.75]), new Float32Array([1, 3])], [2], (k, [p, g, o]) => k.softmaxGrad(p!, g!, o!, 1, 2));
    expect([...out!]).toEqual([-0.375, 0.375]);
    // norm = [1, -1], scale 2, gNorm = [3, 1]: gScale = -(3 - 1) / 2 = -1; g = gNorm / 2 + (-1) · norm / 2 = [1, 1],
    // centred: g - mean = [0, 0] (added to gx = [5, 6]); uncentred: [6, 7].
    const c: NormCase = {
      gNorm: new Float32Array([3, 1]), norm: new Float32Array([1, -1]), scale: new Float32Array([2]),
      gScale: new Float32Array([-1]), gx: new Float32Array([5, 6]),
    };
    expect([...normGrads(js, c, 1, 2, 1).gScale]).toEqual([-1]);
    expect([...normGrads(js, c, 1, 2, 1).gx]).toEqual([5, 6]);
    expect([...normGrads(js, c, 1, 2, 0).gx]).toEqual([6, 7]);
  });

  it("the attention twins refuse a head range that splits a kv-head group", () => {
    const c: Case = { batch: 1, pos: 3, nHeads: 4, nKvHeads: 2, dHead: 2, mask: false };
    expect(() => attnGrads(js, c, attnInputs(c, 1), [[0, 1]])).toThrow(/heads \[0, 1\) must cover whole groups of nHeads \/ nKvHeads = 4 \/ 2/);
  });
});

for (const engine of engines) {
  describe(`backward kernels ${engine.variant} vs twin`, () => {
    it.each(NORM_SHAPES)("normScaleGrad and normInputGrad (centred and not) on [%i, %i]", (rows, d) => {
      const c = normCase(rows, d, rows * 13 + d);
      for (const centred of [1, 0]) {
        const ours = normGrads(engine, c, rows, d, centred);
        const ref = normGrads(js, c, rows, d, centred);
        expect(relError(ours.gScale, ref.gScale)).toBeLessThanOrEqual(1e-5);
        expect(relError(ours.gx, ref.gx)).toBeLessThanOrEqual(1e-5);
      }
    });

    it.each([...RAGGED, 1000, 4099])("activation gradients on %i elements (and the extremes)", (n) => {
      const x = activationInput(n, n);
      const g = randn(n, n + 1);
      for (const name of ["geluNewGrad", "geluExactGrad", "siluGrad"] as const) {
        const ours = unaryGrad(engine, name, x, g);
        expect(relError(ours, unaryGrad(js, name, x, g)), name).toBeLessThanOrEqual(2e-6);
      }
      const up = randn(n, n + 2);
      for (const name of ["swigluGrad", "gegluGrad"] as const) {
        const ours = swigluGrad(engine, x, up, g, name);
        const ref = swigluGrad(js, x, up, g, name);
        expect(relError(ours.gGate, ref.gGate), name).toBeLessThanOrEqual(2e-6);
        expect(relError(ours.gUp, ref.gUp), name).toBeLessThanOrEqual(2e-6);
      }
    });

    it.each([[1, 1], [5, 3], [4, 7], [9, 17], [12, 64], [3, 129], [2, 1031]])("softmaxGrad on [%i, %i] causal rows", (rows, n) => {
      const scores = randn(rows * n, rows + n, 2);
      for (let r = 0; r < rows; r++) for (let j = (r % n) + 1; j < n; j++) scores[r * n + j] = -Infinity;
      const [pattern] = call(js, [scores], [rows * n], (k, [s, p]) => k.softmax(s!, p!, rows, n));
      const g = randn(rows * n, rows * n);
      const run = (e: Engine) => call(e, [pattern!, g], [rows * n], (k, [p, pg, out]) => k.softmaxGrad(p!, pg!, out!, rows, n))[0]!;
      expect(relError(run(engine), run(js))).toBeLessThanOrEqual(1e-5);
    });

    it.each(CASES.map((c) => [caseName(c), c] as const))("patternAndValueGrad and queryKeyGrad, %s", (_, c) => {
      const inp = attnInputs(c, c.pos * 7 + c.dHead);
      const ours = attnGrads(engine, c, inp);
      const ref = attnGrads(js, c, inp);
      for (const key of ["gPattern", "gv", "gq", "gk"] as const) expect(relError(ours[key], ref[key]), key).toBeLessThanOrEqual(1e-5);
      // Called group by group (as threads split them), the same bits.
      const g = c.nHeads / c.nKvHeads;
      const groups = Array.from({ length: c.nKvHeads }, (_, i): [number, number] => [i * g, (i + 1) * g]);
      const split = attnGrads(engine, c, inp, groups.reverse());
      for (const key of ["gPattern", "gv", "gq", "gk"] as const) expect(bits(split[key]).equals(bits(ours[key])), key).toBe(true);
    });
  });

  describe(`backward kernels ${engine.variant}: identities`, () => {
    it("softmaxGrad's rows sum to 0 (the pattern's rows sum to 1)", () => {
      const [rows, n] = [24, 37];
      const [pattern] = call(js, [randn(rows * n, 3, 3)], [rows * n], (k, [s, p]) => k.softmax(s!, p!, rows, n));
      const g = randn(rows * n, 4);
      const [out] = call(engine, [pattern!, g], [rows * n], (k, [p, pg, o]) => k.softmaxGrad(p!, pg!, o!, rows, n));
      for (let r = 0; r < rows; r++) {
        const [sum, abs] = dot(out!.subarray(r * n, (r + 1) * n), new Float32Array(n).fill(1));
        expect(Math.abs(sum)).toBeLessThanOrEqual(1e-6 * abs + 1e-7);
      }
    });

    it("activation gradients match central differences of the forward kernels", () => {
      const n = 2001;
      const x = new Float32Array(n).map((_, i) => -8 + (16 * i) / (n - 1));
      const h = 1e-2;
      const xp = x.map((v) => v + h);
      const xm = x.map((v) => v - h);
      const ones = new Float32Array(n).fill(1);
      const forward = (name: "geluNew" | "geluExact" | "silu", at: Float32Array) =>
        call(engine, [at], [n], (k, [pa, out]) => k[name](pa!, out!, n))[0]!;
      for (const name of ["geluNewGrad", "geluExactGrad", "siluGrad"] as const) {
        const grad = unaryGrad(engine, name, x, ones);
        const fp = forward(FORWARD[name], xp);
        const fm = forward(FORWARD[name], xm);
        for (let i = 0; i < n; i++) {
          const fd = (fp[i]! - fm[i]!) / (xp[i]! - xm[i]!);
          expect(Math.abs(grad[i]! - fd), `${name} at ${x[i]}`).toBeLessThanOrEqual(5e-4);
        }
      }
      // SwiGLU: gUp is silu(gate) · gPost; gGate the central difference of swiglu in gate.
      const up = randn(n, 9);
      const gPost = randn(n, 10);
      const { gGate, gUp } = swigluGrad(engine, x, up, gPost);
      const silu = forward("silu", x);
      expect(relError(gUp, silu.map((s, i) => s * gPost[i]!))).toBeLessThanOrEqual(1e-6);
      const swiglu = (at: Float32Array) => call(engine, [at, up], [n], (k, [g, u, out]) => k.swiglu(g!, u!, out!, n))[0]!;
      const sp = swiglu(xp);
      const sm = swiglu(xm);
      for (let i = 0; i < n; i++) {
        const fd = ((sp[i]! - sm[i]!) / (xp[i]! - xm[i]!)) * gPost[i]!;
        expect(Math.abs(gGate[i]! - fd)).toBeLessThanOrEqual(5e-4 * (1 + Math.abs(up[i]! * gPost[i]!)));
      }
      // GeGLU the same way: gUp is gelu_new(gate) · gPost, gGate the central difference of geglu in gate.
      const ge = swigluGrad(engine, x, up, gPost, "gegluGrad");
      const gelu = forward("geluNew", x);
      expect(relError(ge.gUp, gelu.map((s, i) => s * gPost[i]!))).toBeLessThanOrEqual(1e-6);
      const geglu = (at: Float32Array) => call(engine, [at, up], [n], (k, [g, u, out]) => k.geglu(g!, u!, out!, n))[0]!;
      const gp = geglu(xp);
      const gm = geglu(xm);
      for (let i = 0; i < n; i++) {
        const fd = ((gp[i]! - gm[i]!) / (xp[i]! - xm[i]!)) * gPost[i]!;
        expect(Math.abs(ge.gGate[i]! - fd)).toBeLessThanOrEqual(5e-4 * (1 + Math.abs(up[i]! * gPost[i]!)));
      }
    });

    it("a norm's input gradient ignores a shift (LayerNorm) and a scaling of its input", () => {
      // norm with mean(norm²) = 1 (eps 0) and, for LayerNorm, mean 0: LN(x + c) = LN(x) and
      // N(a x) = N(x), so gx · 1 = 0 and gx · norm = 0 when gScale is normScaleGrad's.
      const [rows, d] = [5, 133];
      for (const centred of [1, 0]) {
        const norm = randn(rows * d, 21 + centred);
        for (let r = 0; r < rows; r++) {
          const row = norm.subarray(r * d, (r + 1) * d);
          const mean = centred ? row.reduce((a, b) => a + b, 0) / d : 0;
          const rms = Math.sqrt(row.reduce((a, b) => a + (b - mean) ** 2, 0) / d);
          row.set(row.map((v) => (v - mean) / rms));
        }
        const c: NormCase = { ...normCase(rows, d, 30), norm, gx: new Float32Array(rows * d) };
        c.gScale = normGrads(engine, c, rows, d, centred).gScale;
        const { gx } = normGrads(engine, c, rows, d, centred);
        for (let r = 0; r < rows; r++) {
          const gr = gx.subarray(r * d, (r + 1) * d);
          const scale = dot(c.gNorm.subarray(r * d, (r + 1) * d), norm.subarray(r * d, (r + 1) * d))[1] / c.scale[r]!;
          const [along] = dot(gr, norm.subarray(r * d, (r + 1) * d));
          expect(Math.abs(along), `row ${r} centred ${centred}`).toBeLessThanOrEqual(1e-5 * scale);
          if (centred) expect(Math.abs(gr.reduce((a, b) => a + b, 0))).toBeLessThanOrEqual(1e-5 * scale);
        }
      }
    });

    it.each(CASES.map((c) => [caseName(c), c] as const))("bilinear identities of attention's backward, %s", (_, c) => {
      const inp = attnInputs(c, c.pos * 11 + c.dHead);
      const { gPattern, gv, gq, gk } = attnGrads(engine, c, inp);
      const { batch, pos, nHeads, nKvHeads, dHead } = c;
      // z = pattern · v: <gz, z> = <gPattern, pattern> = <gv, v>.
      const [z] = call(engine, [inp.pattern, inp.v], [batch * pos * nHeads * dHead],
        (k, [p, v, out]) => k.attnApplyPattern(p!, v!, out!, batch, pos, pos, nHeads, nKvHeads, dHead, 0, nHeads));
      const [zz, zAbs] = dot(inp.gz, z!);
      const [pp, pAbs] = dot(gPattern, inp.pattern);
      const [vv] = dot(gv, inp.v);
      expect(Math.abs(pp - zz)).toBeLessThanOrEqual(1e-5 * (zAbs + pAbs) + 1e-6);
      expect(Math.abs(vv - zz)).toBeLessThanOrEqual(1e-5 * (zAbs + pAbs) + 1e-6);
      // scores = q·kᵀ · scale on the visible keys: <gq, q> = <gk, k> = <gScores, scores> over them.
      const [ss, sAbs] = dot(inp.gScores, inp.scores, (i) => !Number.isFinite(inp.scores[i]!));
      const [qq] = dot(gq, inp.q);
      const [kk] = dot(gk, inp.k);
      expect(Math.abs(qq - ss)).toBeLessThanOrEqual(1e-5 * sAbs + 1e-6);
      expect(Math.abs(kk - ss)).toBeLessThanOrEqual(1e-5 * sAbs + 1e-6);
    });
  });
}
