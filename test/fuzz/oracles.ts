// Independent re-statements of the rules the loaders enforce, written from the format
// descriptions rather than from the loaders' code, so a property can compare the two.

import { posix, win32 } from "node:path";

const SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);

function isIndex(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function forbiddenKeyIn(v: unknown): string | undefined {
  if (Array.isArray(v)) {
    for (const x of v) {
      const k = forbiddenKeyIn(x);
      if (k !== undefined) return k;
    }
  } else if (isObject(v)) {
    for (const key of Object.keys(v)) {
      if (FORBIDDEN.has(key)) return key;
      const k = forbiddenKeyIn(v[key]);
      if (k !== undefined) return k;
    }
  }
  return undefined;
}

/**
 * Why a safetensors header (as it will be serialised) must be refused, or undefined when it is valid:
 * F32/F16/BF16 only, integral non-negative shapes and offsets, `end - begin` equal to the
 * tensor's byte size, begin aligned to the dtype, inside the data, no overlap, string metadata,
 * and no `__proto__` / `constructor` / `prototype` key anywhere.
 */
export function specAcceptsHeader(header: Record<string, unknown>, dataLength: number): string | undefined {
  const parsed = JSON.parse(JSON.stringify(header)) as unknown;
  if (!isObject(parsed)) return "not an object";
  const forbidden = forbiddenKeyIn(parsed);
  if (forbidden !== undefined) return `key ${forbidden}`;
  const spans: [number, number][] = [];
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === "__metadata__") {
      if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === "string")) return "metadata";
      continue;
    }
    if (!isObject(entry)) return `${name}: not an object`;
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string" || !(dtype in SIZES)) return `${name}: dtype`;
    if (!Array.isArray(shape) || !shape.every(isIndex)) return `${name}: shape`;
    const numel = shape.reduce((a: number, b: number) => a * b, 1);
    if (!Number.isSafeInteger(numel)) return `${name}: shape overflows`;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !isIndex(offsets[0]) || !isIndex(offsets[1])) return `${name}: offsets`;
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLength) return `${name}: offsets out of range`;
    if (end - begin !== numel * SIZES[dtype]!) return `${name}: size`;
    if (begin % SIZES[dtype]! !== 0) return `${name}: alignment`;
    if (end > begin) spans.push([begin, end]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) if (spans[i]![0] < spans[i - 1]![1]) return "overlap";
  return undefined;
}

const ROOT = "/models/gpt2";
const WIN_ROOT = "C:\\models\\gpt2";
const BASE = new URL("http://host.invalid/models/gpt2/");

/**
 * Whether using `name` as a file of a model folder could reach anything outside it: resolved
 * as a POSIX path, as a Windows path, or as a URL (raw or percent-encoded) against the folder's base URL.
 */
export function leavesFolder(name: unknown): boolean {
  if (typeof name !== "string" || name.length === 0) return true;
  const inside = (full: string, root: string, sep: string) => full.startsWith(root + sep) && full.length > root.length + 1;
  if (!inside(posix.resolve(ROOT, name), ROOT, "/")) return true;
  if (!inside(win32.resolve(WIN_ROOT, name), WIN_ROOT, "\\")) return true;
  const outside = (url: URL) => url.origin !== BASE.origin || !url.pathname.startsWith(BASE.pathname) || url.pathname.length <= BASE.pathname.length;
  try {
    // As a URL client should build it: each segment percent-encoded.
    if (outside(new URL(name.split("/").map(encodeURIComponent).join("/"), BASE))) return true;
    // As a careless client would: raw. (The URL parser trims leading and trailing spaces and
    // controls, which turns " /x" absolute; such names are judged by the encoded form only.)
    // eslint-disable-next-line no-control-regex
    if (!/^[\u0000-\u0020]|[\u0000-\u0020]$/.test(name) && outside(new URL(name, BASE))) return true;
  } catch {
    return true;
  }
  return false;
}
