import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { randn, relError, rng, wasmEngines } from "./helpers.js";

const engines = await wasmEngines();
const js = Engine.createJs();

interface Case { batch: number; pos: number; nHeads: number; nKvHeads: number; dHead: number; mask: boolean; window?: number }

interface Inputs { q: Float32Array; k: Float32Array; v: Float32Array; keyMask: Float32Array | undefined }

function inputs(c: Case, seed: number): Inputs {
  const { batch, pos, nHeads, nKvHeads, dHead } = c;
  let keyMask: Float32Array | undefined;
  if (c.mask) {
    // Batch 0 is left-padded by a third of the positions (its first rows see no key at all);
    // later batches lose random keys.
    const next = rng(seed + 3);
    keyMask = new Float32Array(batch * pos).fill(1);
    for (let j = 0; j < Math.floor(pos / 3); j++) keyMask[j] = 0;
    for (let i = pos; i < batch * pos; i++) if (next() < 0.25) keyMask[i] = 0;
  }
  return {
    q: randn(batch * pos * nHeads * dHead, seed, 1.5),
    k: randn(batch * pos * nKvHeads * dHead, seed + 1, 1.5),
    v: randn(batch * pos * nKvHeads * dHead, seed + 2),
    keyMask,
  };
}

interface Outputs { scores: Float32Array; pattern: Float32Array; z: Float32Array; fused: Float32Array }

// Runs scores -> softmax -> apply (the hookable path) and the fused kernel on one engine.
function runAttention(engine: Engine, c: Case, inp: Inputs, fusedOnly = false): Outputs {
  const { batch, pos, nHeads, nKvHeads, dHead } = c;
  const scale = 1 / Math.sqrt(dHead);
  const pq = engine.upload(inp.q);
  const pk = engine.upload(inp.k);
  const pv = engine.upload(inp.v);
  const pm = inp.keyMask ? engine.upload(inp.keyMask) : 0;
  const zn = batch * pos * nHeads * dHead;
  const pf = engine.alloc(zn);
  engine.kernels.attention(pq, pk, pv, pf, pm, batch, pos, pos, nHeads, nKvHeads, dHead, scale, 0, nHeads, c.window ?? 0);
  const out: Outputs = { scores: new Float32Array(), pattern: new Float32Array(), z: new Float32Array(), fused: engine.download(pf, zn) };
  const ptrs = [pq, pk, pv, pm, pf];
  if (!fusedOnly) {
    const sn = batch * nHeads * pos * pos;
    const ps = engine.alloc(sn);
    const pp = engine.alloc(sn);
    const pz = engine.alloc(zn);
    engine.kernels.attnScores(pq, pk, ps, pm, batch, pos, pos, nHeads, nKvHeads, dHead, scale, 0, nHeads, c.window ?? 0);
    engine.kernels.softmax(ps, pp, batch * nHeads * pos, pos);
    engine.kernels.attnApplyPattern(pp, pv, pz, batch, pos, pos, nHeads, nKvHeads, dHead, 0, nHeads);
    out.scores = engine.download(ps, sn);
    out.pattern = engine.download(pp, sn);
    out.z = engine.download(pz, zn);
    ptrs.push(ps, pp, pz);
  }
  for (const p of ptrs) engine.free(p);
  return out;
}

// z = pattern · v on one engine, for a pattern given from outside (as a hook would).
function applyPattern(engine: Engine, c: Case, pattern: Float32Array, v: Float32Array): Float32Array {
  const pp = engine.upload(pattern);
  const pv = engine.upload(v);
  const zn = c.batch * c.pos * c.nHeads * c.dHead;
  const pz = engine.alloc(zn);
  engine.kernels.attnApplyPattern(pp, pv, pz, c.batch, c.pos, c.pos, c.nHeads, c.nKvHeads, c.dHead, 0, c.nHeads);
  const z = engine.download(pz, zn);
  for (const p of [pp, pv, pz]) engine.free(p);
  return z;
}

/** relError over the finite entries, after checking both have -Infinity in the same places. */
function scoresError(a: Float32Array, b: Float32Array): number {
  for (let i = 0; i < b.length; i++) {
    if (Number.isFinite(a[i]!) !== Number.isFinite(b[i]!) || (!Number.isFinite(b[i]!) && a[i] !== b[i])) return Infinity;
  }
  return relError(a.filter((_, i) => Number.isFinite(b[i]!)), b.filter((x) => Number.isFinite(x)));
}

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

describe("attention twins by hand", () => {
  // q = [[1, 0], [0, 1]], k = [[1, 0], [1, 1]], v = [[1, 2], [3, 4]], one head, scale 1.
  const base = {
    q: new Float32Array([1, 0, 0, 1]), k: new Float32Array([1, 0, 1, 1]), v: new Float32Array([1, 2, 3, 4]),
  };
  const run = (keyMask?: Float32Array) => {
    const pq = js.upload(base.q);
    const pk = js.upload(base.k);
    const pv = js.upload(base.v);
    const pm = keyMask ? js.upload(keyMask) : 0;
    const [ps, pp, pz, pf] = [4, 4, 4, 4].map((n) => js.alloc(n)) as [number, number, number, number];
    js.kernels.attnScores(pq, pk, ps, pm, 1, 2, 2, 1, 1, 2, 1, 0, 1);
    js.kernels.softmax(ps, pp, 2, 2);
    js.kernels.attnApplyPattern(pp, pv, pz, 1, 2, 2, 1, 1, 2, 0, 1);
    js.kernels.attention(pq, pk, pv, pf, pm, 1, 2, 2, 1, 1, 2, 1, 0, 1);
    const out = { scores: js.download(ps, 4), pattern: js.download(pp, 4), z: js.download(pz, 4), fused: js.download(pf, 4) };
    for (const p of [pq, pk, pv, pm, ps, pp, pz, pf]) js.free(p);
    return out;
  };

  it("two positions, no mask", () => {
    const { scores, pattern, z, fused } = run();
    expect([...scores]).toEqual([1, -Infinity, 0, 1]);
    const p1 = 1 / (1 + Math.E);
    [1, 0, p1, 1 - p1].forEach((x, i) => expect(pattern[i]).toBeCloseTo(x, 7));
    const z1 = [p1 * 1 + (1 - p1) * 3, p1 * 2 + (1 - p1) * 4]; // [2.462117, 3.462117]
    [1, 2, ...z1].forEach((x, i) => expect(z[i]).toBeCloseTo(x, 6));
    expect(relError(fused, z)).toBeLessThanOrEqual(1e-7);
  });

  it("a masked key, and a query whose only key is masked (zero pattern row, z = 0)", () => {
    const second = run(new Float32Array([1, 0]));
    expect([...second.scores]).toEqual([1, -Infinity, 0, -Infinity]);
    expect([...second.pattern]).toEqual([1, 0, 1, 0]);
    expect([...second.fused]).toEqual([1, 2, 1, 2]);
    const first = run(new Float32Array([0, 1]));
    expect([...first.scores]).toEqual([-Infinity, -Infinity, -Infinity, 1]);
    expect([...first.pattern]).toEqual([0, 0, 0, 1]);
    expect([...first.z]).toEqual([0, 0, 3, 4]);
    expect([...first.fused]).toEqual([0, 0, 3, 4]);
  });
});

const CASES: Case[] = [
  { batch: 1, pos: 1, nHeads: 1, nKvHeads: 1, dHead: 1, mask: false },
  { batch: 2, pos: 3, nHeads: 2, nKvHeads: 1, dHead: 7, mask: true },
  { batch: 1, pos: 7, nHeads: 2, nKvHeads: 2, dHead: 3, mask: false },
  { batch: 2, pos: 17, nHeads: 4, nKvHeads: 2, dHead: 16, mask: false },
  { batch: 2, pos: 17, nHeads: 4, nKvHeads: 2, dHead: 16, mask: true },
  { batch: 2, pos: 65, nHeads: 3, nKvHeads: 3, dHead: 17, mask: true },
  { batch: 1, pos: 129, nHeads: 12, nKvHeads: 12, dHead: 64, mask: false }, // GPT-2 small
  { batch: 2, pos: 131, nHeads: 8, nKvHeads: 2, dHead: 64, mask: true }, // grouped-query
  { batch: 1, pos: 70, nHeads: 4, nKvHeads: 1, dHead: 128, mask: true },
  { batch: 3, pos: 33, nHeads: 6, nKvHeads: 3, dHead: 65, mask: true },
  // Sliding windows (Mistral): each query reads its last `window` keys only; odd and even query pairs, masks too.
  { batch: 2, pos: 23, nHeads: 4, nKvHeads: 2, dHead: 16, mask: false, window: 6 },
  { batch: 3, pos: 33, nHeads: 6, nKvHeads: 3, dHead: 65, mask: true, window: 7 },
  { batch: 1, pos: 70, nHeads: 4, nKvHeads: 1, dHead: 128, mask: false, window: 1 },
  { batch: 2, pos: 9, nHeads: 2, nKvHeads: 2, dHead: 5, mask: true, window: 40 }, // wider than the sequence: no effect
];
const name = (c: Case) =>
  `b${c.batch} pos${c.pos} heads ${c.nHeads}/${c.nKvHeads} dHead ${c.dHead}${c.mask ? " masked" : ""}${c.window ? ` window ${c.window}` : ""}`;

describe("attention twin: fused equals scores -> softmax -> apply", () => {
  it.each(CASES.map((c) => [name(c), c] as const))("%s", (_, c) => {
    const ref = runAttention(js, c, inputs(c, c.pos * 31 + c.dHead));
    expect(relError(ref.fused, ref.z)).toBeLessThanOrEqual(1e-6);
    expect(ref.fused.every((x) => Number.isFinite(x))).toBe(true);
  });
});

for (const engine of engines) {
  describe(`attention ${engine.variant} vs twin`, () => {
    it.each(CASES.map((c) => [name(c), c] as const))("%s", (_, c) => {
      const inp = inputs(c, c.pos * 31 + c.dHead);
      const ours = runAttention(engine, c, inp);
      const ref = runAttention(js, c, inp);
      expect(scoresError(ours.scores, ref.scores)).toBeLessThanOrEqual(1e-5);
      expect(relError(ours.pattern, ref.pattern)).toBeLessThanOrEqual(1e-5);
      expect(relError(ours.z, ref.z)).toBeLessThanOrEqual(1e-5);
      expect(relError(ours.fused, ref.fused)).toBeLessThanOrEqual(1e-5);
      // Rows up to the fused kernel's chunk (4096 keys) are the pattern path's bits, taken one query or two at a time.
      expect(bits(ours.fused)).toEqual(bits(ours.z));
      if (c.window) {
        // Keys before a query's window get -Infinity scores and zero weight; the rest sum to one.
        for (let r = 0; r < c.batch * c.nHeads * c.pos; r++) {
          const i = r % c.pos;
          for (let j = 0; j <= i - c.window; j++) {
            expect(ours.scores[r * c.pos + j], `row ${r} key ${j}`).toBe(-Infinity);
            expect(ours.pattern[r * c.pos + j]).toBe(0);
          }
        }
        // And the window changes the result (when it is narrower than the sequence).
        if (c.window < c.pos) expect(relError(ours.fused, runAttention(engine, { ...c, window: 0 }, inp, true).fused)).toBeGreaterThan(1e-3);
        else expect(bits(ours.fused)).toEqual(bits(runAttention(engine, { ...c, window: 0 }, inp, true).fused));
      }
      if (c.mask) {
        // Batch 0's first row sees only padding: zero pattern row and z = 0, not NaN.
        const rowLen = c.pos;
        expect([...ours.pattern.subarray(0, rowLen)]).toEqual(new Array(rowLen).fill(0));
        expect([...ours.fused.subarray(0, c.dHead)]).toEqual(new Array(c.dHead).fill(0));
        expect(ours.fused.every((x) => Number.isFinite(x))).toBe(true);
      }
    });

    it("applies an arbitrary (non-causal) pattern over every key", () => {
      const c: Case = { batch: 2, pos: 37, nHeads: 4, nKvHeads: 2, dHead: 19, mask: false };
      const pattern = randn(c.batch * c.nHeads * c.pos * c.pos, 77);
      const v = randn(c.batch * c.pos * c.nKvHeads * c.dHead, 78);
      const ours = applyPattern(engine, c, pattern, v);
      expect(relError(ours, applyPattern(js, c, pattern, v))).toBeLessThanOrEqual(1e-5);
    });

    it("is deterministic (fused and unfused)", () => {
      const c: Case = { batch: 2, pos: 45, nHeads: 4, nKvHeads: 2, dHead: 20, mask: true };
      const inp = inputs(c, 5);
      const a = runAttention(engine, c, inp);
      const b = runAttention(engine, c, inp);
      expect(bits(b.fused)).toEqual(bits(a.fused));
      expect(bits(b.z)).toEqual(bits(a.z));
      expect(bits(b.scores)).toEqual(bits(a.scores));
    });

    it("fused kernel handles rows longer than its scratch (online rescale across chunks)", () => {
      const c: Case = { batch: 2, pos: 4100, nHeads: 1, nKvHeads: 1, dHead: 4, mask: true };
      const inp = inputs(c, 11);
      // Batch 0: the first 4096 keys are padding, so rows up to 4095 see nothing and later
      // rows see only the second chunk. Batch 1: random holes. Scores grow along the row so
      // the running max moves from chunk to chunk.
      inp.keyMask!.fill(0, 0, 4096).fill(1, 4096, 4100);
      for (let j = 0; j < c.pos; j++) inp.k[(c.pos + j) * 4] = j / 200;
      inp.q.fill(1, c.pos * 4);
      const ours = runAttention(engine, c, inp, true).fused;
      const ref = runAttention(js, c, inp, true).fused;
      expect(relError(ours, ref)).toBeLessThanOrEqual(1e-5);
      expect([...ours.subarray(0, 4096 * 4)].every((x) => x === 0)).toBe(true);
      // A window of 3 keys: for the last queries the whole first chunk lies before the window (skipped); for others it is cut.
      const windowed = { ...c, window: 3 };
      expect(relError(runAttention(engine, windowed, inp, true).fused, runAttention(js, windowed, inp, true).fused)).toBeLessThanOrEqual(1e-5);
    });
  });
}

describe("queries over a kept prefix (qLen < kLen) equal the tail of the whole-sequence run", () => {
  const c: Case = { batch: 2, pos: 23, nHeads: 4, nKvHeads: 2, dHead: 20, mask: true };
  for (const engine of [js, ...engines]) {
    for (const qLen of [1, 5, 22]) {
      it(`${engine.variant}, last ${qLen} of ${c.pos} positions`, () => {
        const inp = inputs(c, 99);
        const full = runAttention(engine, c, inp);
        const { batch, pos: kLen, nHeads: H, nKvHeads, dHead: d } = c;
        // q of the last qLen positions of each row: [batch, qLen, H, d]
        const qTail = new Float32Array(batch * qLen * H * d);
        for (let b = 0; b < batch; b++) {
          qTail.set(inp.q.subarray((b * kLen + kLen - qLen) * H * d, (b + 1) * kLen * H * d), b * qLen * H * d);
        }
        const [pq, pk, pv, pm] = [qTail, inp.k, inp.v, inp.keyMask!].map((x) => engine.upload(x));
        const zn = batch * qLen * H * d;
        const sn = batch * H * qLen * kLen;
        const [pf, pz, ps, pp] = [zn, zn, sn, sn].map((n) => engine.alloc(n));
        const scale = 1 / Math.sqrt(d);
        engine.kernels.attention(pq, pk, pv, pf, pm, batch, qLen, kLen, H, nKvHeads, d, scale, 0, H);
        engine.kernels.attnScores(pq, pk, ps, pm, batch, qLen, kLen, H, nKvHeads, d, scale, 0, H);
        engine.kernels.softmax(ps, pp, batch * H * qLen, kLen);
        engine.kernels.attnApplyPattern(pp, pv, pz, batch, qLen, kLen, H, nKvHeads, d, 0, H);
        const fused = engine.download(pf, zn);
        const z = engine.download(pz, zn);
        const scores = engine.download(ps, sn);
        for (const p of [pq, pk, pv, pm, pf, pz, ps, pp]) engine.free(p);
        for (let b = 0; b < batch; b++) {
          const want = full.fused.subarray((b * kLen + kLen - qLen) * H * d, (b + 1) * kLen * H * d);
          expect(relError(fused.subarray(b * qLen * H * d, (b + 1) * qLen * H * d), want)).toBeLessThanOrEqual(1e-6);
          expect(relError(z.subarray(b * qLen * H * d, (b + 1) * qLen * H * d), want)).toBeLessThanOrEqual(1e-5);
          expect(bits(fused.subarray(b * qLen * H * d, (b + 1) * qLen * H * d))).toEqual(bits(z.subarray(b * qLen * H * d, (b + 1) * qLen * H * d)));
          for (let h = 0; h < H; h++) {
            const got = scores.subarray((b * H + h) * qLen * kLen, (b * H + h + 1) * qLen * kLen);
            const ref = full.scores.subarray(((b * H + h) * kLen + kLen - qLen) * kLen, (b * H + h + 1) * kLen * kLen);
            expect(scoresError(got, ref)).toBeLessThanOrEqual(1e-6);
          }
        }
      });
    }
  }
});

describe("head ranges", () => {
  it("computing heads [0, h) and [h, H) in two calls writes exactly what one call writes", async () => {
    const [batch, pos, H, Hk, d] = [2, 21, 6, 3, 16];
    const q = randn(batch * pos * H * d, 71);
    const k = randn(batch * pos * Hk * d, 72);
    const v = randn(batch * pos * Hk * d, 73);
    for (const engine of [Engine.createJs(), ...(await wasmEngines())]) {
      const [pq, pk, pv] = [q, k, v].map((x) => engine.upload(x)) as [number, number, number];
      const zn = batch * pos * H * d;
      const sn = batch * H * pos * pos;
      const run = (ranges: [number, number][]) => {
        const [pz, ps, pp, pz2] = [zn, sn, sn, zn].map((n) => engine.upload(new Float32Array(n).fill(7)));
        for (const [h0, h1] of ranges) {
          engine.kernels.attention(pq, pk, pv, pz, 0, batch, pos, pos, H, Hk, d, 0.25, h0, h1);
          engine.kernels.attnScores(pq, pk, ps, 0, batch, pos, pos, H, Hk, d, 0.25, h0, h1);
        }
        engine.kernels.softmax(ps, pp, batch * H * pos, pos);
        for (const [h0, h1] of ranges) engine.kernels.attnApplyPattern(pp, pv, pz2, batch, pos, pos, H, Hk, d, h0, h1);
        const out = [engine.download(pz, zn), engine.download(ps, sn), engine.download(pz2, zn)];
        for (const p of [pz, ps, pp, pz2]) engine.free(p);
        return out;
      };
      const whole = run([[0, H]]);
      const parts = run([[0, 1], [1, 4], [4, H]]);
      for (const [i, x] of whole.entries()) expect(parts[i], `${engine.variant} output ${i}`).toEqual(x);
      // An empty range writes nothing.
      const none = run([[2, 2]]);
      expect(none[0]!.every((x) => x === 7), engine.variant).toBe(true);
      for (const p of [pq, pk, pv]) engine.free(p);
    }
  });
});
