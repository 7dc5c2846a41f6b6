# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=10, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 10: GANs from scratch, the adversarial game in two dimensions
#
# A generative adversarial network (Goodfellow et al., 2014) learns to sample from a distribution it never writes
# down. Two networks play a game: a **generator** $G$ turns random noise $z$ into points $G(z)$, and a
# **discriminator** $D$ tries to tell those points from real data. Everything that makes GANs hard to train (a
# loss that saturates, a game that oscillates, a generator that covers only part of the data) already shows in
# two dimensions, where we can *see* both players at every step. This hour plays the game on a ring of 8
# Gaussians.
#
# **By the end of this hour you can**
# - write the **minimax game**, derive the **optimal discriminator** $D^*(x) = p_{data}(x) / (p_{data}(x) +
#   p_g(x))$, check it numerically, and say why the generator then minimises the **Jensen-Shannon divergence**;
# - write the discriminator's loss and the **non-saturating** generator loss on logits (stable at $10^4$), and
#   show with a measured gradient why nobody trains with the saturating one;
# - measure **mode coverage** the way the papers do (high-quality samples, captured modes) and see **mode
#   collapse** happen;
# - reach the published numbers on the ring with a remedy you measure against the plain GAN over 5 seeds;
# - play back a training run in a GAN-Lab-style player: the discriminator as a heatmap, the generator's gradient
#   as arrows.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `d_loss = amla.checks.gan.check_d_loss(d_loss)`. The check runs your function on ordinary and edge inputs
# against the course's reference (values, dtype, gradients, and whether your inputs were left alone):
# - right: the check returns your function, and **the rest of the hour runs on your code**: every GAN below is
#   trained with your two losses and measured with your metric;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook, `amla bench 10` on the course's 2-core CPU machine): smoke profile about 12 s,
# cpu profile about 3.2 minutes (191 s on an idle machine, 280 s while other jobs shared it), of which 147 s
# train the two 5-seed tables (3,000 steps of the plain GAN and 6,000 of the remedy, all 5 GANs in each step)
# and 13 s the written-out run. The `gpu` profile trains twice as many steps.

# %%
import math
import time

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from amla.gan.losses import g_loss_saturating
from amla.gan.mlp import Discriminator, Generator, train_gans
from amla.gan.toy import Mixture, mean_sem, ring
from amla.toolkit.checkpoint import save_checkpoint
from amla.views import Dashboard
from amla.views.gan_player import GanPlayer, record

if device.type == "cpu":
    torch.set_num_threads(1)  # these networks are tiny: one thread is as fast as two, and the checks use one too

S = amla.per_profile(
    smoke=dict(dstar_steps=40, confident_steps=30, steps=60, frame_every=30, eval_every=30, seeds=(0, 1),
               table_steps=40, remedy_steps=40, collapse_steps=40, collapse_every=20, samples=2500, js_samples=2000),
    cpu=dict(dstar_steps=1500, confident_steps=300, steps=2000, frame_every=100, eval_every=100,
             seeds=(0, 1, 2, 3, 4), table_steps=3000, remedy_steps=6000, collapse_steps=1500, collapse_every=100, samples=2500, js_samples=20000),
    gpu=dict(dstar_steps=3000, confident_steps=300, steps=6000, frame_every=200, eval_every=200,
             seeds=(0, 1, 2, 3, 4), table_steps=6000, remedy_steps=12000, collapse_steps=4000, collapse_every=200, samples=2500, js_samples=20000),
)
print(amla.profile(), S)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The game
#
# The discriminator outputs a **logit** $\ell = D_{\text{logit}}(x)$, a real number; its belief that $x$ is real is
# $D(x) = \sigma(\ell)$. The generator maps noise $z \sim \mathcal N(0, I)$ to a point $G(z)$. The two play one
# zero-sum game with the value
# $$
# V(D, G) = \mathbb E_{x \sim p_{data}}\big[\log D(x)\big] + \mathbb E_{z}\big[\log\big(1 - D(G(z))\big)\big],
# \qquad \min_G \max_D V(D, G).
# $$
# $D$ maximises $V$: it wants $D(x) \to 1$ on real points and $D(G(z)) \to 0$ on generated ones. That is exactly
# a logistic regression of "real = 1, fake = 0", so $D$'s loss is the **binary cross-entropy** $-V$. Written on
# logits, with $-\log \sigma(\ell) = \operatorname{softplus}(-\ell)$ and $-\log(1 - \sigma(\ell)) =
# \operatorname{softplus}(\ell)$ (where $\operatorname{softplus}(t) = \log(1 + e^t)$),
# $$
# \mathcal L_D = \operatorname{mean}_{\text{real}} \operatorname{softplus}(-\ell_{\text{real}}) +
#                \operatorname{mean}_{\text{fake}} \operatorname{softplus}(\ell_{\text{fake}}).
# $$
# Why logits and softplus, not `torch.log(torch.sigmoid(l))`? Because a confident discriminator produces large
# logits, and in float32 $\sigma(-10^4)$ is exactly 0:

# %%
big = torch.tensor([-1e4, -100.0, 0.0, 100.0])
print("log(sigmoid(l))  :", torch.log(torch.sigmoid(big)))
print("-softplus(-l)    :", -F.softplus(-big))

# %% [markdown]
# ### Exercise 10.1: The discriminator loss
#
# Write `d_loss(real_logits, fake_logits)`: the mean of $\operatorname{softplus}(-\ell)$ over the real logits
# **plus** the mean of $\operatorname{softplus}(\ell)$ over the fake logits (each half a mean over its own batch;
# the batches may differ in size, and logits may be `[N]` or `[N, 1]`). Return a 0-d tensor, keep the graph, and
# stay finite at $|\ell| = 10^4$ (`F.softplus`, `F.logsigmoid` or `F.binary_cross_entropy_with_logits` all do).

# %%
def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    ### END SOLUTION


# %%
d_loss = amla.checks.gan.check_d_loss(d_loss)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. The optimal discriminator, and what the generator then minimises
#
# Fix the generator, so the fake points come from some density $p_g$. For each point $x$ the discriminator
# maximises $p_{data}(x) \log D + p_g(x) \log(1 - D)$; setting the derivative with respect to $D$ to zero gives
# $$
# D^*(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)}, \qquad
# \text{logit } D^*(x) = \log p_{data}(x) - \log p_g(x).
# $$
# Put $D^*$ back into $V$: with $m = \tfrac12 (p_{data} + p_g)$,
# $$
# V(D^*, G) = \mathbb E_{p_{data}} \log \frac{p_{data}}{2m} + \mathbb E_{p_g} \log \frac{p_g}{2m}
#           = -\log 4 + 2\,\mathrm{JS}(p_{data} \,\|\, p_g),
# $$
# so against a perfect discriminator the generator minimises the **Jensen-Shannon divergence**, which is 0 only
# when $p_g = p_{data}$. Let us check both claims numerically. Both densities are mixtures of Gaussians we know
# in closed form: "data" is a wide ring, the "generator" is one Gaussian blob in the middle (it stays fixed).
# We train a discriminator with **your** `d_loss` until it stops improving, then compare it with the formula.

# %%
p_data = ring(std=0.2)
p_g = Mixture(torch.zeros(1, 2), std=0.5, name="fixed generator")

torch.manual_seed(0)
D_star_net = Discriminator(hidden=128, depth=2).to(device)
opt = torch.optim.Adam(D_star_net.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(1)
for step in range(S.dstar_steps):
    loss = d_loss(D_star_net(p_data.sample(512, g).to(device)), D_star_net(p_g.sample(512, g).to(device)))
    opt.zero_grad()
    loss.backward()
    opt.step()

with torch.no_grad():
    x_eval = torch.cat([p_data.sample(2000, g), p_g.sample(2000, g)])  # where either density has mass
    d_trained = torch.sigmoid(D_star_net(x_eval.to(device))).cpu()
    d_formula = torch.sigmoid(p_data.log_density(x_eval) - p_g.log_density(x_eval))
    dstar_err = (d_trained - d_formula).abs()
    # Jensen-Shannon by Monte Carlo from the two log densities, and what the trained D says about it
    real_x, fake_x = p_data.sample(S.js_samples, g), p_g.sample(S.js_samples, g)
    log_m = lambda x: torch.logaddexp(p_data.log_density(x), p_g.log_density(x)) - math.log(2)  # noqa: E731
    js = 0.5 * (p_data.log_density(real_x) - log_m(real_x)).mean() + 0.5 * (p_g.log_density(fake_x) - log_m(fake_x)).mean()
    value_trained = -d_loss(D_star_net(real_x.to(device)), D_star_net(fake_x.to(device))).item()
print(f"|D(x) - D*(x)| over {len(x_eval)} points: mean {dstar_err.mean():.4f}, 95th percentile "
      f"{dstar_err.quantile(0.95):.4f}")
print(f"V(D*, G) from the formula   -log 4 + 2 JS = {-math.log(4) + 2 * js.item():.4f}  (JS = {js.item():.4f} nats)")
print(f"V(D, G) of the trained D    -d_loss       = {value_trained:.4f}  (never above V(D*, G))")

# %%
def heat(ax, values: torch.Tensor, title: str, lim: float = 1.8, n: int = 90) -> None:
    ax.imshow(values.reshape(n, n), origin="lower", extent=(-lim, lim, -lim, lim), cmap="RdBu", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


axis = torch.linspace(-1.8, 1.8, 90)
ys, xs = torch.meshgrid(axis, axis, indexing="ij")
cells = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
with torch.no_grad():
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    heat(a, torch.sigmoid(p_data.log_density(cells) - p_g.log_density(cells)), "formula: p_data / (p_data + p_g)")
    heat(b, torch.sigmoid(D_star_net(cells.to(device))).cpu(), f"trained D ({S.dstar_steps} steps)")
    c.scatter(*p_data.sample(600, g).T, s=2, label="data")
    c.scatter(*p_g.sample(600, g).T, s=2, label="fixed generator")
    c.set_aspect("equal")
    c.legend(fontsize=7, markerscale=3)
    c.set_title("the two densities", fontsize=9)
fig

# %% [markdown]
# Blue where the data is denser, red where the generator is, white (1/2) where they balance. The trained
# discriminator matches the formula wherever there are samples to learn from; far from both densities (the
# corners) it extrapolates, and nothing there tells it what to say. Its value $-\mathcal L_D$ sits just below
# $-\log 4 + 2\,\mathrm{JS}$, as it must: $D^*$ is the maximum.
#
# The catch for training: when the two densities barely overlap (a generator at the start of training, and data
# as thin as our ring), JS is stuck near its maximum $\log 2$ and $D$ can separate them almost perfectly. A
# perfect $D$ is confident, and what a confident $D$ teaches the generator depends on how $G$'s loss is written.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The generator's loss: saturating or not
#
# The minimax game has the generator **minimise** $\mathbb E \log(1 - D(G(z))) = -\operatorname{mean}
# \operatorname{softplus}(\ell_{\text{fake}})$, the *saturating* loss (`amla.gan.losses.g_loss_saturating`). Its
# derivative with respect to a fake logit is $-\sigma(\ell) = -D(G(z))$: when $D$ confidently rejects the fakes,
# $D(G(z)) \approx 0$ and the gradient vanishes, at the very moment the generator is worst. Goodfellow et al.
# (2014, section 3) therefore train $G$ to **maximise** $\log D(G(z))$ instead: the **non-saturating** loss
# $$
# \mathcal L_G = -\operatorname{mean} \log D(G(z)) = \operatorname{mean} \operatorname{softplus}(-\ell_{\text{fake}}),
# $$
# whose derivative is $-(1 - D(G(z))) \approx -1$ there. Both push $D(G(z))$ up and share the same fixed point.
#
# ### Exercise 10.2: The non-saturating generator loss
#
# Write `g_loss(fake_logits)`: the mean of $\operatorname{softplus}(-\ell)$ over the fake logits (the generator
# wants $D$ to say "real", target 1). A 0-d tensor, stable at $|\ell| = 10^4$.

# %%
def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    return F.softplus(-fake_logits).mean()
    ### END SOLUTION


# %%
g_loss = amla.checks.gan.check_g_loss(g_loss)

# %% [markdown]
# Now the measurement. A fresh generator puts all its points near the origin; we train a discriminator against it
# for a few hundred steps (with your `d_loss`) until it is confident, then compute the gradient that each loss
# sends to the generator's parameters.

# %%
data = ring()  # the ring of 8 (section 4)
torch.manual_seed(0)
G_fresh, D_conf = Generator().to(device), Discriminator().to(device)
opt = torch.optim.Adam(D_conf.parameters(), lr=1e-3)
for step in range(S.confident_steps):
    with torch.no_grad():
        fake = G_fresh(torch.randn(256, 2, device=device))
    loss = d_loss(D_conf(data.sample(256, g).to(device)), D_conf(fake))
    opt.zero_grad()
    loss.backward()
    opt.step()


def generator_grad_norm(loss_fn) -> float:
    G_fresh.zero_grad()
    loss_fn(D_conf(G_fresh(torch.randn(1024, 2, generator=torch.Generator().manual_seed(5)).to(device)))).backward()
    return torch.sqrt(sum((p.grad ** 2).sum() for p in G_fresh.parameters())).item()


with torch.no_grad():
    d_on_fakes = torch.sigmoid(D_conf(G_fresh(torch.randn(1024, 2, device=device)))).mean().item()
grad_sat, grad_ns = generator_grad_norm(g_loss_saturating), generator_grad_norm(g_loss)
grad_ratio = grad_ns / grad_sat
print(f"D's mean belief that the fakes are real: D(G(z)) = {d_on_fakes:.2e}")
print(f"|grad of G's parameters|, saturating loss log(1 - D(G(z))) : {grad_sat:.3e}")
print(f"|grad of G's parameters|, non-saturating loss -log D(G(z))  : {grad_ns:.3e}")
print(f"the non-saturating loss gives a {grad_ratio:,.0f} times larger gradient")

# %% [markdown]
# Per sample the ratio of the two derivatives is $(1 - D)/D$, so the gap grows without bound as $D$ becomes
# sure. The rest of the hour trains every generator with your non-saturating `g_loss`.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. The ring of 8, and how to count modes
#
# The toy problem of the mode-collapse papers (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018): 8
# Gaussians with standard deviation 0.01, their means evenly spaced on the unit circle. *Evenly spaced* needs
# care: `torch.linspace(0, 2 * pi, 8)` includes the end point $2\pi$, which is the same angle as 0.

# %%
wrong = torch.linspace(0, 2 * math.pi, 8)
right = 2 * math.pi * torch.arange(8) / 8  # what amla.gan.toy.ring does
for name, angles in (("linspace(0, 2 pi, 8)", wrong), ("2 pi k / 8", right)):
    points = torch.stack([angles.cos(), angles.sin()], 1)
    distinct = len({(round(x, 6), round(y, 6)) for x, y in points.tolist()})
    print(f"{name:22s}: {distinct} distinct modes")
print("ring().modes:\n", data.modes)

# %% [markdown]
# The course has its harder sibling too, `amla.gan.toy.grid()`: a 5x5 grid of 25 Gaussians (standard deviation
# 0.05, 2 apart), which Hour 12 uses.
#
# **The metric** (VEEGAN and PacGAN use it, and so do we): draw 2,500 samples from the generator.
# - a sample is **high quality** when it lies within **3 standard deviations** of its nearest mode;
# - a mode is **captured** when it is the nearest mode of at least one high-quality sample.
#
# Report both, as a mean and standard error over 5 seeds. A generator can score well on one and badly on the
# other: all its samples on two modes (high quality, 2 modes captured), or a blurry ring through all eight (every
# mode captured, few high-quality samples).
#
# ### Exercise 10.3: Counting the captured modes
#
# Write `mode_coverage(samples, modes, std)` for `samples [N, 2]`, `modes [K, 2]`: return the pair
# `(modes_captured, high_quality_fraction)` as a Python `int` and a Python `float` between 0 and 1. The distance is
# the Euclidean one (`torch.cdist` helps); a sample exactly at $3\sigma$ counts as high quality.

# %%
def mode_coverage(samples: torch.Tensor, modes: torch.Tensor, std: float) -> tuple[int, float]:
    ### BEGIN SOLUTION
    dist = torch.cdist(samples, modes.to(samples.dtype))  # [N, K]
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= 3 * std
    return int(torch.unique(nearest[good]).numel()), good.float().mean().item()
    ### END SOLUTION


# %%
mode_coverage = amla.checks.gan.check_mode_coverage(mode_coverage)

# %%
real_points = data.sample(S.samples, torch.Generator().manual_seed(2))
print("the data itself                 :", mode_coverage(real_points, data.modes, data.std))
print("  (a 2-D Gaussian has 1 - exp(-9/2) =", f"{1 - math.exp(-4.5):.4f} of its mass within 3 std)")
blurred = data.modes[torch.randint(8, (S.samples,))] + 2 * data.std * torch.randn(S.samples, 2)
print("the data with twice the noise   :", mode_coverage(blurred, data.modes, data.std))
two_modes = torch.where(torch.rand(S.samples, 1) < 0.5, data.modes[0], data.modes[4])
print("every sample exactly on 2 modes :", mode_coverage(two_modes, data.modes, data.std))


def coverage_of(G: Generator, n: int = S.samples, seed: int = 123) -> tuple[int, float]:
    """The hour's metric on n samples of G (with your mode_coverage once it passes)."""
    with torch.no_grad():
        samples = G(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)).cpu()
    return mode_coverage(samples, data.modes, data.std)


# %% [markdown]
# Even the data itself is not 100 % "high quality": 3 standard deviations hold slightly less than all of a 2-D
# Gaussian. Twice the noise (a blurry generator) keeps every mode but loses most of the quality; a generator that
# collapsed onto two modes is perfect in quality and poor in coverage.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. The training loop, in the open
#
# The plain GAN of the papers' tables: two MLPs with two hidden layers of 128 units (ReLU in $G$, LeakyReLU(0.2) in
# $D$), a 2-D noise, Adam with learning rate $10^{-3}$ (and $\beta_1 = 0.5$, the usual choice for GANs since
# DCGAN), batch 256. Each step has two halves:
# 1. **discriminator**: a batch of real points and a batch of fakes, `fake.detach()` so that $D$'s update does not
#    reach into $G$; minimise your `d_loss`;
# 2. **generator**: a fresh batch of fakes, through $D$, minimise your `g_loss`; only $G$'s optimizer steps (the
#    gradient passes through $D$, which is not updated here).
#
# Every `frame_every` steps `record` saves what the player below shows (the generated points of 500 fixed noise
# vectors, $D$ on a grid, the gradient your `g_loss` sends to each point), and every `eval_every` steps we
# measure the modes with your `mode_coverage`. The dashboard draws the losses and the modes as they come.

# %%
def make_models(seed: int, pack: int = 1) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    return Generator(z_dim=2, hidden=128, depth=2).to(device), Discriminator(hidden=128, depth=2, pack=pack).to(device)


G, D = make_models(seed=0)
opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
batch = 256
data_rng = torch.Generator().manual_seed(10)
z_fixed = torch.randn(500, 2, generator=torch.Generator().manual_seed(11)).to(device)
frames, modes_curve = [], []

dash = Dashboard().start(S.steps)
start = time.perf_counter()
for step in range(1, S.steps + 1):
    # 1. the discriminator: real points up, generated points down
    real = data.sample(batch, data_rng).to(device)
    fake = G(torch.randn(batch, 2, device=device))
    loss_d = d_loss(D(real), D(fake.detach()))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    # 2. the generator: make D say "real" about fresh fakes
    loss_g = g_loss(D(G(torch.randn(batch, 2, device=device))))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()

    if step % 10 == 0:
        dash.log(step, d_loss=loss_d, g_loss=loss_g)
    if step % S.eval_every == 0 or step == 1:
        captured, quality = coverage_of(G)
        modes_curve.append((step, captured, quality))
        dash.log_eval(step, modes=captured, high_quality=quality)
    if step % S.frame_every == 0 or step == 1:
        frames.append(record(G, D, z_fixed, g_loss, step, note=f"{coverage_of(G)[0]} of 8 modes captured"))
plain_seconds = time.perf_counter() - start
dash.finish()
plain_steps_per_s = S.steps / plain_seconds
print(f"{S.steps} steps in {plain_seconds:.1f} s ({plain_steps_per_s:.0f} steps/s, recording and measuring included); "
      f"final: {modes_curve[-1][1]} modes, {100 * modes_curve[-1][2]:.1f} % high quality")
save_checkpoint("checkpoints/10_gan_plain_seed0.pt", {"G": G.state_dict(), "D": D.state_dict(), "step": S.steps})

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The player: both players at every saved step
#
# Behind the points, the discriminator's belief $D(x)$ (blue: "real", red: "fake", the grey line is $D = 1/2$);
# black: real points; orange: the generator's points for 500 fixed noise vectors; green arrows: where your
# `g_loss` pushes each point ($-\partial \mathcal L_G / \partial G(z)$, on one scale for the whole run, so short
# arrows mean a weak gradient). Drag the slider or press play. The points start as one blob and move towards the
# nearest blue region; $D$ then turns red under them and blue elsewhere, and the chase begins. Whether the blob
# tears apart into the modes within these steps or keeps running around as a crowd (the note under the title
# counts the modes) depends on the seed and the settings: the plain GAN is fragile, which sections 7 and 8
# measure over five seeds. (Without a live kernel you see the last step as a picture.)

# %%
player = GanPlayer(frames, real_points[:800], title="plain GAN, seed 0")
player

# %% [markdown]
# The modes and the high-quality fraction of this run as it trained (the same numbers as the dashboard's lower
# panel):

# %%
fig = Figure(figsize=(8, 2.8), layout="constrained")
left, right_ax = fig.subplots(1, 2)
left.plot([s for s, _, _ in modes_curve], [m for _, m, _ in modes_curve], marker=".")
left.set_ylim(0, 8.5)
left.set_xlabel("step")
left.set_ylabel("modes captured")
right_ax.plot([s for s, _, _ in modes_curve], [100 * q for _, _, q in modes_curve], marker=".", color="tab:orange")
right_ax.set_ylim(0, 100)
right_ax.set_xlabel("step")
right_ax.set_ylabel("high-quality samples (%)")
fig

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Mode collapse, shown and measured
#
# **Mode collapse** is a generator that puts its samples on a few modes and ignores the rest. Each single step of
# the game makes sense: against the current $D$, the best *single* point for $G$ is wherever $D$ is most fooled,
# and nothing in $\mathcal L_G$ rewards spreading out. When $D$ learns too slowly to punish the crowd, $G$ piles
# onto one or two modes; when $D$ finally catches up, $G$ jumps to the next ones and $D$ forgets the old.
#
# The setting below makes that happen: the same networks and learning rates, but batches of 32 points instead of
# 256. With 32 points, a batch of fakes piled onto one or two modes is much harder for $D$ to tell from a batch of
# real points (which visits each of the 8 modes only 4 times), so a collapsed generator stays collapsed longer.
# Five seeds train side by side (`amla.gan.mlp.train_gans`: the same loop as above, one batched matrix product per
# layer for all five GANs, each with its own weights, data and noise), with your losses, and every
# `collapse_every` steps we count each seed's modes with your metric.

# %%
def coverage_per_seed(G_stacked: Generator, step: int) -> list[tuple[int, float]]:
    with torch.no_grad():
        samples = G_stacked.sample(S.samples, torch.Generator().manual_seed(123)).cpu()  # [seeds, 2500, 2]
    return [mode_coverage(s, data.modes, data.std) for s in samples]


COLLAPSE = dict(batch=32)
collapse = train_gans(data.sample, d_loss, g_loss, seeds=S.seeds, steps=S.collapse_steps, **COLLAPSE,
                      eval_every=S.collapse_every, eval_fn=coverage_per_seed, device=device)
collapse_modes = [[m for m, _ in per_seed] for _, per_seed in collapse.evals]
collapse_final = collapse.evals[-1][1]
print(f"modes captured by each seed at the end ({S.collapse_steps} steps):", [m for m, _ in collapse_final])
late = [ms for (s, _), ms in zip(collapse.evals, collapse_modes) if s > S.collapse_steps // 2]
collapse_min_late = min(min(ms) for ms in late)
print(f"fewest modes of any seed in the second half of training: {collapse_min_late}; seeds with at most 2 modes "
      f"at some point of it: {sum(any(ms[k] <= 2 for ms in late) for k in range(len(S.seeds)))} of {len(S.seeds)}")

# %%
fig = Figure(figsize=(9, 3), layout="constrained")
curves, snapshot = fig.subplots(1, 2, width_ratios=[1.6, 1])
steps_axis = [s for s, _ in collapse.evals]
for k, seed in enumerate(S.seeds):
    curves.plot(steps_axis, [ms[k] for ms in collapse_modes], marker=".", label=f"seed {seed}")
curves.set_ylim(0, 8.5)
curves.set_xlabel("step")
curves.set_ylabel("modes captured")
curves.set_title("batches of 32: modes over training", fontsize=9)
curves.legend(fontsize=7, ncol=2)
with torch.no_grad():
    last = collapse.G.sample(1000, torch.Generator().manual_seed(3)).cpu()
worst = min(range(len(S.seeds)), key=lambda k: collapse_final[k][0])
snapshot.scatter(*real_points[:800].T, s=2, color="0.2", label="real")
snapshot.scatter(*last[worst].T, s=3, color="tab:orange", label=f"seed {S.seeds[worst]}, generated")
snapshot.set_aspect("equal")
snapshot.set_title(f"seed {S.seeds[worst]} at the end: {collapse_final[worst][0]} modes", fontsize=9)
snapshot.legend(fontsize=7, markerscale=3)
fig

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. A remedy, measured over 5 seeds
#
# Now the comparison the papers make: 5 seeds, 2,500 samples each, modes captured and high-quality fraction as a
# mean $\pm$ standard error. The plain GAN of section 5 against a remedy with the same networks and the same
# batch:
# - **PacGAN packing** (Lin et al., 2018), `pack=2`: $D$ judges *two* samples at once (concatenated into one
#   4-D input), all real or all fake. Two samples from a collapsed generator usually sit on the same mode, which
#   two real samples rarely do (1 in 8), so $D$ can see the collapse and punish it;
# - **two time-scale learning rates** (TTUR, Heusel et al., 2017): $D$ learns 5 times faster than $G$
#   ($5 \cdot 10^{-3}$ against $10^{-3}$), so $G$ always plays against a nearly optimal $D$ (section 2 showed why
#   that is what we want);
# - **learning-rate decay**: both rates stay constant for the first half of the steps, then fall linearly to 0
#   (`lr_decay_start=0.5`), so at the end the points settle into the modes instead of jittering around them
#   (that is what raises the high-quality fraction: a sample counts only within $3 \sigma = 0.03$ of a mode);
# - **twice the steps** (`remedy_steps`, the table prints both counts): the modes are found early, but tearing
#   the generator's map apart into 8 sharp pieces is slow, and it is what the last 10 % of quality needs.
#
# Measured on this machine while the hour was written (5 seeds, high-quality samples; every variant captured all
# 8 modes). At 3,000 steps: plain 48 %, with packing and a decay over the whole run 64 %, with a discriminator 3
# times faster 79 %, 5 times faster 80 %, 10 times faster worse (71 %); batches of 512, a third hidden layer, a
# wider and deeper generator (3 layers of 256: 75 %) or an 8-D noise added at most a few points, and evaluating
# an exponential moving average of $G$'s weights (decay 0.999, as ProGAN and StyleGAN do) was far worse (27 %:
# averaging the weights of a map that is still tearing apart blurs it). What worked is time: 6,000 steps with
# $D$ 5 times faster gave 89 % with a decay over the whole run and 91 % with the decay over the second half.
# Most of the missing samples sit far from every mode, on thin bridges between neighbouring modes: the generator
# is a continuous map of a connected noise space, and tearing it apart takes many steps. The table below prints
# whether the remedy reaches the hour's target (all 8 modes and at least 90 % high-quality samples, the PacGAN
# paper's level).

# %%
REMEDY_DECAY_START = 0.5  # constant rates for the first half, then linearly to 0
PLAIN = dict(pack=1, lr_d=1e-3, lr_g=1e-3, lr_decay=False, steps=S.table_steps)
REMEDY = dict(pack=2, lr_d=5e-3, lr_g=1e-3, lr_decay=True, lr_decay_start=REMEDY_DECAY_START, steps=S.remedy_steps)
table = {}
for name, settings in (("plain GAN", PLAIN), ("PacGAN2 + TTUR + LR decay", REMEDY)):
    run = train_gans(data.sample, d_loss, g_loss, seeds=S.seeds, batch=256, **settings,
                     eval_fn=coverage_per_seed, device=device)
    final = run.evals[-1][1]
    table[name] = dict(modes=mean_sem([m for m, _ in final]), quality=mean_sem([100 * q for _, q in final]),
                       per_seed=final, seconds=run.seconds, steps_per_s=run.steps_per_s, run=run,
                       steps=settings["steps"])
    print(f"{name}: {run.seconds:.1f} s for {len(S.seeds)} seeds x {settings['steps']} steps "
          f"({run.steps_per_s:.0f} steps/s, each step trains all {len(S.seeds)} GANs)")

published = {"GAN (PacGAN paper)": (6.3, 98.2), "PacGAN2 (PacGAN paper)": (7.9, 95.6), "VEEGAN (VEEGAN paper)": (8.0, 52.9)}
print(f"\n{'ring of 8, 2,500 samples, 5 seeds':34s} {'modes (of 8)':>14s} {'high quality (%)':>18s} {'steps':>7s}")
for name, row in table.items():
    print(f"{name + ' (here)':34s} {row['modes'][0]:7.1f} +- {row['modes'][1]:3.1f} {row['quality'][0]:11.1f} +- "
          f"{row['quality'][1]:3.1f} {row['steps']:7d}")
for name, (m, q) in published.items():
    print(f"{name:34s} {m:7.1f}        {q:11.1f}")
remedy = table["PacGAN2 + TTUR + LR decay"]
plain = table["plain GAN"]
target_met = remedy["modes"][0] >= 7.9 and remedy["quality"][0] >= 90.0
print(f"\ntarget (>= 7.9 modes, >= 90 % high quality) met by the remedy: {target_met}")
print("per seed (modes, high quality):")
for name, row in table.items():
    print(f"  {name:28s}", [(m, round(100 * q, 1)) for m, q in row["per_seed"]])

# %%
fig = Figure(figsize=(9, 3.4), layout="constrained")
axes = fig.subplots(2, len(S.seeds), squeeze=False)
for r, (name, row) in enumerate(table.items()):
    with torch.no_grad():
        samples = row["run"].G.sample(1000, torch.Generator().manual_seed(4)).cpu()
    for k, seed in enumerate(S.seeds):
        ax = axes[r][k]
        ax.scatter(*data.modes.T, s=30, facecolors="none", edgecolors="0.5", linewidths=0.8)
        ax.scatter(*samples[k].T, s=1, color="tab:orange" if r == 0 else "tab:blue")
        m, q = row["per_seed"][k]
        ax.set_title(f"seed {seed}: {m} modes, {100 * q:.0f} %", fontsize=8)
        ax.set_xlim(-1.4, 1.4)
        ax.set_ylim(-1.4, 1.4)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[r][0].set_ylabel(name, fontsize=8)
fig

# %% [markdown]
# The hour's numbers, collected by `amla bench 10`:

# %%
amla.report(
    remedy_modes_mean=remedy["modes"][0], remedy_modes_sem=remedy["modes"][1],
    remedy_quality_mean=remedy["quality"][0], remedy_quality_sem=remedy["quality"][1],
    plain_modes_mean=plain["modes"][0], plain_modes_sem=plain["modes"][1],
    plain_quality_mean=plain["quality"][0], plain_quality_sem=plain["quality"][1],
    target_met=target_met,
    collapse_final_modes_mean=mean_sem([m for m, _ in collapse_final])[0],
    collapse_min_modes_second_half=collapse_min_late,
    grad_ratio_ns_over_sat=grad_ratio, d_on_fakes_confident=d_on_fakes,
    dstar_mean_abs_err=dstar_err.mean().item(), js_nats=js.item(),
    single_run_final_modes=modes_curve[-1][1], single_run_final_quality=modes_curve[-1][2],
    train_seconds_single=plain_seconds, steps_per_s_single=plain_steps_per_s,
    train_seconds_table=plain["seconds"] + remedy["seconds"], steps_per_s_table=remedy["steps_per_s"],
    table_steps=S.table_steps, remedy_steps=S.remedy_steps,
)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. Derive $D^*(x)$ from $V(D, G)$ for a fixed generator. Why does the derivation need $D$ to be free to take any
#    value at each $x$ separately, and what does that assume about the discriminator network?
# 2. Section 3 measured a gradient ratio in the hundreds. Write the derivative of each generator
#    loss with respect to a fake logit $\ell$ and explain the ratio with $D(G(z))$. Why do both losses have the
#    same fixed point?
# 3. Your `d_loss` uses a mean over each half. What changes if the real batch has 256 points and the fake batch 64,
#    and you average over all 320 logits at once?
# 4. A generator puts every sample exactly on the modes 0 and 4. What are its modes captured and its high-quality
#    fraction? And a generator that draws points uniformly on the unit circle?
# 5. Why does packing two samples help the discriminator detect mode collapse? With 8 equally likely modes, how
#    often do two independent real samples come from the same mode, and how often do two samples from a generator
#    collapsed onto 2 modes?
# 6. The remedy lets $D$ learn 5 times faster than $G$. Using section 2, explain why a discriminator that is close
#    to optimal gives the generator a more useful signal.
# 7. The plain GAN in the PacGAN paper scores 98.2 % high quality but only 6.3 modes; VEEGAN captures all 8 modes
#    with 52.9 %. Which failure does each number reveal, and why must both be reported?

# %% [markdown] tags=["answer"]
# 1. For fixed $G$, $V = \int p_{data}(x) \log D(x) + p_g(x) \log(1 - D(x))\,dx$. Maximising the integrand pointwise:
#    $a \log D + b \log(1 - D)$ has its maximum at $D = a/(a+b)$. That needs $D$ to be any function (infinite
#    capacity, trained to convergence); a real network is smooth and finite, so it only approximates $D^*$ where it
#    has samples, as the picture of section 2 shows.
# 2. $\partial/\partial\ell\,[-\operatorname{softplus}(\ell)] = -\sigma(\ell) = -D$ (saturating) and
#    $\partial/\partial\ell\,\operatorname{softplus}(-\ell) = -(1 - D)$ (non-saturating): the ratio is
#    $(1 - D)/D$, about $1/D$ when $D(G(z))$ is small, e.g. $10^{-4}$ gives $10^4$. Both losses decrease in
#    $D(G(z))$ and are stationary only where $D$'s gradient with respect to the fake points vanishes, which at the
#    optimum of the game ($p_g = p_{data}$, $D = 1/2$) it does for both.
# 3. The average over all 320 weighs each logit equally, so the real half gets weight 256/320 and the fake half
#    64/320: the loss is no longer BCE(real) + BCE(fake) and its optimum moves away from
#    $p_{data}/(p_{data} + p_g)$ (towards $4 p_{data}/(4 p_{data} + p_g)$, as if real points were 4 times more
#    likely).
# 4. On the two modes: 2 modes captured, 100 % high quality. Uniform on the unit circle: all 8 modes captured, but a
#    sample is high quality only within 0.03 (an angle of 0.03 rad) of a mode, $8 \times 0.06 / 2\pi \approx 7.6
#    \%$ of the circle.
# 5. Two real samples share a mode with probability $1/8$; two samples of a generator collapsed onto 2 modes share
#    one with probability $1/2$. A packed discriminator sees pairs, so it can learn "too many identical pairs" as a
#    feature of the fakes; an unpacked one only ever sees single points, each of which looks perfectly real.
# 6. Section 2: only against $D^*$ does the generator's objective become the JS divergence, whose minimum is
#    $p_g = p_{data}$; against a stale $D$ the generator optimises against yesterday's mistakes, moves its points
#    to wherever that $D$ is fooled (often one place), and the two chase each other. A faster $D$ keeps its
#    verdict current, so the generator's gradient points towards the data it is actually missing.
# 7. 98.2 % with 6.3 modes: sharp samples but 1.7 modes missing (mode collapse; high quality alone cannot see it).
#    8 modes with 52.9 %: every mode covered but half the samples blurred off the modes (high coverage alone cannot
#    see blur). A good generator needs both; a single number can be gamed by either failure.

# %% [markdown]
# **Next hour:** the same game on images. DCGAN's convolutional generator and discriminator learn handwritten
# digits, and a class label tells the generator which digit to draw.
