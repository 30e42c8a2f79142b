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
 * The column norms come from the loaded model itself (model.outputColumnNorms, a native job on the
 * model's queue): the projections the family adapter bound, so every supported family (and a
 * createRandomModel model) has them, from the current weights on each layer's device. A neuron
 * already pruned has a zero column, hence score 0, and is never selected again.
 */
import { invalidArgument } from '../errors.js';
import type { Model } from '../model.js';
import type { NeuronScores } from './scoring.js';
import type { ActivationStats } from './stats.js';

/**
 * ‖W_out[:, i]‖₂ per input neuron i of every layer's FF output projection (ff[L], [dMlp]) and
 * attention output projection (attn[L], [nHeads * headDim]), float64, from the model's current
 * weights; taken in call order with the model's other calls.
 */
export async function outputColumnNorms(model: Model): Promise<{ ff: Float64Array[]; attn: Float64Array[] }> {
  if (typeof (model as Partial<Model> | null)?.outputColumnNorms !== 'function') throw invalidArgument('outputColumnNorms(model)', 'a Model (loadModel or createRandomModel)', model);
  return model.outputColumnNorms();
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
