// tfjs-core's gradient functions (needed by tf.grads) ship only as ES modules whose imports have
// no file extension, which Node's loader refuses; its Node bundle registers none. This resolves
// those extensionless relative imports to .js, then loads them. tfjs keeps its registries on
// globalThis, so gradients registered by this copy serve the bundle the peer runs on.
import { register } from "node:module";

const RESOLVE = `
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    if (specifier.startsWith(".") && !specifier.endsWith(".js") && context.parentURL?.includes("/@tensorflow/")) {
      return next(specifier + ".js", context);
    }
    throw e;
  }
}`;

let loaded;

/** Registers every tfjs-core gradient (once). */
export function registerTfjsGradients() {
  loaded ??= (async () => {
    register(`data:text/javascript,${encodeURIComponent(RESOLVE)}`, import.meta.url);
    await import("@tensorflow/tfjs-core/dist/register_all_gradients.js");
  })();
  return loaded;
}
