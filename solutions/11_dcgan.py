# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=11, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 11: DCGAN and conditional GANs
#
# Hour 10 played the adversarial game in two dimensions with two small MLPs. Images need networks that know
# about space: the **DCGAN** recipe (Radford, Metz and Chintala, 2016) replaces the MLPs by a generator made of
# **transposed convolutions** and a convolutional discriminator, with BatchNorm, a particular initialisation and
# Adam(2e-4, beta1 = 0.5). Then we tell both players which digit to make: a **conditional GAN**.
#
# **By the end of this hour you can**
# - compute the output size of a transposed convolution and show where its **checkerboard artefact** comes from;
# - say how **BatchNorm** must be used in a GAN (real and fake in *separate* batches) and measure what mixing does;
# - build and train a DCGAN on digits, written as an open two-player loop, with a live dashboard;
# - condition both players on the class: a **label embedding** in the generator, a **projection discriminator**;
# - walk the latent space with **linear and spherical interpolation**, and say why linear cuts through latents
#   the generator never saw;
# - measure the **truncation trade-off**: sharper, more recognisable samples against less diversity;
# - check the result with an independent judge: a classifier trained on held-out real digits must recognise
#   the requested class in **at least 90 %** of the conditional samples, for every class.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `slerp = amla.checks.dcgan.check_slerp(slerp)`. The check runs your function on ordinary and edge inputs against
# the course's reference (values, dtype, gradients, and whether your inputs were left alone):
# - right: the check returns your function, and **the rest of the hour runs on your code**: the conditional
#   discriminator is built with your `projection_logits`, the interpolations use your `slerp`;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook, measured with `amla run`/`amla bench 11` on this 2-core CPU, which other jobs
# often share): smoke profile 14 s; cpu profile 182 s on a quiet machine (160 s of them training the two GANs:
# 500 unconditional steps, 3,000 conditional steps at 21 steps/s, 1,340 images/s, batch 64). While three other
# jobs shared the machine, the same notebook with a third of the conditional steps took 581 s (2.5 steps/s), so
# expect large swings. The judge is trained once (800 steps, about 2 minutes on a busy machine) and then loaded
# from the cache. The `gpu` profile trains wider networks for more steps.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The data, and an independent judge
#
# The cpu and gpu profiles use MNIST's **test set** (10,000 digits of 28x28; the course's data directory holds a
# sha256-verified copy, downloaded there when online), split once, stratified by class, into a **GAN part** the
# GANs train on and a **held-out part**. When MNIST is not available, scikit-learn's 8x8 digits stand in (the
# smoke profile uses them to stay fast). The next cell says which data this run used.
#
# A GAN's samples cannot be scored by its own discriminator. The judge is a small CNN, `DigitClassifier`,
# trained on the **held-out part only**; its accuracy is measured on the GAN part, real digits it never saw.
# It never sees a generated image, so when it says "this is a 7", that is an independent opinion. It is trained
# once (`classifier_for`, deterministic from its seed) and its weights cached, so Hour 12 loads the same judge.

# %%
import math
import time

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from amla.gan.dcgan import (Discriminator, Generator, class_latents, count_parameters, interpolation_path, lerp,
                            truncated_normal)
from amla.gan.images import classifier_for, digit_images, per_class_accuracy, predict
from amla.gan.losses import d_loss, g_loss_nonsaturating
from amla.views import Dashboard
from amla.views.gallery import SampleGallery, image_grid, snapshot

S = amla.per_profile(
    smoke=dict(source="digits8x8", clf_steps=20, width=8, batch=32, vanilla_steps=6, cond_steps=8, label_dim=10,
               mismatch=1.0, mode_seeking=10.0, per_class=20, snap_every=8, z_dim=32, n_real=300,
               draw_every_s=60.0),
    cpu=dict(source="auto", clf_steps=800, width=16, batch=64, vanilla_steps=500, cond_steps=3000,
             label_dim=10, mismatch=1.0, mode_seeking=10.0, per_class=100, snap_every=100, z_dim=64, n_real=None,
             draw_every_s=5.0),
    gpu=dict(source="auto", clf_steps=800, width=64, batch=128, vanilla_steps=2000, cond_steps=5000, label_dim=10,
             mismatch=1.0, mode_seeking=10.0, per_class=500, snap_every=250, z_dim=64, n_real=None,
             draw_every_s=2.0),
)
print(amla.profile(), S)

data = digit_images(S.source, seed=0)
print(data.describe())
H = data.size
real_x, real_y = data.gan_x[:S.n_real], data.gan_y[:S.n_real]  # smoke: a few hundred images only

# %%
clock = time.perf_counter()
judge = classifier_for(data, steps=S.clf_steps, device=device)  # trained once, then loaded (Hour 12 uses it too)
judge_s = time.perf_counter() - clock
judge_per_class = per_class_accuracy(judge, real_x, real_y)
judge_acc = float((predict(judge, real_x) == real_y).double().mean())
judge_target = 0.98 if data.name == "mnist" else 0.97
print(f"the judge ({S.clf_steps} training steps on {len(data.held_x):,} held-out digits) was ready in {judge_s:.1f} s")
print(f"its accuracy on {len(real_x):,} real digits it never saw: {judge_acc:.2%} (target >= {judge_target:.0%})")
print("per class:", " ".join(f"{c}: {a:.1%}" for c, a in enumerate(judge_per_class)))

# %%
fig = Figure(figsize=(9, 1.3))
axes = fig.subplots(1, 1)
axes.imshow(image_grid(real_x[:20], 20), cmap="gray_r", vmin=0, vmax=1)
axes.set_title(f"real digits of the GAN part ({data.name}); their classes: "
               + " ".join(str(int(c)) for c in real_y[:20]), fontsize=9)
axes.axis("off")
fig

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Transposed convolutions, and the checkerboard
#
# A generator must go *up* in resolution: from a small map of features to a 28x28 image. A **transposed
# convolution** with stride $s$ does the reverse bookkeeping of a strided convolution: each input pixel stamps a
# $k \times k$ copy of the kernel, scaled by its value, into the output, and the stamps of neighbouring pixels sit
# $s$ apart, overlapping where $k > s$. An input of size $n$ gives an output of size
# $$ n_\text{out} = (n - 1)\,s - 2p + k + \text{output\_padding}. $$
# With $k = 4, s = 2, p = 1$: $n_\text{out} = 2n$, so $7 \to 14 \to 28$, the generator of this hour.
#
# When $k$ is **not divisible by** $s$, output pixels are covered by different numbers of stamps: with
# $k = 3, s = 2$, every other output pixel gets two stamps and the rest one or four. Even on a perfectly constant
# input the output is a **checkerboard** (Odena, Dumoulin and Olah, 2016, "Deconvolution and checkerboard
# artifacts"). $k = 4, s = 2$ covers every interior pixel equally; so does **resize-convolution** (nearest-neighbour
# upsampling, then an ordinary convolution). Below, all three act on a constant input with all-ones kernels:

# %%
def constant_response(layer: nn.Module, n: int = 8) -> torch.Tensor:
    """The layer's output on a constant input [1, 1, n, n], with every weight 1 and no bias."""
    with torch.no_grad():
        for p in layer.parameters():
            p.fill_(1.0) if p.dim() > 1 else p.zero_()
        return layer(torch.ones(1, 1, n, n))[0, 0]


layers = {
    "ConvTranspose k=3, s=2": nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1),
    "ConvTranspose k=4, s=2": nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1),
    "resize (nearest x2) + conv k=3": nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                    nn.Conv2d(1, 1, 3, padding=1)),
}
responses = {name: constant_response(layer) for name, layer in layers.items()}
checker = {}
for name, out in responses.items():
    inner = out[2:-2, 2:-2]  # away from the borders, where padding changes the count anyway
    checker[name] = float(inner.max() / inner.min())
    print(f"{name:32s} output {tuple(out.shape)}, interior max / min = {checker[name]:.2f}")

fig = Figure(figsize=(9, 3))
for ax, (name, out) in zip(fig.subplots(1, 3), responses.items()):
    ax.imshow(out, cmap="viridis")
    ax.set_title(f"{name}\ninterior max/min {checker[name]:.2f}", fontsize=8)
    ax.axis("off")
fig

# %% [markdown]
# The stride-2, kernel-3 layer produces a 4 : 2 : 1 pattern from a flat input; a trained network has to spend
# effort cancelling it, and often leaves a faint grid in its samples. This hour's generator uses $k = 4, s = 2$.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The DCGAN recipe
#
# Radford et al. found a set of rules that made convolutional GANs train reliably:
# - no pooling: the generator goes up with stride-2 **transposed** convolutions, the discriminator down with
#   stride-2 convolutions;
# - **BatchNorm** in both (not on the generator's output nor on the discriminator's input layer);
# - ReLU in the generator, **tanh** on its output (images live in $[-1, 1]$), **LeakyReLU(0.2)** in the
#   discriminator;
# - weights from $\mathcal{N}(0, 0.02)$, BatchNorm gains from $\mathcal{N}(1, 0.02)$, biases 0;
# - **Adam with learning rate $2 \cdot 10^{-4}$ and $\beta_1 = 0.5$** (the default 0.9 keeps too much momentum
#   in a game whose targets move).
#
# `amla.gan.dcgan` holds a small version for digits: the generator maps $z \in \mathbb{R}^{64}$ to a
# $[2w, 7, 7]$ map (linear layer, BN, ReLU), then two $k = 4, s = 2$ transposed convolutions; the discriminator is
# the mirror image. Both apply `dcgan_init_` in their constructor:

# %%
G0, D0 = Generator(S.z_dim, H, S.width), Discriminator(H, S.width)
print(G0)
print(f"generator {count_parameters(G0):,} parameters, discriminator {count_parameters(D0):,}")
for name, module in [("G.up1 (ConvTranspose)", G0.up1), ("G.bn1 (BatchNorm)", G0.bn1), ("D.conv2", D0.conv2)]:
    print(f"{name:22s} weight mean {module.weight.mean():+.4f}, std {module.weight.std():.4f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. BatchNorm in a GAN: real and fake in separate batches
#
# In training mode BatchNorm normalises each feature with the **mean and variance of the current batch**, so a
# sample's output depends on the rest of its batch. The DCGAN rule: the discriminator sees a batch of only real
# images and, separately, a batch of only generated ones. The reason: in the generator's step, D scores a batch of
# fakes **alone**. If D was trained on **mixed** batches, its features were normalised by real-and-fake statistics,
# and the function the generator is trained against is not the one the discriminator learned: the logits of the
# very same fakes change with the company they are in. Measured on a freshly initialised pair:

# %%
with torch.random.fork_rng():
    torch.manual_seed(1)
    Gb, Db = Generator(S.z_dim, H, S.width).train(), Discriminator(H, S.width).train()
    reals = real_x[torch.randperm(len(real_x))[:S.batch]]
    with torch.no_grad():
        fakes = Gb(torch.randn(S.batch, S.z_dim))
        alone = Db(fakes)  # what the generator's step sees
        mixed = Db(torch.cat([reals, fakes]))[S.batch:]  # what a mixed-batch discriminator step sees
        other = Db(torch.cat([real_x[torch.randperm(len(real_x))[:S.batch]], fakes]))[S.batch:]
bn_mixed_gap = float((alone - mixed).abs().mean())
bn_company_gap = float((mixed - other).abs().mean())
print(f"the same {S.batch} fakes: mean |logit alone - logit in a mixed batch| = {bn_mixed_gap:.3f} "
      f"(logits spread {float(alone.std()):.3f})")
print(f"the same fakes in two mixed batches with different real images: mean change {bn_company_gap:.4f}")
print(f"the gap is {bn_mixed_gap / float(alone.std()):.1f} times the spread of the logits; separate batches: D's "
      "step and G's step both score all-fake batches, so the two see the same function")

# %% [markdown]
# The gap between "alone" and "mixed" is printed above next to the spread of the logits themselves: when it is of
# the same order, a discriminator trained on mixed batches tells the generator about a different game than the one
# it is playing. Its verdict on a fake
# also depends on which real images happened to share its batch, an extra signal D can exploit (and G cannot
# control). With separate batches neither happens. (At sampling time we switch the generator to `eval()`, so
# BatchNorm uses its running averages and a sample no longer depends on its batch.)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. The two-player loop, written out
#
# One step, as in Hour 10, on images now: the discriminator's step on a real batch and a fake batch (the fakes
# `detach`ed, so no gradient reaches G), then the generator's step with the non-saturating loss,
# $$ L_D = -\mathbb{E}\log D(x) - \mathbb{E}\log(1 - D(G(z))), \qquad L_G = -\mathbb{E} \log D(G(z)), $$
# both written on logits (`amla.gan.losses`, from Hour 10). The same loop trains the unconditional and the
# conditional model: with `conditional=True` both players also get the labels (real images their own, fakes
# labels drawn uniformly, the same ones in both halves of the batch), plus the two remedies of Section 6 (the
# `mismatch` and `mode_seeking` branches). Both learning rates fall linearly to 0 over the run. Every
# `snap_every` steps it draws the generator's samples on a **fixed** set of latents, for the gallery of
# Section 9, and asks the judge how many are recognised.

# %%
def train_gan(G: nn.Module, D: nn.Module, steps: int, conditional: bool, fixed_z: torch.Tensor,
              fixed_y: torch.Tensor | None, title: str, mismatch: float = 0.0, mode_seeking: float = 0.0) -> dict:
    """Train G and D with the DCGAN recipe for ``steps`` steps; returns snapshots and timings.
    Conditional only (Section 6): ``mismatch`` weighs the matching-aware term of D's loss (real images with wrong
    labels), ``mode_seeking`` MSGAN's diversity term in G's loss."""
    G, D = G.to(device).train(), D.to(device).train()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    # both learning rates fall linearly to 0 over the run (it steadies the end of the game)
    schedules = [torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / steps) for opt in (opt_g, opt_d)]
    data_x, data_y = real_x.to(device), real_y.to(device)
    batch = S.batch
    half = batch // 2
    snaps, recognised = {0: snapshot(G, fixed_z, fixed_y)}, {}
    dash = Dashboard(every_s=S.draw_every_s)
    dash.start(steps)
    train_s, clock = 0.0, time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(data_x), (batch,), device=device)
        real, y_real = data_x[idx], (data_y[idx] if conditional else None)
        z = torch.randn(batch, S.z_dim, device=device)
        y_fake = torch.randint(0, 10, (batch,), device=device) if conditional else None
        if conditional:
            y_fake[half:] = y_fake[:half]  # the two halves ask for the same classes (for the mode-seeking term)
        fake = G(z, y_fake)

        # the discriminator's step: a batch of real images, then a separate batch of fakes
        loss_d = d_loss(D(real, y_real), D(fake.detach(), y_fake))
        if conditional and mismatch > 0:
            # matching-aware D (Section 6): a real image with a wrong label must be called fake too
            y_wrong = (y_real + torch.randint(1, 10, (batch,), device=device)) % 10
            loss_d = loss_d + mismatch * F.softplus(D(real, y_wrong)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # the generator's step: make D call the fakes real
        loss_g = g_loss_nonsaturating(D(fake, y_fake))
        if conditional and mode_seeking > 0:
            # mode seeking (MSGAN): same labels, different z -> reward different images
            ratio = (fake[:half] - fake[half:]).abs().mean((1, 2, 3)) / (z[:half] - z[half:]).abs().mean(1)
            loss_g = loss_g - mode_seeking * ratio.mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for schedule in schedules:
            schedule.step()

        dash.log(step, d_loss=loss_d.item(), g_loss=loss_g.item())
        if step % S.snap_every == 0 or step == steps:
            train_s += time.perf_counter() - clock
            snaps[step] = snapshot(G, fixed_z, fixed_y)
            if fixed_y is not None:
                recognised[step] = float((predict(judge, snaps[step]) == fixed_y).double().mean())
                dash.log_eval(step, recognised=recognised[step])
            clock = time.perf_counter()
    train_s += time.perf_counter() - clock
    dash.finish()
    print(f"{title}: {steps} steps in {train_s:.1f} s, {steps / train_s:.1f} steps/s, "
          f"{steps * batch / train_s:,.0f} images/s")
    return dict(snaps=snaps, recognised=recognised, train_s=train_s, steps=steps)


# %% [markdown]
# First the plain DCGAN, unconditional: it learns to draw digits, but which digit comes out is up to $z$.

# %%
amla.seed_everything(0)
grid_z = torch.randn(64, S.z_dim)
vanilla_G, vanilla_D = Generator(S.z_dim, H, S.width), Discriminator(H, S.width)
vanilla = train_gan(vanilla_G, vanilla_D, S.vanilla_steps, conditional=False, fixed_z=grid_z, fixed_y=None,
                    title="DCGAN")
vanilla_classes = torch.bincount(predict(judge, vanilla["snaps"][S.vanilla_steps]), minlength=10)
print("the judge's classes of the 64 fixed samples:", vanilla_classes.tolist())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Conditioning on the class
#
# A **conditional GAN** (Mirza and Osindero, 2014) gives both players the label $y$. The generator gets it as a
# learned **label embedding** $e_y \in \mathbb{R}^{10}$ concatenated to $z \in \mathbb{R}^{64}$; $G(z, y)$ should
# be a $y$. The
# discriminator must judge "a real image **of class y**". Concatenating the label to its input works; the
# **projection discriminator** (Miyato and Koyama, 2018) does better with fewer parameters. With $h = \phi(x)$
# the features of the last layer,
# $$ D(x, y) = \underbrace{w^\top h + b}_{\text{is it a real digit?}} + \underbrace{\langle e_y, h \rangle}_{\text{is it a } y\text{?}}, $$
# one embedding vector $e_y$ per class, as long as $h$. It is what the optimal discriminator looks like when
# $p(y \mid x)$ is a softmax over the features: $\log p(y|x)$ contributes an inner product with a class vector.
#
# **Conditional GANs collapse easily.** The label tells G most of what D checks, so a cheap strategy for G is one
# convincing image per class, whatever $z$ says: **mode collapse within a class**. And D, which wins the realism
# contest early, has little reason to learn the class at all. Two remedies, both in `train_gan` above:
# - a **matching-aware discriminator** (Reed et al., 2016): D's loss also calls a *real* image with a *wrong*
#   label fake, $L_D \mathrel{+}= \lambda_{mm}\,\mathbb{E}\,\mathrm{softplus}(D(x, y'))$ with $y' \ne y$, so
#   the projection term must learn what each class looks like from the first step (the `mismatch` branch);
# - the **mode-seeking** term of MSGAN (Mao et al., 2019): two latents $z_1, z_2$ with the **same** label should
#   give different images, so the generator's loss gets a reward for the ratio
#   $$ L_G \leftarrow L_G - \lambda_{ms}\, \frac{\lVert G(z_1, y) - G(z_2, y)\rVert_1}{\lVert z_1 - z_2\rVert_1}, $$
#   computed on the two halves of each fake batch, which ask for the same classes (the paper minimises the
#   inverse ratio; both push the same way; the `mode_seeking` branch).
#
# Measured on this machine (MNIST, width 16, batch 64; recognition by the judge over 100 samples per class,
# diversity = mean distance between the judge's features of two samples of one class, real digits 19.2):
#
# | recipe | steps | recognised, mean / worst class | diversity |
# |---|---|---|---|
# | 64-d label embedding (as long as $z$) | 400 | 70 % / 0 % | 0.8 (collapsed) |
# | 10-d label embedding + mode seeking ($\lambda_{ms} = 1$) | 600 | 50 % / 19 % | 17.6 |
# | 10-d embedding + matching-aware D | 400 | 100 % / 100 % | 3.8 (collapsed) |
# | 10-d embedding + matching-aware D + mode seeking ($\lambda_{ms} = 10$) | 800 | 94 % / 84 % | 16.6 |
# | the same, 1000 steps | 1000 | 96 % / 91 % | 17.2 |
# | the same, learning rates falling linearly to 0 | 1000 | 98 % / 93 % | 12.6 |
#
# The last row is the recipe of this hour (steadier classes, somewhat less variety at 1,000 steps; the cpu profile
# trains it for 3,000); Section 7 measures this run's numbers.

# %% [markdown]
# ### Exercise 11.1: The projection discriminator
#
# Write `projection_logits(h, y, embed, linear)`: `h` features `[N, F]`, `y` classes `[N]` (long), `embed` an
# `nn.Embedding(C, F)`, `linear` an `nn.Linear(F, 1)`. Return one logit per sample, shape `[N]`:
# `linear(h)` plus the inner product of each sample's class embedding with its features. The conditional
# discriminator below is built with the function your check returns.

# %%
def projection_logits(h, y, embed, linear):
    ### BEGIN SOLUTION
    return linear(h).squeeze(-1) + (embed(y) * h).sum(dim=-1)
    ### END SOLUTION


# %%
projection_logits = amla.checks.dcgan.check_projection_logits(projection_logits)

# %% [markdown]
# The conditional pair: `Discriminator(..., n_classes=10, projection=projection_logits)` calls **your** function
# in every forward pass. The gallery's fixed latents are 10 latents shared by all classes (column $j$ is the same
# $z$ in every row), so the grid shows **style** along a row and **class** down a column. The judge scores a
# separate, larger set: `per_class` fresh latents for each class.

# %%
amla.seed_everything(0)
gallery_z, gallery_y = class_latents(10, 10, S.z_dim, seed=1)
cond_G = Generator(S.z_dim, H, S.width, n_classes=10, label_dim=S.label_dim)
cond_D = Discriminator(H, S.width, n_classes=10, projection=projection_logits)
print(f"projection by {'your' if amla.checks.yours('11.1') else 'the reference'} projection_logits; "
      f"generator {count_parameters(cond_G):,} parameters, discriminator {count_parameters(cond_D):,}")
cond = train_gan(cond_G, cond_D, S.cond_steps, conditional=True, fixed_z=gallery_z, fixed_y=gallery_y,
                 title="conditional DCGAN", mismatch=S.mismatch, mode_seeking=S.mode_seeking)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Does it draw the digit we asked for?
#
# The target: of `per_class` samples per class (fresh latents), the judge must recognise the requested class in
# **at least 90 %**, for **every** class. We also measure the **diversity** of each class, next to the same
# number for real digits (a generator that draws one perfect "3" for every $z$ would pass the first test and
# fail this one): the mean distance between the judge's 128-d features of two samples of the same class
# (features, not pixels: two "3"s shifted by a pixel differ a lot pixel by pixel, little in the judge's eyes),
# and, as a second opinion, the mean per-pixel standard deviation within a class.

# %%
def class_samples(G: nn.Module, per_class: int, threshold: float = math.inf, seed: int = 2) -> tuple:
    g = torch.Generator().manual_seed(seed)
    z = truncated_normal(10 * per_class, S.z_dim, threshold, generator=g)
    y = torch.arange(10).repeat_interleave(per_class)
    return snapshot(G, z, y), y


def diversity(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over classes of the mean distance between the judge's features of two images of that class."""
    with torch.no_grad():
        f = torch.cat([judge.features(x[i:i + 1000].to(device)).cpu() for i in range(0, len(x), 1000)])
    return float(torch.stack([torch.pdist(f[y == c]).mean() for c in range(10)]).mean())


def pixel_spread(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over classes of the per-pixel standard deviation of that class's images."""
    return float(torch.stack([x[y == c].flatten(1).std(0).mean() for c in range(10)]).mean())


samples, sample_y = class_samples(cond_G, S.per_class)
said = predict(judge, samples)
recognition = [float((said[sample_y == c] == c).double().mean()) for c in range(10)]
recognition_mean = sum(recognition) / 10
real_diversity = diversity(real_x, real_y)
fake_diversity = diversity(samples, sample_y)
real_pixel_spread, fake_pixel_spread = pixel_spread(real_x, real_y), pixel_spread(samples, sample_y)
print(f"recognised as the requested class ({S.per_class} samples per class, judged by a classifier that never saw a "
      f"generated digit):")
print("  " + "  ".join(f"{c}: {r:.1%}" for c, r in enumerate(recognition)))
print(f"  mean {recognition_mean:.1%}, worst class {min(recognition):.1%} (target: every class >= 90 %)")
print(f"diversity within a class (judge's features): generated {fake_diversity:.2f}, real {real_diversity:.2f} "
      f"(ratio {fake_diversity / real_diversity:.2f})")
print(f"per-pixel spread within a class: generated {fake_pixel_spread:.3f}, real {real_pixel_spread:.3f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Latent interpolation: linear or spherical?
#
# Walking from $z_0$ to $z_1$ shows whether the generator learned a smooth map. The obvious path is **linear**,
# $(1-t) z_0 + t z_1$. But in 64 dimensions a standard normal latent has norm close to $\sqrt{64} = 8$ (the norms
# concentrate: almost none is below 6), and two random latents are almost orthogonal, so the midpoint of the
# linear path has norm about $8 / \sqrt 2 \approx 5.7$: a latent of a kind the generator **never saw** in training.
# **Spherical interpolation** (slerp; Shoemake, 1985, used for GANs by White, 2016) moves along the great circle:
# with $\omega$ the angle between $z_0$ and $z_1$,
# $$ \operatorname{slerp}(z_0, z_1; t) = \frac{\sin((1-t)\omega)}{\sin\omega}\, z_0 + \frac{\sin(t\omega)}{\sin\omega}\, z_1 . $$

# %% [markdown]
# ### Exercise 11.2: Spherical interpolation
#
# Write `slerp(z0, z1, t)` for latents `z0, z1` of shape `[..., D]` and `t` a float or a tensor of shape `[...]`
# (one fraction per row). When $\sin\omega$ is (nearly) 0, the vectors are parallel and the formula is $0/0$: return
# the linear interpolation there (the limit as $\omega \to 0$), e.g. with `torch.where`.

# %%
def slerp(z0, z1, t):
    ### BEGIN SOLUTION
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).unsqueeze(-1)
    cos = F.cosine_similarity(z0, z1, dim=-1).unsqueeze(-1).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    safe = torch.where(sin < 1e-6, torch.ones_like(sin), sin)
    spherical = torch.sin((1 - t) * omega) / safe * z0 + torch.sin(t * omega) / safe * z1
    return torch.where(sin < 1e-6, (1 - t) * z0 + t * z1, spherical)
    ### END SOLUTION


# %%
slerp = amla.checks.dcgan.check_slerp(slerp)

# %% [markdown]
# The norms along both paths between two random latents, over many pairs:

# %%
with torch.random.fork_rng():
    torch.manual_seed(3)
    z0s, z1s = torch.randn(500, S.z_dim), torch.randn(500, S.z_dim)
t_grid = torch.linspace(0, 1, 9)
lerp_norms = torch.stack([lerp(z0s, z1s, float(t)).norm(dim=-1).mean() for t in t_grid])
slerp_norms = torch.stack([slerp(z0s, z1s, float(t)).norm(dim=-1).mean() for t in t_grid])
typical = torch.randn(10000, S.z_dim).norm(dim=-1)
low = float(torch.quantile(typical, 0.001))
print(f"norm of a N(0, I) latent in {S.z_dim}-d: mean {typical.mean():.2f}, 0.1 % quantile {low:.2f}")
print(f"midpoint norm: linear {lerp_norms[4]:.2f}, spherical {slerp_norms[4]:.2f}")

fig = Figure(figsize=(5, 3))
ax = fig.subplots()
ax.plot(t_grid, lerp_norms, "o-", label="linear")
ax.plot(t_grid, slerp_norms, "s-", label="spherical (your slerp)" if amla.checks.yours("11.2") else "spherical")
ax.axhline(low, color="gray", ls=":", label="0.1 % of N(0, I) latents are shorter")
ax.set_xlabel("t")
ax.set_ylabel("mean |z|")
ax.legend(fontsize=8)
fig.tight_layout()
fig

# %% [markdown]
# Now through the trained conditional generator: for each class, one path between two fixed latents, linear on
# top and spherical below (on this small model the difference is often subtle; look at the middle of the strips):

# %%
with torch.random.fork_rng():
    torch.manual_seed(4)
    za, zb = torch.randn(S.z_dim), torch.randn(S.z_dim)
paths = {kind: interpolation_path(za, zb, 9, interpolate=fn) for kind, fn in (("lerp", lerp), ("slerp", slerp))}
strip = {kind: torch.stack([snapshot(cond_G, path, torch.full((9,), c)) for c in range(10)])
         for kind, path in paths.items()}  # [10 classes, 9 steps, 1, H, W]
fig = Figure(figsize=(9, 2.4))
for ax, kind in zip(fig.subplots(2, 1), ("lerp", "slerp")):
    ax.imshow(image_grid(strip[kind][:3].reshape(-1, 1, H, H), 9 * 3), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"{kind}: classes 0, 1, 2 along one path each", fontsize=8)
    ax.axis("off")
fig

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. The sample gallery
#
# The fixed latents, drawn at every saved step of the conditional run: move the **step** slider (or press play)
# to watch the digits form, pick a **class** to see only its row; the strip below is the spherical interpolation
# of the final model for that class. Outside a live notebook you see the picture of the last step.

# %%
gallery = SampleGallery(cond["snaps"], labels=gallery_y, classes=[str(c) for c in range(10)],
                        interpolation=strip["slerp"], title="conditional DCGAN", epoch_name="step")
gallery

# %% [markdown]
# The unconditional DCGAN of Section 5 in the same view (no class selector: its samples carry no label):

# %%
SampleGallery(vanilla["snaps"], ncols=16, title="DCGAN (unconditional)", epoch_name="step")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. The truncation trade-off
#
# The **truncation trick** (BigGAN; Brock, Donahue and Simonyan, 2019) samples $z$ from a normal distribution
# truncated at $\pm\tau$ (coordinates beyond it are redrawn). Small $\tau$ keeps every latent near the centre,
# where the generator is at its best: samples should get cleaner and more typical, but also **more alike**.
# Measured on the conditional generator: the judge's recognition and confidence, and the within-class diversity
# (the last line says whether this run shows the trade-off):

# %%
thresholds = [0.25, 0.5, 1.0, 1.5, 2.0, math.inf]
truncation = []
for tau in thresholds:
    x, yy = class_samples(cond_G, S.per_class, threshold=tau)
    with torch.no_grad():
        probs = torch.softmax(judge(x.to(device)), dim=1).cpu()
    truncation.append(dict(tau=tau, recognised=float((probs.argmax(1) == yy).double().mean()),
                           confidence=float(probs[torch.arange(len(yy)), yy].mean()), diversity=diversity(x, yy)))
    row = truncation[-1]
    print(f"tau {tau:>4}: recognised {row['recognised']:.1%}, confidence in the requested class "
          f"{row['confidence']:.3f}, diversity {row['diversity']:.2f}")
tight, loose = truncation[1], truncation[-1]
print(f"tau 0.5 against no truncation: confidence {tight['confidence']:.3f} vs {loose['confidence']:.3f} "
      f"({'higher' if tight['confidence'] > loose['confidence'] else 'NOT higher'}), diversity "
      f"{tight['diversity']:.2f} vs {loose['diversity']:.2f} "
      f"({'lower' if tight['diversity'] < loose['diversity'] else 'NOT lower'})")

fig = Figure(figsize=(8, 3))
ax1, ax2 = fig.subplots(1, 2)
xs = [min(r["tau"], 3.0) for r in truncation]
ax1.plot(xs, [r["confidence"] for r in truncation], "o-", label="confidence")
ax1.plot(xs, [r["recognised"] for r in truncation], "s-", label="recognised")
ax1.set_xlabel("truncation tau (3 = none)")
ax1.legend(fontsize=8)
ax2.plot(xs, [r["diversity"] for r in truncation], "o-", color="C2")
ax2.axhline(real_diversity, color="gray", ls=":", label="real digits")
ax2.set_xlabel("truncation tau (3 = none)")
ax2.set_ylabel("within-class diversity")
ax2.legend(fontsize=8)
fig.tight_layout()
fig

# %% [markdown]
# A checkpoint of the two conditional players, as any later hour could load them:

# %%
import tempfile
from pathlib import Path

from amla.toolkit.checkpoint import save_checkpoint

path = save_checkpoint(Path(tempfile.mkdtemp()) / "cond_dcgan.pt",
                       {"generator": cond_G.state_dict(), "discriminator": cond_D.state_dict(),
                        "z_dim": S.z_dim, "image_size": H, "width": S.width})
print(f"saved {path.name}: {path.stat().st_size / 1e6:.2f} MB")

# %% [markdown]
# The hour's numbers, collected by `amla bench 11`:

# %%
amla.report(
    data=data.name,
    judge_accuracy=judge_acc,
    judge_target_met=judge_acc >= judge_target,
    recognised_mean=recognition_mean,
    recognised_min=min(recognition),
    **{f"recognised_{c}": r for c, r in enumerate(recognition)},
    target_met=min(recognition) >= 0.90,
    diversity_generated=fake_diversity,
    diversity_real=real_diversity,
    diversity_ratio=fake_diversity / real_diversity,
    pixel_spread_generated=fake_pixel_spread,
    pixel_spread_real=real_pixel_spread,
    vanilla_train_s=vanilla["train_s"],
    cond_train_s=cond["train_s"],
    train_s=vanilla["train_s"] + cond["train_s"],
    cond_steps_per_s=cond["steps"] / cond["train_s"],
    cond_images_per_s=cond["steps"] * S.batch / cond["train_s"],
    judge_train_s=judge_s,
    bn_mixed_gap=bn_mixed_gap,
    checkerboard_k3s2=checker["ConvTranspose k=3, s=2"],
    checkerboard_k4s2=checker["ConvTranspose k=4, s=2"],
    truncation_confidence_0_5=truncation[1]["confidence"],
    truncation_diversity_0_5=truncation[1]["diversity"],
    truncation_confidence_none=truncation[-1]["confidence"],
    truncation_diversity_none=truncation[-1]["diversity"],
    midpoint_norm_lerp=float(lerp_norms[4]),
    midpoint_norm_slerp=float(slerp_norms[4]),
)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. A generator upsamples a 7x7 map with `ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)`. What
#    output size does it get, and what will a constant region of its output look like before training? Name two
#    ways to avoid it.
# 2. Why must the discriminator see real and generated images in separate batches when it uses BatchNorm? What
#    goes wrong in the generator's step otherwise?
# 3. Why does the DCGAN recipe use $\beta_1 = 0.5$ in Adam rather than the default 0.9?
# 4. The projection discriminator adds $\langle e_y, h\rangle$ to an unconditional score. What would happen to the
#    conditional samples if the projection term were left out, and if the unconditional term were left out?
# 5. The midpoint of a linear interpolation between two 64-d standard normal latents has norm about 5.7. Why is
#    that a problem for the generator, and why does slerp avoid it?
# 6. Truncation at $\tau = 0.5$ usually makes samples more recognisable. Why is it still a bad idea to report a GAN's
#    quality only at small $\tau$?
# 7. The judge recognises nearly every conditional sample. Name a failure of the generator this number cannot
#    detect, and how this hour measures it.

# %% [markdown] tags=["answer"]
# 1. $(7-1)\cdot 2 - 2 + 3 + 1 = 14$. Because $k = 3$ is not divisible by $s = 2$, output pixels receive different
#    numbers of kernel stamps (four, two or one in a regular pattern), so a constant input gives a checkerboard that
#    training must cancel. Use a kernel divisible by the stride ($k = 4, s = 2$), or resize-convolution (nearest
#    upsampling, then an ordinary convolution).
# 2. In training mode BatchNorm normalises with the batch's statistics. The generator's step scores a batch of
#    fakes alone; a discriminator trained on mixed batches normalised them with real-and-fake statistics, so the
#    generator gets the gradient of a different function than the one D learned (Section 4 measured the gap), and
#    D's verdict on a fake also depends on which real images shared its batch, a signal unrelated to the fake
#    itself. Separate batches make both steps see all-fake batches.
# 3. The game's targets move: each player's gradient changes as soon as the other updates. A large momentum keeps
#    pushing in directions that were right several steps ago, which makes the two players oscillate; 0.5 forgets
#    faster. (Radford et al. report that 0.9 made training oscillate and unstable.)
# 4. Without the projection term D ignores the label, so nothing makes $G(z, y)$ a $y$: the samples are digits of
#    arbitrary classes (the labels become noise). Without the unconditional term D only judges "how much does this
#    look like a $y$ compared with the features' typical direction", not realism per se; it still trains, but the
#    samples can satisfy the class direction without looking like real digits.
# 5. Training latents almost all have norm close to 8: the generator never learned what to do with a latent of
#    norm 5.7, so the middle of a linear path can look washed out or atypical. Slerp keeps the norm between the
#    two endpoints' norms (for equal norms, exactly that norm) while turning at constant speed.
# 6. It trades diversity for fidelity: at small $\tau$ all samples of a class look alike (Section 10's diversity
#    falls), so a high score there can hide mode collapse. Report quality and diversity together, or across $\tau$.
# 7. Mode collapse within a class (one good "3" for every $z$) is recognised 100 %. The within-class diversity,
#    compared with real digits, measures it; Hour 12's FID measures both at once.
