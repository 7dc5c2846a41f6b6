# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=1, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 01: The toolkit, GPU-aware training
#
# Every later hour trains something: a GPT, a GAN, a graph network, a Q-network. This hour builds the
# training machinery they all share, piece by piece, and then uses it for real on handwritten digits.
#
# **By the end of this hour you can**
# - say where a computation runs (CPU, CUDA, Apple's MPS) and make a run repeatable with one seed;
# - write one correct optimizer step with **gradient accumulation**, **mixed precision** and **gradient clipping**;
# - write a **warmup + cosine** learning-rate schedule and see what its knobs do;
# - save a checkpoint **atomically** and **resume exactly**, bit for bit;
# - train with the course `Trainer` while a live dashboard draws the curves.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `train_step = amla.checks.toolkit.check_train_step(train_step)`. The check runs your function on ordinary and
# edge inputs against the course's reference (values, types, two steps in a row, and whether your inputs were
# left alone):
# - right: the check returns your function, and **the rest of the hour runs on your code**: the digits model is
#   trained by your step and your schedule, and the interrupted run is resumed by your save and load;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook, measured with `amla bench 01` on an idle 2-core CPU): smoke profile about 12 s,
# cpu profile about 27 s, of which 11 s are the main training run (18,000 samples/s, 98.4 % test accuracy). An
# earlier, faster 2-core machine (with AVX-512) took 15 s, 5 s of them training; a busy machine can take twice as
# long. The `gpu` profile trains a 4x wider network for the same number of steps.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Where the computation runs
#
# PyTorch runs each operation on the device its tensors live on. `amla.setup` (first cell) picked the best
# one available, in the order **cuda > mps > cpu**; you can force one with the `AMLA_DEVICE` environment
# variable. A model and the tensors it reads must be on the same device, otherwise PyTorch raises an error
# that mentions both devices.
#
# The report below is what to paste into a question on the course forum: it explains most "it works on my
# machine" puzzles.

# %%
for key, value in amla.env_report(device).items():
    print(f"{key:>12}: {value}")

# %% [markdown]
# Whether the device supports **bf16** matters below: mixed precision runs parts of the network in 16-bit
# floats, which is up to several times faster on modern GPUs. On the CPU the course always runs plain fp32,
# so every notebook runs unchanged everywhere.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Seeds, and one notebook at three sizes
#
# Random numbers drive initialization, batch order and dropout. Seeding python's `random`, numpy and torch
# with one number makes a run repeatable on the same machine and library versions:

# %%
import torch

amla.seed_everything(0)
first = torch.randn(3)
amla.seed_everything(0)
second = torch.randn(3)
print(first, second, "identical:", torch.equal(first, second))

# %% [markdown]
# Every notebook declares its sizes once per **profile**: `smoke` proves each cell runs (tests, under a
# minute), `cpu` reaches the hour's target on a laptop, `gpu` uses a bigger model. The profile comes from
# the `AMLA_PROFILE` environment variable, by default `gpu` when CUDA is there and `cpu` otherwise.

# %%
S = amla.per_profile(
    smoke=dict(hidden=64, steps=60, eval_every=30, resume_steps=20),
    cpu=dict(hidden=256, steps=3000, eval_every=250, resume_steps=200),
    gpu=dict(hidden=1024, steps=3000, eval_every=250, resume_steps=200),
)
print(amla.profile(), S)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The data: 8x8 handwritten digits
#
# scikit-learn ships 1,797 small digit images (8x8 pixels, 10 classes), so this hour needs no download. We
# keep a quarter as the **test set**, touched once at the very end, and split a **validation set** off the
# training images to watch during training: choosing anything by looking at the test set would make the
# final number optimistic.

# %%
from amla.toolkit.data import digits

x_train_all, y_train_all, x_test, y_test = digits(test_fraction=0.25, seed=0)
split = torch.randperm(len(x_train_all), generator=torch.Generator().manual_seed(0))
val_idx, train_idx = split[:200], split[200:]
x_train, y_train = x_train_all[train_idx], y_train_all[train_idx]
x_val, y_val = x_train_all[val_idx], y_train_all[val_idx]
print(f"train {tuple(x_train.shape)}, validation {tuple(x_val.shape)}, test {tuple(x_test.shape)}")

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(2, 12, figsize=(9, 1.8))
for ax, image, label in zip(axes.flat, x_train, y_train):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.set_title(int(label), fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. One training step, done properly
#
# A plain step is *forward, loss, backward, optimizer step*. Three additions make it the step used for every
# model in this course.
#
# **Gradient accumulation.** When a batch of $B$ examples does not fit in memory, split it into $K$
# micro-batches and add up their gradients before stepping. The gradient of the mean loss over the big batch
# is the mean of the micro-batch gradients,
# $$\nabla \frac{1}{K}\sum_{k=1}^{K} L_k = \sum_{k=1}^{K} \nabla \frac{L_k}{K},$$
# so each micro-batch loss is **divided by $K$** before `backward()`, which *adds* into `.grad`.
#
# **Mixed precision.** Inside `torch.autocast`, matrix multiplications run in bf16 or fp16 while sums and
# the loss stay in fp32. fp16 has a small range: tiny gradients underflow to zero. A `GradScaler` multiplies
# the loss by a large factor $s$ before `backward()` and divides the gradients by $s$ again
# (`scaler.unscale_`) before anyone looks at them. bf16 has fp32's range and needs no scaler (the scaler is
# then simply disabled). The course's Trainer turns autocast off on the CPU, where fp32 is what the hardware is
# fast at; the demonstrations below use CPU autocast on purpose, to show what fp16 does to numbers.
#
# **Gradient clipping.** One unlucky batch can produce a huge gradient. Clipping rescales the whole gradient
# vector when its norm exceeds $c$:  $g \leftarrow g \cdot \min\left(1, \frac{c}{\lVert g \rVert}\right)$.
# It must see the *true* gradients, so it comes after `unscale_`.

# %% [markdown]
# First, convince yourself that accumulation with the $1/K$ division gives the big batch's gradient:

# %%
from torch import nn

probe = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
xb, yb = x_train[:64], y_train[:64]

probe.zero_grad()
nn.functional.cross_entropy(probe(xb), yb).backward()
full = [p.grad.clone() for p in probe.parameters()]

probe.zero_grad()
for xm, ym in zip(xb.chunk(4), yb.chunk(4)):
    (nn.functional.cross_entropy(probe(xm), ym) / 4).backward()
accumulated = [p.grad.clone() for p in probe.parameters()]
print("largest difference:", max((a - b).abs().max().item() for a, b in zip(full, accumulated)))

# %% [markdown]
# **The $1/K$ rule assumes equal micro-batches.** With sequences, the loss is usually a mean over the *real*
# tokens (padding is ignored with the label -100). Then micro-batches hold different numbers of real tokens,
# and the mean of their means is not the mean over all tokens: dividing by $K$ is no longer exact. The fix is to
# sum the token losses of each micro-batch and divide by the number of real tokens in the **whole** batch,
# counted before the first micro-batch. A toy language model on four padded sequences of 8, 7, 2 and 1 tokens,
# in two micro-batches:

# %%
import torch.nn.functional as F

toy = nn.Sequential(nn.Embedding(11, 16), nn.Linear(16, 11))
tokens = torch.randint(1, 11, (4, 8), generator=torch.Generator().manual_seed(0))
lengths = torch.tensor([8, 7, 2, 1])
targets = tokens.masked_fill(torch.arange(8)[None] >= lengths[:, None], -100)  # -100: padding, ignored
micro = list(zip(tokens.chunk(2), targets.chunk(2)))
n_real = int((targets != -100).sum())


def toy_grad(loss):
    toy.zero_grad()
    loss().backward()
    return torch.cat([p.grad.flatten() for p in toy.parameters()])


big = toy_grad(lambda: F.cross_entropy(toy(tokens).flatten(0, 1), targets.flatten()))  # mean over real tokens
for name, loss in [
    ("token mean per micro-batch, / K", lambda: sum(F.cross_entropy(toy(x).flatten(0, 1), t.flatten()) / len(micro)
                                                     for x, t in micro)),
    (f"token sum / {n_real} real tokens", lambda: sum(F.cross_entropy(toy(x).flatten(0, 1), t.flatten(),
                                                                      reduction="sum") / n_real for x, t in micro)),
]:
    g = toy_grad(loss)
    print(f"{name:<33} gradient off by {(g - big).norm() / big.norm():7.2%} of its norm")

# %% [markdown]
# **Mixed precision you can see on a CPU.** fp16 keeps 10 bits of mantissa and 5 of exponent: its smallest
# positive number is about $6 \cdot 10^{-8}$ and its largest 65,504. bf16 keeps fp32's 8 exponent bits (and only 7
# of mantissa), so it has fp32's range with less precision:

# %%
for value in (1e-3, 1e-5, 6e-8, 1e-8, 1e5):
    t = torch.tensor(value)
    print(f"{value:8.0e}:  fp16 {t.half().item():10.3e}   bf16 {t.bfloat16().item():10.3e}")

# %% [markdown]
# A gradient of $10^{-8}$ is lost in fp16. Multiplying the loss by $s = 2^{16}$ multiplies every gradient by $s$
# (the chain rule is linear), which lifts it into fp16's range; dividing by $s$ afterwards, in fp32, gives it back.
# CPU autocast runs matrix multiplications in fp16 too, so this can be measured: a small network with a tiny loss,
# its gradients computed under fp16 autocast with and without scaling, against fp32:

# %%
def fresh_mlp():
    """The same small network and data every call (seed 0)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1)), torch.randn(32, 16), torch.randn(32, 1)


def mlp_grads(scale, dtype):
    net, xs, ys = fresh_mlp()
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = net(xs)
    (scale * 1e-6 * F.mse_loss(out.float(), ys)).backward()
    return torch.cat([p.grad.flatten() / scale for p in net.parameters()])


exact = mlp_grads(1.0, None)
for name, scale, dtype in [("fp16, no scaling", 1.0, torch.float16), ("fp16, loss x 2^16", 2.0**16, torch.float16),
                           ("bf16, no scaling", 1.0, torch.bfloat16)]:
    g = mlp_grads(scale, dtype)
    print(f"{name:<18} entries that became 0: {(g == 0).float().mean():6.1%}   "
          f"error: {(g - exact).norm() / exact.norm():.1e} of the norm")

# %% [markdown]
# Without scaling, the first line shows most small gradient entries flushed to exactly 0 in fp16 (the large ones
# survive, so the loss still falls, only more slowly and with a biased gradient); with the loss scaled they come
# back, to about fp16's precision. bf16 needs no scaling; it pays with fewer mantissa bits instead.
#
# Too large a scale overflows instead: a gradient above 65,504 becomes `inf`. `torch.amp.GradScaler` finds the
# scale by itself: it starts high; when the unscaled gradients contain `inf` or `nan` it **skips** the optimizer
# step (the weights do not change) and halves the scale; after `growth_interval` good steps in a row it doubles it.
# For real, on the CPU, with fp16 autocast, a start at $2^{24}$ and growth every 4 steps:

# %%
net, xs, ys = fresh_mlp()
sgd = torch.optim.SGD(net.parameters(), lr=0.01)
scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24, growth_interval=4)
skipped = 0
for step in range(16):
    sgd.zero_grad()
    with torch.autocast("cpu", dtype=torch.float16):
        out = net(xs)
    loss = F.mse_loss(out.float(), ys)
    scale, before = scaler.get_scale(), net[0].weight.detach().clone()
    scaler.scale(loss).backward()
    scaler.step(sgd)  # unscales, checks for inf/nan, steps only if there is none
    scaler.update()
    moved = not torch.equal(before, net[0].weight)
    skipped += not moved
    print(f"step {step:2d}  scale {scale:>10,.0f} -> {scaler.get_scale():>10,.0f}  "
          f"{'applied' if moved else 'skipped'}  loss {loss.item():.4f}")
print(f"{skipped} of 16 steps skipped")

# %% [markdown]
# ### Exercise 1.1: A training step with accumulation, mixed precision and clipping
#
# Write `train_step(model, micro_batches, optimizer, scaler, dtype, max_norm)`. `micro_batches` is a list of
# `(x, y)` pairs; use the cross-entropy of `model(x)` against `y`. In order:
# 1. zero the gradients once;
# 2. for each micro-batch: compute the loss inside `autocast(device, dtype)` (given below; a no-op when
#    `dtype` is None), divide it by the number of micro-batches, and call `scaler.scale(loss).backward()`;
# 3. `scaler.unscale_(optimizer)`, then clip with `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)`;
# 4. `scaler.step(optimizer)` and `scaler.update()`.
#
# Return the mean loss over the micro-batches as a Python float (`loss.item()`), and leave `micro_batches`
# as they are. The check runs two steps in a row, so gradients left over from the first step show in the second.

# %%
from amla.toolkit.precision import autocast


def train_step(model, micro_batches, optimizer, scaler, dtype, max_norm):
    device = next(model.parameters()).device
    ### BEGIN SOLUTION
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for x, y in micro_batches:
        with autocast(device, dtype):
            loss = nn.functional.cross_entropy(model(x), y) / len(micro_batches)
        scaler.scale(loss).backward()
        total += loss.item()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    return total
    ### END SOLUTION


# %%
train_step = amla.checks.toolkit.check_train_step(train_step)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Learning-rate schedules: warmup, then cosine
#
# Adam's early steps are unreliable: its second-moment estimate $\hat v$ (bias correction already undoes the
# zero start) averages only a handful of gradients, so $\hat v$ is noisy and the step $m / \sqrt{\hat v}$ can be
# large in directions where a few gradients happened to be small. Large models are therefore trained with a short
# **linear warmup**, then a **cosine decay** that anneals to a small floor. With $W$ warmup
# steps, $T$ total steps and step $t$ counted from 0:
# $$
# \eta_t = \begin{cases}
#   \eta_{\max}\,\dfrac{t+1}{W} & t < W \\[6pt]
#   \eta_{\min} + \tfrac12(\eta_{\max}-\eta_{\min})\left(1+\cos\left(\pi\,\dfrac{t-W}{T-W}\right)\right) & W \le t < T \\[6pt]
#   \eta_{\min} & t \ge T
# \end{cases}
# $$
#
# ### Exercise 1.2: Warmup-cosine schedule
#
# Write `lr_at(step, max_lr, warmup, total, min_lr)` returning $\eta_t$ as a Python float (`math.cos`, not
# `torch.cos`). It must also work without warm-up ($W = 0$) and with $W = T$, where there is no cosine part.

# %%
import math


def lr_at(step, max_lr, warmup, total, min_lr):
    ### BEGIN SOLUTION
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))
    ### END SOLUTION


# %%
lr_at = amla.checks.toolkit.check_lr_schedule(lr_at)

# %% [markdown]
# Play with the knobs. A long warmup wastes steps at a tiny learning rate; a floor of 0 spends the last
# steps barely moving. The course Trainer uses this schedule with a floor of `lr / 10`, as nanoGPT does.
# (Without a live kernel you see the default setting as a picture.)

# %%
import ipywidgets as widgets

from amla.views import interactive, plot_lr_schedule


def draw_schedule(warmup, floor):
    return plot_lr_schedule(lambda s: lr_at(s, 1e-3, warmup, 1000, floor * 1e-3), steps=1100)


interactive(
    draw_schedule,
    warmup=widgets.IntSlider(value=50, min=1, max=400, step=10, description="warmup"),
    floor=widgets.FloatSlider(value=0.1, min=0.0, max=1.0, step=0.05, description="floor / max"),
)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checkpoints that resume exactly
#
# Long runs get interrupted: a closed laptop, a Colab session that times out. A checkpoint must hold
# **everything** that the rest of the run depends on, or the resumed run silently differs:
# - the model's weights, and the **optimizer state** (Adam's running moments);
# - the **schedule's position** and the **step** counter;
# - the **random-number state**, which decides the next batches and dropout masks
#   (`amla.toolkit.checkpoint.rng_state()` captures python's, numpy's and torch's; `set_rng_state` restores them).
#
# Two safety rules. **Write atomically**: save to a temporary file in the same folder, then `os.replace`
# it over the old one, so a crash mid-write never destroys the last good checkpoint. **Load with
# `weights_only=True`**: a plain `torch.load` unpickles arbitrary objects and can run code hidden in a file.
#
# ### Exercise 1.3: Save and load the complete training state
#
# `save_training_state(path, model, optimizer, scheduler, step)` writes one dict with all of the above,
# atomically, and changes nothing else (no `model.eval()`, no random numbers drawn: the run goes on after a
# save). `load_training_state(path, model, optimizer, scheduler)` restores it into fresh objects and returns the
# step to continue from, as an `int`.

# %%
import os

from amla.toolkit.checkpoint import rng_state, set_rng_state


def save_training_state(path, model, optimizer, scheduler, step):
    ### BEGIN SOLUTION
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "rng": rng_state(),
    }
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    ### END SOLUTION


def load_training_state(path, model, optimizer, scheduler):
    ### BEGIN SOLUTION
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["step"]
    ### END SOLUTION


# %%
save_training_state, load_training_state = amla.checks.toolkit.check_resume(save_training_state, load_training_state)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The course Trainer
#
# `amla.Trainer` is these three pieces plus bookkeeping, in about 400 readable lines
# (`utils/amla/toolkit/train.py`). Its own step and schedule, `amla.toolkit.train.train_step` and
# `amla.toolkit.train.warmup_cosine`, are the course's answers to Exercises 1.1 and 1.2, and `Trainer.save` /
# `Trainer.load` are Exercise 1.3 with a little more (section 8). It also evaluates every `eval_every` steps,
# keeps a history, measures throughput, shows a progress bar, and calls *callbacks*, such as the live
# `Dashboard` below, which redraws one picture in place.
#
# Here it trains with **yours**: `step_fn=train_step, lr_fn=lr_at` hand it the functions your checks returned,
# so the model below is trained by your own step and your own schedule; while an exercise is not done, the
# course's reference stands in for it (the first line printed says which). The model: a multi-layer perceptron
# with GELU activations and dropout. Validation accuracy is what we watch; the test set waits until the end.

# %%
from amla.views import Dashboard


def make_mlp(hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, hidden), nn.GELU(), nn.Dropout(0.2),
        nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(0.2),
        nn.Linear(hidden, 10),
    )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x.to(device)).argmax(dim=1).cpu() == y).float().mean().item()


def validate(model: nn.Module) -> dict[str, float]:
    logits = model(x_val.to(device)).cpu()
    return {"val_loss": nn.functional.cross_entropy(logits, y_val).item(), "val_acc": accuracy(model, x_val, y_val)}


config = amla.TrainConfig(
    max_steps=S.steps, batch_size=64, lr=3e-3, warmup_steps=S.steps // 20, weight_decay=0.05,
    grad_clip=1.0, eval_every=S.eval_every,
)
whose = {ex: "yours" if amla.checks.yours(ex) else "the course's reference" for ex in ("1.1", "1.2")}
print(f"training with train_step: {whose['1.1']}, lr_at: {whose['1.2']}")
amla.seed_everything(0)
trainer = amla.Trainer(make_mlp(S.hidden), (x_train, y_train), config, step_fn=train_step, lr_fn=lr_at,
                       eval_fn=validate, callbacks=[Dashboard()], device=device)
history = trainer.fit()

# %% [markdown]
# Now, once, the test set:

# %%
model = trainer.model.eval()
with torch.no_grad():
    test_acc = accuracy(model, x_test, y_test)
steps_per_s = [r["samples_per_s"] for r in history.train]
print(f"test accuracy {test_acc:.2%} after {trainer.step} steps, "
      f"{history.train[-1]['elapsed_s']:.1f} s of training, median {sorted(steps_per_s)[len(steps_per_s) // 2]:,.0f} samples/s")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Interrupt and resume
#
# Press the stop button (or Ctrl-C) while `fit()` runs and the Trainer finishes the step in progress and
# returns: model and history stay at the last finished step, and `trainer.fit()` continues. To continue in a
# *new* process, the state has to go to disk, and that is your Exercise 1.3.
#
# Below, a callback sends the same signal as the stop button halfway through. **Your** `save_training_state`
# writes the interrupted run to a file; a brand-new Trainer, started from another random state as a new
# process would be, gets it back with **your** `load_training_state` and finishes. We compare it with a run
# that was never interrupted (all three train with your step and schedule, as above).

# %%
import signal
import tempfile

from amla import Callback


class PressStopAt(Callback):
    """Sends SIGINT, exactly what Jupyter's stop button does, after a given step."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer, record):
        if trainer.step == self.step:
            signal.raise_signal(signal.SIGINT)


def digits_trainer(**kwargs):
    config = amla.TrainConfig(max_steps=S.resume_steps, batch_size=64, lr=3e-3, warmup_steps=10, progress=False)
    return amla.Trainer(make_mlp(S.hidden), (x_train, y_train), config, step_fn=train_step, lr_fn=lr_at,
                        device=device, **kwargs)


amla.seed_everything(1)
uninterrupted = digits_trainer()
uninterrupted.fit()

amla.seed_everything(1)
first_half = digits_trainer(callbacks=[PressStopAt(S.resume_steps // 2)])
first_half.fit()
path = os.path.join(tempfile.mkdtemp(), "digits.pt")
save_training_state(path, first_half.model, first_half.optimizer, first_half.scheduler, first_half.step)

amla.seed_everything(123)  # a new process would start from some other random state
resumed = digits_trainer()
resumed.step = load_training_state(path, resumed.model, resumed.optimizer, resumed.scheduler)
resumed.fit()

identical = all(torch.equal(a, b) for a, b in zip(uninterrupted.model.state_dict().values(),
                                                   resumed.model.state_dict().values()))
print(f"resumed at step {first_half.step} of {S.resume_steps}; the resumed history holds "
      f"{len(resumed.history.train)} steps, the uninterrupted one {len(uninterrupted.history.train)}")
print("resumed run identical to the uninterrupted one:", identical)

# %% [markdown]
# Your two functions are enough for a bit-identical model because the Trainer's batch order needs no saving:
# batch $m$ is a function of the seed and $m$ only, so the resumed run draws exactly the batches the
# uninterrupted one drew, and the random state you saved gives it the same dropout masks. The Trainer's own
# checkpoint (`TrainConfig(checkpoint_path=...)`, written on Ctrl-C, every `checkpoint_every` steps and at the
# end; a new process continues with `amla.Trainer(...).load(path).fit()`) stores the same five pieces and
# three more: the **history**, so the curves and `history.last(...)` continue instead of starting over (see the
# step counts printed above); the **GradScaler**'s state, whose loss scale matters when a GPU trains in fp16;
# and the config it ran with.

# %% [markdown]
# The hour's numbers, collected by `amla bench 01` (the cpu target: test accuracy at least 97 %, and a resumed
# run identical to an uninterrupted one):

# %%
amla.report(
    test_accuracy=test_acc,
    val_accuracy=history.last("val_acc"),
    resume_identical=identical,
    steps=trainer.step,
    train_s=history.train[-1]["elapsed_s"],
    samples_per_s=sorted(steps_per_s)[len(steps_per_s) // 2],
)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Reading the curves
#
# The dashboard's final picture stays in the notebook; `plot_history` draws the same figure from any
# history. Training loss (faint: per step; solid: moving average) should fall while the validation loss
# follows; a validation loss that turns upward while training loss keeps falling is **overfitting**.

# %%
from amla.views import plot_history

plot_history(history)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. With gradient accumulation over $K$ micro-batches, what goes wrong if you forget to divide the loss by $K$,
#    and why does Adam partly hide the mistake while SGD does not?
# 2. Why must gradient clipping come after `scaler.unscale_` and not before?
# 3. Your checkpoint stores the model and the optimizer but not the RNG state. Is the resumed run wrong, or only
#    different? When would you care?
# 4. Why does the schedule start warmup at $(t+1)/W$ rather than $t/W$?
# 5. The test set was used once. What would go wrong if you picked the number of steps by the test accuracy?

# %% [markdown] tags=["answer"]
# 1. The accumulated gradient is $K$ times the mean gradient. With SGD that is a learning rate $K$ times too
#    large. Adam divides the update by the running root-mean-square of the gradients, so a constant factor
#    mostly cancels; but it still interacts with `eps` (which becomes relatively $K$ times smaller) and, above
#    all, with clipping, which then clips much more often. With AdamW's decoupled weight decay $K$ does not touch the
#    decay at all: the decay $\eta \lambda \theta$ is applied to the weights directly, outside the gradient.
# 2. Before unscaling, the gradients are multiplied by the loss scale $s$ (often $2^{16}$): the norm is $s$ times
#    too large, so the threshold clips almost every step, by the wrong amount.
# 3. Not wrong, since it is still a valid training run, but different: other batches and dropout masks. You care
#    when you debug (a crash you cannot reproduce), when you compare two changes, and when you promise
#    reproducible results.
# 4. With $t/W$ the first step has learning rate 0 and wastes a step (and a batch); $(t+1)/W$ reaches
#    $\eta_{\max}$ exactly at the last warmup step.
# 5. The test accuracy would be chosen as the maximum over many noisy looks, so it would overestimate the accuracy
#    on new data. Pick with the validation set; report the test set once.

# %% [markdown]
# **Next hour:** attention from first principles, where every model from then on gets its name.
