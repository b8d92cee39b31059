// Regression guard for the ratios that do not depend on the machine's absolute speed:
// hooklens against its own JS twin (forward suite, vsJs) and hooklens GEMM against XNNPACK
// and the JS twin (gemm suite), measured afresh in one process and compared with the
// ratios committed in bench/results/*.json. Exits 1, naming each ratio, when one fell by
// more than THRESHOLD. Writes nothing: the committed results stay as they are.
//
//   npm run bench:check        (builds first, as npm run bench does)
//
// A ratio that falls past the threshold is measured once more before it counts: the
// machines are shared, and one slow minute should not fail the check.
import { readFile } from "node:fs/promises";
import { run as runForward } from "./forward.js";
import { run as runGemm } from "./gemm.js";

const THRESHOLD = 0.2;
/** A few shapes with every peer: the JS twin runs on all but the unembedding. */
const GEMM_SHAPES = [
  { m: 16, k: 768, n: 768, transB: 0 },
  { m: 64, k: 768, n: 3072, transB: 0 },
  { m: 64, k: 3072, n: 768, transB: 0 },
  { m: 64, k: 768, n: 50257, transB: 0 },
];
/**
 * 1 x 16 only: the JS twin takes seconds per forward, a minute at the larger shapes. The forward
 * suite runs at its full settings (3 s of calls per engine, as the committed rows were measured):
 * quick runs average too few calls for a 20% threshold.
 */
const FORWARD_SHAPES = [[1, 16]];
const GEMM_RATIOS = [["simdVsXnnpack", "simd/xnnpack"], ["relaxedVsXnnpack", "relaxed/xnnpack"], ["simdVsJs", "simd/js"], ["relaxedVsJs", "relaxed/js"]];

/** { key: ratio } from gemm rows: "gemm 64x768x3072 relaxed/xnnpack". */
function gemmRatios(rows) {
  const out = {};
  for (const r of rows) for (const [field, label] of GEMM_RATIOS) if (r[field] != null) out[`gemm ${r.shape} ${label}`] = r[field];
  return out;
}

/** { key: ratio } from forward rows: "forward 1x16 logits relaxed/js". */
function forwardRatios(rows) {
  const out = {};
  for (const r of rows) {
    if (r.engine !== "js") out[`forward ${r.batch}x${r.pos} ${r.unembed ? "logits" : "no-unembed"} ${r.engine}/js`] = r.vsJs;
  }
  return out;
}

async function committed(suite) {
  const text = await readFile(new URL(`./results/${suite}.json`, import.meta.url), "utf8");
  return JSON.parse(text);
}

/** Fresh ratios of both suites, from one process (quiet: the suites' own tables go to a buffer). */
async function measure() {
  const gemm = await quietly(() => runGemm({ quick: true, shapes: GEMM_SHAPES }));
  const forward = await quietly(() => runForward({ quick: false, shapes: FORWARD_SHAPES }));
  return { ...gemmRatios(gemm), ...forwardRatios(forward) };
}

async function quietly(fn) {
  const log = console.log;
  console.log = () => {};
  try {
    return await fn();
  } finally {
    console.log = log;
  }
}

const old = { ...gemmRatios((await committed("gemm")).rows), ...forwardRatios((await committed("forward")).rows) };
console.log(`bench:check: measuring ${GEMM_SHAPES.length} GEMM shapes and the ${FORWARD_SHAPES.map(([b, p]) => `${b}x${p}`).join(", ")} forward ...`);
const fresh = await measure();
let falling = Object.keys(fresh).filter((k) => k in old && fresh[k] < old[k] * (1 - THRESHOLD));
if (falling.length > 0) {
  console.log(`${falling.length} ratio(s) fell by more than ${THRESHOLD * 100}%; measuring again to confirm ...`);
  const again = await measure();
  for (const k of falling) fresh[k] = Math.max(fresh[k], again[k] ?? -Infinity);
  falling = falling.filter((k) => fresh[k] < old[k] * (1 - THRESHOLD));
}

const keys = Object.keys(fresh).filter((k) => k in old);
const width = Math.max(...keys.map((k) => k.length));
console.log(`\n${"ratio".padEnd(width)} ${"old".padStart(8)} ${"new".padStart(8)} ${"change".padStart(8)}`);
for (const k of keys) {
  const change = fresh[k] / old[k] - 1;
  const mark = falling.includes(k) ? "  FELL" : "";
  console.log(`${k.padEnd(width)} ${old[k].toFixed(2).padStart(8)} ${fresh[k].toFixed(2).padStart(8)} ${`${change >= 0 ? "+" : ""}${(change * 100).toFixed(1)}%`.padStart(8)}${mark}`);
}
const missing = Object.keys(fresh).filter((k) => !(k in old));
if (missing.length > 0) console.log(`not in the committed results (not compared): ${missing.join(", ")}`);

if (falling.length > 0) {
  console.error(`\nbench:check FAILED: ${falling.length} ratio(s) fell by more than ${THRESHOLD * 100}% against bench/results:`);
  for (const k of falling) console.error(`  ${k}: ${old[k].toFixed(2)} -> ${fresh[k].toFixed(2)}`);
  process.exit(1);
}
console.log(`\nbench:check passed: ${keys.length} ratios, none fell by more than ${THRESHOLD * 100}%`);
