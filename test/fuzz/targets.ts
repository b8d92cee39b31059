// Every fuzz target, built over one engine and one CLI world.

import { Engine } from "../../src/engine/engine.js";
import { cliArgv, createCliWorld, promptsMutate, promptsProperty } from "./targets-cli.js";
import * as io from "./targets-io.js";
import type { Target } from "./runner.js";

export async function allTargets(): Promise<Target<any>[]> {
  const engine = await Engine.create();
  const world = await createCliWorld();
  return [
    io.safetensorsBytes(), io.safetensorsHeader(), io.safetensorsProperty(),
    io.indexMutate(), io.indexProperty(), io.shardedLoad(),
    io.configMutate(), io.configProperty(),
    io.tokenizerMutate(), io.tokenizerFiles(),
    io.pretrainedMutate(engine),
    promptsMutate(world), promptsProperty(world), cliArgv(world),
  ];
}
