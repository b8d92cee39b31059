import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { loadSafetensorsWeights, readJsonConfig } from "../src/io/checkpoint.js";
import { ModelFormatError, ModelSourceError, type ModelSourceCode } from "../src/io/errors.js";
import { bytesSource, folderSource, hubSource, openSource, urlSource, type ModelSource } from "../src/io/source.js";
import { hubBaseUrl } from "../src/io/source-url.js";
import { referenceDir } from "./reference.js";

const REFERENCE = referenceDir("tiny-gpt2-random-f16").slice(0, -1);

async function expectSourceError(promise: Promise<unknown>, code: ModelSourceCode, file: string, mentions?: RegExp): Promise<ModelSourceError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelSourceError);
  const e = error as ModelSourceError;
  expect({ code: e.code, file: e.file }).toEqual({ code, file });
  expect(e.message.startsWith(`${file}: `)).toBe(true);
  if (mentions) expect(e.message).toMatch(mentions);
  return e;
}

const UNSAFE_NAMES = ["../config.json", "a/../../x", "/etc/passwd", "C:\\x", "a\\b", "http://evil.example/x", "//evil.example/x", "%2e%2e/x", "x?y", "", "a//b", "./x"];

describe("bytes source", () => {
  const config = new TextEncoder().encode('{"n_layer": 3}');
  const source = bytesSource({ "config.json": config, "raw.bin": new Uint8Array([1, 2, 3]).buffer, "sub/x.txt": new TextEncoder().encode("hi") });

  test("reads, reads text and answers exists", async () => {
    const read = await source.readFile("config.json");
    expect(read).toEqual(config);
    expect(read).not.toBe(config); // a copy: loaded weights never alias the caller's buffers
    expect(await bytesSource({ "config.json": config }, { share: true }).readFile("config.json")).toBe(config);
    expect(Array.from(await source.readFile("raw.bin"))).toEqual([1, 2, 3]);
    expect(await source.readText("sub/x.txt")).toBe("hi");
    expect(await source.exists("config.json")).toBe(true);
    expect(await source.exists("missing.json")).toBe(false);
    expect(source.location).toBe("memory");
    expect(bytesSource({}, { location: "upload" }).location).toBe("upload");
  });

  test("a Map works too, and a missing file is a ModelSourceError naming it", async () => {
    const fromMap = bytesSource(new Map([["a.bin", new Uint8Array([9])]]));
    expect(Array.from(await fromMap.readFile("a.bin"))).toEqual([9]);
    await expectSourceError(fromMap.readFile("model.safetensors"), "not_found", "model.safetensors", /not found in memory/);
  });

  test("non-UTF-8 text is a format error naming the file", async () => {
    const bad = bytesSource({ "config.json": new Uint8Array([0x7b, 0xff, 0x7d]) });
    await expect(bad.readText("config.json")).rejects.toThrow(ModelFormatError);
    await expect(bad.readText("config.json")).rejects.toThrow(/config.json: is not valid UTF-8/);
  });

  test("refuses values that are not bytes and unsafe names", async () => {
    expect(() => bytesSource({ "a.json": "text" as never })).toThrow(/file "a.json" must be a Uint8Array or ArrayBuffer, got string/);
    for (const name of UNSAFE_NAMES) await expectSourceError(source.readFile(name), "bad_name", name, /file name/);
    await expectSourceError(source.exists("../x"), "bad_name", "../x");
  });
});

describe("folder source", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hooklens-io-"));
    await mkdir(join(dir, "model"));
    await mkdir(join(dir, "model", "sub"));
    await writeFile(join(dir, "model", "config.json"), '{"a": 1}');
    await writeFile(join(dir, "model", "sub", "x.bin"), new Uint8Array([5, 6]));
    await writeFile(join(dir, "secret.json"), '{"secret": true}');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("reads files, sub-folders and text; exists is false for folders and missing files", async () => {
    const source = folderSource(join(dir, "model"));
    expect(await source.readText("config.json")).toBe('{"a": 1}');
    const bytes = await source.readFile("sub/x.bin");
    expect(Object.getPrototypeOf(bytes)).toBe(Uint8Array.prototype);
    expect(Array.from(bytes)).toEqual([5, 6]);
    expect(await source.exists("config.json")).toBe(true);
    expect(await source.exists("sub")).toBe(false);
    expect(await source.exists("nope.json")).toBe(false);
  });

  test("a missing file or a folder read as a file is a ModelSourceError naming it", async () => {
    const source = folderSource(join(dir, "model"));
    await expectSourceError(source.readFile("model.safetensors"), "not_found", "model.safetensors", /not found in folder/);
    await expectSourceError(source.readFile("sub"), "read_failed", "sub", /cannot be read/);
    await expectSourceError(folderSource(join(dir, "absent")).readFile("config.json"), "not_found", "config.json");
  });

  test("names that leave the folder are refused before touching the disk", async () => {
    const source = folderSource(join(dir, "model"));
    for (const name of UNSAFE_NAMES) await expectSourceError(source.readFile(name), "bad_name", name);
    await expectSourceError(source.readFile("../secret.json"), "bad_name", "../secret.json", /".." segment/);
  });

  test("a file: URL opens the same folder; openSource dispatches paths to it", async () => {
    const byUrl = openSource(pathToFileURL(join(dir, "model")));
    expect(await byUrl.readText("config.json")).toBe('{"a": 1}');
    const byPath = openSource(join(dir, "model"));
    expect(byPath.location).toBe(join(dir, "model"));
    expect(await byPath.exists("config.json")).toBe(true);
  });

  test("the reference checkpoint loads from its folder", async () => {
    const source = openSource(REFERENCE);
    const weights = await loadSafetensorsWeights(source);
    expect(weights["transformer.wte.weight"]!.shape).toEqual([100, 64]);
    const config = await readJsonConfig(source);
    expect(config.n_embd).toBe(64);
  });
});

describe("URL source against a local HTTP server", () => {
  let server: Server;
  let origin: string;
  const requests: Array<{ method: string; url: string }> = [];
  const files = new Map<string, Uint8Array>();

  function serve(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    requests.push({ method: req.method ?? "GET", url });
    const send = (name: string) => {
      const body = files.get(decodeURIComponent(name));
      if (body === undefined) {
        res.writeHead(404, { "content-type": "text/plain" }).end("Entry not found");
        return;
      }
      res.writeHead(200, { "content-length": String(body.length), "content-type": "application/octet-stream" });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    let m: RegExpMatchArray | null;
    if ((m = url.match(/^\/plain\/(.+)$/))) return send(m[1]!);
    if ((m = url.match(/^\/hub\/org\/tiny\/resolve\/([^/]+)\/(.+)$/))) {
      if (m[1] !== "main" && m[1] !== "refs%2Fpr%2F1") return void res.writeHead(404).end();
      return send(m[2]!);
    }
    if (url.startsWith("/status500/")) return void res.writeHead(500, "Internal Server Error").end("boom");
    if ((m = url.match(/^\/(cut|short|liar)\/(.+)$/))) {
      const body = files.get(m[2]!)!;
      const half = body.subarray(0, body.length >> 1);
      if (m[1] === "liar") {
        // A well-formed response whose file is truncated: the loader, not HTTP, must notice.
        res.writeHead(200, { "content-length": String(half.length) }).end(half);
        return;
      }
      res.writeHead(200, { "content-length": String(body.length) });
      res.write(half, () => {
        // cut: reset the connection mid-body; short: close it cleanly before content-length is reached.
        setTimeout(() => (m![1] === "cut" ? req.socket.destroy() : req.socket.end()), 20);
      });
      return;
    }
    if (url.startsWith("/slow/")) {
      res.writeHead(200, { "content-length": "100" });
      res.write(new Uint8Array(10));
      return; // never finishes: for the abort test
    }
    res.writeHead(404).end();
  }

  beforeAll(async () => {
    for (const name of ["config.json", "model.safetensors"]) files.set(name, new Uint8Array(await readFile(join(REFERENCE, name))));
    files.set("with space.json", new TextEncoder().encode('{"ok": true}'));
    server = createServer(serve);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test("opening a URL or hub source makes no request", () => {
    const before = requests.length;
    openSource(`${origin}/plain/`);
    openSource({ repo: "org/tiny", endpoint: `${origin}/hub` });
    urlSource(`${origin}/plain`);
    expect(requests.length).toBe(before);
  });

  test("plain folder URL: files, text, exists by HEAD, names percent-encoded", async () => {
    const source = openSource(`${origin}/plain`); // the trailing slash is added
    expect(source.location).toBe(`${origin}/plain/`);
    expect(Buffer.from(await source.readFile("model.safetensors")).equals(files.get("model.safetensors")!)).toBe(true);
    expect(JSON.parse(await source.readText("config.json")).n_layer).toBe(3);
    expect(JSON.parse(await source.readText("with space.json"))).toEqual({ ok: true });
    expect(requests.at(-1)!.url).toBe("/plain/with%20space.json");
    const before = requests.length;
    expect(await source.exists("config.json")).toBe(true);
    expect(await source.exists("tokenizer.json")).toBe(false);
    expect(requests.slice(before).map((r) => r.method)).toEqual(["HEAD", "HEAD"]);
  });

  test("onProgress reports each file's bytes as they arrive, ending at its size", async () => {
    const seen: Array<{ file: string; received: number; total?: number }> = [];
    const source = urlSource(`${origin}/plain/`, { onProgress: (p) => seen.push({ ...p }) });
    const bytes = await source.readFile("model.safetensors");
    await source.readFile("config.json");
    const weights = seen.filter((p) => p.file === "model.safetensors");
    expect(weights.length).toBeGreaterThan(0);
    expect(weights.at(-1)).toEqual({ file: "model.safetensors", received: bytes.length, total: bytes.length });
    for (let i = 1; i < weights.length; i++) expect(weights[i]!.received).toBeGreaterThan(weights[i - 1]!.received);
    expect(seen.at(-1)!.file).toBe("config.json");
    expect(seen.at(-1)!.received).toBe(files.get("config.json")!.length);
  });

  test("hub layout {endpoint}/{repo}/resolve/{revision}/{file}", async () => {
    expect(hubBaseUrl({ repo: "openai-community/gpt2" })).toBe("https://huggingface.co/openai-community/gpt2/resolve/main/");
    expect(hubBaseUrl({ repo: "gpt2", revision: "refs/pr/1", endpoint: "https://hf.example/" })).toBe("https://hf.example/gpt2/resolve/refs%2Fpr%2F1/");
    expect(() => hubBaseUrl({ repo: "../etc" })).toThrow(/owner\/name/);
    expect(() => hubBaseUrl({ repo: "a/b/c" })).toThrow(/owner\/name/);
    expect(() => hubBaseUrl({ repo: "a/b", endpoint: "ftp://x" })).toThrow(/http\(s\) URL/);

    const source = openSource({ repo: "org/tiny", endpoint: `${origin}/hub` });
    expect(source.location).toBe(`${origin}/hub/org/tiny/resolve/main/`);
    const weights = await loadSafetensorsWeights(source);
    const local = await loadSafetensorsWeights(openSource(REFERENCE));
    expect(Object.keys(weights).sort()).toEqual(Object.keys(local).sort());
    expect(Array.from(weights["transformer.h.1.mlp.c_fc.weight"]!.data)).toEqual(Array.from(local["transformer.h.1.mlp.c_fc.weight"]!.data));
    expect((await readJsonConfig(source)).n_head).toBe(4);

    const pr = hubSource({ repo: "org/tiny", revision: "refs/pr/1", endpoint: `${origin}/hub` });
    expect(JSON.parse(await pr.readText("config.json")).n_embd).toBe(64);
    expect(requests.at(-1)!.url).toBe("/hub/org/tiny/resolve/refs%2Fpr%2F1/config.json");
    await expectSourceError(hubSource({ repo: "org/tiny", revision: "v9", endpoint: `${origin}/hub` }).readFile("config.json"), "not_found", "config.json", /HTTP 404/);
  });

  test("404 is not_found with the status; exists answers false", async () => {
    const source = urlSource(`${origin}/plain/`);
    const e = await expectSourceError(source.readFile("model.safetensors.index.json"), "not_found", "model.safetensors.index.json", /not found at http:\/\/127\.0\.0\.1:\d+\/plain\/model\.safetensors\.index\.json \(HTTP 404/);
    expect(e.status).toBe(404);
    await expectSourceError(loadSafetensorsWeights(urlSource(`${origin}/nothing/`)), "not_found", "model.safetensors", /neither model.safetensors nor model.safetensors.index.json/);
  });

  test("500 is http_error with the status, for reads and for exists", async () => {
    const source = urlSource(`${origin}/status500/`);
    const e = await expectSourceError(source.readFile("model.safetensors"), "http_error", "model.safetensors", /answered HTTP 500 Internal Server Error/);
    expect(e.status).toBe(500);
    await expectSourceError(source.exists("config.json"), "http_error", "config.json", /HTTP 500/);
    await expectSourceError(loadSafetensorsWeights(source), "http_error", "model.safetensors");
  });

  test("a connection cut mid-body is a truncated download naming the file", async () => {
    const e = await expectSourceError(urlSource(`${origin}/cut/`).readFile("model.safetensors"), "truncated", "model.safetensors", /broke off after|ended after/);
    expect(e.message).toMatch(new RegExp(`of ${files.get("model.safetensors")!.length}`));
  });

  test("a body that ends before its content-length is a truncated download", async () => {
    await expectSourceError(urlSource(`${origin}/short/`).readFile("model.safetensors"), "truncated", "model.safetensors", /after \d+ of \d+ bytes/);
  });

  test("a truncated file served as a complete response is refused by the reader, naming the file", async () => {
    const source = urlSource(`${origin}/liar/`);
    const error = await loadSafetensorsWeights({ ...source, exists: async () => true } as ModelSource).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ModelFormatError);
    expect((error as ModelFormatError).file).toBe("model.safetensors");
    expect((error as ModelFormatError).code).toBe("offsets_out_of_range");
  });

  test("an unreachable server is a network_error", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expectSourceError(urlSource(`http://127.0.0.1:${port}/`).readFile("config.json"), "network_error", "config.json", /request to http:\/\/127\.0\.0\.1:\d+\/config\.json failed/);
  });

  test("an AbortSignal aborts a download with an AbortError", async () => {
    const controller = new AbortController();
    const pending = urlSource(`${origin}/slow/`, { signal: controller.signal }).readFile("model.safetensors");
    setTimeout(() => controller.abort(), 50);
    const error = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as Error).name).toBe("AbortError");
  });

  test("unsafe names never reach the network; bad bases are refused", async () => {
    const source = urlSource(`${origin}/plain/`);
    const before = requests.length;
    for (const name of UNSAFE_NAMES) await expectSourceError(source.readFile(name), "bad_name", name);
    expect(requests.length).toBe(before);
    expect(() => urlSource("ftp://host/x/")).toThrow(/http\(s\) URL/);
    expect(() => urlSource("not a url")).toThrow(/absolute http\(s\) URL/);
  });

  test("a custom fetch and headers are used", async () => {
    const seen: string[] = [];
    const fetchImpl: typeof fetch = async (input, init) => {
      seen.push(`${String(input)} ${new Headers(init?.headers).get("authorization")}`);
      return new Response(new Uint8Array([1, 2]), { status: 200 });
    };
    const source = urlSource("https://models.example/m/", { fetch: fetchImpl, headers: { authorization: "Bearer t" } });
    expect(Array.from(await source.readFile("a.bin"))).toEqual([1, 2]);
    expect(seen).toEqual(["https://models.example/m/a.bin Bearer t"]);
  });

  test("a body length that disagrees with content-length is refused either way", async () => {
    const answer = (length: string): typeof fetch => async () =>
      new Response(new Uint8Array([1, 2]), { status: 200, headers: { "content-length": length } });
    await expectSourceError(urlSource("https://m.example/", { fetch: answer("10") }).readFile("a.bin"), "truncated", "a.bin", /ended after 2 of 10 bytes/);
    await expectSourceError(urlSource("https://m.example/", { fetch: answer("1") }).readFile("a.bin"), "truncated", "a.bin", /more than its content-length of 1/);
  });
});

describe("openSource", () => {
  test("dispatches on the argument", () => {
    expect(openSource("https://host/dir/").location).toBe("https://host/dir/");
    expect(openSource(new URL("http://host/dir")).location).toBe("http://host/dir/");
    expect(openSource("./relative/folder").location).toBe("./relative/folder");
    expect(openSource({ repo: "org/m", revision: "v1" }).location).toBe("https://huggingface.co/org/m/resolve/v1/");
    expect(openSource({ "config.json": new Uint8Array(0) }).location).toBe("memory");
    const custom = bytesSource({});
    expect(openSource(custom)).toBe(custom);
  });

  test("refuses what it cannot open", () => {
    expect(() => openSource(null as never)).toThrow(/expected a folder path, URL, \{ repo \} or file bytes, got null/);
    expect(() => openSource(42 as never)).toThrow(/got number/);
    expect(() => openSource({ "config.json": 1 } as never)).toThrow(/must be a Uint8Array or ArrayBuffer/);
  });
});

describe("runtime portability", () => {
  test("no io module imports node: statically, so the loaders load in browsers and Workers", async () => {
    const dir = new URL("../src/io/", import.meta.url);
    const files = (await readdir(dir)).filter((f) => f.endsWith(".ts"));
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      const text = await readFile(new URL(file, dir), "utf8");
      expect({ file, staticNode: /^\s*import\s[^;]*from\s+["']node:/m.test(text) }).toEqual({ file, staticNode: false });
    }
  });
});

describe("layering", () => {
  test("the sources and the loaders know ModelSource from its own file, never their dispatcher source.ts", async () => {
    const dir = new URL("../src/io/", import.meta.url);
    const files = (await readdir(dir)).filter((f) => f.endsWith(".ts") && f !== "source.ts");
    expect(files).toEqual(expect.arrayContaining(["source-bytes.ts", "source-folder.ts", "source-url.ts", "model-source.ts"]));
    for (const file of files) {
      const text = await readFile(new URL(file, dir), "utf8");
      expect({ file, importsDispatcher: /from\s+["']\.\/source\.js["']/.test(text) }).toEqual({ file, importsDispatcher: false });
    }
  });
});
