/**
 * The Wanda-style neuron criterion (Sun et al. 2024, "A Simple and Effective Pruning Approach for
 * LLMs": |W| · ‖X‖) applied to whole neurons as a forget/retain ratio, a baseline for selective
 * pruning's activation-only scores:
 *
 *   I_set(neuron i) = ‖W_out[:, i]‖₂ · ‖x_i‖ (root mean square of the neuron's activation over the set)
 *   score(i)        = I_forget(i) / (I_retain(i) + eps)
 *
 * W_out is the output projection the neuron feeds (the FF down projection; the attention output
 * projection). Note that in the ratio the weight norm cancels except through eps: this is
 * selective pruning with 'rms' importance and a per-neuron eps of eps / ‖W_out[:, i]‖.
 * The weights are read from the model's checkpoint files (pruning never changes an unpruned
 * neuron's column, and pruned neurons are never selected again).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExciseError } from '../errors.js';
import type { Model } from '../model.js';
import { readSafetensors, type SafetensorsTensor } from '../safetensors.js';
import type { NeuronScores } from './scoring.js';
import type { ActivationStats } from './stats.js';

/** Output projections per family: name pattern (layer in group 1) and whether stored [in, out] (GPT-2's Conv1D). */
const OUT_PROJECTIONS: Array<{ ff: RegExp; attn: RegExp; inputMajor: boolean }> = [
  { ff: /layers\.(\d+)\.mlp\.down_proj\.weight$/, attn: /layers\.(\d+)\.self_attn\.o_proj\.weight$/, inputMajor: false }, // llama, mistral, qwen2
  { ff: /h\.(\d+)\.mlp\.c_proj\.weight$/, attn: /h\.(\d+)\.attn\.c_proj\.weight$/, inputMajor: true }, // gpt2
  { ff: /layers\.(\d+)\.fc2\.weight$/, attn: /layers\.(\d+)\.self_attn\.out_proj\.weight$/, inputMajor: false }, // opt
  { ff: /layers\.(\d+)\.mlp\.dense_4h_to_h\.weight$/, attn: /layers\.(\d+)\.attention\.dense\.weight$/, inputMajor: false }, // gpt_neox
];

function toFloat32(t: SafetensorsTensor, name: string): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  const u16 = t.data as Uint16Array;
  const out = new Float32Array(u16.length);
  if (t.dtype === 'BF16') {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < u16.length; i++) u32[i] = u16[i] << 16;
    return out;
  }
  if (t.dtype === 'F16') {
    for (let i = 0; i < u16.length; i++) {
      const h = u16[i], s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
      out[i] = e === 0 ? s * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + f / 1024);
    }
    return out;
  }
  throw new ExciseError('ERR_INVALID_ARGUMENT', `wanda: ${name} is ${t.dtype}; expected F32, BF16 or F16`);
}

/** ‖W_out[:, i]‖₂ per input neuron i of every layer's FF and attention output projections. */
export async function outputColumnNorms(model: Model): Promise<{ ff: Float64Array[]; attn: Float64Array[] }> {
  if (!model.dir) throw new ExciseError('ERR_INVALID_ARGUMENT', 'wanda: the model has no folder to read its weights from (loadModel, not createRandomModel)');
  const index = join(model.dir, 'model.safetensors.index.json');
  const files = existsSync(index)
    ? [...new Set(Object.values((JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map))].map((f) => join(model.dir!, f))
    : [join(model.dir, 'model.safetensors')];
  const { nLayers, dMlp, nHeads, headDim } = model.config;
  const ff: Float64Array[] = Array.from({ length: nLayers }, () => new Float64Array(0));
  const attn: Float64Array[] = Array.from({ length: nLayers }, () => new Float64Array(0));
  for (const file of files) {
    const { tensors } = await readSafetensors(file);
    for (const [name, t] of Object.entries(tensors)) {
      for (const p of OUT_PROJECTIONS) {
        for (const [kind, re, width, out] of [['ff', p.ff, dMlp, ff], ['attn', p.attn, nHeads * headDim, attn]] as const) {
          const m = re.exec(name);
          if (!m) continue;
          const layer = Number(m[1]);
          const w = toFloat32(t, name);
          const [rows, cols] = t.shape as number[];
          const inputs = p.inputMajor ? rows : cols;
          if (inputs !== width || layer >= nLayers) throw new ExciseError('ERR_TENSOR_SHAPE', `wanda: ${name} has shape [${t.shape.join(', ')}]; expected ${width} ${kind} inputs`);
          const norms = new Float64Array(width);
          for (let r = 0; r < rows; r++) {
            for (let c = 0; c < cols; c++) {
              const v = w[r * cols + c];
              norms[p.inputMajor ? r : c] += v * v;
            }
          }
          out[layer] = norms.map(Math.sqrt);
        }
      }
    }
  }
  if (ff.some((n) => n.length === 0)) throw new ExciseError('ERR_TENSOR_MISSING', `wanda: no FF output projection found for every layer of ${model.config.architecture} in ${model.dir}`);
  return { ff, attn };
}

/** Wanda-style forget/retain scores, in the shape scoreNeurons returns (selectNeurons takes them). */
export function wandaScores(norms: { ff: Float64Array[]; attn: Float64Array[] }, forget: ActivationStats, retain: ActivationStats, eps: { ff?: number; attn?: number } = {}): NeuronScores {
  const scores: NeuronScores = { ff: [], attn: [] };
  for (let l = 0; l < norms.ff.length; l++) {
    for (const [site, out, w, e] of [['mlp', scores.ff, norms.ff[l], eps.ff ?? 1e-3], ['attn', scores.attn, norms.attn[l], eps.attn ?? 1e-4]] as const) {
      const hook = `blocks.${l}.${site}.pre_out`;
      if (!forget.has(hook) || !retain.has(hook) || w.length === 0) { out.push(new Float64Array(0)); continue; }
      const f = forget.hook(hook).rms, r = retain.hook(hook).rms;
      out.push(f.map((v, i) => (w[i] * v) / (w[i] * r[i] + e)));
    }
  }
  return scores;
}
