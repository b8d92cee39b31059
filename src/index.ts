// Public entry point of hooklens.

// engine
export { Engine, type BackendName, type EngineOptions, type ThreadStats } from "./engine/engine.js";
export { GemmActivation, type Kernels } from "./engine/kernels.js";
export { Tensor } from "./engine/tensor.js";
export { supportsRelaxedSimd, supportsSimd, type WasmSource, type WasmVariant } from "./engine/wasm-loader.js";

// io
export { loadSafetensorsWeights, readJsonConfig, type WeightMap } from "./io/checkpoint.js";
export { MissingDependencyError, ModelFormatError, ModelSourceError } from "./io/errors.js";
export { readSafetensors, writeSafetensors, type LoadedTensor, type SafetensorsDtype } from "./io/safetensors.js";
export { bytesSource, folderSource, hubSource, openSource, urlSource, type DownloadProgress, type ModelSource, type SourceInput, type UrlSourceOptions } from "./io/source.js";
export { loadTokenizer, tokenizerFromJson, type Tokenizer } from "./io/tokenizer.js";

// model
export { ActivationCache } from "./model/activation-cache.js";
export type {
  AccumulatedResidOptions, ApplyLnOptions, BatchSlice, CacheModel, DecomposeResidOptions, LabelledStack,
  LogitAttrsOptions, LogitTokens, PosSlice, StackHeadResultsOptions,
} from "./model/cache-analysis.js";
export { ConfigError, checkConfig, makeConfig, type HookedTransformerConfig } from "./model/config.js";
export {
  FAMILIES, checkpointFiles, configFromHf, configFromHfGpt2, configFromHfLlama, convertGpt2Weights, convertLlamaWeights, familyFor,
  familyOf, gpt2ToHf, hfFiles, llamaToHf, type HfCheckpoint, type HfTensors, type ModelFamily,
} from "./model/families/index.js";
export { getActName, hookNames, type HookFilter, type HookFn, type HookPoint } from "./model/hook-points.js";
export {
  HookedTransformer, type BackwardOptions, type ForwardOptions, type ForwardResult, type ForwardReturnType, type FromPretrainedOptions,
  type ModelInput, type RunWithCacheOptions, type RunWithCacheResult, type RunWithHooksOptions,
} from "./model/hooked-transformer.js";
export type { DifferentiableMetric } from "./model/gradients.js";
export { centerUnembed, centerWritingWeights, foldLn, foldValueBiases, processWeights, type ProcessOptions } from "./model/process-weights.js";
export type { TokenIds } from "./model/tokens.js";
export { parameterShapes, type Weights } from "./model/weights.js";

// patching
export * from "./patching/activation-patching.js";
export * from "./patching/attribution-patching.js";
export { spearman, verifyAttribution, type VerifiedEntry, type Verification } from "./patching/verify-attribution.js";
export {
  getActPatchDirectPath, getActPatchDirectPathAllSources, type DirectPathAllSourcesOptions, type DirectPathComponent, type DirectPathOptions,
  type DirectPathSingleOptions,
} from "./patching/direct-path.js";
export { logitDiff, logProb, normalize, type Metric } from "./patching/metrics.js";
export { planSweep, type PlannableSweep } from "./patching/plan-sweep.js";
export type { Patch, PatchEdit, PlannedPass, SweepOptions, SweepPlan, SweepPlanSummary, SweepProgress } from "./patching/sweep-types.js";
export { PatchResult } from "./patching/result.js";

// circuits
export { EdgeGraph, type EdgeRef, type Reader, type Writer } from "./circuits/edge-graph.js";
export { getEdgeAttrEap, getEdgeAttrEapIg, type EdgeAttrOptions, type EdgeScoreRecord } from "./circuits/edge-attribution.js";
export { evaluateCircuit, evaluateCircuits, faithfulnessCi, type CircuitEvaluation, type CircuitRunOptions } from "./circuits/circuit-run.js";
export { acdc, type AcdcOptions, type AcdcResult, type AcdcStep } from "./circuits/acdc.js";
export { discoveredCircuitDrawing, renderCircuitSvg, type CircuitDrawing } from "./circuits/circuit-svg.js";
export { getEdgePatchExact, type EdgePatchOptions, type EdgePatchRecord } from "./circuits/edge-patching.js";
export {
  discoverCircuit, faithfulnessCurve, type CurvePoint, type DiscoverOptions, type DiscoveredCircuit, type DiscoveredEdge,
} from "./circuits/discover.js";

// the embedded demo model (a planted induction circuit)
export {
  DEMO_BOS, DEMO_DIMS, PLANTED_HEADS, buildInductionModelWeights, demoModelFiles, demoPrompts, loadDemoModel,
  type DemoPrompts, type DemoPromptsOptions, type InductionModel,
} from "./demo/induction-model.js";
export { gpt2HfFiles } from "./demo/hf-files.js";
