# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=9, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 09: Efficient and scalable transformers
#
# The Transformers of Hours 04-06 are small enough that we never asked where the time and the memory go. This
# hour measures it: the $T \times T$ attention scores that grow with the square of the context, the fused
# attention kernels that never store them, activation checkpointing that trades compute for memory,
# `torch.compile`, bf16 autocast, what fp16 does to gradients and how loss scaling rescues them, gradient
# accumulation with padding, the model FLOPs utilisation (MFU) of GPT training, and finally training on
# several processes at once with **data parallelism** (DDP), checked to give the same weights as one process.
#
# **By the end of this hour you can**
# - predict the bytes of the attention scores (Exercise 9.1) and compare them with a measured memory table;
# - choose an SDPA backend with `torch.nn.attention.sdpa_kernel` and say what the fused kernels save;
# - trade memory for time with `torch.utils.checkpoint.checkpoint(..., use_reentrant=False)`;
# - report `torch.compile`'s compile time apart from its speed-up, and fall back when no compiler is present;
# - say what fp32, bf16 and fp16 can represent, measure which gradients fp16 loses, and watch a GradScaler skip
#   steps and adapt its scale in a real fp16 run; accumulate gradients exactly when the loss is a mean over
#   padded tokens;
# - count the training FLOPs per token of a GPT, $6N + 12LTC$ (Exercise 9.2), and turn throughput into MFU;
# - train data-parallel with `torchrun` and the course Trainer, and say what FSDP, tensor and pipeline
#   parallelism split.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it. Right: the check returns
# your function and the rest of the hour uses it (the memory table compares with your `score_bytes`, the MFU
# divides by your `train_flops_per_token`). Wrong: it names the most likely mistake. Not written yet: one line
# says so and the course's reference is used. `amla.checks.summary()` at the end lists what you have done.
#
# **Runtime** (whole notebook, measured with `amla run 09 --profile smoke` and `amla bench 09 --profile cpu` on
# the course's idle 2-core CPU machine): smoke 11 s, cpu profile 40 s, of it about 2-3 s compiling with
# `torch.compile` when its cache is warm (26 s, and 66 s for the notebook, on the first run in a fresh
# environment), about 7 s the two-process `torchrun` launch, and about 13 s the three small trainings of the
# precision section (fp16 on a CPU runs at about 7,000 tokens/s, several times slower than fp32). A busy machine
# takes longer. The gpu profile has not been run yet: no GPU was available when this hour was written.

# %%
import math
import tempfile
import textwrap
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from amla.toolkit import distributed as ddp
from amla.transformers import efficiency as E
from amla.transformers.gpt import GPT, GPTConfig

if device.type == "cpu":
    torch.set_num_threads(1)  # the course machine has 2 cores; one thread keeps the timings steady

S = amla.per_profile(
    smoke=dict(seq_lens=(64, 128), heads=2, head_dim=16, repeats=2, n_layer=2, n_embd=64, block=64, batch=4,
               gpt_steps=3, ddp_steps=3, launch=False, compile=False, fp16_steps=8, growth_interval=2),
    cpu=dict(seq_lens=(128, 256, 512, 1024), heads=4, head_dim=32, repeats=5, n_layer=4, n_embd=128, block=128,
             batch=8, gpt_steps=10, ddp_steps=6, launch=True, compile=True, fp16_steps=80,
             growth_interval=10),
    gpu=dict(seq_lens=(512, 1024, 2048, 4096, 8192), heads=16, head_dim=64, repeats=10, n_layer=12, n_embd=768,
             block=1024, batch=16, gpt_steps=30, ddp_steps=6, launch=True, compile=True, fp16_steps=200,
             growth_interval=20),
)
print(amla.profile(), S)
dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Where attention's memory goes
#
# Written out, attention computes the scores $S = QK^\top/\sqrt{d}$, a $[B, H, T, T]$ tensor, then the
# probabilities $P = \mathrm{softmax}(S)$, another one, and $PV$. Both $T \times T$ matrices are alive when the
# softmax runs, and $P$ is kept for the backward pass. Twice the context, four times the memory.
#
# ### Exercise 9.1: The memory of the attention scores
#
# Write `score_bytes(batch, heads, seq_len, dtype)`: the bytes of the scores and the probabilities together,
# as a Python int. The size of one element is `torch.empty((), dtype=dtype).element_size()` (bfloat16 and
# float16 take 2 bytes, float32 4).

# %%
def score_bytes(batch: int, heads: int, seq_len: int, dtype: torch.dtype) -> int:
    ### BEGIN SOLUTION
    return 2 * batch * heads * seq_len * seq_len * torch.empty((), dtype=dtype).element_size()
    ### END SOLUTION


# %%
score_bytes = amla.checks.efficient.check_score_bytes(score_bytes)

# %% [markdown]
# The measured table: for each $T$, the peak bytes allocated by attention written out (`E.math_attention`) and by
# PyTorch's fused kernel (`F.scaled_dot_product_attention`, which never stores the whole $T \times T$ matrix), next
# to your prediction, and the median time of each (the variants alternate, after a warm-up).

# %%
B, H, D = 2, S.heads, S.head_dim
rows = []
for T in S.seq_lens:
    q, k, v = (torch.randn(B, H, T, D, device=device, dtype=dtype) for _ in range(3))
    mem_math = E.peak_bytes(lambda: E.math_attention(q, k, v, causal=True))
    mem_fused = E.peak_bytes(lambda: E.sdpa(q, k, v, causal=True))
    ms = E.median_ms({"math": lambda: E.math_attention(q, k, v, causal=True),
                      "fused": lambda: E.sdpa(q, k, v, causal=True)}, repeats=S.repeats, device=device)
    rows.append((T, score_bytes(B, H, T, dtype), mem_math, mem_fused, ms["math"], ms["fused"]))
print(f"{'T':>6} {'predicted MB':>13} {'math MB':>9} {'fused MB':>9} {'math ms':>9} {'fused ms':>9}")
for T, pred, mm, mf, tm, tf in rows:
    print(f"{T:>6} {pred / 2**20:>13.2f} {mm / 2**20:>9.2f} {mf / 2**20:>9.2f} {tm:>9.2f} {tf:>9.2f}")
ratio_pred = rows[-1][2] / rows[-1][1]
print(f"at T = {rows[-1][0]}: measured math-path peak / predicted scores = {ratio_pred:.2f}")

# %% [markdown]
# The math path's peak is your two matrices plus the causal mask and the output (the ratio the run prints is a
# little above 1); the fused kernel's peak grows only linearly in $T$: it computes the softmax block by block
# (the "online softmax" of FlashAttention) and keeps only one number per row for the backward.
#
# ## 2. SDPA backends
#
# `F.scaled_dot_product_attention` picks a kernel itself; `torch.nn.attention.sdpa_kernel(SDPBackend.X)`
# restricts it. On a CPU there are two: `MATH` (the formula above, in C++) and a fused flash-style kernel. On a
# GPU there are also FlashAttention-2, the memory-efficient kernel (xFormers) and cuDNN's. The cell lists the
# backends that run here and times each at the largest $T$.

# %%
backends = E.available_backends(q)
backend_ms = E.median_ms({name: (lambda name=name: E.sdpa(q, k, v, name, causal=True)) for name in backends},
                         repeats=S.repeats, device=device)
for name, t in backend_ms.items():
    print(f"{name:>10}: {t:8.2f} ms at T = {S.seq_lens[-1]}")
sdpa_math_ms, sdpa_fused_ms = backend_ms["math"], min(t for n, t in backend_ms.items() if n != "math")

# %% [markdown]
# **The KV cache, a recap (Hour 06).** When a GPT generates, each new token attends to all earlier ones. Without
# a cache every step recomputes the keys and values of the whole prefix, $O(T^2)$ work for $T$ tokens; the KV
# cache (`amla.transformers.gpt.KVCache`) stores them, so a step only computes its own, and attention reads
# $T$ cached rows. Its memory is $2 \cdot L \cdot B \cdot T \cdot C$ elements, which is what limits long-context
# serving (and why grouped-query attention shares keys and values across heads).
#
# ## 3. Activation checkpointing
#
# The backward pass needs the activations of the forward. Checkpointing keeps only each block's input and
# recomputes the inside during the backward: less memory, one more forward. The cell measures the peak memory
# of forward plus backward through a stack of GPT blocks, with and without `checkpoint(..., use_reentrant=False)`.

# %%
cfg = GPTConfig(vocab_size=256, block_size=S.block, n_layer=S.n_layer, n_head=S.heads, n_embd=S.n_embd)
stack = GPT(cfg).blocks.to(device)
fns = [lambda x, b=b: b(x)[0] for b in stack]
x0 = torch.randn(S.batch, S.block, S.n_embd, device=device, requires_grad=True)


def fwd_bwd(enabled: bool) -> None:
    E.with_checkpointing(fns, x0, enabled).pow(2).mean().backward()


mem_plain, mem_ckpt = E.peak_bytes(lambda: fwd_bwd(False)), E.peak_bytes(lambda: fwd_bwd(True))
ckpt_ms = E.median_ms({"plain": lambda: fwd_bwd(False), "checkpointed": lambda: fwd_bwd(True)}, repeats=S.repeats,
                      device=device)
ckpt_saved = 1 - mem_ckpt / mem_plain
ckpt_overhead = ckpt_ms["checkpointed"] / ckpt_ms["plain"] - 1
print(f"peak memory: {mem_plain / 2**20:.1f} MB plain, {mem_ckpt / 2**20:.1f} MB checkpointed "
      f"({ckpt_saved:.0%} saved); time {ckpt_ms['plain']:.1f} ms vs {ckpt_ms['checkpointed']:.1f} ms "
      f"({ckpt_overhead:+.0%})")

# %% [markdown]
# ## 4. `torch.compile` and bf16 autocast
#
# `torch.compile` traces the Python code into a graph and generates fused kernels. Its first call compiles, which
# can take seconds, so it is reported apart from the speed-up of the later calls. Where no compiler works (no C
# compiler, an unsupported platform) `E.compile_or_fallback` says why and runs eagerly.

# %%
block_fn = fns[0]
with torch.no_grad():
    if S.compile:
        compiled, compile_s, how = E.compile_or_fallback(block_fn, x0.detach())
    else:  # compiling takes seconds: the smoke profile skips it
        compiled, compile_s, how = block_fn, None, "skipped in the smoke profile (it runs in the cpu and gpu profiles)"
    print("torch.compile:", how, "" if compile_s is None else f"first call (compilation) {compile_s:.1f} s")
    if compile_s is not None:
        c_ms = E.median_ms({"eager": lambda: block_fn(x0), "compiled": lambda: compiled(x0)}, repeats=S.repeats,
                           device=device)
        compile_speedup = c_ms["eager"] / c_ms["compiled"]
        print(f"eager {c_ms['eager']:.2f} ms, compiled {c_ms['compiled']:.2f} ms: speed-up {compile_speedup:.2f}x")
    else:
        compile_speedup = how

# %% [markdown]
# Autocast runs matrix products in bfloat16 and keeps the weights and the reductions in float32. On a GPU that
# doubles the tensor-core rate; on a CPU it helps only where the CPU has bf16 instructions (AMX, AVX-512 BF16),
# and often costs time elsewhere. The ratio the run prints is fp32 time over autocast time.

# %%
x32 = x0.detach().to(torch.float32).requires_grad_()
bf16 = E.autocast_ratio(lambda x: E.with_checkpointing(fns, x, False), x32, repeats=S.repeats)
print(f"fp32 {bf16['fp32']:.1f} ms, bf16 autocast {bf16['autocast']:.1f} ms: ratio {bf16['ratio']:.2f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Precision you can see on a CPU
#
# A floating-point number is a sign, an exponent and a mantissa: $x = \pm (1.m) \cdot 2^{e}$. The exponent's bits
# set the **range** (the largest and the smallest numbers), the mantissa's bits the **precision** (the gap between
# neighbours, relative to the number: `eps`). float32 has 8 exponent and 23 mantissa bits; bfloat16 keeps the 8
# exponent bits and only 7 of mantissa; float16 has 5 and 10. Below the smallest *normal* number the format runs
# out of exponent and drops leading mantissa bits (subnormals), until nothing is left and the number is 0.
#
# The table is `torch.finfo` of each format; the last columns store a tiny gradient, $10^{-8}$, and add $10^{-3}$
# to 1 in each.

# %%
formats = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
print(f"{'':5}{'exp/mant bits':>14}{'largest':>11}{'smallest normal':>17}{'smallest subnormal':>20}{'eps':>10}"
      f"{'1e-8 stored':>13}{'1 + 1e-3':>10}")
for name, dt in formats.items():
    f = torch.finfo(dt)
    mant = {torch.float32: 23, torch.bfloat16: 7, torch.float16: 10}[dt]
    stored = torch.tensor(1e-8, dtype=dt).item()
    plus = (torch.tensor(1.0, dtype=dt) + torch.tensor(1e-3, dtype=dt)).item()
    print(f"{name:5}{f'{f.bits - 1 - mant}/{mant}':>14}{f.max:>11.3g}{f.smallest_normal:>17.3g}"
          f"{f.smallest_normal * f.eps:>20.3g}{f.eps:>10.3g}{stored:>13.3g}{plus:>10.6g}")
tiny_in_fp16 = torch.tensor(1e-8, dtype=torch.float16).item()

# %% [markdown]
# So $10^{-8}$ becomes 0 in fp16 (below half its smallest subnormal, $2^{-24} \approx 6 \cdot 10^{-8}$), while
# bf16 stores it (fp32's range) but cannot tell $1.001$ from 1 (7 mantissa bits). That is the whole story of mixed
# precision: **bf16 needs no help with range** and is the default on GPUs that have it; **fp16 needs its
# gradients kept inside its range**, which is what loss scaling does.
#
# ### Real gradients in fp16
#
# Which gradients are that small? A small GPT learns a toy language made in code: each sequence counts up from a
# random start with a random stride modulo 32 (`3, 8, 13, 18, ...`), so from the second token on the next one is
# predictable once the stride has been seen. We train it in fp32 and look at its weight gradients at the last step:
# for each scale $s$, the fraction of them that $s \cdot g$ in fp16 turns into 0, leaves subnormal, or overflows.

# %%
V, L = 32, 33  # 32 token values; sequences of 33, so 32 inputs and 32 targets
small = GPTConfig(vocab_size=V, block_size=L - 1, n_layer=2, n_head=2, n_embd=64)


def counting_batch(step: int, batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``step`` of the toy language: start + stride * t (mod V), inputs and next-token targets."""
    g = torch.Generator().manual_seed(step)
    start, stride = torch.randint(0, V, (batch, 1), generator=g), torch.randint(1, 8, (batch, 1), generator=g)
    seq = (start + stride * torch.arange(L)) % V
    return seq[:, :-1].to(device), seq[:, 1:].to(device)


def train_small(steps: int, fp16: bool, scaled: bool = True) -> tuple[torch.nn.Module, list[dict]]:
    """Train the small GPT with AdamW; ``fp16``: under fp16 autocast, with a GradScaler when ``scaled``.
    Records the loss, the scale used for the step, whether the scaler skipped it, and the fraction of weight
    gradients that came out exactly 0 (with fp32 training as good as never)."""
    torch.manual_seed(0)
    model = GPT(small).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0**16, growth_interval=S.growth_interval,
                                  enabled=fp16 and scaled)
    log = []
    for step in range(steps):
        x, y = counting_batch(step)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=fp16):
            logits = model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        scale = scaler.get_scale()  # 1.0 when the scaler is disabled
        scaler.scale(loss).backward()
        zero = float(sum(int((p.grad == 0).sum()) for p in model.parameters()) / sum(p.numel() for p in model.parameters()))
        scaler.step(opt)  # unscales; skips the step when a gradient is inf or nan
        scaler.update()  # halves the scale after a skip, doubles it after growth_interval good steps
        log.append({"loss": loss.item(), "scale": scale, "skipped": scaler.is_enabled() and scaler.get_scale() < scale,
                    "zero_grads": zero})
    return model, log


t0 = time.perf_counter()
model32, log32 = train_small(S.fp16_steps, fp16=False)
fp32_s = time.perf_counter() - t0
grads = torch.cat([p.grad.flatten() for p in model32.parameters() if p.grad is not None])
print(f"fp32: {S.fp16_steps} steps in {fp32_s:.1f} s ({S.fp16_steps * 16 * (L - 1) / fp32_s:,.0f} tokens/s), "
      f"loss {log32[0]['loss']:.2f} -> {log32[-1]['loss']:.2f}; {grads.numel():,} weight gradients, "
      f"median |g| {grads.abs().median():.1e}")
print(f"{'scale':>7}{'become 0':>10}{'subnormal':>11}{'overflow':>10}{'median rel. error':>19}")
roundtrip = {}
for e in (0, 8, 16, 24):
    roundtrip[e] = r = E.fp16_roundtrip(grads, 2.0**e)
    print(f"{'2^' + str(e):>7}{r['zero']:>10.4%}{r['subnormal']:>11.2%}{r['inf']:>10.2%}{r['median_rel_err']:>19.1e}")

# %% [markdown]
# Read the table from the top: multiplying by a power of two moves the gradients up the fp16 range, out of the
# subnormals (where they keep fewer significant bits and the relative error grows) until, at the largest scale,
# the biggest ones overflow to inf. The fractions at scale 1 are small for this small model: the
# gradients of larger models and of larger batches are smaller (each is a mean over more tokens) and the
# activation gradients of the backward pass, which fp16 autocast also computes in fp16, shrink with them, which is
# why fp16 training without scaling loses updates. No single scale is right for the whole run, so the
# **GradScaler** adapts it: it multiplies the loss by $s$ before the backward, divides the gradients by $s$ before
# the optimizer step, **skips the step** (and halves $s$) when a gradient came out inf or nan, and doubles $s$
# after `growth_interval` steps without one.
#
# ### GradScaler, run for real
#
# The same training under fp16 autocast on this device (a CPU runs fp16 autocast too, slowly: it has no fp16
# arithmetic units; the point is to watch the scaler), once with a GradScaler at its default start $s = 2^{16}$ and
# a `growth_interval` short enough to see it grow within the run (the default is 2000 steps), and once without one.

# %%
t0 = time.perf_counter()
model16, log16 = train_small(S.fp16_steps, fp16=True)
fp16_s = time.perf_counter() - t0
_, log16_unscaled = train_small(S.fp16_steps, fp16=True, scaled=False)
skipped = [i for i, r in enumerate(log16) if r["skipped"]]
print(f"fp16 + GradScaler: {S.fp16_steps} steps in {fp16_s:.1f} s ({S.fp16_steps * 16 * (L - 1) / fp16_s:,.0f} "
      f"tokens/s; fp32 {fp32_s:.1f} s); skipped {len(skipped)} steps: {skipped}")
print(f"scale: 2^{math.log2(log16[0]['scale']):.0f} at the start, 2^{math.log2(log16[-1]['scale']):.0f} at the end")
runs = {"fp32": log32, "fp16 + GradScaler": log16, "fp16, no scaling": log16_unscaled}
final_loss = {name: sum(r["loss"] for r in log[-5:]) / 5 for name, log in runs.items()}
zero_grads = {name: sum(r["zero_grads"] for r in log) / len(log) for name, log in runs.items()}
for name in runs:
    print(f"{name:>18}: final loss (mean of the last 5 steps) {final_loss[name]:.3f}, "
          f"weight gradients exactly 0 per step {zero_grads[name]:.4%}")

fig = Figure(figsize=(11, 3.4))
ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
for label, log in runs.items():
    ax1.plot([r["loss"] for r in log], label=label)
ax1.set(xlabel="step", ylabel="training loss (nats)", title="The same run in three precisions")
ax1.legend()
ax2.step(range(len(log16)), [math.log2(r["scale"]) for r in log16], where="post", label="log2 scale")
ax2.plot(skipped, [math.log2(log16[i]["scale"]) for i in skipped], "rx", label="skipped step (inf in a gradient)")
ax2.set(xlabel="step", ylabel="log2 of the loss scale", title="GradScaler: halve on overflow, grow when quiet")
ax2.legend()
fig.tight_layout()
fig

# %% [markdown]
# Each skipped step is a batch whose update was thrown away: the scaled loss made some gradient overflow. The scale
# then oscillates: it grows after every `growth_interval` quiet steps and halves at the next overflow, so with the
# default interval of 2000 steps a real run skips about one step in 2000. A skipped step costs one batch; an
# overflow that reached the weights would cost the run. The last printed column is what the scaler is for: without
# it, some weight gradients come out exactly 0 (they underflowed in the fp16 backward); with it, as in fp32,
# none do. In a model this small those are few and the three runs end close together; the printed losses say how
# close in this run.
#
# ### Gradient accumulation when the loss is a mean over tokens
#
# With $K$ micro-batches, the Trainer divides each micro-batch's loss by $K$ and adds the gradients. That equals the
# big batch when every micro-batch averages over the same number of terms, as GPT's fixed windows do. With padding
# it does not: the loss of a padded batch is the mean over its **real** tokens,
# $\frac{1}{N} \sum_{i \,\text{real}} \ell_i$, and the mean of $K$ micro-batch means weights a token of a
# micro-batch with few real tokens more than one of a micro-batch with many. The fix is to sum the token losses in
# every micro-batch and divide by $N$, the real tokens of the whole batch.
#
# A padded batch of the toy language (each sequence cut at a random length, the rest of its targets set to
# `-100`, which `cross_entropy` ignores), split into 4 micro-batches, against one pass over the whole batch:

# %%
def padded_batch(batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = counting_batch(10_000, batch)
    lengths = torch.randint(4, L, (batch, 1), generator=torch.Generator().manual_seed(1)).to(device)
    past_end = torch.arange(L - 1, device=device) >= lengths
    return x.masked_fill(past_end, 0), y.masked_fill(past_end, -100)  # token 0 pads the inputs


def accumulated_grad(model: torch.nn.Module, micro: list, how: str) -> torch.Tensor:
    """The accumulated gradient over ``micro`` (a list of (x, y)), with the loss of each micro-batch divided by K
    (``how="mean / K"``) or summed and divided by the real tokens of them all (``how="sum / N"``)."""
    model.zero_grad(set_to_none=True)
    n_real = sum(int((y != -100).sum()) for _, y in micro)
    for x, y in micro:
        logits = model(x).flatten(0, 1)
        if how == "mean / K":
            loss = F.cross_entropy(logits, y.flatten(), ignore_index=-100) / len(micro)
        else:
            loss = F.cross_entropy(logits, y.flatten(), ignore_index=-100, reduction="sum") / n_real
        loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


xp, yp = padded_batch()
micro = list(zip(xp.chunk(4), yp.chunk(4)))
print("real tokens per micro-batch:", [int((y != -100).sum()) for _, y in micro])
accum_model = GPT(small).to(device)
g_full = accumulated_grad(accum_model, [(xp, yp)], "mean / K")
accum_err = {rule: float((accumulated_grad(accum_model, micro, rule) - g_full).norm() / g_full.norm())
             for rule in ("mean / K", "sum / N")}
for rule, err in accum_err.items():
    print(f"{rule:>9}: |g_accumulated - g_full| / |g_full| = {err:.1e}")

# %% [markdown]
# Dividing by $K$ is off by the printed fraction of the gradient's norm; dividing the sums by $N$ agrees with the
# whole batch to float rounding. The course `train_step` does the second when the loss function returns a pair
# `(sum, count)`, as `amla.toolkit.train.summed_cross_entropy` does: it adds up the counts, and divides the
# accumulated gradients once after the backward passes, so it never needs $N$ in advance, and with DDP it sums the
# counts of all ranks too. The check: its gradients on the same micro-batches (an optimizer with learning rate 0
# leaves the weights where they were, so the gradients can be read afterwards).

# %%
from amla.toolkit.train import summed_cross_entropy, train_step

train_step(accum_model, micro, torch.optim.SGD(accum_model.parameters(), lr=0.0),
           torch.amp.GradScaler(device.type, enabled=False), None, None, loss_fn=summed_cross_entropy)
g_step = torch.cat([p.grad.flatten() for p in accum_model.parameters()])
accum_err["train_step"] = float((g_step - g_full).norm() / g_full.norm())
print(f"train_step with summed_cross_entropy: |g - g_full| / |g_full| = {accum_err['train_step']:.1e}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Throughput and MFU
#
# A training step costs about $6N$ floating-point operations per token for the $N$ weights (2 for the forward
# multiply-add, 4 for the two backward products), plus the attention scores and the weighted sum of the values:
# two matrix products of $2TC$ per token and layer, times 3 for forward and backward, $12\,L\,T\,C$. The model
# FLOPs utilisation is the achieved FLOP/s over the chip's peak.
#
# ### Exercise 9.2: Training FLOPs per token
#
# Write `train_flops_per_token(n_params, n_layer, seq_len, n_embd)` returning $6N + 12LTC$ as a float.

# %%
def train_flops_per_token(n_params: int, n_layer: int, seq_len: int, n_embd: int) -> float:
    ### BEGIN SOLUTION
    return 6.0 * n_params + 12.0 * n_layer * seq_len * n_embd
    ### END SOLUTION


# %%
train_flops_per_token = amla.checks.efficient.check_train_flops_per_token(train_flops_per_token)

# %% [markdown]
# A GPT trained for a few steps on random tokens with the course Trainer (bf16 autocast on a GPU); the MFU is
# printed where the chip's peak is known (CUDA), `None` on a CPU.

# %%
from amla.toolkit.train import Trainer, TrainConfig

gpt = GPT(cfg)
tokens = torch.randint(0, cfg.vocab_size, (S.batch * 8, S.block + 1))
trainer = Trainer(gpt, (tokens[:, :-1], tokens[:, 1:]), TrainConfig(max_steps=S.gpt_steps, batch_size=S.batch,
                                                                     progress=False), device=device)
trainer.fit()
tokens_per_s = sorted(r["tokens_per_s"] for r in trainer.history.train[1:])[len(trainer.history.train[1:]) // 2]
per_token = train_flops_per_token(gpt.num_params(), cfg.n_layer, cfg.block_size, cfg.n_embd)
mfu = E.mfu(tokens_per_s, per_token, E.device_peak_flops(device))
print(f"{tokens_per_s:,.0f} tokens/s (median step), {per_token / 1e6:.1f} MFLOP per token -> "
      f"{tokens_per_s * per_token / 1e9:.1f} GFLOP/s; MFU: {'n/a on ' + device.type if mfu is None else f'{mfu:.1%}'}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Data-parallel training
#
# DDP runs one process per device, each with the whole model. Every step each rank takes its shard of the global
# batch (the order `DistributedSampler` deals out), computes its gradients, and DDP all-reduces (averages) them
# during the backward pass, so every rank takes the same optimizer step. The course Trainer does this when a
# process group is initialised (`amla.toolkit.distributed`): it wraps the model in DDP, shards each batch, averages
# the logged loss over the ranks, and only rank 0 shows progress and writes checkpoints.
#
# The notebook writes the training script, then launches it with `torchrun --standalone --nproc_per_node 2`
# (2 CPU processes, the gloo backend) and compares the weights with one process trained on the same global batch.

# %%
workdir = Path(tempfile.mkdtemp(prefix="amla09_"))
script = workdir / "ddp_train.py"
script.write_text(textwrap.dedent("""
    import sys
    import torch
    torch.set_num_threads(1)
    from amla.toolkit import distributed as ddp
    ddp.init("gloo")  # torchrun sets RANK, WORLD_SIZE and the rendezvous
    ddp.toy_training(steps=int(sys.argv[1]), batch_size=16, out=sys.argv[2])  # the course Trainer, DDP-aware
    ddp.teardown()
"""))
print(script.read_text())

# %%
single = ddp.toy_training(steps=S.ddp_steps, batch_size=16)
if S.launch:
    t0 = time.perf_counter()
    done = ddp.launch(script, nproc=2, args=[str(S.ddp_steps), str(workdir / "w.pt")])
    ddp_seconds = time.perf_counter() - t0
    print(done.stdout.strip(), f"(torchrun took {ddp_seconds:.1f} s)")
    weights = torch.load(workdir / "w.pt", weights_only=True)
    world = 2
else:
    ddp.init("gloo")  # this process alone: a world of size 1, the same code path
    weights = ddp.toy_training(steps=S.ddp_steps, batch_size=16)
    ddp.teardown()
    world = 1
    print("smoke profile: a world of size 1 in this process; the 2-process torchrun launch runs in the cpu and gpu "
          "profiles and in tests/test_distributed.py")
ddp_max_diff = max(float((weights[n] - single[n]).abs().max()) for n in single)
ddp_equal = ddp_max_diff <= 1e-6
print(f"world size {world}: max |w_ddp - w_single| = {ddp_max_diff:.1e} (equal to 1e-6: {ddp_equal})")

# %% [markdown]
# **Beyond data parallelism.** DDP copies everything on every device. When the model does not fit, one splits
# more: **FSDP** (ZeRO-3) shards the parameters, gradients and optimizer state over the ranks and gathers each
# layer's weights just before it runs; **tensor parallelism** (Megatron) splits a layer's matrices, e.g. the
# columns of the first MLP matrix and the rows of the second, so each device computes part of every product;
# **pipeline parallelism** places consecutive layers on different devices and streams micro-batches through them.
# The figure shows what each one splits over two devices.

# %%
from matplotlib.patches import Rectangle


def draw_layers(ax, dev: int, layers: range, part: str) -> None:
    """Device ``dev``'s column: the 4 layers, solid where it holds them; ``part``: all, left half, right half."""
    for layer in range(4):
        x0, w = dev + 0.1, 0.8
        if part != "all":
            x0, w = (dev + 0.1, 0.4) if part == "left" else (dev + 0.5, 0.4)
        held = layer in layers
        ax.add_patch(Rectangle((dev + 0.1, 0.8 + layer * 0.8), 0.8, 0.65, fill=False, ls=":", color="gray"))
        ax.add_patch(Rectangle((x0, 0.8 + layer * 0.8), w, 0.65, color=f"C{dev}", alpha=0.8 if held else 0.0))


fig = Figure(figsize=(11, 3.4))
schemes = [("Data parallel (DDP)", "the batch is split;\nevery device holds the whole model", "all"),
           ("FSDP / ZeRO-3", "params, grads, optimizer state\nsharded; a layer gathered to run", "half"),
           ("Tensor parallel", "each layer's matrices split\n(columns / rows); partial sums reduced", "half"),
           ("Pipeline parallel", "the layers split: 1-2 on GPU0,\n3-4 on GPU1; micro-batches flow", "pipe")]
for i, (title, note, kind) in enumerate(schemes):
    ax = fig.add_subplot(1, 4, i + 1)
    ax.set_xlim(0, 2), ax.set_ylim(0, 4.9), ax.axis("off"), ax.set_title(title, fontsize=10)
    for dev in range(2):
        layers = range(4) if kind != "pipe" else (range(2) if dev == 0 else range(2, 4))
        draw_layers(ax, dev, layers, "all" if kind in ("all", "pipe") else ("left", "right")[dev])
        batch = "\nhalf the batch" if i < 2 else ""  # DDP and FSDP split the batch; TP and PP do not
        ax.text(dev + 0.5, 0.4, f"GPU{dev}{batch}", ha="center", fontsize=8)
    ax.text(1.0, 4.85, note, ha="center", va="top", fontsize=8)
fig.tight_layout()
fig

# %% [markdown]
# The hour's numbers, collected by `amla bench 09`:

# %%
amla.report(
    score_mem_ratio=ratio_pred, sdpa_math_ms=sdpa_math_ms, sdpa_fused_ms=sdpa_fused_ms, sdpa_T=S.seq_lens[-1],
    backends=",".join(backends), checkpoint_mem_saved_frac=ckpt_saved, checkpoint_time_overhead=ckpt_overhead,
    compile_s=compile_s if compile_s is not None else how, compile_speedup=compile_speedup,
    bf16_autocast_ratio=bf16["ratio"], fp16_stores_1e_8_as=tiny_in_fp16,
    fp16_grad_subnormal_frac_scale1=roundtrip[0]["subnormal"], fp16_grad_overflow_frac_scale2_24=roundtrip[24]["inf"],
    gradscaler_skipped_steps=len(skipped), gradscaler_final_log2_scale=math.log2(log16[-1]["scale"]),
    fp32_final_loss=final_loss["fp32"], fp16_scaled_final_loss=final_loss["fp16 + GradScaler"],
    fp16_unscaled_final_loss=final_loss["fp16, no scaling"], fp16_unscaled_zero_grad_frac=zero_grads["fp16, no scaling"],
    fp16_scaled_zero_grad_frac=zero_grads["fp16 + GradScaler"],
    accum_mean_over_k_rel_err=accum_err["mean / K"], accum_sum_over_n_rel_err=accum_err["sum / N"],
    accum_train_step_rel_err=accum_err["train_step"], gpt_tokens_per_s=tokens_per_s,
    mfu=f"n/a on {device.type}" if mfu is None else mfu, mfu_target_met=f"n/a on {device.type}" if mfu is None else mfu >= 0.40, ddp_world=world, ddp_max_diff=ddp_max_diff,
    ddp_equal=ddp_equal,
)

# %% [markdown]
# Your exercises, one line each.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. With bf16, 32 heads and $T = 131072$, how many GiB do the two score matrices of one layer and one sequence
#    take? What does a fused kernel keep instead?
# 2. Checkpointing every block saved memory and cost time in the run above. Why is the time overhead at most
#    about one extra forward pass (roughly a third of a training step)?
# 3. Why must every rank run the same number of steps in DDP, and what happens if one rank has one batch fewer?
# 4. The loss each rank computes is the mean over its shard. Why is the average of the ranks' losses the loss of
#    the global batch here, and when would it not be?
# 5. Which of DDP, FSDP, tensor and pipeline parallelism would you use for a 70B-parameter model on 64 GPUs, and
#    in which combination?
# 6. Why does bf16 training need no GradScaler, and what does bf16 lose that fp16 keeps?
# 7. The GradScaler skipped steps in the run above. Why is skipping a step better than clipping the inf gradients
#    to a large finite value and stepping?
# 8. Padded batches split into micro-batches of equal numbers of sequences: when is dividing each micro-batch's
#    mean loss by $K$ exact after all?

# %% [markdown] tags=["answer"]
# 1. $2 \cdot 32 \cdot 131072^2 \cdot 2$ bytes $= 2^{41}$ bytes = 2048 GiB: far beyond any GPU. A fused kernel
#    keeps the output and one log-sum-exp per row and head ($32 \cdot 131072$ floats) and recomputes the
#    probabilities block by block in the backward.
# 2. The backward of a checkpointed block first reruns its forward, then the usual backward; the forward is about
#    a third of forward plus backward ($2N$ of $6N$ FLOPs), so the step costs at most about $8N/6N$.
# 3. Every backward all-reduces the gradients: all ranks must join each collective. A rank with a batch fewer
#    would leave the others waiting in the all-reduce forever (a hang), which is why the Trainer (like
#    `DistributedSampler` with `drop_last=True`) gives every rank the same number of steps.
# 4. Each shard has the same number of examples, so the mean of the shard means is the global mean. With shards
#    of different sizes (or a per-token loss with different numbers of tokens per shard) the ranks' means must
#    be weighted by their counts.
# 5. Typically tensor parallelism inside a node (8 GPUs with fast links), pipeline parallelism across a few nodes
#    if the layers still do not fit, and data parallelism (with FSDP sharding the optimizer state and weights)
#    across the remaining replicas.
# 6. bf16 has fp32's 8 exponent bits, so every gradient fp32 can hold (down to $10^{-38}$) is in its range and
#    nothing underflows that would not in fp32. It loses precision instead: 7 mantissa bits, about 2-3 significant
#    digits ($1 + 10^{-3} = 1$ in the table), against fp16's 10 bits; which is why weights, optimizer state and
#    reductions stay in fp32 under autocast.
# 7. An inf means the scaled gradient overflowed, so the direction is unknown (the other entries may be just as
#    wrong, and a nan may follow); clipping would take a step in a direction nobody computed. Skipping loses one
#    batch, the scaler halves $s$, and the next step is computed within range.
# 8. When every micro-batch has the same number of real tokens (no padding, or fixed-length windows as in GPT
#    training), the mean of the means equals the mean over all tokens; otherwise each micro-batch's mean must be
#    weighted by its share of the real tokens, which summing and dividing by $N$ does.
