"""The baseline for bench/forward.ts: the same GPT-2-small-sized random model in Hugging Face
transformers (eager, float32, CPU), the same batches and timing (median of 3 after a warm-up).

    <python with torch + transformers> bench/hf-forward.py
"""
import torch, time
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
m = GPT2LMHeadModel(GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)).eval()
for b in [1, 4, 8]:
    ids = torch.randint(0, 50257, (b, 128))
    with torch.no_grad():
        m(ids)
        ts = []
        for _ in range(3):
            t = time.perf_counter(); m(ids); ts.append(time.perf_counter() - t)
    ts.sort(); ms = ts[1] * 1000
    print(f"HF batch {b}: {ms:.0f} ms, {b*128/(ms/1000):.0f} tok/s, threads {torch.get_num_threads()}")
