# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=2, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 02: Attention from first principles
#
# Every architecture from Hour 03 to Hour 09, and the capstone, is built around one operation: a
# **query** compares itself with a set of **keys**, turns the comparisons into weights, and returns the
# weighted average of the **values** stored under those keys. This hour derives that operation from a
# 1960s regression method, makes it fast and numerically safe, and teaches it which keys it may look at.
#
# **By the end of this hour you can**
# - show that **kernel regression** (Nadaraya-Watson) is attention, with the data points as keys and values;
# - explain, with measured numbers, why scores are divided by $\sqrt{d_k}$: their variance grows like $d_k$,
#   and a saturated softmax passes almost no gradient;
# - write a **numerically stable softmax** and **scaled dot-product attention** that equals PyTorch's
#   `scaled_dot_product_attention` to $10^{-5}$;
# - build **padding** and **causal** masks, in both the **boolean** and the **additive** convention, and say
#   why masking happens before the softmax, with $-\infty$ and not 0;
# - read attention maps head by head with the course's attention viewer.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `softmax = amla.checks.attention.check_softmax(softmax)`. The check runs your function on ordinary and edge
# inputs against the course's reference (values, dtype, gradients, and whether your inputs were left alone):
# - right: the check returns your function, and **the rest of the hour runs on your code**;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook, measured with `amla bench 02` on 2 CPU cores): smoke profile about 10 s, cpu
# profile about 13 s (6 s each on an earlier, faster machine). Nothing here trains; the cpu profile only draws more
# random samples for the measurements.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Attention is a soft dictionary lookup
#
# A Python dictionary answers a query by finding the key that *equals* it and returning that key's value.
# Attention answers with *every* value at once, each weighted by how well its key matches the query. With a
# score $s(q, k)$ saying how well they match,
# $$
# \operatorname{attention}\big(q, \{(k_i, v_i)\}_{i=1}^{n}\big) = \sum_{i=1}^{n} \alpha_i(q)\, v_i,
# \qquad
# \alpha_i(q) = \frac{\exp s(q, k_i)}{\sum_{j=1}^{n} \exp s(q, k_j)} .
# $$
# The weights $\alpha_i$ are positive and sum to 1 (that is the **softmax** of the scores), so the answer is
# an average of the values, pulled towards those whose keys match best. Everything in this hour is about two
# choices: **which score**, and **which keys a query is allowed to see**.
#
# A few names we will use: $T_q$ queries, $T_k$ keys (one value per key), queries and keys of size $d_k$,
# values of size $d_v$. Stacked as matrices: $Q \in \mathbb{R}^{T_q \times d_k}$,
# $K \in \mathbb{R}^{T_k \times d_k}$, $V \in \mathbb{R}^{T_k \times d_v}$.

# %%
import math

import torch
from matplotlib.figure import Figure  # figures are built directly (no pyplot) and shown as the cell's last value

from amla.transformers.attention import causal_mask, nadaraya_watson, padding_mask, to_additive
from amla.views import AttentionViewer, interactive, plot_attention

S = amla.per_profile(
    smoke=dict(n_train=40, n_query=41, var_pairs=4000, sat_rows=200, n_keys=32, dims=[1, 4, 16, 64, 256, 1024]),
    cpu=dict(n_train=60, n_query=61, var_pairs=20000, sat_rows=1000, n_keys=32, dims=[1, 4, 16, 64, 256, 1024]),
)
print(amla.profile(), S)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Kernel regression: attention before it had the name
#
# In 1964 Nadaraya and Watson, independently, proposed a regression method with no parameters to fit: to
# predict $y$ at a new point $x$, average the training targets $y_i$, giving more weight to training points
# $x_i$ close to $x$. With a Gaussian kernel of width (bandwidth) $h$:
# $$
# \hat f(x) = \sum_{i=1}^{n} \alpha_i(x)\, y_i,
# \qquad
# \alpha_i(x) = \frac{\exp\!\big(-(x - x_i)^2 / 2h^2\big)}{\sum_j \exp\!\big(-(x - x_j)^2 / 2h^2\big)} .
# $$
# That is the attention formula of Section 1 with the **query** $x$, the **keys** $x_i$, the **values** $y_i$
# and the score $s(x, x_i) = -(x - x_i)^2 / 2h^2$. Let us try it on a noisy 1-D toy problem.

# %%
def target(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * x) + 0.3 * x


g = torch.Generator().manual_seed(0)
x_train = torch.sort(torch.rand(S.n_train, generator=g) * 5).values
y_train = target(x_train) + 0.3 * torch.randn(S.n_train, generator=g)
x_query = torch.linspace(0, 5, S.n_query)

fig = Figure(figsize=(11, 3.2), layout="constrained")
for ax, h in zip(fig.subplots(1, 3, sharey=True), [0.05, 0.25, 1.5]):
    prediction, _ = nadaraya_watson(x_query, x_train, y_train, bandwidth=h)
    ax.plot(x_query, target(x_query), color="0.6", linestyle="--", label="true function")
    ax.scatter(x_train, y_train, s=12, color="tab:blue", label="training points (keys, values)")
    ax.plot(x_query, prediction, color="tab:orange", linewidth=2, label="prediction")
    ax.set_title(f"bandwidth h = {h}", fontsize=10)
    ax.set_xlabel("x")
fig.axes[0].legend(fontsize=8, loc="upper left")
fig

# %% [markdown]
# The bandwidth is a **temperature**. A tiny $h$ gives nearly all the weight to the nearest training point, so the
# prediction copies its noise; a huge $h$ spreads the weight evenly and the prediction sinks towards the mean
# of all targets. Below, each row of the picture is one query $x$ and shows its weights over the training points
# (sorted by $x_i$, so the band along the diagonal says: "look at your neighbours").

# %%
_, nw_weights = nadaraya_watson(x_query, x_train, y_train, bandwidth=0.25)
plot_attention(nw_weights, [f"{x:.2f}" for x in x_query.tolist()], [f"{x:.2f}" for x in x_train.tolist()],
               title="Nadaraya-Watson weights, h = 0.25 (queries x, keys x_i)")

# %% [markdown]
# Move the sliders: the bandwidth, and which query $x$ to inspect. The lower panel shows that query's weights
# over the training points. (Without a live kernel you see the default setting as a picture.)

# %%
import ipywidgets as widgets


def draw_kernel_regression(bandwidth: float, x: float) -> Figure:
    prediction, _ = nadaraya_watson(x_query, x_train, y_train, bandwidth=bandwidth)
    at_x, weights = nadaraya_watson(torch.tensor([x]), x_train, y_train, bandwidth=bandwidth)
    fig = Figure(figsize=(7, 4.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.scatter(x_train, y_train, s=12, color="tab:blue")
    top.plot(x_query, prediction, color="tab:orange", linewidth=2)
    top.scatter([x], at_x, color="tab:red", zorder=3, s=40)
    top.axvline(x, color="tab:red", linewidth=0.8)
    top.set_title(f"h = {bandwidth:.3g}: prediction at x = {x:.2f} is {at_x.item():.2f}", fontsize=10)
    bottom.bar(x_train, weights[0], width=0.05, color="tab:blue")
    bottom.set_ylabel("weight")
    bottom.set_xlabel("x")
    return fig


interactive(
    draw_kernel_regression,
    bandwidth=widgets.FloatLogSlider(value=0.25, base=10, min=-1.5, max=0.5, step=0.05, description="h"),
    x=widgets.FloatSlider(value=2.5, min=0.0, max=5.0, step=0.05, description="query x"),
)

# %% [markdown] slideshow={"slide_type": "slide"}
# ### It *is* dot-product attention
#
# Expand the square in the score:
# $$
# -\frac{(x - x_i)^2}{2h^2} = \underbrace{\frac{x}{h}\cdot\frac{x_i}{h} + 1 \cdot \Big(-\frac{x_i^2}{2h^2}\Big)}_{q \,\cdot\, k_i}
# \; - \; \frac{x^2}{2h^2} .
# $$
# The last term is the same for every key, and the softmax does not change when the same number is added to all
# scores of a row. So Gaussian kernel regression is exactly **dot-product attention** with two-dimensional
# queries $q = (x/h,\ 1)$ and keys $k_i = (x_i/h,\ -x_i^2/2h^2)$, values $y_i$, and no extra scaling:

# %%
from amla.transformers.attention import scaled_dot_product_attention as reference_attention

h = 0.25
q_nw = torch.stack([x_query / h, torch.ones_like(x_query)], dim=-1)             # [Tq, 2]
k_nw = torch.stack([x_train / h, -x_train**2 / (2 * h**2)], dim=-1)             # [Tk, 2]
v_nw = y_train[:, None]                                                        # [Tk, 1]
as_attention, _ = reference_attention(q_nw, k_nw, v_nw, scale=1.0)
as_kernel, _ = nadaraya_watson(x_query, x_train, y_train, bandwidth=h)
nw_max_diff = (as_attention[:, 0] - as_kernel).abs().max().item()
print(f"kernel regression vs dot-product attention: largest difference {nw_max_diff:.2e}")

# %% [markdown]
# Here the queries and keys were *designed*. In a Transformer they are **learned**: each token's vector $x$ is
# mapped to $q = W_Q x$, $k = W_K x$, $v = W_V x$, and training finds the projections that make useful tokens
# match. The score is the plain dot product $q \cdot k$, and all $T_q \times T_k$ scores of a sequence are one
# matrix product, $Q K^\top$, which is what GPUs do best.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Why divide by $\sqrt{d_k}$
#
# Suppose the entries of $q$ and $k$ are independent, with mean 0 and variance 1 (roughly what a well-initialised
# network produces). Then $q \cdot k = \sum_{j=1}^{d_k} q_j k_j$ is a sum of $d_k$ independent terms, each with
# mean 0 and variance $\operatorname{Var}(q_j k_j) = \mathbb{E}[q_j^2]\,\mathbb{E}[k_j^2] = 1$, so
# $$
# \operatorname{Var}(q \cdot k) = d_k, \qquad \operatorname{std}(q \cdot k) = \sqrt{d_k}.
# $$
# Dividing by $\sqrt{d_k}$ brings the scores back to variance 1 whatever the size of the heads. Measured:

# %%
var_rows = []
for d in S.dims:
    gd = torch.Generator().manual_seed(d)
    q = torch.randn(S.var_pairs, d, generator=gd)
    k = torch.randn(S.var_pairs, d, generator=gd)
    dots = (q * k).sum(-1)
    var_rows.append((d, dots.var().item(), (dots / math.sqrt(d)).var().item()))

print(f"{'d_k':>6} {'Var(q.k)':>10} {'Var / d_k':>10} {'Var(q.k / sqrt(d_k))':>22}")
for d, var, scaled_var in var_rows:
    print(f"{d:>6} {var:>10.2f} {var / d:>10.3f} {scaled_var:>22.3f}")
var_ratio = sum(var / d for d, var, _ in var_rows) / len(var_rows)  # mean of Var / d_k over the sizes

# %% [markdown]
# Why does a large variance hurt? The softmax turns *differences* between scores into *ratios* of weights:
# two scores 8 apart (one standard deviation at $d_k = 64$) give weights $e^8 \approx 3000$ times apart. With
# unscaled scores, the larger $d_k$, the more every row of weights collapses onto its largest score, a nearly
# **one-hot** row. We measure that on random queries against $T_k$ = 32 random keys: the largest weight of each
# row (1 means one-hot; $1/T_k$ means uniform) and the row's entropy $-\sum_i \alpha_i \log \alpha_i$ (0 for
# one-hot, $\log T_k \approx 3.47$ for uniform).
#
# The collapse also stops learning. The derivative of a softmax is
# $\partial \alpha_i / \partial s_j = \alpha_i(\delta_{ij} - \alpha_j)$, which is 0 everywhere when $\alpha$ is
# one-hot: whatever the loss wants, almost no gradient reaches the scores, and hence $W_Q$ and $W_K$. The third
# column backpropagates a random upstream gradient through the softmax and reports the size of the gradient
# that arrives at the scores.

# %%
def row_statistics(scores: torch.Tensor) -> tuple[float, float, float]:
    """Mean max weight, mean entropy (nats) and median gradient norm at the scores, over the rows."""
    scores = scores.detach().requires_grad_(True)
    weights = torch.softmax(scores, dim=-1)
    upstream = torch.randn(weights.shape, generator=torch.Generator().manual_seed(1))
    (weights * upstream).sum().backward()
    entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1)
    return (weights.max(-1).values.mean().item(), entropy.mean().item(),
            scores.grad.norm(dim=-1).median().item())


saturation = []
for d in S.dims:
    gd = torch.Generator().manual_seed(100 + d)
    q = torch.randn(S.sat_rows, 1, d, generator=gd)
    k = torch.randn(S.sat_rows, S.n_keys, d, generator=gd)
    scores = (q @ k.transpose(-2, -1))[:, 0]                                     # [rows, Tk]
    saturation.append((d, row_statistics(scores), row_statistics(scores / math.sqrt(d))))

print(f"{'d_k':>6} | {'max weight':^17} | {'entropy (nats)':^17} | {'gradient norm':^19}")
print(f"{'':>6} | {'raw':>8} {'scaled':>8} | {'raw':>8} {'scaled':>8} | {'raw':>9} {'scaled':>9}")
for d, raw, scaled in saturation:
    print(f"{d:>6} | {raw[0]:>8.3f} {scaled[0]:>8.3f} | {raw[1]:>8.3f} {scaled[1]:>8.3f} "
          f"| {raw[2]:>9.2e} {scaled[2]:>9.2e}")

# %%
fig = Figure(figsize=(11, 3.2), layout="constrained")
titles = ["mean largest weight", "mean entropy of a row (nats)", "median gradient norm at the scores"]
for i, (ax, title) in enumerate(zip(fig.subplots(1, 3), titles)):
    dims = [d for d, _, _ in saturation]
    ax.plot(dims, [raw[i] for _, raw, _ in saturation], marker="o", label="q.k (unscaled)")
    ax.plot(dims, [scaled[i] for _, _, scaled in saturation], marker="o", label="q.k / sqrt(d_k)")
    ax.set_xscale("log", base=2)
    if i == 2:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("d_k")
    ax.grid(True, alpha=0.3)
fig.axes[0].legend(fontsize=8)
fig

# %% [markdown]
# With the scaling, all three columns stay flat: attention behaves the same for heads of size 16 or 1024. Without
# it, rows become one-hot as $d_k$ grows and the gradient at the scores shrinks by orders of magnitude. (Dividing by
# $d_k$ instead would over-correct: the scores' variance would fall like $1/d_k$ and every row would drift towards
# uniform, an attention that cannot focus.)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. A softmax that does not overflow
#
# `exp` grows fast: in float32, $e^{89}$ is already infinite. Scores of a few hundred are rare but real (a large
# $d_k$ without scaling, a long training run, an additive bias), and the textbook formula then returns `nan`:

# %%
x = torch.tensor([1000.0, 1001.0, 1002.0])
print("exp(x)                 :", x.exp())
print("exp(x) / sum(exp(x))   :", x.exp() / x.exp().sum())
print("same scores minus 1000 :", (x - 1000).exp() / (x - 1000).exp().sum())

# %% [markdown]
# The last line is the fix. Adding the same constant $c$ to every score of a row changes nothing,
# $$
# \frac{e^{x_i - c}}{\sum_j e^{x_j - c}} = \frac{e^{-c}\, e^{x_i}}{e^{-c} \sum_j e^{x_j}} = \frac{e^{x_i}}{\sum_j e^{x_j}},
# $$
# and with $c = \max_j x_j$ the largest exponent is $e^0 = 1$: nothing overflows, and the sum is at least 1, so
# there is no $0/0$ either. A score of $-\infty$ still gives $e^{-\infty} = 0$ exactly; masks rely on that.
#
# ### Exercise 2.1: Stable softmax
#
# Write `softmax(x, dim=-1)` with `torch.exp`, `amax` and `sum` (no library softmax): subtract the maximum along
# `dim` (keep that axis with `keepdim=True` so it broadcasts), exponentiate, divide by the sum along `dim`.

# %%
def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    ### BEGIN SOLUTION
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)
    ### END SOLUTION


# %%
softmax = amla.checks.attention.check_softmax(softmax)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Scaled dot-product attention, batched
#
# Putting Sections 2-4 together gives the attention of the Transformer paper (Vaswani et al., 2017):
# $$
# \operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_k}} + M\Big)\, V ,
# $$
# with the softmax over the **keys** (the last axis), and a mask $M$ (next section) that is 0 where a query may
# look and $-\infty$ where it may not. In practice the inputs carry leading dimensions, a batch and often heads,
# and every matrix product acts on the last two:
#
# | tensor | shape |
# | --- | --- |
# | `q` | `[..., Tq, d_k]` |
# | `k` | `[..., Tk, d_k]` |
# | `v` | `[..., Tk, d_v]` |
# | scores `q @ k.transpose(-2, -1)` and weights | `[..., Tq, Tk]` |
# | output `weights @ v` | `[..., Tq, d_v]` |
#
# `k.transpose(-2, -1)` (or `k.mT`) swaps only the last two dimensions; `k.T` would reverse all of them.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Masks: which keys may a query see?
#
# Two situations need a query to ignore some keys.
#
# **Padding.** Sentences in a batch have different lengths, so the short ones are padded to the longest with a
# filler token. Padded positions are not words: no query may attend to them. A padding mask depends on the
# *key* position only, so it has shape `[B, 1, Tk]`; the axis of size 1 broadcasts over the queries.
#
# **Causality.** A language model predicts token $t+1$ from tokens $\le t$, and it trains on all positions of a
# sequence at once. Position $i$ must therefore not see any key $j > i$: a lower-triangular `[Tq, Tk]` mask.
#
# A mask only has to **broadcast** to the scores' shape `[..., Tq, Tk]`, and masks combine with `&`.
# `amla.transformers.attention` provides both:

# %%
sentences = [["the", "cat", "sat", "on", "the", "mat"], ["dogs", "bark"], ["a", "bird", "sang", "at", "dawn"]]
lengths = [len(s) for s in sentences]
T = max(lengths)
tokens = [s + ["<pad>"] * (T - len(s)) for s in sentences]

pad = padding_mask(lengths, T)            # [B, 1, T]: True at real tokens
causal = causal_mask(T)                   # [T, T]:    True where key j <= query i
both = pad & causal                       # broadcasts to [B, T, T]
print("padding mask", tuple(pad.shape), "\n", pad[:, 0].int())
print("causal mask", tuple(causal.shape), "\n", causal.int())
print("combined", tuple(both.shape))

# %% [markdown]
# **Two ways to write a mask.** PyTorch's `scaled_dot_product_attention` takes either:
# - a **boolean** mask, `True` where the query **may attend** (the convention of this course). Careful:
#   `nn.MultiheadAttention`'s `key_padding_mask` uses the opposite, `True` = ignore;
# - an **additive** (float) mask that is simply added to the scores: 0 where allowed, $-\infty$ where blocked.
#   Any other value acts as a bias (some models add $-m\,|i-j|$ to favour nearby tokens).
#
# `to_additive` turns the first into the second; after the softmax both give the same weights.

# %%
print(to_additive(causal[:4, :4]))

# %% [markdown]
# Masked weights, drawn: random queries and keys (`d_k = 16`) for the three padded sentences; the boolean and the
# additive form of a mask give the same weights. Each picture is one sentence; rows are queries, columns keys.
# The padded columns are exactly 0. (The `<pad>` *queries* still get
# an output, computed from real keys only; later hours ignore those positions in the loss.)

# %%
g = torch.Generator().manual_seed(2)
q = torch.randn(3, T, 16, generator=g)
k = torch.randn(3, T, 16, generator=g)
v = torch.randn(3, T, 16, generator=g)

w_bool = reference_attention(q, k, v, both)[1]
w_additive = reference_attention(q, k, v, to_additive(both))[1]
print(f"boolean vs additive mask, largest weight difference: {(w_bool - w_additive).abs().max():.1e}")

fig = Figure(figsize=(13, 3.8), layout="constrained")
axes = fig.subplots(1, 3)
for ax, mask, name, b in [(axes[0], pad, "padding mask", 1), (axes[1], causal, "causal mask", 0),
                          (axes[2], both, "padding & causal", 2)]:
    _, weights = reference_attention(q, k, v, mask)
    plot_attention(weights[b], tokens[b], ax=ax, title=f"{name}: sentence {b}")
fig

# %% [markdown]
# **Why $-\infty$, and why before the softmax?** Two tempting shortcuts go wrong, and it is worth seeing how.
# Filling the masked scores with 0 gives those keys the weight of a score of 0, which is not small at all.
# Zeroing the weights *after* the softmax leaves rows that no longer sum to 1:

# %%
scores = q @ k.transpose(-2, -1) / math.sqrt(16)
right = torch.softmax(scores.masked_fill(~pad, float("-inf")), dim=-1)
zero_fill = torch.softmax(scores.masked_fill(~pad, 0.0), dim=-1)
after = torch.softmax(scores, dim=-1).masked_fill(~pad, 0.0)
padded = ~pad.expand_as(right)
print(f"largest weight on a <pad> key:   -inf fill {right[padded].max():.3f}   0 fill {zero_fill[padded].max():.3f}")
print(f"row sums of 'dogs bark':         -inf fill {right[1].sum(-1)[0]:.3f}   mask after softmax "
      f"{after[1].sum(-1).min():.3f} .. {after[1].sum(-1).max():.3f}")

# %% [markdown]
# **Fully masked rows.** If *every* key of a query is blocked (an empty sequence, or a causal mask aligned so that
# a query has no past), its scores are all $-\infty$ and the plain softmax computes $0/0$ = `nan`, which then
# spreads through everything downstream. PyTorch's `scaled_dot_product_attention` returns a zero output for such
# a query since torch 2.5 (older versions, which the course still allows from 2.3, return `nan` there, as the
# plain softmax does); `amla.transformers.attention` gives zero weights and a zero output on every version. Better
# still, build masks that never do it. The cell prints which torch ran it.

# %%
import torch.nn.functional as F

no_keys = torch.ones(T, T, dtype=torch.bool)
no_keys[2] = False  # query 2 may look at nothing
print("plain softmax:", torch.softmax(scores[0].masked_fill(~no_keys, float("-inf")), -1)[2])
sdpa_row = F.scaled_dot_product_attention(q[0], k[0], v[0], attn_mask=no_keys)[2, :4]
print("torch SDPA   :", sdpa_row, f"... (torch {torch.__version__})")
print("amla         :", reference_attention(q[0], k[0], v[0], no_keys)[0][2, :4], "...")

# %% [markdown]
# ### Exercise 2.2: Scaled dot-product attention
#
# Write `scaled_dot_product_attention(q, k, v, mask=None)` returning `(output, weights)`, for
# q `[..., Tq, d_k]`, k `[..., Tk, d_k]`, v `[..., Tk, d_v]` and a mask broadcastable to `[..., Tq, Tk]`:
# 1. scores `q @ k.transpose(-2, -1)`, divided by $\sqrt{d_k}$ with `d_k = q.shape[-1]`;
# 2. if a mask is given: a **boolean** one fills the scores with `float("-inf")` where it is `False`
#    (`scores.masked_fill(~mask, ...)`); a **float** one is added to the scores;
# 3. the weights are the softmax over the keys (`dim=-1`): your `softmax` from Exercise 2.1, or `torch.softmax`;
# 4. the output is `weights @ v`.

# %%
def scaled_dot_product_attention(q, k, v, mask=None):
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
    ### END SOLUTION


# %%
scaled_dot_product_attention = amla.checks.attention.check_attention(scaled_dot_product_attention)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Your attention against PyTorch's
#
# `torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)` computes the same output (without
# returning the weights) with fused kernels, the Flash-attention family on GPUs (Hour 09). Below, multi-head
# shapes `[B, H, T, d_k]`, every mask kind, and one cross-attention case with $T_q \ne T_k$. The attention
# compared is the one the check of Exercise 2.2 returned: yours once it passes.

# %%
mine = scaled_dot_product_attention
whose = "your" if amla.checks.yours("2.2") else "the course's reference (Exercise 2.2 not done yet)"

g = torch.Generator().manual_seed(3)
B, H, T, d = 4, 4, 12, 16
q, k, v = (torch.randn(B, H, T, d, generator=g) for _ in range(3))
lens = torch.tensor([12, 9, 5, 1])
key_pad = padding_mask(lens, T)[:, None]                                    # [B, 1, 1, T] for the heads
bias = -0.5 * (torch.arange(T)[None, :] - torch.arange(T)[:, None]).abs().float()
kinds = {
    "no mask": None,
    "padding (bool)": key_pad,
    "causal (bool)": causal_mask(T),
    "causal (additive 0/-inf)": to_additive(causal_mask(T)),
    "padding & causal (bool)": key_pad & causal_mask(T),
    "padding & causal (additive)": to_additive(key_pad & causal_mask(T)),
    "distance bias (float)": bias,
}
sdpa_diff = {}
for name, mask in kinds.items():
    ours, _ = mine(q, k, v, mask)
    sdpa_diff[name] = (ours - F.scaled_dot_product_attention(q, k, v, attn_mask=mask)).abs().max().item()
q_x = torch.randn(B, H, 5, d, generator=g)                                # 5 queries ...
k_x, v_x = torch.randn(B, H, 9, d, generator=g), torch.randn(B, H, 9, d, generator=g)  # ... over 9 keys
cross_mask = padding_mask(torch.tensor([9, 7, 3, 1]), 9)[:, None]
ours, _ = mine(q_x, k_x, v_x, cross_mask)
theirs = F.scaled_dot_product_attention(q_x, k_x, v_x, attn_mask=cross_mask)
sdpa_diff["cross-attention Tq=5, Tk=9, padding"] = (ours - theirs).abs().max().item()

print(f"{whose} attention vs torch.nn.functional.scaled_dot_product_attention, q/k/v {tuple(q.shape)}")
print(f"{'mask':<38} {'max |difference|':>16}")
for name, diff in sdpa_diff.items():
    print(f"{name:<38} {diff:>16.2e} {'ok' if diff < 1e-5 else 'TOO LARGE'}")

# %% [markdown]
# Differences of order $10^{-7}$ are float32 rounding: the two implementations add the same numbers in a different
# order. `is_causal=True` is the other way to ask torch for a causal mask; it uses the same top-left alignment as
# `causal_mask(Tq, Tk)` (query $i$ sees keys $j \le i$). For generation with a cache, where the $T_q$ new queries
# are the *last* of $T_k$ positions, use `causal_mask(Tq, Tk, align="bottom_right")`.

# %%
ours, _ = mine(q, k, v, causal_mask(T))
is_causal_diff = (ours - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs().max().item()
print(f"causal_mask vs is_causal=True: max |difference| {is_causal_diff:.2e}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Heads, queries and temperatures: the attention viewer
#
# A Transformer runs several attention **heads** side by side, each with its own queries and keys (Hour 04). Here we
# make a few by hand over a real sentence, with a causal mask, to see what a head *can* do before any training:
# - **previous token**: query $i$ is the position vector of $i-1$, keys are position vectors, so each token looks
#   one step back;
# - **same word**: queries and keys are the word's own embedding, so a repeated word finds its earlier copies;
# - **first token**: every query matches the first key, a pattern trained models use as a "no-op" place to park
#   attention;
# - the second "layer" is one random projection of the same tokens at four **temperatures**
#   $\tau$, i.e. scores $q \cdot k / (\tau \sqrt{d_k})$: low $\tau$ is sharp, high $\tau$ is nearly uniform over
#   the past.

# %%
words = "the cat sat on the mat because the mat was warm".split()
T = len(words)
vocab = sorted(set(words))
g = torch.Generator().manual_seed(4)
word_vec = torch.nn.functional.normalize(torch.randn(len(vocab), 32, generator=g), dim=-1)
emb = word_vec[[vocab.index(w) for w in words]]                      # [T, 32]
pos = torch.eye(T)                                                    # one-hot positions
mask = causal_mask(T)
sharp = 12.0  # large scores: nearly one-hot rows

previous = reference_attention(torch.roll(pos, 1, dims=0) * sharp, pos, emb, mask, scale=1.0)[1]
same_word = reference_attention(emb * sharp, emb, emb, mask, scale=1.0)[1]
first = reference_attention(torch.ones(T, 1) * sharp, pos[:, :1], emb, mask, scale=1.0)[1]
uniform = reference_attention(torch.zeros(T, 1), torch.zeros(T, 1), emb, mask)[1]
hand_made = torch.stack([previous, same_word, first, uniform])       # [4 heads, T, T]

w_q, w_k = torch.randn(2, 32, 16, generator=g)
x_tok = emb + 0.5 * torch.randn(T, 32, generator=g)
q_r, k_r = x_tok @ w_q, x_tok @ w_k
temperatures = [0.25, 0.5, 1.0, 4.0]
random_heads = torch.stack([reference_attention(q_r, k_r, emb, mask, scale=1 / (tau * math.sqrt(16)))[1]
                            for tau in temperatures])                  # [4 heads, T, T]
weights = torch.stack([hand_made, random_heads])                     # [2 layers, 4 heads, T, T]

head_entropy = -(random_heads * random_heads.clamp_min(1e-30).log()).sum(-1).mean(-1)
for tau, ent in zip(temperatures, head_entropy.tolist()):
    print(f"temperature {tau:>4}: mean entropy of a row {ent:.2f} nats")

# %% [markdown]
# In the viewer, pick a **layer** (the hand-made heads are, in order: previous token, same word, first token,
# uniform; the random heads have $\tau$ = 0.25, 0.5, 1 and 4), a **head** and a **query** token; the strip under
# the map shows that query's weights over the keys. Tick **all heads** to compare the heads of a layer on one
# colour scale. Things to try: query 8 (the second "mat") in the *same word* head; the *previous token* head on any
# query; the temperatures of the second layer on the last query. (Without a live kernel you see the picture
# selected below.)

# %%
viewer = AttentionViewer(
    weights, words, title="causal attention",
    layer_names=["hand-made heads", "random q/k, 4 temperatures"],
)
viewer.select(layer=0, head=1, query=8)

# %% [markdown]
# The hour's numbers, collected by `amla bench 02` (the target: every mask kind within $10^{-5}$ of torch):

# %%
amla.report(
    sdpa_max_diff_all=max(sdpa_diff.values()),
    sdpa_max_diff_none=sdpa_diff["no mask"],
    sdpa_max_diff_padding=sdpa_diff["padding (bool)"],
    sdpa_max_diff_causal=sdpa_diff["causal (bool)"],
    sdpa_max_diff_additive=sdpa_diff["causal (additive 0/-inf)"],
    sdpa_max_diff_bias=sdpa_diff["distance bias (float)"],
    sdpa_max_diff_cross=sdpa_diff["cross-attention Tq=5, Tk=9, padding"],
    sdpa_within_1e5=max(sdpa_diff.values()) < 1e-5,
    is_causal_max_diff=is_causal_diff,
    nw_as_attention_max_diff=nw_max_diff,
    score_var_over_dk=var_ratio,
    max_weight_unscaled_d1024=saturation[-1][1][0],
    max_weight_scaled_d1024=saturation[-1][2][0],
)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. Subtracting the row maximum makes the softmax safe. What would go wrong if you subtracted the row *minimum*
#    instead, or the maximum of the whole batch?
# 2. With unscaled scores and $d_k = 64$, the scores have a standard deviation of about 8. Why does that make
#    training slow, even though the forward pass computes perfectly fine numbers? And why is dividing by $d_k$
#    (instead of $\sqrt{d_k}$) not better?
# 3. In kernel regression, what plays the role of $\sqrt{d_k}$? What happens to the prediction as $h \to 0$ and
#    as $h \to \infty$, and what do the rows of the weight map look like in each case?
# 4. A padding mask of shape `[B, 1, Tk]` and one of shape `[B, Tk, 1]` both broadcast in self-attention. What
#    does each of them hide, and which one produces `nan`?
# 5. Why is the mask applied to the scores before the softmax, with $-\infty$? Is "softmax, then zero the masked
#    weights, then divide each row by its new sum" also correct?
# 6. You receive a `key_padding_mask` from code written for `nn.MultiheadAttention` (shape `[B, Tk]`, `True` =
#    padding). How do you turn it into a mask for `scaled_dot_product_attention` on `[B, H, Tq, Tk]` scores?
# 7. During generation with a cache, one new query attends to all $T_k$ cached keys. Which causal alignment is
#    right, and what would the top-left one do?

# %% [markdown] tags=["answer"]
# 1. The minimum leaves the largest exponent at $e^{\max - \min}$, which overflows as soon as a row spans more than
#    about 88: `inf / inf = nan`. The batch maximum is safe from overflow but not from underflow: a row whose scores
#    all lie far below the batch maximum (say 1000 lower) has $e^{x - c} = 0$ everywhere and the row becomes $0/0$.
#    Only the maximum *of each row* guarantees a largest term of exactly 1.
# 2. The forward pass is fine, but the rows are nearly one-hot, and the softmax's derivative
#    $\alpha_i(\delta_{ij} - \alpha_j)$ is nearly 0 for a one-hot row: the scores, and $W_Q$, $W_K$ behind them, get
#    almost no gradient, and attention cannot move away from whatever key happened to win at initialisation.
#    Dividing by $d_k$ shrinks the standard deviation to $1/\sqrt{d_k}$: the rows become almost uniform, and the
#    model starts from "average everything", with weights that need to grow a lot before a head can focus.
# 3. The bandwidth: the score $-(x-x_i)^2/2h^2$ is divided by $2h^2$, a temperature. As $h \to 0$ all weight goes
#    to the nearest training point (one-hot rows: nearest-neighbour regression, which copies the noise); as
#    $h \to \infty$ the weights become uniform (every row the same) and the prediction is the mean of all $y_i$.
# 4. `[B, 1, Tk]` hides padded **keys** from every query: right. `[B, Tk, 1]` hides every key from padded
#    **queries** and leaves the padded keys visible to the real ones: the padded queries' rows are all $-\infty$,
#    so a plain softmax gives `nan` there (`amla.transformers.attention` gives zeros, and so does torch's SDPA
#    from torch 2.5; older versions give `nan`), and the real
#    tokens still attend to padding.
# 5. Because $e^{-\infty} = 0$ exactly, the softmax then spreads all the weight over the allowed keys and each row
#    sums to 1. Softmax, zero, renormalise gives the same weights mathematically (the common factor cancels), so it
#    is correct but slower, and it breaks on rows that are fully masked (0/0) and on huge masked scores, which
#    dominate the first softmax and can push the allowed weights to underflow before the renormalisation.
# 6. Invert it and add axes for the heads and the queries: `mask = ~key_padding_mask[:, None, None, :]`, shape
#    `[B, 1, 1, Tk]` (or the additive form `to_additive(mask)`).
# 7. Bottom-right: the new query is the last position, so it may see every key, `j <= i + Tk - Tq`. Top-left would
#    let it see only the first key (`j <= 0`), as if it were the first token of the sequence.

# %% [markdown]
# **Next hour:** a GRU encoder-decoder with *additive* attention learns to translate dates, and its alignment maps
# show where each output character looks.
