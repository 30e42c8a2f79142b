/**
 * excise info: what a model is and what it runs on.
 */
import { loadModel } from '../model.js';
import { runtimeInfo } from '../runtime.js';
import { flag, loadOptions, MODEL_OPTIONS, parseCommandArgs, requireStr, type OptionSpec } from './args.js';
import type { CliIO, Command } from './common.js';

const OPTIONS: OptionSpec = {
  model: { type: 'string' },
  json: { type: 'boolean' },
  ...MODEL_OPTIONS,
};

const HELP = `Usage: excise info --model DIR [--device D] [--dtype T] [--json]

Loads a model and prints its architecture and sizes, the device and dtype it was loaded with, the
LibTorch version and whether CUDA is available.
`;

export const infoCommand: Command = {
  name: 'info',
  summary: "a model's architecture and sizes, and the runtime (LibTorch, CUDA)",
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('info', argv, OPTIONS);
    const dir = requireStr(values, 'model', 'info');
    const model = await loadModel(dir, loadOptions(values));
    try {
      const c = model.config;
      const rt = runtimeInfo();
      const info = {
        model: model.dir,
        architecture: c.architecture,
        family: c.family,
        layers: c.nLayers,
        dModel: c.dModel,
        dMlp: c.dMlp,
        gatedMlp: c.gatedMlp,
        heads: c.nHeads,
        kvHeads: c.nKvHeads,
        headDim: c.headDim,
        vocab: c.vocabSize,
        maxPositions: c.maxPositions,
        parameters: model.parameterCount,
        tokenizer: model.hasTokenizer,
        device: model.device,
        dtype: model.dtype,
        torchVersion: rt.torchVersion,
        cudaAvailable: rt.cudaAvailable,
        cudaDeviceCount: rt.cudaDeviceCount,
      };
      if (flag(values, 'json')) {
        io.stdout.write(JSON.stringify(info, null, 2) + '\n');
        return 0;
      }
      const rows: Array<[string, string]> = [
        ['model', String(info.model)],
        ['architecture', `${c.architecture} (family ${c.family})`],
        ['layers', String(c.nLayers)],
        ['d_model', String(c.dModel)],
        ['d_mlp', `${c.dMlp}${c.gatedMlp ? ' (gated)' : ''}; FF neurons: ${c.nLayers * c.dMlp}`],
        ['heads', `${c.nHeads} (kv heads ${c.nKvHeads}, head dim ${c.headDim}); attention neurons: ${c.nLayers * c.nHeads * c.headDim}`],
        ['vocab', String(c.vocabSize)],
        ['positions', String(c.maxPositions)],
        ['parameters', model.parameterCount.toLocaleString('en-US')],
        ['tokenizer', model.hasTokenizer ? 'tokenizer.json' : 'none (token ids only)'],
        ['device', model.device],
        ['dtype', model.dtype],
        ['libtorch', `${rt.torchVersion} (${rt.cxxAbi} ABI)`],
        ['cuda', rt.cudaAvailable ? `available (${rt.cudaDeviceCount} device${rt.cudaDeviceCount === 1 ? '' : 's'})` : 'not available'],
      ];
      const w = Math.max(...rows.map(([k]) => k.length));
      io.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
