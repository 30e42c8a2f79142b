/**
 * Per-token log-likelihoods of whole token sequences, batched on the device: what multiple-choice
 * scoring (choices.ts) and membership inference (membership.ts) use. The native tokenLogprobs job
 * (native/logprobs.h, also under model.score) scores every non-padding position t >= 1; one float
 * and one flag per token come back; the logits never leave the device.
 */
import { ExciseError, withCallerStack } from '../errors.js';
import type { NativeModel } from '../native.js';

export interface LogprobTarget {
  handle: NativeModel;
  config: { vocabSize: number; maxPositions: number };
}

export interface SequenceLogprobs {
  /** Per sequence: log p(token t | tokens before it) for t = 1 .. length - 1 (natural log). */
  logprobs: Float32Array[];
  /** Per sequence: 1 where that token was the model's most likely next token. */
  greedy: Uint8Array[];
}

export interface SequenceLogprobOptions {
  /** Sequences per forward pass (default 16). */
  batchSize?: number;
  signal?: AbortSignal;
  /** Called with the sequences done so far. */
  onProgress?: (done: number) => void;
  /** Names the caller in errors. */
  where?: string;
}

/**
 * Scores every sequence (each of 2 .. maxPositions token ids). Sequences are sorted by length and
 * right-padded within a batch; padding is masked natively and never changes a result.
 */
export async function sequenceLogprobs(target: LogprobTarget, sequences: readonly (readonly number[])[], options: SequenceLogprobOptions = {}): Promise<SequenceLogprobs> {
  const where = options.where ?? 'sequenceLogprobs';
  const batchSize = options.batchSize ?? 16;
  const { vocabSize, maxPositions } = target.config;
  sequences.forEach((s, i) => {
    if (s.length < 2) throw new ExciseError('ERR_INVALID_ARGUMENT', `${where}: sequence ${i} has ${s.length} token(s); at least 2 are needed`);
    if (s.length > maxPositions) throw new ExciseError('ERR_INVALID_ARGUMENT', `${where}: sequence ${i} has ${s.length} tokens, more than the model's ${maxPositions} positions`);
    for (const id of s) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new ExciseError('ERR_TOKEN_OUT_OF_RANGE', `${where}: token id ${id} of sequence ${i} is outside the vocabulary [0, ${vocabSize})`);
    }
  });
  const order = sequences.map((_, i) => i).sort((a, b) => sequences[b].length - sequences[a].length || a - b);
  const logprobs: Float32Array[] = new Array(sequences.length);
  const greedy: Uint8Array[] = new Array(sequences.length);
  let done = 0;
  for (let start = 0; start < order.length; start += batchSize) {
    if (options.signal?.aborted) throw new ExciseError('ERR_ABORTED', `${where}: aborted`);
    const rows = order.slice(start, start + batchSize);
    const seq = sequences[rows[0]].length; // the longest of the batch (sorted)
    const data = new Int32Array(rows.length * seq);
    const mask = new Int32Array(rows.length * seq);
    let padded = false;
    rows.forEach((r, b) => {
      const s = sequences[r];
      for (let t = 0; t < s.length; t++) { data[b * seq + t] = s[t]; mask[b * seq + t] = 1; }
      if (s.length < seq) padded = true;
    });
    // Targets: every token but the first (the mask, whose t = 0 column is never scored), so the
    // results are each row's length - 1 entries, one row after another.
    const out = await withCallerStack(() => target.handle.tokenLogprobs(data, rows.length, seq, padded ? mask : null, mask));
    let k = 0;
    rows.forEach((r) => {
      const n = sequences[r].length - 1;
      logprobs[r] = out.logprobs.slice(k, k + n);
      greedy[r] = out.greedy.slice(k, k + n);
      k += n;
    });
    done += rows.length;
    options.onProgress?.(done);
  }
  return { logprobs, greedy };
}
