# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=4, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 04: Multi-head attention and the Transformer block
#
# Hour 03's decoder attended over a recurrent encoder: the GRU still read the input one character at a time.
# The Transformer drops the recurrence. Every position attends to every other position at once, several times in
# parallel (**heads**), and a small stack of identical **blocks** (attention, a feed-forward net, residual
# connections, LayerNorm) does the rest. This hour builds that block piece by piece, teaches it to **reverse**
# sequences, and then opens it up: what happens without positions, which positional encoding suits the task, and
# why almost every modern model normalises *before* each branch instead of after it.
#
# **By the end of this hour you can**
# - write **multi-head attention**: the q/k/v projections, splitting into heads and merging back, the output
#   projection, and show that it equals `torch.nn.MultiheadAttention` to $10^{-5}$;
# - explain why attention alone is **permutation-equivariant**, and add positions three ways: **sinusoidal**,
#   **learned**, and **rotary (RoPE)**, the modern default;
# - assemble a **Transformer block** from LayerNorm, residual connections, a feed-forward net and dropout, in the
#   **pre-norm** and the **post-norm** arrangement, and measure why pre-norm won, and what the feed-forward net
#   contributes by training without it;
# - train an encoder to reverse held-out sequences perfectly, read its attention maps **head by head**, and test
#   what a map suggests by **removing heads**.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `mha_forward = amla.checks.transformer.check_mha_forward(mha_forward)`. The check runs your function on ordinary
# and edge inputs against the course's reference (values, dtype, gradients, and whether your inputs were left
# alone):
# - right: the check returns your function, and **the rest of the hour runs on your code**: the reversal model of
#   section 4 is built from your `mha_forward` (heads split and merged by your code), your `block_forward` and your
#   `sinusoidal_encoding`;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook, `amla bench 04` on an idle 2-core CPU): smoke profile about 10 s, cpu profile
# about 2 min (119 and 120 s in two runs; mostly the comparisons of sections 4-6, the reversal model itself trains
# in about 6 s). Cores busy with other jobs can make it many times slower. The `gpu` profile trains a wider model
# on longer sequences.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. From one head to many
#
# Hour 02's attention takes queries $Q$, keys $K$ and values $V$ and returns
# $\operatorname{softmax}\!\big(QK^\top/\sqrt{d_k} + M\big)V$. In a Transformer all three are **learned
# projections** of token vectors: in self-attention of the same sequence $X \in \mathbb{R}^{T \times d}$, in
# cross-attention $Q$ from one sequence and $K, V$ from another. One head can only average in one way, with one
# pattern of weights per query. **Multi-head** attention runs $H$ smaller attentions side by side, each on its own
# $d_h = d / H$ features, and mixes their results with an output projection $W_O$:
# $$
# \operatorname{head}_h = \operatorname{softmax}\!\Big(\frac{Q_h K_h^\top}{\sqrt{d_h}} + M\Big) V_h,
# \qquad \operatorname{MHA}(X, Z) = \big[\operatorname{head}_1; \dots; \operatorname{head}_H\big]\, W_O ,
# $$
# where $Q = X W_Q$, $K = Z W_K$, $V = Z W_V$ (each $d \times d$) and $Q_h$ is the $h$-th block of $d_h$ columns of
# $Q$. The cost is that of one head of size $d$: the heads *share out* the features rather than multiplying them.
# Note the scale: each head's dot products run over $d_h$ features, so it is $\sqrt{d_h}$, not $\sqrt{d}$.
#
# In code nobody loops over heads. The $d$ features of each token are viewed as $H \times d_h$ and the head axis is
# moved in front of the positions, so that a batched matrix product handles all heads at once:
# `[B, T, d] -> [B, T, H, d_h] -> [B, H, T, d_h]`.
#
# The sizes of this hour, per profile:

# %%
import math

import torch
from matplotlib.figure import Figure
from torch import nn

S = amla.per_profile(
    smoke=dict(length=8, n_symbols=10, n_train=1000, n_val=100, n_test=200, d_model=16, heads=2, layers=1, d_ff=32,
               batch=32, lr=2e-3, steps=30, eval_every=15, deep_layers=3, deep_lr=1e-2, deep_steps=15, warmup=5,
               cost_lengths=(64, 128, 256)),
    cpu=dict(length=12, n_symbols=10, n_train=20000, n_val=500, n_test=2000, d_model=64, heads=4, layers=2,
             d_ff=128, batch=128, lr=1e-3, steps=300, eval_every=50, deep_layers=8, deep_lr=1e-2, deep_steps=300,
             warmup=60, cost_lengths=(128, 256, 512, 1024, 2048)),
    gpu=dict(length=16, n_symbols=10, n_train=50000, n_val=1000, n_test=5000, d_model=128, heads=8, layers=2,
             d_ff=256, batch=256, lr=1e-3, steps=600, eval_every=100, deep_layers=12, deep_lr=1e-2, deep_steps=400,
             warmup=80, cost_lengths=(128, 256, 512, 1024, 2048)),
)
print(amla.profile(), S)

# %% [markdown]
# Splitting the heads is one `view` and one `transpose`: `x.view(B, T, H, d_h).transpose(1, 2)` gives
# `[B, H, T, d_h]`, where head `h` holds the features `h * d_h` to `(h + 1) * d_h - 1` of every position (the order
# matters: viewing straight as `[B, H, T, d_h]` would give each "head" a block of whole positions instead).
# Merging is the inverse, `heads.transpose(1, 2).reshape(B, T, d)` (the `reshape` copies, since the transposed
# tensor is not contiguous). `amla.transformers.nn` has both as `split_heads` and `merge_heads`; which features
# land in which head:

# %%
from amla.transformers.nn import merge_heads, split_heads

x = torch.arange(2 * 3 * 8.0).view(2, 3, 8)  # 2 sequences, 3 positions, 8 features numbered in order
heads = x.view(2, 3, 4, 2).transpose(1, 2)  # H = 4 heads of d_h = 2 features
print("x[0]:\n", x[0])
print("head 1 of sequence 0 (features 2 and 3 of every position):\n", heads[0, 1])
print("equal to split_heads(x, 4):", torch.equal(heads, split_heads(x, 4)),
      "| merge_heads(heads) == x:", torch.equal(merge_heads(heads), x))

# %% [markdown]
# ### Exercise 4.1: Multi-head attention
#
# Write `mha_forward(mha, x, kv=None, mask=None)` returning `(out, weights)`. `mha` is an
# `amla.transformers.nn.MultiHeadAttention`: use its `mha.q_proj`, `mha.k_proj`, `mha.v_proj` and `mha.out_proj`
# (`nn.Linear` layers of size `d -> d`) and `mha.n_heads`.
# - `x` is `[B, Tq, d]`; `kv` is `[B, Tk, d]`, or `None` for self-attention (then `kv = x`).
# - Project; split each projection into heads yourself, with the `view` and `transpose` above (no loop over
#   heads); compute the scaled scores, mask them (a bool `mask` broadcastable to `[B, H, Tq, Tk]`, True = may
#   attend: fill the others with `-inf`), softmax over the keys, weight the values, merge the heads back
#   (`merge_heads`, or its two lines), apply the output projection.
# - Return `out` `[B, Tq, d]` and the softmax `weights` `[B, H, Tq, Tk]`.

# %%
def mha_forward(mha, x, kv=None, mask=None):
    ### BEGIN SOLUTION
    kv = x if kv is None else kv
    b, tq, d = x.shape
    tk, h = kv.shape[1], mha.n_heads
    q = mha.q_proj(x).view(b, tq, h, d // h).transpose(1, 2)  # [B, H, Tq, d_h]
    k = mha.k_proj(kv).view(b, tk, h, d // h).transpose(1, 2)  # [B, H, Tk, d_h]
    v = mha.v_proj(kv).view(b, tk, h, d // h).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # sqrt(d_h), not sqrt(d)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return mha.out_proj(merge_heads(weights @ v)), weights
    ### END SOLUTION


# %%
mha_forward = amla.checks.transformer.check_mha_forward(mha_forward)

# %% [markdown]
# **Three implementations, one answer.** Wrapped in a module, the `mha_forward` the check returned (yours once it
# passes) is a complete multi-head attention layer. We compare it with the package's
# `amla.transformers.nn.MultiHeadAttention` (same parameter names, so the weights load directly), on both of its
# paths: `need_weights=True` runs Hour 02's attention and returns the weights for the viewer, `need_weights=False`
# runs PyTorch's fused `scaled_dot_product_attention`. And with `torch.nn.MultiheadAttention`, which stores $W_Q,
# W_K, W_V$ stacked in one `in_proj_weight` and uses the **opposite** boolean convention for its masks (`True` =
# *not* allowed), so the masks are inverted on the way in.

# %%
from amla.transformers.attention import causal_mask, padding_mask
from amla.transformers.nn import MultiHeadAttention


class StudentMHA(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads  # as MultiHeadAttention
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x, kv=None, mask=None):
        return mha_forward(self, x, kv, mask)


whose = "your" if amla.checks.yours("4.1") else "the reference (Exercise 4.1 not done yet)"
print(f"StudentMHA runs {whose} mha_forward")
torch.manual_seed(0)
d, h, B, Tq, Tk = 32, 4, 3, 6, 9
student = StudentMHA(d, h).eval()
package = MultiHeadAttention(d, h).eval()
package.load_state_dict(student.state_dict())
reference = nn.MultiheadAttention(d, h, batch_first=True).eval()
with torch.no_grad():
    reference.in_proj_weight.copy_(torch.cat([student.q_proj.weight, student.k_proj.weight, student.v_proj.weight]))
    reference.in_proj_bias.copy_(torch.cat([student.q_proj.bias, student.k_proj.bias, student.v_proj.bias]))
    reference.out_proj.load_state_dict(student.out_proj.state_dict())

x, z = torch.randn(B, Tq, d), torch.randn(B, Tk, d)
lengths_x, lengths_z = [6, 4, 2], [9, 5, 7]
cases = {  # name: (kv, our mask [B or 1, 1 or H, Tq, Tk], torch's key_padding_mask [B, Tk], torch's attn_mask)
    "self, no mask": (None, None, None, None),
    "self, padding": (None, padding_mask(lengths_x, Tq)[:, None], ~padding_mask(lengths_x, Tq)[:, 0], None),
    "self, causal": (None, causal_mask(Tq), None, ~causal_mask(Tq)),
    "cross, padding": (z, padding_mask(lengths_z, Tk)[:, None], ~padding_mask(lengths_z, Tk)[:, 0], None),
}
mha_diff = {}
with torch.no_grad():
    for name, (kv, mask, key_padding, attn_mask) in cases.items():
        kv_ = x if kv is None else kv
        ours, ours_w = student(x, kv, mask)
        fast, _ = package(x, kv, mask)
        slow, slow_w = package(x, kv, mask, need_weights=True)
        theirs, theirs_w = reference(x, kv_, kv_, key_padding_mask=key_padding, attn_mask=attn_mask,
                                     average_attn_weights=False)
        mha_diff[name] = max((ours - theirs).abs().max().item(), (ours_w - theirs_w).abs().max().item())
        print(f"{name:>15}: StudentMHA vs torch.nn.MultiheadAttention {mha_diff[name]:.1e} | vs amla.transformers.nn "
              f"(fast path) {(ours - fast).abs().max().item():.1e}, (weights path) "
              f"{max((ours - slow).abs().max().item(), (ours_w - slow_w).abs().max().item()):.1e}")

# %% [markdown]
# ### What attention costs
#
# Self-attention compares every pair of positions: per head the scores are a $T \times T$ matrix, so its time
# grows as $O(T^2 d)$ and the memory of its weights as $O(T^2)$. A recurrent layer (Hour 03's GRU) costs
# $O(T d^2)$, linear in $T$, but its $T$ steps run one after another, and what position 1 knows reaches position
# $T$ through $T$ steps; in attention every pair is one step apart (path length $O(1)$), and all positions are
# computed at once. Measured here for one sequence of width $d = 64$ (one head, the explicit path that stores the
# weights, `amla.transformers.efficiency` of Hour 09), against one GRU layer of the same width:

# %%
from amla.transformers.efficiency import math_attention, median_ms, peak_bytes

gru = nn.GRU(64, 64, batch_first=True)
print(f"{'T':>6} {'attention ms':>13} {'GRU ms':>8} {'attention MiB':>14}")
cost = []
with torch.no_grad():
    for T in S.cost_lengths:
        q, seq = torch.randn(1, 1, T, 64), torch.randn(1, T, 64)
        ms = median_ms({"attention": lambda: math_attention(q, q, q), "gru": lambda: gru(seq)}, repeats=3)
        cost.append((ms["attention"], ms["gru"], peak_bytes(lambda: math_attention(q, q, q)) / 2**20))
        print(f"{T:>6} {cost[-1][0]:>13.2f} {cost[-1][1]:>8.2f} {cost[-1][2]:>14.2f}")
(a0, g0, m0), (a1, g1, m1) = cost[-2], cost[-1]
print(f"the last doubling of T multiplied the attention's memory by {m1 / m0:.1f}, its time by {a1 / a0:.1f}, "
      f"the GRU's time by {g1 / g0:.1f}")

# %% [markdown]
# Each doubling of $T$ multiplies the weights' memory by four, and the attention's time too once the matrices
# keep the cores busy; the GRU's time only doubles. On the course machine (cpu profile) attention was still
# faster at $T = 2048$ (0.5 to 0.95 times the GRU's time): the GRU's steps cannot run in parallel. Beyond that
# the fourfold growth wins, and the memory (32.5 MiB per head and sequence at $T = 2048$) limits long contexts;
# Hour 09 shows the fused kernels that never store the weights.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Attention does not know where a token is
#
# Permute the tokens of a sequence and look at what self-attention does: the scores $q_i \cdot k_j$ are permuted
# along both axes, the softmax of each row is permuted along with it, and every output is the same vector as
# before, just at its token's new place. In symbols, for a permutation matrix $P$,
# $$\operatorname{MHA}(PX) = P\,\operatorname{MHA}(X).$$
# Self-attention is **permutation-equivariant**: it treats the input as a *set*. The feed-forward net acts on
# each position on its own, so the whole Transformer is equivariant too. For reversal that is fatal: `3107` and
# `7013` contain the same tokens, so the position that should output `7` has no way of knowing it is the first.

# %%
x = torch.randn(1, 7, d)
perm = torch.randperm(7)
with torch.no_grad():
    out, out_perm = package(x)[0], package(x[:, perm])[0]
equivariance_diff = (out_perm - out[:, perm]).abs().max().item()
print("permutation", perm.tolist())
print(f"max |MHA(PX) - P MHA(X)| = {equivariance_diff:.1e}")

# %% [markdown]
# **Sinusoidal positions** (Vaswani et al., 2017) add a fixed vector to each token's embedding. Its features come
# in pairs, a sine and a cosine of the position at geometrically decreasing frequencies:
# $$PE_{p,\,2i} = \sin\!\big(p / 10000^{2i/d}\big), \qquad PE_{p,\,2i+1} = \cos\!\big(p / 10000^{2i/d}\big).$$
# The first pairs turn fast (a period of $2\pi$ positions), the last ones barely move (a period of up to
# $2\pi \cdot 10000$): together they form a unique, smooth code for every position, like the hands of a clock. And
# for a fixed offset $k$, $PE_{p+k}$ is a **rotation** of $PE_p$ (pair by pair, by the angle $k / 10000^{2i/d}$),
# the same matrix for every $p$: relative positions are easy for a linear layer to read.
#
# ### Exercise 4.2: The sinusoidal table
#
# Write `sinusoidal_encoding(max_len, d_model)` returning the `[max_len, d_model]` table above as float32
# (`d_model` even). `torch.arange(0, d_model, 2)` gives the $2i$.

# %%
def sinusoidal_encoding(max_len, d_model):
    ### BEGIN SOLUTION
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # [max_len, 1]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # [d_model / 2]
    angle = position / 10000 ** (two_i / d_model)  # [max_len, d_model / 2]
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table
    ### END SOLUTION


# %%
sinusoidal_encoding = amla.checks.transformer.check_sinusoidal(sinusoidal_encoding)

# %% [markdown]
# The table the check returned (yours once it passes), and how similar the codes of two positions are:

# %%
table = sinusoidal_encoding(64, 32)
fig = Figure(figsize=(9, 3), layout="constrained")
ax_map, ax_sim = fig.subplots(1, 2, width_ratios=[1.4, 1])
image = ax_map.imshow(table.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
ax_map.set(xlabel="position p", ylabel="feature", title="sinusoidal table (d = 32)")
fig.colorbar(image, ax=ax_map)
similarity = table @ table.T / table.shape[1]  # dot products between the codes of two positions
ax_sim.imshow(similarity, cmap="viridis")
ax_sim.set(xlabel="position", ylabel="position", title="PE_p . PE_q / d: depends on p - q")
fig

# %% [markdown]
# **Learned positions** (BERT, GPT-2, ViT) simply train one vector per position, an `nn.Embedding(max_len, d)`.
# They can learn any code the task wants, but a position never seen in training has an untrained vector: they do
# not extend beyond `max_len`.
#
# **Rotary position embedding (RoPE)** (Su et al., 2021; used by LLaMA, Mistral, Qwen and most recent language
# models) adds nothing to the tokens. Inside every attention layer it **rotates** each pair of query and key
# features by an angle proportional to the position, $\theta_{p,i} = p \cdot 10000^{-2i/d_h}$:
# $$\begin{pmatrix} q'_{2i} \\ q'_{2i+1}\end{pmatrix} = \begin{pmatrix}\cos\theta_{p,i} & -\sin\theta_{p,i} \\
# \sin\theta_{p,i} & \cos\theta_{p,i}\end{pmatrix}\begin{pmatrix} q_{2i} \\ q_{2i+1}\end{pmatrix}$$
# (`amla.transformers.positions.RotaryEmbedding` pairs feature $i$ with $i + d_h/2$, the layout of most
# implementations: the same idea). With $R_{\phi}$ the rotation by $\phi$, the query at $m$ becomes
# $R_{m\theta} q$ and the key at $n$ becomes $R_{n\theta} k$; since $R_a^\top R_b = R_{b-a}$ the score is
# $q^\top R_{(n - m)\theta}\, k$: **it depends only on the offset** $n - m$. The values are not rotated. Check:

# %%
from amla.transformers.positions import RotaryEmbedding

rope = RotaryEmbedding(d_head=16, max_len=128)
q, k = torch.randn(2, 16)


def rope_score(m, n):
    return (rope.rotate(q[None], m) * rope.rotate(k[None], n)).sum().item()


for offset in (0, 3, -5):
    scores = [rope_score(m, m + offset) for m in (5, 20, 60, 100)]
    print(f"offset {offset:>2}: q at m, k at m + offset, for m = 5, 20, 60, 100:", [f"{s:.4f}" for s in scores])

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The Transformer block
#
# Around attention, a block has three more ingredients.
#
# **Residual connections.** Each sub-layer $f$ (attention, feed-forward) *adds* to its input: $x + f(x)$. The
# identity path lets gradients reach the first layers of a deep stack unchanged, and a block that has nothing to
# contribute can output 0.
#
# **LayerNorm** normalises each token's feature vector on its own (not across the batch, unlike BatchNorm), then
# rescales it with learned $\gamma, \beta$:
# $$\operatorname{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta, \qquad
# \mu = \frac1d \sum_j x_j,\quad \sigma^2 = \frac1d\sum_j (x_j - \mu)^2 .$$
#
# **The feed-forward net** is a two-layer MLP applied to every position separately, usually 4 times wider than $d$:
# $\operatorname{FFN}(x) = W_2\,\operatorname{GELU}(W_1 x + b_1) + b_2$. Attention mixes information *between*
# positions, the FFN transforms it *within* each one; most of a Transformer's parameters sit here (section 4
# counts them, and trains the model without its FFNs).
#
# **Dropout** zeroes a random fraction of activations while training (and scales up the rest); in a block it is
# applied to the attention weights and to each branch before the residual sum. In `model.eval()` it is off.
#
# Where the LayerNorm goes is the one real design choice. The 2017 Transformer normalised **after** the residual sum
# (**post-norm**); GPT-2 and nearly every model since normalise the **input of each branch** (**pre-norm**), and add
# a final LayerNorm after the last block:
# $$\text{post-norm: } x \leftarrow \operatorname{LN}\big(x + f(x)\big), \qquad
# \text{pre-norm: } x \leftarrow x + f\big(\operatorname{LN}(x)\big).$$
# In pre-norm the residual path from the input to the output is a pure sum; in post-norm every block's LayerNorm
# sits on it. Section 6 measures what this does to training.

# %%
from amla.transformers.nn import FeedForward

x = 3 * torch.randn(2, 5, 8) + 1
ln = nn.LayerNorm(8)
y = ln(x)
print(f"before LayerNorm: per-token means {x.mean(-1)[0].detach().numpy().round(2)}, stds "
      f"{x.std(-1, unbiased=False)[0].detach().numpy().round(2)}")
print(f"after LayerNorm:  per-token means {y.mean(-1)[0].detach().numpy().round(2)}, stds "
      f"{y.std(-1, unbiased=False)[0].detach().numpy().round(2)}")
ff = FeedForward(8, 32, dropout=0.5)
print("dropout in train mode changes the output:", not torch.equal(ff.train()(x), ff.train()(x)),
      "| in eval mode it is off:", torch.equal(ff.eval()(x), ff.eval()(x)))

# %% [markdown]
# ### Exercise 4.3: The residual block, pre-norm and post-norm
#
# Write `block_forward(block, x, mask=None)` for an `amla.transformers.nn.TransformerBlock` in eval mode (no
# dropout to apply). Use `block.self_attn(h, mask=mask)[0]` for the attention of `h`, `block.ff` for the
# feed-forward net, `block.norm1` for the LayerNorm of the attention branch and `block.norm2` for that of the
# feed-forward branch. If `block.norm_first` is true, build the pre-norm block, otherwise the post-norm one; return
# the new `x`. Leave the block as it is (no `block.train()`, no change to its weights): the check notices.

# %%
def block_forward(block, x, mask=None):
    ### BEGIN SOLUTION
    if block.norm_first:
        x = x + block.self_attn(block.norm1(x), mask=mask)[0]
        return x + block.ff(block.norm2(x))
    x = block.norm1(x + block.self_attn(x, mask=mask)[0])
    return block.norm2(x + block.ff(x))
    ### END SOLUTION


# %%
block_forward = amla.checks.transformer.check_transformer_block(block_forward)

# %% [markdown]
# `amla.transformers.encoder.TransformerEncoder` puts it all together: a token embedding, the positions
# (`pos="sinusoidal"`, `"learned"`, `"rope"` or `"none"`), `n_layers` blocks and, for pre-norm, the final
# LayerNorm. It returns the hidden states and, when asked, every layer's attention weights `[layers, B, H, T, T]`.
#
# It also takes your functions, through an explicit parameter:
# `functions=amla.transformers.encoder.TransformerFunctions(mha_forward=..., block_forward=...,
# sinusoidal_encoding=...)`. Every attention layer then runs your `mha_forward`, every block your
# `block_forward` (whose `block.self_attn` is itself your attention), and the sinusoidal table is your
# `sinusoidal_encoding`'s. Your functions know no dropout and no RoPE, so the encoder refuses `pos="rope"` with
# them, and this hour's models use no dropout.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Teaching an encoder to reverse sequences
#
# `amla.transformers.tasks.reversal_task` draws random sequences of digits, all distinct, so no held-out sequence
# was seen in training; the target is the same sequence backwards. An **encoder-only** model reads the whole
# sequence and predicts, at every position $i$, the token at position $T - 1 - i$: a cross-entropy over the
# vocabulary at each of the $T$ positions. The task is trivial for a program and impossible without positions:
# exactly what we need to see whether the positions get through.

# %%
from amla.transformers.tasks import reversal_task

task = reversal_task(S.n_train, S.n_val, S.n_test, min_len=S.length, max_len=S.length, n_symbols=S.n_symbols)
vocab = task.vocab
x_train, y_train = vocab.encode_batch(task.train.sources), vocab.encode_batch(task.train.targets)
x_val, y_val = vocab.encode_batch(task.val.sources), vocab.encode_batch(task.val.targets)
x_test, y_test = vocab.encode_batch(task.test.sources), vocab.encode_batch(task.test.targets)
print(vocab, f"| train {tuple(x_train.shape)}, validation {tuple(x_val.shape)}, test {tuple(x_test.shape)}")
for s, t in zip(task.train.sources[:3], task.train.targets[:3]):
    print(f"{s} -> {t}")
print("held-out sequences seen in training:", len(set(task.test.sources) & set(task.train.sources)))

# %% [markdown]
# The model is the encoder and a linear layer from each hidden state to the vocabulary. We count a sequence as
# right only if **all** its positions are.
#
# **The model trained below is built from your code** (the line printed below says which functions are yours and
# which are the reference standing in). The comparisons of sections 5 and 6 train the package's own modules
# (`functions=None`, PyTorch's fused kernel, equal to yours as section 1 showed); RoPE could not run through your
# `mha_forward` anyway.

# %%
from amla.transformers.encoder import TransformerEncoder, TransformerFunctions
from amla.views import Dashboard

yours = TransformerFunctions(mha_forward=mha_forward, block_forward=block_forward,
                             sinusoidal_encoding=sinusoidal_encoding)


def author(exercise):
    return "your" if amla.checks.yours(exercise) else "the reference"


print(f"the reversal model runs {author('4.1')} mha_forward, {author('4.3')} block_forward and "
      f"{author('4.2')} sinusoidal_encoding")


class Reverser(nn.Module):
    def __init__(self, pos="sinusoidal", layers=S.layers, norm_first=True, functions=None, d_ff=S.d_ff):
        super().__init__()
        self.encoder = TransformerEncoder(len(vocab), S.d_model, S.heads, layers, d_ff, S.length,
                                          norm_first=norm_first, pos=pos, functions=functions)
        self.head = nn.Linear(S.d_model, len(vocab))

    def forward(self, tokens):  # [B, T] -> logits [B, T, vocab]
        return self.head(self.encoder(tokens)[0])


@torch.no_grad()
def accuracy(model, x, y):
    """(sequence accuracy, token accuracy) of the model's argmax predictions."""
    model.eval()
    right = model(x.to(device)).argmax(-1).cpu() == y
    return right.all(-1).float().mean().item(), right.float().mean().item()


def validate(model):
    seq, tok = accuracy(model, x_val, y_val)
    return {"val_seq_acc": seq, "val_token_acc": tok}


def train(model, steps=S.steps, lr=S.lr, warmup=None, quiet=False):
    """Train with AdamW and a warm-up (5 % of the steps unless given) + cosine schedule; ``quiet``: no bar, no plot."""
    config = amla.TrainConfig(max_steps=steps, batch_size=S.batch, lr=lr,
                              warmup_steps=steps // 20 if warmup is None else warmup,
                              eval_every=S.eval_every, progress=not quiet)
    trainer = amla.Trainer(model, (x_train, y_train), config, eval_fn=validate,
                           callbacks=[] if quiet else [Dashboard()], device=device)
    trainer.fit()
    return trainer


amla.seed_everything(0)
model = Reverser(functions=yours)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
trainer = train(model)

# %%
test_seq_acc, test_token_acc = accuracy(model, x_test, y_test)
first_perfect = next((r["step"] for r in trainer.history.eval if r["val_seq_acc"] == 1.0), None)
print(f"held-out: {test_seq_acc:.2%} of {len(x_test)} sequences reversed exactly ({test_token_acc:.2%} of tokens); "
      f"validation first at 100 % after {first_perfect} steps; "
      f"{trainer.history.train[-1]['elapsed_s']:.0f} s of training")
predictions = model(x_test[:5].to(device)).argmax(-1).cpu()
for s, p in zip(task.test.sources[:5], predictions):
    print(f"{s} -> {vocab.decode(p)}")

# %% [markdown]
# ### What the feed-forward net is for
#
# **Attention** is the only place where positions exchange information; the **feed-forward net**,
# $\operatorname{FFN}(x) = W_2\,\operatorname{GELU}(W_1 x + b_1) + b_2$, works on every position on its own and moves
# nothing between them. It also holds the parameters: $2 d\, d_{ff} + d_{ff} + d$ against the attention's
# $4d^2 + 4d$, two thirds of a block at the usual $d_{ff} = 4d$ (half at this hour's $d_{ff} = 2d$).
#
# Reversal is pure **routing**: output $i$ copies input $T - 1 - i$, nothing is computed on a token. *The
# prediction:* attention alone can do it (the query at $i$ only has to find the key at $T - 1 - i$), perhaps more
# slowly. The test: the same encoder, data, steps and seed with $d_{ff} = 0$ (`TransformerBlock(..., d_ff=0)`),
# with this hour's $d_{ff}$, with $4d$, and without FFNs at twice the depth (as many parameters as the model
# above). These runs use the package's blocks: your `block_forward` calls `block.ff`.

# %%
def ffn_parameters(model):
    """Parameters of the model's feed-forward nets, and their share of the first block's parameters."""
    blocks = model.encoder.blocks
    ffn = sum(p.numel() for block in blocks if block.ff is not None for p in block.ff.parameters())
    first = blocks[0].ff
    share = 0 if first is None else sum(p.numel() for p in first.parameters()) / sum(
        p.numel() for p in blocks[0].parameters())
    return ffn, share


ffn_setups = {  # key: (label, blocks, d_ff)
    "none": ("no FFN", S.layers, 0),
    "hour": (f"d_ff = {S.d_ff} (the model above)", S.layers, S.d_ff),
    "4d": (f"d_ff = 4d = {4 * S.d_model}", S.layers, 4 * S.d_model),
    "none_deep": (f"no FFN, {2 * S.layers} blocks", 2 * S.layers, 0),
}
ffn_results = {}
print(f"{'':>28} {'blocks':>6} {'parameters':>10} {'FFN':>7} {'FFN/block':>9} {'sequences':>9} {'tokens':>7}  "
      "validation sequences at each evaluation")
for key, (label, layers, d_ff) in ffn_setups.items():
    if key == "hour":
        variant, run, (seq, tok) = model, trainer, (test_seq_acc, test_token_acc)
    else:
        amla.seed_everything(0)
        variant = Reverser(layers=layers, d_ff=d_ff)
        run = train(variant, quiet=True)
        seq, tok = accuracy(variant, x_test, y_test)
    params = sum(p.numel() for p in variant.parameters())
    ffn, share = ffn_parameters(variant)
    curve = [r["val_seq_acc"] for r in run.history.eval]
    ffn_results[key] = dict(params=params, seq=seq, tok=tok,
                            first_perfect=next((r["step"] for r in run.history.eval if r["val_seq_acc"] == 1.0), None))
    print(f"{label:>28} {layers:>6} {params:>10,} {ffn:>7,} {share:>9.1%} {seq:>9.2%} {tok:>7.2%}  "
          + " ".join(f"{c:.1%}" for c in curve))
for key, r in ffn_results.items():
    reached = "not within the run" if r["first_perfect"] is None else f"after {r['first_perfect']} steps"
    print(f"{ffn_setups[key][0]:>28}: validation first at 100 % {reached}")

# %% [markdown]
# On the course machine, cpu profile (300 steps, evaluations every 50): without FFNs the model got 99.18 % of the
# held-out tokens but only 90.95 % of the sequences, still climbing at the end (99.8 % after 600 steps in a longer
# run); $2d$ and $4d$ both reversed 100 %, first perfect on validation after 150 steps, so the wider FFN bought
# nothing; without FFNs at twice the depth, with as many parameters, 98.65 %. So reversal does not need the FFN,
# but the FFN made learning faster, and not only by adding parameters: the first block's FFN can rework each
# position's vector (token and position summed into one) into the queries and keys the second block needs. A task
# that computes *on* the tokens needs it more; question 10 asks which.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Which positions?
#
# The same model and training, four ways of giving it positions: none at all, sinusoidal (the model above, built
# from your code), learned, rotary. The three new runs use the package's modules.

# %%
position_results = {"sinusoidal": (test_seq_acc, test_token_acc)}
for pos in ("none", "learned", "rope"):
    amla.seed_everything(0)
    variant = Reverser(pos=pos)
    train(variant, quiet=True)
    position_results[pos] = accuracy(variant, x_test, y_test)
for pos, (seq, tok) in position_results.items():
    print(f"{pos:>10}: held-out sequences {seq:7.2%}, tokens {tok:7.2%}")

# %% [markdown]
# What the numbers say (cpu profile, measured with `amla bench 04`):
# - **No positions: 0 % of the sequences.** The per-token accuracy is not the 10 % of a blind guess but around
#   26 %: a permutation-equivariant model knows, at each position, its own digit and *which* digits occur, but not
#   where; the digit it must output sits at another position, so its best guess is the most frequent of the
#   *other* digits.
# - **Sinusoidal and learned** positions both reach 100 %: reversal needs each position to know its *absolute*
#   index, and both hand it over directly.
# - **RoPE** is far behind after the same number of steps (0 % of the sequences, 47 % of the tokens). It only tells
#   attention the *offset* between a query and a key, and the key a position needs (offset $T - 1 - 2i$) depends
#   on where the query is, which the model must work out from where the sequence begins and ends. In a causal
#   language model the mask gives that away and offsets are what next-token prediction needs: RoPE is the default
#   *there*. A positional encoding is an inductive bias; pick the one the task needs.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Pre-norm against post-norm
#
# Now a deeper stack (`S.deep_layers` blocks: 8 with the cpu profile) at a high learning rate, **without warm-up**,
# once with each arrangement, and once more post-norm with a linear warm-up, the remedy of the original Transformer.
# Gradient clipping (norm 1) is on in all three runs. These stacks are the package's modules.

# %%
deep_setups = {  # key: (label, norm_first, warm-up steps)
    "pre": ("pre-norm, no warm-up", True, 0),
    "post": ("post-norm, no warm-up", False, 0),
    "post_warmup": (f"post-norm, {S.warmup} warm-up steps", False, S.warmup),
}
deep_runs = {}
for key, (label, norm_first, warmup) in deep_setups.items():
    amla.seed_everything(0)
    deep = Reverser(layers=S.deep_layers, norm_first=norm_first)
    deep_trainer = train(deep, steps=S.deep_steps, lr=S.deep_lr, warmup=warmup, quiet=True)
    deep_runs[key] = (deep_trainer, accuracy(deep, x_test, y_test))
    print(f"{label:>30}: final loss {deep_trainer.history.train[-1]['loss']:.4f}, held-out sequences "
          f"{deep_runs[key][1][0]:.2%}, {deep_trainer.history.train[-1]['elapsed_s']:.0f} s")

# %%
fig = Figure(figsize=(9, 3.4), layout="constrained")
ax_loss, ax_norm = fig.subplots(1, 2)
for key, (run, _) in deep_runs.items():
    steps, losses = run.history.series("loss")
    ax_loss.plot(steps, losses, label=deep_setups[key][0])
    ax_norm.plot(*run.history.series("grad_norm"), label=deep_setups[key][0], alpha=0.8)
ax_loss.axhline(math.log(S.n_symbols), color="gray", ls=":", lw=1)
ax_loss.text(steps[-1], math.log(S.n_symbols), " ln 10: guessing", va="bottom", ha="right", fontsize=8)
ax_loss.set(yscale="log", xlabel="step", ylabel="training loss", title=f"{S.deep_layers} blocks, lr {S.deep_lr:g}")
ax_norm.set(yscale="log", xlabel="step", ylabel="gradient norm (before clipping)", title="gradient norm")
ax_loss.legend(fontsize=8)
fig

# %% [markdown]
# With the cpu profile (8 blocks, learning rate $10^{-2}$, 300 steps), the **pre-norm** stack reverses 100 % of the
# held-out sequences (final loss 0.0002). The **post-norm** stack without warm-up does not learn at all: its
# loss falls to $\ln 10 \approx 2.30$, the loss of guessing among the 10 digits, and stays there, because the
# first large updates push it into a state where every position predicts the same flat distribution. With a warm-up
# of 60 steps the same post-norm stack trains, to 100 % as well, only later.
#
# Why? In post-norm a LayerNorm sits *on* the residual path after every block, so the gradient reaching the first
# blocks is rescaled by every LayerNorm above them, and at initialisation the last layers' updates are large
# relative to their inputs (Xiong et al., 2020): early Adam steps at the full rate break the model, and warm-up
# keeps them small. In pre-norm the residual sum carries input and gradient through unchanged, which is why GPT-2,
# LLaMA and this course's models use it.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Looking at the heads
#
# To reverse, the query at position $i$ must find the key at position $T - 1 - i$: somewhere in the model a head
# should attend along the **anti-diagonal**. The encoder returns every layer's weights `[layers, B, H, T, T]` (for
# your `block_forward`, which returns none, from one more call of your `mha_forward` on `norm1(x)`); we measure,
# for each layer and head of section 4's model, the average weight a query gives its mirror position.

# %%
model.eval()
with torch.no_grad():
    _, weights = model.encoder(x_test.to(device), need_weights=True)  # [L, N, H, T, T]
weights = weights.cpu()
mirror = torch.arange(S.length).flip(0)
mirror_mass = weights[..., torch.arange(S.length), mirror].mean(dim=(1, 3))  # [L, H]
for layer, row in enumerate(mirror_mass.tolist()):
    print(f"layer {layer}: weight on the mirror position, per head:", " ".join(f"{m:.2f}" for m in row))
best_layer, best_head = divmod(int(mirror_mass.argmax()), mirror_mass.shape[1])
print(f"most 'reversing' head: layer {best_layer}, head {best_head} ({mirror_mass.max():.0%} of its weight)")

# %% [markdown]
# Browse them in the viewer: pick a **layer**, a **head** and a **query** position; tick **all heads** to see a
# layer's heads side by side. (Without a live kernel you see the most reversing head, for the first position.)

# %%
from amla.views import AttentionViewer

example = 0
tokens = list(task.test.sources[example])
viewer = AttentionViewer(weights[:, example], tokens, title=f"{task.test.sources[example]} -> "
                         f"{vocab.decode(model(x_test[example:example + 1].to(device)).argmax(-1)[0].cpu())}")
viewer.select(layer=best_layer, head=best_head, query=0)

# %% [markdown]
# In the cpu run the heads of the first layer put only 15 to 19 % of their weight on the mirror position, while all
# four heads of the second layer put 86 to 90 % there: the first layer prepares the queries and keys, the second
# does the reversal by looking the mirror token up.
#
# ### What a map does not tell you
#
# A map shows where a head **reads**, not what it writes (the values and the output projection) nor whether later
# layers use it. From the second layer on, "position 3" is a mixture the first layer made, not token 3; and two
# heads can do the same job, so that neither is needed. A map is where to start looking, not an explanation.
#
# The direct test is to **remove** a head and measure again: `amla.transformers.ablation.heads_removed` zeroes a
# head's slice of the merged heads just before the output projection (a hook on `mha.out_proj`, which your
# `mha_forward` calls), leaving the other heads untouched. Each head alone, then all heads of a layer:

# %%
from amla.transformers.ablation import heads_removed


def accuracy_without(layer, heads):
    """Held-out sequence accuracy with ``heads`` of ``layer`` switched off."""
    with heads_removed(model.encoder.blocks[layer].self_attn.out_proj, heads, n_heads=S.heads):
        return accuracy(model, x_test, y_test)[0]


ablation = {}
for layer in range(len(model.encoder.blocks)):
    one_by_one = [accuracy_without(layer, [h]) for h in range(S.heads)]
    ablation[layer] = (one_by_one, accuracy_without(layer, range(S.heads)))
    print(f"layer {layer}: one head removed: " + " ".join(f"{a:.1%}" for a in one_by_one)
          + f" | all {S.heads} removed: {ablation[layer][1]:.1%}   (nothing removed: {test_seq_acc:.1%})")

# %% [markdown]
# In the cpu run the maps and the ablations disagree. Each second-layer head looks like *the* reversing head (86
# to 90 % on the mirror), yet removing any one leaves 99.7 % or more of the sequences right: the other three cover
# for it; only removing all four breaks the model (0 %). The first-layer heads, whose maps look unremarkable (15 to
# 19 %), matter more one by one: without a single one the accuracy falls to between 49.4 % and 98.5 %. Read a map
# as a hypothesis, and test it by removing the head.
#
# The hour's numbers, collected by `amla bench 04` (the cpu target: 100 % of the held-out sequences reversed; your
# MHA equal to `nn.MultiheadAttention` within $10^{-5}$):

# %%
amla.report(
    test_seq_acc=test_seq_acc,
    test_token_acc=test_token_acc,
    steps_to_100_val=first_perfect if first_perfect is not None else "not reached",
    train_s=trainer.history.train[-1]["elapsed_s"],
    mha_max_diff_vs_torch=max(mha_diff.values()),
    mha_within_1e5=max(mha_diff.values()) < 1e-5,
    equivariance_diff=equivariance_diff,
    **{f"seq_acc_pos_{pos}": seq for pos, (seq, _) in position_results.items()},
    token_acc_pos_none=position_results["none"][1],
    **{f"deep_seq_acc_{key}": acc[0] for key, (_, acc) in deep_runs.items()},
    **{f"deep_final_loss_{key}": run.history.train[-1]["loss"] for key, (run, _) in deep_runs.items()},
    **{f"ffn_seq_acc_{key}": r["seq"] for key, r in ffn_results.items()},
    **{f"ffn_token_acc_{key}": r["tok"] for key, r in ffn_results.items()},
    **{f"ffn_params_{key}": r["params"] for key, r in ffn_results.items()},
    **{f"ffn_steps_to_100_val_{key}": r["first_perfect"] if r["first_perfect"] is not None else "not reached"
       for key, r in ffn_results.items()},
    mirror_mass_best_head=mirror_mass.max().item(),
    **{f"ablate_layer{layer}_min_single": min(alone) for layer, (alone, _) in ablation.items()},
    **{f"ablate_layer{layer}_max_single": max(alone) for layer, (alone, _) in ablation.items()},
    **{f"ablate_layer{layer}_all": everything for layer, (_, everything) in ablation.items()},
)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. A model has $d = 512$ and 8 heads. How many parameters do the four projections of one multi-head attention
#    layer have, and how would that number change with 16 heads? Why?
# 2. In Exercise 4.1, why is the scale $1/\sqrt{d_h}$ and not $1/\sqrt{d}$? What happens to the softmax if you use
#    $\sqrt{d}$ with many heads?
# 3. What exactly goes wrong if you split the heads with `x.view(B, H, T, d_h)`? Why is there no error?
# 4. Without positions the reversal model gets about a quarter of the tokens right. Where does that number come
#    from, and what would it be for sequences of 100 digits?
# 5. Learned positional embeddings were trained for sequences of length 12. What happens at position 13? What do
#    sinusoidal and rotary encodings do there?
# 6. RoPE struggles with reversal but is the standard in language models. Why does a causal decoder not need
#    absolute positions to be given explicitly?
# 7. Post-norm without warm-up collapsed to a loss of $\ln 10$. What does a model with that loss predict, and why is
#    it a stable place to get stuck?
# 8. Name two things the final LayerNorm of a pre-norm stack is for.
# 9. Removing any one second-layer head barely changes the accuracy, removing all four destroys it. Does that make
#    each of those heads unimportant? What does zeroing a head's output assume, and what could you do instead?
# 10. Without its feed-forward nets the reversal model still got over 99 % of the tokens right, though fewer whole
#     sequences in the same number of steps. Why can attention alone reverse? Which task on the same digits would
#     you expect to need the FFN, and why can the output layer not do its work?

# %% [markdown] tags=["answer"]
# 1. $4 d^2 + 4d = 4 \cdot 512^2 + 2048 = 1{,}050{,}624$, the same for 16 heads: the heads share the $d$ features
#    out ($d_h = d / H$), they do not each get $d$ of their own. More heads means smaller heads, not more
#    parameters.
# 2. Each head's dot product $q_h \cdot k_h$ sums $d_h$ products, so its variance grows like $d_h$ (Hour 02);
#    $\sqrt{d_h}$ brings it back to about 1. Dividing by $\sqrt{d}$ instead shrinks the scores by an extra
#    $\sqrt{H}$: the softmax starts too flat (almost uniform attention), and the model must grow $W_Q, W_K$ to
#    compensate. It still works, but it is a different, worse-conditioned model, and not the one the checks compare
#    to.
# 3. `view` just reinterprets the memory: with `[B, H, T, d_h]` the first "head" gets the first $T/H$ positions'
#    features, laid out as if they were $T$ positions of size $d_h$. Positions and features are mixed up; every
#    shape downstream is right, so nothing fails, but the model attends between meaningless pieces of tokens.
# 4. Knowing only its own digit and the multiset of digits, the best guess at a position is the most frequent of
#    the *other* digits (the target is the digit at another position, one of the other 11); in 11 random digits
#    the most frequent occurs about 3 times, so about 3/11, roughly 25 %, of the positions are right. For 100
#    digits the most frequent one occurs maybe 15 times: about 15 %, tending to 10 % as sequences grow.
# 5. Position 13 has no embedding (an index error); even positions inside the range but rare in training would be
#    poorly trained. The sinusoidal formula gives a vector for every position, and RoPE a rotation for every
#    position and, more importantly, scores that depend only on offsets that were seen in training; whether the
#    model generalises to longer sequences is still not guaranteed (length extrapolation is a research topic).
# 6. With a causal mask, position $p$ attends to exactly $p + 1$ keys, so it can tell how far it is from the start
#    (e.g. a head that attends uniformly gets the first token's value with weight $1/(p+1)$). And next-token
#    prediction mostly needs relative information: the previous word, the matching bracket a few tokens back.
# 7. $\ln 10$ is the cross-entropy of the uniform distribution over the 10 digits: the model predicts "any digit" at
#    every position, the best constant answer. Once the hidden states carry no information about the input
#    (saturated or collapsed after the first large updates), the gradient of that constant answer is zero on
#    average, so nothing pushes the model out.
# 8. In pre-norm the residual stream is a sum of all blocks' outputs and its scale grows with depth; the final
#    LayerNorm normalises it before the output layer. It also gives the last block's contribution the same
#    treatment every block's input gets (each branch only ever sees normalised inputs, and so does the head).
# 9. No: together they are essential, but they are redundant, so one at a time each looks unimportant. Single-head
#    ablation underrates heads that share a job; removing groups of heads (all of a layer, or pairs) shows it.
#    Zeroing assumes that 0 is a neutral output, but the next layers never saw a zero from that head in training,
#    so the damage may partly come from the unusual input rather than from the missing information. Replacing the
#    head's output by its *mean* over many inputs (mean ablation) keeps the typical value and removes only the
#    information that depends on the input.
# 10. Reversal is routing: each output is the token of one other position, copied. Attention is made for that: the
#     query at $i$ finds the key at $T - 1 - i$ (a linear function of the position codes), and the value, the
#     output projection and the output layer carry the token there. Nothing has to be computed *on* a token, and
#     that is what the FFN is for: it transforms each position's vector on its own. A function of one token (map
#     each digit to another digit) does not need it either: the embedding and the output layer can learn any
#     table. What needs it is a non-linear function of several tokens gathered at one position, e.g. output
#     $(x_i + x_{T-1-i}) \bmod 10$, or whether two digits are equal. Attention hands the position a weighted *sum*
#     of value vectors, and a linear output layer turns a sum into a sum of logits, one part per token: it can add
#     up evidence from each digit, but not express "the answer depends on the pair" (already for two symbols, no
#     $f(a) + g(b)$ is positive exactly when $a \ne b$: adding the two cases $a = b$ and the two cases $a \ne b$
#     gives the same sum). The GELU of the FFN, applied to the gathered vector, can. (LayerNorm and the softmax are
#     non-linear too, but they are not made to compute such functions.)

# %% [markdown]
# **Next hour:** the encoder-decoder Transformer: a causal decoder with cross-attention to this hour's encoder.
