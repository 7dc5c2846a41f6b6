# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=8, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 08: The Vision Transformer
#
# Hours 02-06 built attention for sequences of tokens. An image is not a sequence, but it can be made one: cut
# it into square patches, flatten each patch, and give the list to a Transformer encoder. That is the Vision
# Transformer (ViT, Dosovitskiy et al. 2021). This hour builds it from Hour 04's blocks, trains it on
# handwritten digits against a small CNN, and looks at what it attends to. Two later ideas close the hour:
# Swin's windowed attention, which makes attention affordable on large images, and DETR, which detects objects
# by predicting a *set* of boxes matched to the targets with the Hungarian algorithm.
#
# **By the end of this hour you can**
# - turn images into patch tokens by reshaping (Exercise 8.1) and show that the patch embedding is a strided
#   convolution;
# - explain the class token and the learned position embeddings, and read the similarity map of the positions;
# - train a ViT and a CNN of similar size on the same data and compare accuracy, time and throughput;
# - compute attention rollout (Exercise 8.2) and draw where the class token looks;
# - say how Swin's shifted windows grow the receptive field at linear cost, and how DETR's bipartite matching
#   turns detection into set prediction.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it. Right: the check returns
# your function and the rest of the hour uses it (the ViTs embed their images with your `patchify`, the maps
# are drawn with your `attention_rollout`). Wrong: it names the most likely mistake. Not written yet: one line
# says so and the course's reference is used. `amla.checks.summary()` at the end lists what you have done.
#
# **Runtime** (whole notebook, measured with `amla run 08 --profile smoke` and `amla bench 08 --profile cpu` on
# the course's idle 2-core CPU machine): smoke 14-16 s, cpu profile 5.0 min (of it about 110 s the ViT on the
# digits, 105 s the ViT on MNIST, 25 s the CNN on MNIST and 28 s the DETR demo; a busy machine takes longer).
# The gpu profile (MNIST's full training set, downloaded, and larger models) has not been run yet: no GPU was
# available when this hour was written.

# %%
import time

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from amla.toolkit.train import Trainer, TrainConfig
from amla.transformers import vit as V

if device.type == "cpu" and amla.profile() == "smoke":
    torch.set_num_threads(1)  # tiny runs, and the tests run two notebooks at once; the cpu profile uses every core

S = amla.per_profile(
    smoke=dict(digits_steps=20, digits_batch=32, cnn_digits_steps=10, mnist_steps=5, mnist_batch=32, mnist_d=32,
               mnist_layers=2, cnn_mnist_steps=5, mnist_subset=500, download_train=False, detr_steps=5, n_show=4),
    cpu=dict(digits_steps=3000, digits_batch=64, cnn_digits_steps=1000, mnist_steps=1200, mnist_batch=128,
             mnist_d=96, mnist_layers=4, cnn_mnist_steps=400, mnist_subset=None, download_train=False,
             detr_steps=400, n_show=8),
    gpu=dict(digits_steps=5000, digits_batch=64, cnn_digits_steps=1000, mnist_steps=6000, mnist_batch=256,
             mnist_d=192, mnist_layers=6, cnn_mnist_steps=3000, mnist_subset=None, download_train=True,
             detr_steps=3000, n_show=8),
)
print(amla.profile(), S)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Images as sequences of patches
#
# An image $x \in \mathbb{R}^{C \times H \times W}$ is cut into $N = (H/p)(W/p)$ non-overlapping patches of
# $p \times p$ pixels. Each patch, flattened to a vector of $C p^2$ numbers, becomes one token:
#
# $$z_0 = [\,x_{\text{cls}};\; x^1_p E;\; x^2_p E;\; \dots;\; x^N_p E\,] + E_{\text{pos}}, \qquad
#   E \in \mathbb{R}^{C p^2 \times D},\; E_{\text{pos}} \in \mathbb{R}^{(N + 1) \times D}.$$
#
# The patches are read row by row (patch $k$ sits at grid row $k \,//\, (W/p)$ and column $k \bmod (W/p)$), and
# each patch is flattened as (channel, row, column). With that order, the linear map $E$ applied to every patch
# is exactly a convolution with kernel size and stride $p$, whose weights $[D, C, p, p]$ are $E$ reshaped.
#
# Two data sets, both offline: scikit-learn's 8x8 digits (1,797 images) and MNIST (28x28). The course keeps
# MNIST's test set in its data directory; where MNIST's 60,000 training images are present too they are used,
# otherwise the test set is split in two, as the cell says.

# %%
digits = V.image_split("digits8x8", test_fraction=0.25)
mnist = V.image_split("mnist", test_fraction=0.2, download_train=S.download_train)
print(digits.describe())
print(mnist.describe())

# %% [markdown]
# ### Exercise 8.1: Patches by reshaping
#
# Write `patchify(images, patch)`: `images [B, C, H, W]` to `[B, (H/p)(W/p), C p p]`, with no loops: view the
# images as `[B, C, H/p, p, W/p, p]`, move the axes to `[B, H/p, W/p, C, p, p]`, and flatten. (The original ViT
# code flattens each patch as (row, column, channel); here the channel comes first, as in `Conv2d`'s weights.)

# %%
def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    ### BEGIN SOLUTION
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)
    ### END SOLUTION


# %%
patchify = amla.checks.vit.check_patchify(patchify)

# %% [markdown]
# One MNIST digit and its 16 patches of 7x7 pixels, in the order the Transformer reads them:

# %%
img = mnist.x_test[:1]
tokens = patchify(img, 7)
fig = Figure(figsize=(9, 2.4))
ax = fig.add_axes((0.01, 0.08, 0.2, 0.8))
ax.imshow(img[0, 0], cmap="gray_r"), ax.set_title("the image", fontsize=9), ax.axis("off")
for k in range(16):
    ax = fig.add_axes((0.25 + (k % 8) * 0.092, 0.5 - (k // 8) * 0.45, 0.08, 0.36))
    ax.imshow(tokens[0, k].reshape(7, 7), cmap="gray_r", vmin=-1, vmax=1)
    ax.set_xticks([]), ax.set_yticks([]), ax.set_title(f"patch {k}", fontsize=7)
fig

# %% [markdown]
# The patch embedding is a strided convolution: the course's `PatchEmbedding` (a `Linear` on your patches) and
# its `as_conv()` (the same weights in a `Conv2d(kernel=stride=p)`) give the same tokens.

# %%
embed = V.PatchEmbedding(1, 7, 32, patchify_fn=patchify)
conv_tokens = embed.as_conv()(img).flatten(2).transpose(1, 2)
print(f"linear on patches vs strided conv: max difference {(embed(img) - conv_tokens).abs().max().item():.1e}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. The class token, the positions, and the encoder
#
# - **The class token** $x_{\text{cls}}$ is a learned vector put in front of the patches. It has no pixels of
#   its own; through attention it gathers what the classification needs, and the head reads only its output.
# - **Learned position embeddings** $E_{\text{pos}}$: attention is permutation-equivariant (Hour 04), so without
#   them the model could not tell the top of a digit from its bottom. ViT learns one vector per position rather
#   than using Hour 04's sinusoids; section 4 looks at what they learn.
# - **The encoder** is Hour 04's pre-norm `TransformerBlock`, $L$ times, then a LayerNorm and a linear head on the
#   class token's output: `amla.transformers.vit.ViT`.

# %%
def make_vit(data: V.ImageSplit, patch: int, d_model: int, n_layers: int, n_heads: int = 4) -> V.ViT:
    torch.manual_seed(0)
    return V.ViT(data.x_train.shape[-1], patch, 10, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                 d_ff=2 * d_model, patchify_fn=patchify)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


vit_digits = make_vit(digits, patch=2, d_model=48, n_layers=4)
print(vit_digits.embed, f"\n{len(vit_digits.blocks)} blocks, {vit_digits.n_patches} patches + 1 class token, "
      f"{n_params(vit_digits):,} parameters")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Training: a ViT against a CNN
#
# The course Trainer (Hour 01) trains both models with AdamW, warmup and cosine decay. Two things help a ViT
# on little data, where it lacks the CNN's built-in assumptions (locality, translation equivariance):
# **random shifts** of the images by a pixel or two (`V.random_shift`, the background filling the border), and
# **label smoothing** (the target puts 0.9 on the right class, the rest spread over the others). Both models
# get the same augmentation. The Trainer records the images per second of each step.

# %%
def fit(model: torch.nn.Module, data: V.ImageSplit, steps: int, batch: int, lr: float, shift: int,
        subset: int | None = None) -> dict[str, float]:
    x, y = (data.x_train, data.y_train) if subset is None else (data.x_train[:subset], data.y_train[:subset])

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(model(V.random_shift(images, shift)), labels, label_smoothing=0.1)

    config = TrainConfig(max_steps=steps, batch_size=batch, lr=lr, warmup_steps=max(1, steps // 20),
                         weight_decay=0.05, progress=True)
    start = time.perf_counter()
    history = Trainer(model, (x, y), config, loss_fn=loss_fn, device=device).fit()
    seconds = time.perf_counter() - start
    rates = [r["samples_per_s"] for r in history.train]
    return {"test_acc": V.accuracy(model, data.x_test, data.y_test), "train_s": seconds,
            "images_per_s": float(np.median(rates)), "params": n_params(model), "steps": steps}


def cnn_for(data: V.ImageSplit, width: int) -> V.SmallCNN:
    torch.manual_seed(0)
    return V.SmallCNN(10, width=width)


def show(*names: str) -> None:
    for name in names:
        r = results[name]
        print(f"{name:>12}: test accuracy {r['test_acc']:.2%} in {r['train_s']:.0f} s "
              f"({r['images_per_s']:,.0f} images/s, {r['params']:,} parameters, {r['steps']} steps)")


results = {}
results["ViT, digits"] = fit(vit_digits, digits, S.digits_steps, S.digits_batch, lr=2e-3, shift=1)
results["CNN, digits"] = fit(cnn_for(digits, 32), digits, S.cnn_digits_steps, S.digits_batch, lr=2e-3, shift=1)
show("ViT, digits", "CNN, digits")

# %% [markdown]
# MNIST, with 7x7 patches (16 tokens and the class token) and a wider ViT. The CNN is the same; a convolution
# over 28x28 pixels costs more per image than over 8x8, so it gets half the ViT's steps here (both are printed
# with their parameters and time).

# %%
vit_mnist = make_vit(mnist, patch=7, d_model=S.mnist_d, n_layers=S.mnist_layers)
results["ViT, MNIST"] = fit(vit_mnist, mnist, S.mnist_steps, S.mnist_batch, lr=2e-3, shift=2, subset=S.mnist_subset)
results["CNN, MNIST"] = fit(cnn_for(mnist, 32), mnist, S.cnn_mnist_steps, S.mnist_batch, lr=5e-3, shift=2,
                            subset=S.mnist_subset)
show("ViT, MNIST", "CNN, MNIST")
print(mnist.describe())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. What the ViT learned
#
# **Positions.** Nothing told the model that patch 5 is next to patch 6. The cosine similarity of each learned
# position embedding with every other one, drawn on the grid, shows whether it found out; the cell also counts
# for how many positions the most similar other position is a neighbour on the grid (one of the 8 around it).

# %%
sim = V.position_similarity(vit_mnist).cpu()
grid = int(vit_mnist.n_patches ** 0.5)
fig = Figure(figsize=(6, 6))
for k in range(grid * grid):
    ax = fig.add_subplot(grid, grid, k + 1)
    ax.imshow(sim[k].reshape(grid, grid), cmap="viridis", vmin=-1, vmax=1)
    ax.set_xticks([]), ax.set_yticks([])
fig.suptitle("cosine similarity of each learned position (tile) with every position")
def neighbours(k: int) -> list[int]:
    return [j for j in range(grid * grid) if max(abs(j // grid - k // grid), abs(j % grid - k % grid)) == 1]


nearest = (sim - 2 * torch.eye(len(sim))).argmax(1).tolist()  # the most similar *other* position
adjacent = sum(nearest[k] in neighbours(k) for k in range(grid * grid))
chance = np.mean([len(neighbours(k)) / (grid * grid - 1) for k in range(grid * grid)])
print(f"{adjacent} of {grid * grid} positions are most similar to a grid neighbour (by chance: {chance:.0%})")
fig

# %% [markdown]
# **Attention rollout** (Abnar & Zuidema 2020). The attention of the last layer alone says little about which
# *pixels* matter: by then every token has mixed with the others. Rollout follows the mixing through all the
# layers. Each layer's attention, averaged over heads, is combined with the identity for the residual path
# (half the signal skips attention) and its rows re-normalised so that they sum to 1:
#
# $$\hat A_\ell = \frac{\bar A_\ell + I}{\text{row sums}}, \qquad R = \hat A_L \hat A_{L-1} \cdots \hat A_1 .$$
#
# Row 0 of $R$ (the class token) over the patch columns says how much of each patch reached the class token.
#
# ### Exercise 8.2: Attention rollout
#
# Write `attention_rollout(attentions)`: a list of per-layer weights `[B, H, T, T]` to `[B, T, T]`. Average the
# heads, add the identity, divide each row by its sum (mind `keepdim=True`: the attention weights of a model
# with dropout or padding do not sum to 1), and multiply the layers with each new one on the left.

# %%
def attention_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    ### BEGIN SOLUTION
    rollout = None
    for a in attentions:
        a = a.mean(1) + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout
    ### END SOLUTION


# %%
attention_rollout = amla.checks.vit.check_attention_rollout(attention_rollout)

# %% [markdown]
# The rollout of the class token over the patches, upsampled to the image and laid over test digits; the
# title gives the prediction and the truth.

# %%
vit_mnist.eval()
n_view = min(32, len(mnist.x_test))  # the test digits drawn here and in the two viewers below
with torch.no_grad():
    logits, maps = vit_mnist(mnist.x_test[:n_view].to(device), need_weights=True)
logits, maps = logits.cpu(), [m.cpu() for m in maps]
shown = mnist.x_test[:S.n_show]
roll = attention_rollout(maps)[:S.n_show, 0, 1:].reshape(-1, grid, grid)
fig = Figure(figsize=(1.6 * S.n_show, 3.4))
for i in range(S.n_show):
    heat = F.interpolate(roll[i][None, None], size=28, mode="nearest")[0, 0]
    for row, overlay in enumerate((False, True)):
        ax = fig.add_subplot(2, S.n_show, row * S.n_show + i + 1)
        ax.imshow(shown[i, 0], cmap="gray_r")
        if overlay:
            ax.imshow(heat, cmap="inferno", alpha=0.6)
        ax.axis("off")
    fig.axes[-2].set_title(f"pred {logits[i].argmax().item()} / true {mnist.y_test[i].item()}", fontsize=8)
fig.suptitle("test digits (top) and the class token's attention rollout over them (bottom)")
fig

# %% [markdown]
# The same, to play with: pick a test digit, how many layers the rollout goes through, or the raw attention of
# the class token in one layer (mean of the heads) to see how much less it says on its own. The bars are the
# model's class probabilities. Without a widget frontend the view leaves its picture.

# %%
from amla.views import RolloutViewer

rollout_view = RolloutViewer(mnist.x_test[:n_view], maps, logits.softmax(-1), mnist.y_test[:n_view], attention_rollout,
                             title="ViT on MNIST test digits")
rollout_view

# %% [markdown]
# The raw maps of every head and layer, in the course's attention viewer (tokens: `cls`, then the patches by
# grid row and column). Choose a layer and a head, or "all heads"; the query row selected is outlined. Without
# a widget frontend the viewer leaves its picture.

# %%
from amla.views import AttentionViewer

names = ["cls"] + [f"({k // grid},{k % grid})" for k in range(grid * grid)]
viewer = AttentionViewer(torch.stack([m[0] for m in maps]), names, title="ViT on one MNIST test digit")
viewer.select(query=0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Swin: attention in windows, shifted
#
# A ViT's attention costs $O(N^2)$ in the number of patches: fine for 16 patches of a digit, ruinous for a
# 224x224 photo cut into 4x4 patches (3,136 tokens). The Swin Transformer (Liu et al. 2021) keeps the tokens on
# their grid and lets each one attend only inside its $M \times M$ window (W-MSA): the cost becomes linear in the
# number of tokens,
#
# $$\Omega(\text{MSA}) = 2 N^2 C, \qquad \Omega(\text{W-MSA}) = 2 N M^2 C$$
#
# (multiply-adds of $QK^\top$ and of the weighted sum of $V$, for $N = HW$ tokens of $C$ channels). Windows alone
# never talk to each other, so every second block shifts the windows by $M/2$ (SW-MSA): implemented as a cyclic
# roll of the grid, with a mask that stops tokens brought together from opposite edges by the roll from
# attending to each other. The cell counts the cost for the first stage of Swin-T ($56 \times 56$ tokens,
# $C = 96$, $M = 7$) and draws, for an $8 \times 8$ grid with $4 \times 4$ windows shifted by 2, the rolled grid
# coloured by the image region each token came from, and the mask of the window where four regions meet: a token
# may attend only to tokens of its own colour.

# %%
from amla.transformers import swin

flops_global, flops_window = swin.attention_flops(56, 56, 96), swin.attention_flops(56, 56, 96, window=7)
print(f"56 x 56 tokens, C = 96: global attention {flops_global / 1e9:.2f} G multiply-adds, windows of 7 x 7 "
      f"{flops_window / 1e9:.3f} G ({flops_global / flops_window:.0f}x less)")
side, win, shift = 8, 4, 2
regions = torch.zeros(side, side)  # on the rolled grid: which part of the image each token came from
spans = (slice(0, -win), slice(-win, -shift), slice(-shift, None))
for i, rows in enumerate(spans):
    for j, cols in enumerate(spans):
        regions[rows, cols] = 3 * i + j
mask = swin.shifted_window_mask(side, side, win, shift)
fig = Figure(figsize=(8, 3.4))
ax = fig.add_subplot(1, 2, 1)
ax.imshow(regions, cmap="tab10", vmin=0, vmax=9)
ax.set_xticks(np.arange(-0.5, side, win)), ax.set_yticks(np.arange(-0.5, side, win)), ax.grid(color="k", lw=2)
ax.set_xticklabels([]), ax.set_yticklabels([])
ax.set_title("rolled grid: colour = image region,\nblack lines = windows", fontsize=9)
ax = fig.add_subplot(1, 2, 2)
ax.imshow(mask[-1], cmap="Greys", vmin=0, vmax=1)
ax.set_title(f"mask of the bottom-right window\n(black: may attend; {mask[-1].float().mean():.0%} of the pairs)",
             fontsize=9)
ax.set_xlabel("key token (row-major in the window)"), ax.set_ylabel("query token")
fig

# %% [markdown]
# What the shift buys: the **receptive field** of one output token, the input tokens whose change would change
# it (measured with autograd). After one W-MSA block it is exactly the token's window; after a W-MSA block and
# an SW-MSA block it reaches across the window borders, and stacking more blocks (with patch merging between the
# stages) covers the whole image.

# %%
torch.manual_seed(0)
grid_hw, channels = 16, 16
w_msa, sw_msa = swin.WindowAttention(channels, 2, 4, shift=0), swin.WindowAttention(channels, 2, 4, shift=2)
pixel = (5, 5)
one_block = swin.receptive_field(w_msa, grid_hw, grid_hw, channels, pixel)
two_blocks = swin.receptive_field(lambda x: sw_msa(w_msa(x)), grid_hw, grid_hw, channels, pixel)
fig = Figure(figsize=(6, 3))
for i, (field, title) in enumerate([(one_block, "W-MSA"), (two_blocks, "W-MSA then SW-MSA")]):
    ax = fig.add_subplot(1, 2, i + 1)
    ax.imshow(field, cmap="Blues", vmin=0, vmax=1.5)
    ax.plot(pixel[1], pixel[0], "r*", ms=12)
    ax.set_title(f"{title}: {int(field.sum())} of {grid_hw * grid_hw} tokens", fontsize=9)
    ax.set_xticks(np.arange(-0.5, grid_hw, 4)), ax.set_yticks(np.arange(-0.5, grid_hw, 4)), ax.grid(color="k")
    ax.set_xticklabels([]), ax.set_yticklabels([])
fig.suptitle("receptive field of the starred token (lines: window borders)")
print(f"receptive field: {int(one_block.sum())} tokens after W-MSA, {int(two_blocks.sum())} after W-MSA + SW-MSA")
fig

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. DETR: detection as set prediction
#
# An object detector must output a *set* of boxes: how many there are, and in no particular order. DETR (Carion
# et al. 2020) runs a CNN backbone, a Transformer encoder over its feature map, and a decoder with $Q$ learned
# **object queries** that cross-attend to the image; each query outputs a class (or "no object") and a box.
# Training needs to know which query should predict which object: the **Hungarian algorithm**
# (`scipy.optimize.linear_sum_assignment`) picks the one-to-one assignment $\hat\sigma$ of least total cost
#
# $$\hat\sigma = \arg\min_\sigma \sum_i \Big[-\hat p_{\sigma(i)}(c_i) + \lambda_{L1} \lVert b_i -
#   \hat b_{\sigma(i)} \rVert_1 - \lambda_{\text{giou}} \,\mathrm{GIoU}(b_i, \hat b_{\sigma(i)})\Big],$$
#
# and the loss is cross-entropy for every query (unmatched ones learn "no object") plus the box losses of the
# matched ones. No anchors, no non-maximum suppression. A short demo on synthetic images: rectangles, filled
# (class 0) or hollow (class 1), 1 to 3 per image.

# %%
from amla.transformers import detr as D

detr_train = D.boxes_dataset(2000 if S.detr_steps > 100 else 64, size=32, max_objects=3, seed=0)
detr_test = D.boxes_dataset(200 if S.detr_steps > 100 else 16, size=32, max_objects=3, seed=1)
torch.manual_seed(0)
detector = D.TinyDETR(n_classes=2, n_queries=5)
print(f"TinyDETR: {n_params(detector):,} parameters, {detector.queries.shape[0]} object queries")

# %% [markdown]
# The matching in action, before training: the same targets in another order get the same assignment (each
# object keeps its query) and the same loss, which is what "set prediction" means.

# %%
detector.eval()
with torch.no_grad():
    out = detector(detr_train[0][:1])
target = detr_train[1][0]
order = torch.arange(len(target["labels"])).flip(0)
shuffled = {"labels": target["labels"][order], "boxes": target["boxes"][order]}
q1, t1 = D.hungarian_match(out["logits"][0], out["boxes"][0], target["labels"], target["boxes"])
q2, t2 = D.hungarian_match(out["logits"][0], out["boxes"][0], shuffled["labels"], shuffled["boxes"])
loss1, _ = D.set_loss(out, [target], 2)
loss2, _ = D.set_loss(out, [shuffled], 2)
print("object -> query:", dict(zip(t1.tolist(), q1.tolist())), "| reversed targets:",
      {int(order[t]): q for t, q in zip(t2.tolist(), q2.tolist())})
print(f"set loss {loss1.item():.4f} and {loss2.item():.4f} with the targets reversed")

# %%
detr_history = D.train_detr(detector, detr_train, steps=S.detr_steps)
detr_metrics = D.evaluate_detr(detector, detr_test, threshold=0.7)
detr_s = detr_history["seconds"][-1]
print(f"{S.detr_steps} steps in {detr_s:.0f} s ({S.detr_steps / detr_s:.1f} steps/s); on {len(detr_test[1])} "
      f"held-out images: objects found (IoU > 0.5, right class) {detr_metrics['found']:.0%}, mean IoU "
      f"{detr_metrics['mean_iou']:.2f}, images with the right number of boxes {detr_metrics['count_accuracy']:.0%}")

# %% [markdown]
# Six held-out images with the boxes the detector keeps (class probability at least 0.7). The fraction of
# images with the right number of boxes printed above is the weak spot of so short a training: a duplicate box
# for one object costs the matching nothing until the model has learned to send the other queries to "no
# object", which the paper's models learn over 500 epochs.

# %%
preds = D.predict(detector, detr_test[0][:6], threshold=0.7)
fig = Figure(figsize=(12, 2.3))
for i in range(6):
    D.draw_predictions(fig.add_subplot(1, 6, i + 1), detr_test[0][i], preds[i], detr_test[1][i])
fig.suptitle("held-out images: targets dashed green, predictions solid (orange filled, cyan hollow) with scores")
fig

# %% [markdown]
# The hour's numbers, collected by `amla bench 08`:

# %%
amla.report(
    digits_vit_acc=results["ViT, digits"]["test_acc"], digits_cnn_acc=results["CNN, digits"]["test_acc"],
    digits_vit_s=results["ViT, digits"]["train_s"], digits_vit_images_per_s=results["ViT, digits"]["images_per_s"],
    mnist_vit_acc=results["ViT, MNIST"]["test_acc"], mnist_cnn_acc=results["CNN, MNIST"]["test_acc"],
    mnist_vit_s=results["ViT, MNIST"]["train_s"], mnist_vit_images_per_s=results["ViT, MNIST"]["images_per_s"],
    mnist_cnn_s=results["CNN, MNIST"]["train_s"], mnist_vit_params=results["ViT, MNIST"]["params"],
    mnist_cnn_params=results["CNN, MNIST"]["params"], mnist_split=mnist.note,
    swin_flops_ratio=flops_global / flops_window, swin_field_one_block=int(one_block.sum()),
    swin_field_two_blocks=int(two_blocks.sum()), detr_found=detr_metrics["found"],
    detr_mean_iou=detr_metrics["mean_iou"], detr_count_acc=detr_metrics["count_accuracy"], detr_s=detr_s,
    detr_steps_per_s=S.detr_steps / detr_s,
)

# %% [markdown]
# Your exercises, one line each.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. A 224 x 224 RGB image is cut into 16 x 16 patches. How many tokens does the ViT see, how long is each
#    flattened patch, and what are the shapes of the equivalent `Conv2d`'s weight and output?
# 2. Remove the position embeddings from the ViT (set them to zero and freeze them). Which property of
#    attention (Hour 04) makes the model unable to tell a digit from the same patches shuffled, and why does
#    the class token not rescue it?
# 3. The ViT needed shifted images, label smoothing and 3,000 steps to do well on 1,347 digits. Which built-in
#    assumptions of a convolution does the ViT have to learn from the data instead, and why do ViTs need more
#    data (or augmentation) than CNNs to match them?
# 4. Why does attention rollout add the identity before multiplying the layers, and what would the product of
#    the raw attention matrices alone say about a token whose residual branch carries most of the signal?
# 5. Swin's shifted windows use a cyclic roll and a mask instead of padding the image. What would padding cost?
# 6. DETR's loss is computed after the Hungarian matching. What would go wrong if each target were simply
#    assigned to the query with the lowest cost for it, independently of the others?

# %% [markdown] tags=["answer"]
# 1. $(224/16)^2 = 196$ patch tokens plus the class token, 197 in all; each patch has $3 \cdot 16 \cdot 16 = 768$
#    numbers. The convolution has weight $[D, 3, 16, 16]$ and output $[B, D, 14, 14]$, flattened to $[B, 196, D]$.
# 2. Self-attention is permutation-equivariant: permuting the patch tokens permutes the outputs the same way.
#    The class token attends to all patches with weights that depend only on their contents, so its output is a
#    permutation-invariant function of the set of patches: a digit and its shuffled patches give the same
#    prediction.
# 3. Locality (a pixel depends on its neighbours first) and translation equivariance (the same filter
#    everywhere), and the pooling's small translation invariance. The ViT sees a set of patches with learned
#    positions and must learn which positions are close and what a stroke looks like anywhere; with more data
#    (and augmentation) it can, and its weaker assumptions cost less.
# 4. Each block computes $x + \text{Attn}(x)$: the residual path carries the token itself. $\tfrac12(A + I)$
#    models that half the signal skips the mixing; without it, the product of the raw matrices would say that a
#    token's own contribution vanishes after a few layers, although the residual stream keeps it.
# 5. Padding the grid to a multiple of the window size at the shifted offset adds windows: $(H/M + 1)(W/M + 1)$
#    instead of $(H/M)(W/M)$ (from 64 to 81 windows for a 56 x 56 grid with $M = 7$), all computed; the roll keeps
#    the number of windows and the batched computation the same as in W-MSA.
# 6. Two targets could pick the same query, and a query would then be trained towards two boxes at once (their
#    average), while other queries learn nothing; the one-to-one matching gives every object its own query, so
#    the model learns not to predict duplicates, which is why DETR needs no non-maximum suppression.
