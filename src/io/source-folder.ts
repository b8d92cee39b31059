// A model folder on disk. node:fs is imported lazily so this module loads in browsers and Workers;
// Deno and Bun provide node:fs/promises too.

import { ModelSourceError } from "./errors.js";
import { decodeUtf8 } from "./json.js";
import { unsafeNameReason } from "./paths.js";
import type { ModelSource } from "./model-source.js";

interface NodeModules {
  fs: typeof import("node:fs/promises");
  root: string;
  join: (...parts: string[]) => string;
}

/**
 * A model folder on the local file system (Node, Deno, Bun).
 *
 * Nothing is read until a file is asked for. Symbolic links are followed (the Hugging Face cache
 * links snapshot files to blobs), but names that would leave the folder are refused.
 *
 * @param path - the folder, as a path or a `file:` URL
 * @example
 * ```ts
 * const source = folderSource("/models/gpt2");
 * const config = await source.readText("config.json");
 * ```
 */
export function folderSource(path: string | URL): ModelSource {
  const location = path instanceof URL ? path.href : path;
  let modules: Promise<NodeModules> | undefined;
  const load = (): Promise<NodeModules> => {
    modules ??= (async () => {
      const [fs, nodePath, nodeUrl] = await Promise.all([
        import("node:fs/promises"),
        import("node:path"),
        import("node:url"),
      ]);
      const root = path instanceof URL ? nodeUrl.fileURLToPath(path) : path;
      return { fs, root, join: nodePath.join };
    })();
    return modules;
  };
  const resolve = async (name: string): Promise<{ fs: NodeModules["fs"]; full: string }> => {
    const reason = unsafeNameReason(name);
    if (reason !== undefined) throw new ModelSourceError(String(name), "bad_name", `file name ${reason}`);
    const { fs, root, join } = await load();
    return { fs, full: join(root, ...name.split("/")) };
  };
  const readFile = async (name: string): Promise<Uint8Array> => {
    const { fs, full } = await resolve(name);
    try {
      const buffer = await fs.readFile(full);
      // A plain Uint8Array over the same memory, so callers never see Buffer-specific behaviour.
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === "ENOENT" || code === "ENOTDIR") {
        throw new ModelSourceError(name, "not_found", `not found in folder ${location}`, { cause: e });
      }
      throw new ModelSourceError(name, "read_failed", `cannot be read from folder ${location} (${(e as Error).message})`, { cause: e });
    }
  };
  return {
    location,
    readFile,
    readText: async (name) => decodeUtf8(await readFile(name), name),
    exists: async (name) => {
      const { fs, full } = await resolve(name);
      try {
        return (await fs.stat(full)).isFile();
      } catch {
        return false;
      }
    },
  };
}
