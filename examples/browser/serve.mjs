#!/usr/bin/env node
// `npm run serve`: a tiny static server for the browser page, on 127.0.0.1 only.
//   /            this folder (the page)
//   /hooklens/   the package: dist/ and build/ (the repo by default, or --package DIR, e.g. node_modules/hooklens)
//   /vendor/tokenizers.mjs   @huggingface/tokenizers, found from the package's folder up (text prompts need it)
//   /models/     --models DIR, model folders to load by URL (same origin; no CORS headers are sent,
//                so the page refuses these files from any other origin, as a strict server would)
// Usage: node examples/browser/serve.mjs [--port 8080] [--package DIR] [--models DIR]
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = resolve(fileURLToPath(new URL(".", import.meta.url)));
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const port = Number(flag("port", process.env.PORT ?? "8080"));
const packageDir = resolve(flag("package", join(here, "..", "..")));
const modelsDir = flag("models") === undefined ? undefined : resolve(flag("models"));

/** The ES module build of @huggingface/tokenizers in the nearest node_modules above the package. */
function tokenizersModule() {
  for (let dir = packageDir; ; dir = dirname(dir)) {
    const file = join(dir, "node_modules", "@huggingface", "tokenizers", "dist", "tokenizers.mjs");
    if (existsSync(file)) return file;
    if (dirname(dir) === dir) return undefined;
  }
}
const tokenizersFile = tokenizersModule();

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8", ".json": "application/json", ".wasm": "application/wasm", ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** The file a URL path names, or undefined when it is outside the served folders. */
function fileFor(pathname) {
  const path = decodeURIComponent(pathname);
  if (path === "/vendor/tokenizers.mjs") return tokenizersFile;
  const [root, rest] = path.startsWith("/hooklens/dist/") || path.startsWith("/hooklens/build/")
    ? [packageDir, path.slice("/hooklens/".length)]
    : path.startsWith("/models/") && modelsDir !== undefined ? [modelsDir, path.slice("/models/".length)]
      : [here, path === "/" ? "index.html" : path.slice(1)];
  const file = resolve(root, rest);
  return file.startsWith(root + sep) ? file : undefined;
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  const file = fileFor(url.pathname);
  let size = -1;
  try {
    if (file !== undefined && statSync(file).isFile()) size = statSync(file).size;
  } catch { /* not found below */ }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" }).end();
  } else if (size < 0) {
    res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${url.pathname}\n`);
  } else {
    // Cross-origin isolation: the page may then share WebAssembly memory, so the engine can
    // run its kernels on two threads.
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": size, "cache-control": "no-cache",
      "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp",
    });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  }
});

server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  console.log(`hooklens page: http://127.0.0.1:${address.port}/  (package: ${packageDir}${modelsDir ? `; models: ${modelsDir} at /models/` : ""})`);
  if (tokenizersFile === undefined) console.log("  @huggingface/tokenizers is not installed near the package: models load, but prompts are token ids only");
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
