# 1) Which SDPA backend does torch pick for excise's attention calls (bf16, GQA 32/4, head_dim 64)?
#    causal fast path vs the boolean padding mask [B,1,S,S] that excise builds for padded batches.
# 2) Cost of excise's statistics pass (float64, stats.cc) against one float32-accumulating pass per
#    statistic (linalg_vector_norm) on a [tokens, dMlp] bf16 activation, with CUDA events.
import os, torch
dev = os.environ.get('DEVICE', 'cuda')
assert dev == 'cpu' or torch.cuda.is_available(), 'no CUDA device'
names = {int(v): k for k, v in torch.nn.attention.SDPBackend.__members__.items()} if hasattr(torch.nn.attention, 'SDPBackend') else {}
B, H, KV, S, D = (8, 32, 4, 1024, 64) if dev != 'cpu' else (2, 4, 2, 64, 16)  # cpu: a rehearsal
q = torch.randn(B, H, S, D, device=dev, dtype=torch.bfloat16)
k = torch.randn(B, KV, S, D, device=dev, dtype=torch.bfloat16)
v = torch.randn_like(k)
lengths = torch.randint(S // 4, S + 1, (B,), device=dev)
valid = torch.arange(S, device=dev)[None, :] < lengths[:, None]
causal = torch.ones(S, S, dtype=torch.bool, device=dev).tril()
mask = (causal[None, None] & valid[:, None, None, :])
mask = mask | (~mask).all(-1, keepdim=True)
def choice(m, is_causal):
    try:
        c = torch._fused_sdp_choice(q, k, v, m, 0.0, is_causal, scale=None, enable_gqa=True)
    except Exception as e:  # private API: report, do not stop the stats benchmark
        return f'? ({type(e).__name__})'
    return names.get(c, c)
def timeit(fn, n=20):
    import time
    fn()
    if dev == 'cpu':
        t = time.perf_counter()
        for _ in range(n): fn()
        return (time.perf_counter() - t) * 1000 / n
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(n): fn()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / n
F = torch.nn.functional.scaled_dot_product_attention
print(f'SDPA causal, no mask  : backend {choice(None, True)}, {timeit(lambda: F(q, k, v, is_causal=True, enable_gqa=True)):.3f} ms')
print(f'SDPA bool padding mask: backend {choice(mask, False)}, {timeit(lambda: F(q, k, v, attn_mask=mask, enable_gqa=True)):.3f} ms')
add = torch.zeros(mask.shape, dtype=torch.bfloat16, device=dev).masked_fill_(~mask, float('-inf'))
print(f'SDPA additive mask    : backend {choice(add, False)}, {timeit(lambda: F(q, k, v, attn_mask=add, enable_gqa=True)):.3f} ms')

T, W = B * S, int(os.environ.get('DMLP', 5632 if dev != 'cpu' else 64))
act = torch.randn(T, W, device=dev, dtype=torch.bfloat16)
tm = (torch.rand(T, device=dev) > 0.1)
acc = [torch.zeros(W, device=dev, dtype=torch.float64) for _ in range(4)] + [torch.zeros(W, device=dev, dtype=torch.int64)]
def f64():  # native/stats.cc:86-97
    x = act.to(torch.float64) * tm[:, None].to(torch.float64)
    a = x.abs()
    acc[0].add_(x.sum(0)); acc[1].add_(a.sum(0)); acc[2].add_((x * x).sum(0)); acc[3].add_(a.sqrt_().sum(0)); acc[4].add_((x > 0).sum(0))
def f32():  # proposal: one fp32-accumulating pass per statistic, per-batch partials added in fp64
    x = torch.where(tm[:, None], act, 0)
    f = torch.float32
    acc[0].add_(x.sum(0, dtype=f)); acc[1].add_(torch.linalg.vector_norm(x, 1, 0, dtype=f))
    acc[2].add_(torch.linalg.vector_norm(x, 2, 0, dtype=f).double().square()); acc[3].add_(torch.linalg.vector_norm(x, 0.5, 0, dtype=f).double().sqrt())
    acc[4].add_((x > 0).sum(0))
w2 = torch.randn(W, 2048, device=dev, dtype=torch.bfloat16)
mm = timeit(lambda: act @ w2, 10)
print(f'stats per hook [{T} x {W}] bf16: float64 path {timeit(f64):.3f} ms, float32 norms {timeit(f32):.3f} ms; '
      f'(for scale: one [{T}x{W}]@[{W}x2048] matmul {mm:.3f} ms)')
if dev != 'cpu': print(f'peak memory allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; device {torch.cuda.get_device_name()}')
