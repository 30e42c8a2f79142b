/**
 * excise serve: an OpenAI-compatible HTTP server for one model (lib/serve/server.ts), optionally
 * pruned at load from an excise.json. SIGTERM and SIGINT stop it gracefully: no new connections,
 * in-flight requests finish (up to --grace seconds, then they are cancelled), exit code 0.
 */
import { readFileSync } from 'node:fs';
import { ExciseError } from '../errors.js';
import { loadModel, type Model } from '../model.js';
import type { Selection } from '../method/selection.js';
import { createServer } from '../serve/server.js';
import { UsageError, loadOptions, MODEL_OPTIONS, optionalCount, parseCount, parseCommandArgs, requireStr, str, type OptionSpec } from './args.js';
import type { CliIO, Command } from './common.js';

const OPTIONS: OptionSpec = {
  model: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'max-batch': { type: 'string' },
  'max-tokens': { type: 'string' },
  'max-sequence': { type: 'string' },
  'max-body': { type: 'string' },
  'model-name': { type: 'string' },
  prune: { type: 'string' },
  grace: { type: 'string' },
  ...MODEL_OPTIONS,
};

const HELP = `Usage: excise serve --model DIR [options]

Serves a model over HTTP with OpenAI-compatible endpoints: POST /v1/completions and
/v1/chat/completions (JSON, or server-sent events with "stream": true), GET /v1/models, /health and
/metrics (Prometheus). Concurrent requests are decoded together (continuous batching); a client
that disconnects cancels its generation. SIGTERM or Ctrl-C: stop accepting, let requests in flight
finish (up to --grace), exit 0.

  --model DIR          Hugging Face model folder (a pruned one saved by excise, or a base model)
  --prune FILE         an excise.json whose prunes to apply at load (to the base model in --model)
  --host H             address to listen on (default 127.0.0.1)
  --port N             port (default 8080; 0 picks a free one)
  --max-batch N        requests decoded together (default 16); more wait for a slot
  --max-tokens N       the largest max_tokens a request may ask for (default 512)
  --max-sequence N     positions per request, prompt + generated (default: the model's context, at most 2048)
  --max-body BYTES     largest request body (default 1048576); larger ones get 413
  --model-name NAME    the model id clients use (default: the folder's name)
  --grace S            seconds in-flight requests get at shutdown (default 10)
  --device D           cpu (default), cuda, cuda:N, or auto (layers spread over the GPUs)
  --devices D1,D2,...  one model split over these devices (e.g. cuda:0,cuda:1)
  --dtype T            float32, float16 or bfloat16
`;

/** Applies the prunes recorded in an excise.json (written by model.save) to a freshly loaded model. */
export async function applyPruneFile(model: Model, file: string): Promise<number> {
  let record: { architecture?: unknown; prunes?: unknown };
  try {
    record = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ExciseError('ERR_CONFIG_INVALID', `--prune ${file}: cannot be read as JSON (${(err as Error).message})`, { cause: err });
  }
  if (record === null || typeof record !== 'object' || !Array.isArray(record.prunes)) {
    throw new ExciseError('ERR_CONFIG_INVALID', `--prune ${file}: expected an excise.json with a "prunes" list (as model.save writes it)`);
  }
  if (typeof record.architecture === 'string' && record.architecture !== model.config.architecture) {
    throw new ExciseError('ERR_CONFIG_INVALID', `--prune ${file}: recorded for ${record.architecture}, but the model is ${model.config.architecture}`);
  }
  let neurons = 0;
  for (const [i, p] of (record.prunes as Array<{ selection?: Selection; meanOffset?: boolean }>).entries()) {
    if (p?.meanOffset) {
      throw new ExciseError('ERR_CONFIG_INVALID', `--prune ${file}: prune ${i} used meanOffset (bias changes that excise.json does not record); serve the pruned folder saved with it instead`);
    }
    if (!p?.selection) throw new ExciseError('ERR_CONFIG_INVALID', `--prune ${file}: prune ${i} has no selection`);
    const r = await model.prune(p.selection);
    neurons += [...r.ff, ...r.attn].reduce((a, b) => a + b, 0);
  }
  return neurons;
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'an OpenAI-compatible HTTP server for a (pruned) model',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('serve', argv, OPTIONS);
    const modelDir = requireStr(values, 'model', 'serve');
    const host = str(values, 'host') ?? '127.0.0.1';
    const port = parseCount('port', str(values, 'port') ?? '8080', { allowZero: true });
    if (port > 65535) throw new UsageError(`--port: expected 0-65535, received ${port}`);
    const maxBatch = parseCount('max-batch', str(values, 'max-batch') ?? '16');
    const maxTokens = parseCount('max-tokens', str(values, 'max-tokens') ?? '512');
    const maxSequence = optionalCount(values, 'max-sequence');
    const maxBodyBytes = parseCount('max-body', str(values, 'max-body') ?? '1048576', { suffixes: true });
    const graceMs = parseCount('grace', str(values, 'grace') ?? '10', { allowZero: true }) * 1000;
    const pruneFile = str(values, 'prune');
    const model = await loadModel(modelDir, loadOptions(values));
    try {
      if (pruneFile) {
        const n = await applyPruneFile(model, pruneFile);
        io.stderr.write(`excise serve: pruned ${n} neurons from ${pruneFile}\n`);
      }
      model.configureEngine({ maxBatch, ...(maxSequence ? { maxSequence } : {}) });
      const server = createServer(model, { maxTokens, maxBodyBytes, ...(str(values, 'model-name') ? { modelName: str(values, 'model-name') } : {}) });
      const url = await server.listen(port, host);
      io.stdout.write(`excise serve: ${model.dir} on ${url} (max batch ${maxBatch}, max tokens ${maxTokens}); SIGTERM or Ctrl-C stops it\n`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          process.off('SIGTERM', onTerm);
          process.off('SIGINT', onInt);
          io.stderr.write(`excise serve: ${signal}: finishing requests in flight (up to ${graceMs / 1000} s)\n`);
          void server.close({ graceMs }).then(resolve, resolve);
        };
        const onTerm = () => stop('SIGTERM');
        const onInt = () => stop('SIGINT');
        process.on('SIGTERM', onTerm);
        process.on('SIGINT', onInt);
      });
      io.stderr.write('excise serve: stopped\n');
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
