"""The reference half of bench/side-by-side.ts (which runs this script and prints both sides).

For each case (a model shape and a dtype, given as JSON by the Node side), on a random model made
by Hugging Face transformers (the base model: no LM head, as collect runs none):
  hf_forward   the plain forward, no hooks
  hf_hooks     the forward with vectorised float64 statistics hooks on every hook point (the inputs
               of the attention and MLP output projections: sum x, |x|, x^2, sqrt|x|, count x > 0)
  linear_limit torch.nn.functional.linear alone at the model's own matmul shapes (every layer's
               projections for one batch): the machine's limit for this model
Each is timed as the best of `reps` runs after a warm-up; prints one JSON line per case.

    <python with torch + transformers> bench/hf-collect.py '<json cases>' [threads]
"""
import json
import sys
import time

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def base_model(case):
    import transformers as tf
    if case["family"] == "gpt2":
        cfg = tf.GPT2Config(n_layer=case["layers"], n_embd=case["hidden"], n_head=case["heads"], n_inner=case["mlp"],
                            n_positions=1024, vocab_size=case["vocab"])
        model = tf.GPT2Model(cfg)
        outs = [(b.attn.c_proj, b.mlp.c_proj) for b in model.h]
    else:
        cfg = tf.LlamaConfig(num_hidden_layers=case["layers"], hidden_size=case["hidden"], num_attention_heads=case["heads"],
                             num_key_value_heads=case["kvHeads"], intermediate_size=case["mlp"], vocab_size=case["vocab"],
                             max_position_embeddings=1024)
        model = tf.LlamaModel(cfg)
        outs = [(b.self_attn.o_proj, b.mlp.down_proj) for b in model.layers]
    return model.to(DTYPES[case["dtype"]]).eval(), outs


def linear_shapes(case):
    """(in, out) of every projection of one layer."""
    h, m, hd = case["hidden"], case["mlp"], case["hidden"] // case["heads"]
    kv = case.get("kvHeads", case["heads"]) * hd
    if case["family"] == "gpt2":
        return [(h, 3 * h), (h, h), (h, m), (m, h)]
    return [(h, h), (h, kv), (h, kv), (h, h), (h, m), (h, m), (m, h)]


def timed(fn, reps, device):
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()  # warm-up
    sync()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return min(ts)  # the run least disturbed by other load


def run(case, reps):
    torch.manual_seed(0)
    dtype = DTYPES[case["dtype"]]
    device = case.get("device", "cpu")
    model, outs = base_model(case)
    model = model.to(device)
    B, S = case["batch"], case["seq"]
    ids = torch.randint(0, case["vocab"], (B, S), device=device)
    sums = {}

    def hook(name):
        def fn(module, args):
            x = args[0].reshape(-1, args[0].shape[-1]).double()  # [tokens, width] float64
            a = x.abs()
            s = torch.stack([x.sum(0), a.sum(0), (x * x).sum(0), a.sqrt().sum(0), (x > 0).sum(0).double()])
            sums[name] = s if name not in sums else sums[name] + s
        return fn

    with torch.inference_mode():
        plain = timed(lambda: model(ids), reps, device)
        handles = []
        for l, (o, down) in enumerate(outs):
            handles.append(o.register_forward_pre_hook(hook(f"{l}.attn")))
            handles.append(down.register_forward_pre_hook(hook(f"{l}.mlp")))
        hooked = timed(lambda: model(ids), reps, device)
        for h in handles:
            h.remove()
        # The matmuls alone, at this model's shapes, in its dtype.
        xs = {n_in: torch.randn(B * S, n_in, dtype=dtype, device=device) for n_in, _ in linear_shapes(case)}
        ws = [torch.randn(n_out, n_in, dtype=dtype, device=device) * 0.02 for n_in, n_out in linear_shapes(case)]

        def matmuls():
            for _ in range(case["layers"]):
                for w in ws:
                    torch.nn.functional.linear(xs[w.shape[1]], w)
        limit = timed(matmuls, reps, device)
    tokens = B * S
    flops = 2 * tokens * case["layers"] * sum(i * o for i, o in linear_shapes(case))
    return {"name": case["name"], "dtype": case["dtype"], "hf_forward_tok_s": tokens / plain, "hf_hooks_tok_s": tokens / hooked,
            "linear_limit_tok_s": tokens / limit, "linear_gflops": flops / limit / 1e9, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": device}


def main():
    cases = json.loads(sys.argv[1])
    if len(sys.argv) > 2:
        torch.set_num_threads(int(sys.argv[2]))
    for case in cases:
        print(json.dumps(run(case, case.get("reps", 3))), flush=True)


if __name__ == "__main__":
    main()
