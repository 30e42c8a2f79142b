/**
 * excise: remove a capability from a language model by selective pruning.
 */
export { ExciseError, type ErrorCode } from './errors.js';
export {
  loadModel,
  createRandomModel,
  Model,
  type LoadOptions,
  type ModelConfig,
  type Dtype,
  type TokenBatch,
  type HookName,
  type ForwardOptions,
  type ForwardResult,
  type Activation,
  type GenerateOptions,
} from './model.js';
export { Tokenizer } from './tokenizer.js';
export { readSafetensors, writeSafetensors, type SafetensorsTensor, type SafetensorsContents, type SafetensorsDtype } from './safetensors.js';
export { runtimeInfo, type RuntimeInfo } from './runtime.js';
