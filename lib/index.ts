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
  type ModelPlacement,
  type Dtype,
  type TokenBatch,
  type HookName,
  type ForwardOptions,
  type ForwardResult,
  type Activation,
  type GenerateOptions,
  type StreamOptions,
  type ScoreRequest,
  type ContinuationScoreOptions,
  type ContinuationScore,
  type PruneMasks,
  type PruneOptions,
  type PruneResult,
} from './model.js';
export { ActivationStats, STAT_SUMS, type NeuronStats, type NeuronSums, type SumKey } from './method/stats.js';
export type { CollectOptions } from './method/collect.js';
export { mostCommonTokens, type EvalResult, type EvaluateOptions } from './method/evaluate.js';
export { scoreNeurons, importance, SCORINGS, type Scoring, type ScoreOptions, type NeuronScores } from './method/scoring.js';
export { selectNeurons, randomSelection, countFor, type Selection, type SelectOptions, type RandomSelectionOptions, type PrunedMasks } from './method/selection.js';
export type { DocumentSource, LongDocs, TokenUsage } from './data/batches.js';
export type { SaveOptions } from './save.js';
export { Tokenizer } from './tokenizer.js';
export { readSafetensors, writeSafetensors, type SafetensorsTensor, type SafetensorsContents, type SafetensorsDtype } from './safetensors.js';
export { runtimeInfo, setTf32, type RuntimeInfo } from './runtime.js';
export {
  loadDataset, datasetFromTexts, toDataset, isDataset, splitDataset, shuffleDataset, sameData, DEFAULT_EXTENSIONS, TEXT_EXTENSIONS,
  type Dataset, type FileDataset, type DatasetSummary, type ExtensionSummary, type DatasetOptions, type DatasetLike, type SplitOptions, type ShuffleOptions,
} from './data/datasets.js';
export {
  selectivePrune, neuronsPerStep,
  type SelectivePruneOptions, type PruneReport, type StepReport, type SetMetrics, type PipelineState, type ProgressEvent, type StopWhen, type DatasetInput,
} from './pipeline.js';
export { formatStepsTable, renderPlotSvg, renderPlotPng, writeReport, PLOT_WIDTH, PLOT_HEIGHT, type PngOptions } from './report/index.js';
export { Trainer, type TrainOptions, type TrainStepOptions, type TrainStepResult } from './train.js';
export { GenerationStream, type StreamChunk, type GenerationResult, type TokenLogprob } from './generation.js';
export type { EngineOptions, EngineStats, FinishReason } from './engine.js';
export { createServer, type ServerOptions, type ExciseServer } from './serve/server.js';
export { readChoicesFile, encodePair, type ChoiceItem, type ChoicesOptions, type ChoicesResult, type ChoiceItemResult } from './method/choices.js';
export { rocAuc, minKMean, type MembershipOptions, type MembershipResult, type MembershipScores } from './method/membership.js';
export type { SequenceLogprobs, SequenceLogprobOptions } from './method/logprobs.js';
export { gradientAscent, gradientDifference, relearningAttack, packRows, type TrainLoopOptions, type TrainLoopResult, type RelearnOptions, type RelearnReport, type AttackMetrics, type TrainSource } from './method/unlearn.js';
export { outputColumnNorms, wandaScores } from './method/wanda.js';
export { compareMethods, formatCompareTable, COMPARE_METHODS, type CompareMethod, type CompareOptions, type CompareReport, type MethodReport } from './compare.js';
export { initDistributed, ProcessGroup, type DistributedOptions } from './distributed.js';
