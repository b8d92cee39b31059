// The loading layer: model sources, safetensors, checkpoints, configs and tokenizers.

export { MissingDependencyError, ModelFormatError, ModelSourceError, type ModelFormatCode, type ModelSourceCode } from "./errors.js";
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./half.js";
export { parseJsonObject, type JsonObject } from "./json.js";
export { unsafeNameReason } from "./paths.js";
export {
  MAX_HEADER_BYTES,
  readSafetensors,
  writeSafetensors,
  type LoadedTensor,
  type ReadSafetensorsOptions,
  type SafetensorsDtype,
  type SafetensorsFile,
  type TensorToWrite,
  type WriteSafetensorsOptions,
} from "./safetensors.js";
export {
  bytesSource,
  folderSource,
  hubSource,
  openSource,
  urlSource,
  type BytesInput,
  type BytesSourceOptions,
  type HubSourceOptions,
  type ModelSource,
  type SourceInput,
  type UrlSourceOptions,
} from "./source.js";
export { hubBaseUrl } from "./source-url.js";
export {
  SAFETENSORS_FILE,
  SAFETENSORS_INDEX_FILE,
  assertFiniteWeights,
  expectTensor,
  loadSafetensorsWeights,
  parseShardIndex,
  readJsonConfig,
  stripPrefix,
  type LoadWeightsOptions,
  type WeightMap,
} from "./checkpoint.js";
export { loadTokenizer, tokenizerFromJson, type LoadTokenizerOptions, type Tokenizer } from "./tokenizer.js";
export { gpt2ByteToUnicode, gpt2TokenizerJsonFromFiles, parseTokenizerJson } from "./tokenizer-files.js";
