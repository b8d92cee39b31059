// Where ../shared/reference is: beside the checkout, or beside one of its parents (a git
// worktree sits deeper than the main checkout). No vitest import, so scripts can use it too.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The `shared/reference` folder of PyTorch goldens, with a trailing slash. */
export const REFERENCE_ROOT: string = (() => {
  const root = fileURLToPath(new URL("..", import.meta.url));
  for (let dir = dirname(root); ; dir = dirname(dir)) {
    const candidate = join(dir, "shared", "reference");
    if (existsSync(join(candidate, "README.md"))) return `${candidate}/`;
    if (dirname(dir) === dir) throw new Error(`no shared/reference folder beside ${root} or any of its parents`);
  }
})();
