"""The reference for bench/serve/load.ts: Hugging Face transformers' generate() decode tokens/s at
batch 1, greedy, on the same models (the bundled demo model; a GPT-2-small-shaped random model),
the same prompt length, prefill excluded (time for 1+128 new tokens minus time for 1), CPU float32.

    <python with torch + transformers> bench/serve/hf_generate.py [--threads N]
    (transformers 4.57 with huggingface_hub 1.x: add --bypass-hub-pin, as scripts/fixtures/make_variants.py)
"""
import argparse, os, sys, time

parser = argparse.ArgumentParser()
parser.add_argument('--threads', type=int, default=0)
parser.add_argument('--bypass-hub-pin', action='store_true')
args = parser.parse_args()
import importlib.metadata as md
import torch
_version = md.version
if args.bypass_hub_pin:  # transformers 4.57 checks huggingface_hub < 1.0; nothing here downloads
    md.version = lambda n: '0.36.0' if n.replace('_', '-').lower() == 'huggingface-hub' else _version(n)
try:
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
finally:
    md.version = _version

if args.threads:
    torch.set_num_threads(args.threads)
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
torch.manual_seed(0)
models = {
    'demo': AutoModelForCausalLM.from_pretrained(os.path.join(root, 'assets', 'demo-model'), dtype=torch.float32),
    'gpt2': GPT2LMHeadModel(GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)),
}
for name, m in models.items():
    m.eval()
    vocab = m.config.vocab_size
    ids = torch.tensor([[(t * 7919 + 13) % vocab for t in range(16)]])
    def run(n):
        t = time.perf_counter()
        with torch.inference_mode():
            m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
        return time.perf_counter() - t
    run(4)
    short = min(run(1) for _ in range(2))
    long = run(129)
    print(f"HF {name}: single-stream decode (generate, batch 1, greedy): {128 / (long - short):.1f} tokens/s, threads {torch.get_num_threads()}")
