// Loads a reference checkpoint through the real loader (fromPretrained on its folder).
import type { Engine } from "../src/engine/engine.js";
import { HookedTransformer } from "../src/index.js";
import { referenceDir } from "./reference.js";

export function loadReference(name: string, engine: Engine, processWeights = true): Promise<HookedTransformer> {
  return HookedTransformer.fromPretrained(referenceDir(name), { engine, processWeights });
}
