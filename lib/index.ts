/**
 * excise: remove a capability from a language model by selective pruning.
 */
export { ExciseError, type ErrorCode } from './errors.js';
export {
  loadModel,
  createRandomModel,
  Model,
  type LoadOptions,
  type Device,
  type ModelConfig,
  type Dtype,
  type TokenBatch,
  type HookName,
  type ForwardOptions,
  type ForwardResult,
  type Activation,
  type GenerateOptions,
  type PruneMasks,
  type PruneOptions,
  type PruneResult,
} from './model.js';
export { ActivationStats, type NeuronStats, type NeuronSums } from './method/stats.js';
export type { CollectOptions } from './method/collect.js';
export { mostCommonTokens, type EvalResult, type EvaluateOptions } from './method/evaluate.js';
export { scoreNeurons, importance, SCORINGS, type Scoring, type ScoreOptions, type NeuronScores } from './method/scoring.js';
export { selectNeurons, randomSelection, countFor, type Selection, type SelectOptions, type RandomSelectionOptions, type PrunedMasks } from './method/selection.js';
export type { DocumentSource, LongDocs, TokenUsage } from './data/batches.js';
export type { SaveOptions } from './save.js';
export { Tokenizer } from './tokenizer.js';
export { readSafetensors, writeSafetensors, type SafetensorsTensor, type SafetensorsContents, type SafetensorsDtype } from './safetensors.js';
export { runtimeInfo, type RuntimeInfo } from './runtime.js';
export {
  loadDataset, datasetFromTexts, toDataset, isDataset, splitDataset, shuffleDataset, sameData, DEFAULT_EXTENSIONS, TEXT_EXTENSIONS,
  type Dataset, type FileDataset, type DatasetSummary, type ExtensionSummary, type DatasetOptions, type DatasetLike, type SplitOptions, type ShuffleOptions,
} from './data/datasets.js';
export {
  selectivePrune, neuronsPerStep,
  type SelectivePruneOptions, type PruneReport, type StepReport, type SetMetrics, type PipelineState, type ProgressEvent, type StopWhen, type DatasetInput,
} from './pipeline.js';
export { formatStepsTable, renderPlotSvg, renderPlotPng, writeReport, PLOT_WIDTH, PLOT_HEIGHT, type PngOptions } from './report/index.js';
export { Trainer, type TrainOptions, type TrainStepResult } from './train.js';
export { initDistributed, ProcessGroup, type DistributedOptions } from './distributed.js';
