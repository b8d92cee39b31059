// Writes a workerd config for worker-app.mjs the way a bundler would see the package: the
// entry comes from the package.json "workerd" export condition, and every module of dist/ and
// build/*.wasm is listed under node_modules/hooklens/ so the package's relative imports resolve.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

/** Lays out `dir` (worker, smoke suite, demo model files) and returns the config's path. */
export function writeWorkerdProject({ dir, packageDir, here, demoFiles, port }) {
  mkdirSync(join(dir, "demo-model"), { recursive: true });
  for (const f of ["worker-app.mjs", "smoke.mjs"]) copyFileSync(join(here, f), join(dir, f));
  for (const [name, bytes] of Object.entries(demoFiles)) writeFileSync(join(dir, "demo-model", name), bytes);

  const pkg = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
  const entry = pkg.exports?.["."]?.workerd?.default ?? pkg.exports?.["."]?.workerd;
  if (typeof entry !== "string") throw new Error('the package has no "workerd" export condition');

  const modules = [
    `(name = "worker.mjs", esModule = embed "worker-app.mjs")`,
    `(name = "smoke.mjs", esModule = embed "smoke.mjs")`,
    `(name = "demo-model/config.json", text = embed "demo-model/config.json")`,
    `(name = "demo-model/model.safetensors", data = embed "demo-model/model.safetensors")`,
    // The bare specifier, resolved as the package's exports map says.
    `(name = "hooklens", esModule = ${JSON.stringify(`export * from "./node_modules/hooklens/${entry.replace(/^\.\//, "")}";`)})`,
  ];
  const walk = (sub) => {
    for (const e of readdirSync(join(packageDir, sub), { withFileTypes: true })) {
      const rel = join(sub, e.name);
      if (e.isDirectory()) { if (rel !== join("dist", "cli")) walk(rel); } // the CLI needs node:fs; the Worker never reaches it
      else if (e.name.endsWith(".js")) modules.push(`(name = "node_modules/hooklens/${rel}", esModule = embed ${JSON.stringify(relative(dir, join(packageDir, rel)))})`);
      else if (e.name.endsWith(".wasm")) modules.push(`(name = "node_modules/hooklens/${rel}", wasm = embed ${JSON.stringify(relative(dir, join(packageDir, rel)))})`);
    }
  };
  walk("dist");
  walk("build");

  const config = `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .hooklensWorker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);

const hooklensWorker :Workerd.Worker = (
  modules = [
    ${modules.join(",\n    ")},
  ],
  compatibilityDate = "2025-01-01",
);
`;
  const path = join(dir, "config.capnp");
  writeFileSync(path, config);
  return path;
}
