# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla[rl] @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=18, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 18: Capstone, attention meets RL: a Decision Transformer
#
# Hours 15-17 learned to act by trial and error: an agent played, and its own experience improved it. Often we
# cannot let an agent play: a robot, a clinic, a power grid. What we have is a **log** of what other policies did,
# good ones and bad ones. **Offline RL** learns from that log alone. The Decision Transformer (Chen et al., 2021)
# turns it into sequence modelling: a GPT reads the trajectory as tokens, the **return still to come**, the state,
# the action, again and again, and learns to predict the action. Ask it for a high return and it acts like the
# trajectories that got one.
#
# **By the end of this hour you can**
# - make an offline log of CartPole from behaviour policies of several qualities and say why its mix matters;
# - compute **returns-to-go** $\hat R_t = \sum_{k \ge t} \gamma^{k-t} r_k$ and lay a trajectory out as
#   **interleaved tokens** $\hat R_1, s_1, a_1, \hat R_2, s_2, a_2, \ldots$;
# - build a Decision Transformer from the course's GPT block (Hour 06), train it by cross-entropy on the logged
#   actions, and **condition** it on a target return;
# - measure it against **behaviour cloning** on all the data and on the best 10 %, over several seeds, and draw the
#   paper's signature figure: the achieved return against the target return;
# - look at what its attention reads, and watch an episode with the return-to-go it was fed.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it. Right: the check returns your
# function and **the rest of the hour runs on it** (your `returns_to_go` builds every training window, your
# `interleave_tokens` builds the model's token sequence). Wrong: it stops there and names the likely mistake. Not
# written yet: one line says so and the course's reference is used, so Run All shows you the whole hour first.
#
# **Runtime** (whole notebook on the course's 2-core CPU machine, idle): smoke profile 13 s (`amla run 18 --profile
# smoke`; the student version 12 s), cpu profile 206 s (3.4 minutes, `amla bench 18 --profile cpu`), of which 48 s
# train the first seed's model (1,200 steps of 64 windows, dashboard evaluations included; the other two seeds about
# as long), about 10 s play each seed's 100 evaluation episodes and 10 s the achieved-versus-target curve. The `gpu`
# profile trains 2,400 steps and 5 seeds.

# %%
import time

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

from amla.rl.decision_transformer import DecisionTransformer, dt_rollout, train_bc
from amla.rl.episodes import evaluate, torch_policy
from amla.rl.trajectories import (WindowSampler, collect, epsilon_greedy, pd_controller, random_policy, summarize,
                                  top_fraction)
from amla.toolkit.checkpoint import load_checkpoint, save_checkpoint
from amla.views import AttentionViewer, Dashboard, EpisodePlayer

if device.type == "cpu":
    torch.set_num_threads(1)  # a small model: one thread is as fast as two, and the runs are deterministic

ENV = "CartPole-v1"
S = amla.per_profile(
    smoke=dict(n_random=4, n_angle=12, n_pd=(2, 2, 2, 2, 2, 2, 2), steps=12, batch=8, eval_every=12,
               dash_episodes=2, seeds=(0,), episodes=3, curve_targets=(20, 500), curve_episodes=2,
               bc_steps=20, max_steps=40),
    cpu=dict(n_random=100, n_angle=600, n_pd=(40, 40, 40, 30, 20, 20, 20), steps=1200, batch=64, eval_every=400,
             dash_episodes=10, seeds=(0, 1, 2), episodes=100, curve_targets=(20, 50, 100, 150, 200, 300, 400, 500),
             curve_episodes=8, bc_steps=1500, max_steps=None),
    gpu=dict(n_random=100, n_angle=600, n_pd=(40, 40, 40, 30, 20, 20, 20), steps=2400, batch=64, eval_every=600,
             dash_episodes=10, seeds=(0, 1, 2, 3, 4), episodes=100,
             curve_targets=(20, 50, 100, 150, 200, 300, 400, 500), curve_episodes=20, bc_steps=1500, max_steps=None),
)
EPSILONS = (0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)
MODEL = dict(context=5, n_layer=3, n_head=2, n_embd=64, dropout=0.1, max_timestep=500, return_scale=500.0)
print(amla.profile(), S)
t_start = time.time()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The log
#
# CartPole-v1 pays $r_t = 1$ for every step the pole stays up, for at most 500 steps. Our behaviour policies:
# - a **scripted PD controller**: push the cart towards where the pole leans, with a derivative term,
#   `angle + 0.5 * angular_velocity > 0`: right. Alone it keeps the pole up for all 500 steps;
# - the same controller made worse by **$\epsilon$-random actions**, $\epsilon$ from 0 to 0.6: returns from a few
#   dozen to 500;
# - a **myopic controller** that looks only at the angle (the bang-bang rule `angle > 0`): it overshoots, and the
#   pole falls after about 40 steps. Deterministic, and most of the log: like a dataset where most of the operators
#   were mediocre;
# - uniformly **random** actions (about 20 steps).
#
# Every episode runs in its own environment with its own seed (0, 1, 2, ... over the whole log), all side by side.

# %%
rng = np.random.default_rng(0)
behaviour = [("random", random_policy(2, rng), S.n_random), ("angle only", pd_controller(1.0, 0.0), S.n_angle)]
behaviour += [(f"PD, eps={eps}", epsilon_greedy(pd_controller(), eps, rng), n) for eps, n in zip(EPSILONS, S.n_pd)]
log, seed, t0 = [], 0, time.time()
for label, policy, n in behaviour:
    log += collect(ENV, policy, n, seed=seed, label=label)
    seed += n
collect_seconds = time.time() - t0
log_returns = np.array([t.ret for t in log])
log_steps = sum(len(t) for t in log)
best_logged = float(log_returns.max())
print(f"{len(log)} episodes, {log_steps:,} steps in {collect_seconds:.1f} s; best logged return {best_logged:g}")
print(f"{'behaviour policy':16s} {'episodes':>8s} {'steps':>7s} {'mean':>7s} {'min':>5s} {'max':>5s}")
for label, row in summarize(log).items():
    print(f"{label:16s} {row['episodes']:8d} {row['steps']:7d} {row['mean']:7.1f} {row['min']:5.0f} {row['max']:5.0f}")

# %%
fig = Figure(figsize=(8, 2.6), layout="constrained")
ax = fig.subplots()
labels = list(summarize(log))
ax.hist([[t.ret for t in log if t.policy == lab] for lab in labels], bins=25, stacked=True, label=labels)
ax.set_xlabel("episode return")
ax.set_ylabel("episodes")
ax.set_yscale("log")
ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # ticks at 1, 2, 5, 10, 20, ... episodes
ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # written as counts, not powers of ten
ax.yaxis.set_minor_formatter(NullFormatter())
ax.legend(fontsize=7, ncol=3)
ax.set_title("the log: returns of every logged episode, by behaviour policy", fontsize=9)
fig

# %% [markdown]
# Most episodes are short and bad; the good ones are few but long, so in *steps* the log is more balanced (the table
# above). A policy that imitates the log's *average* behaviour inherits its mistakes. What we want is to imitate
# the good part, and the log tells us which part that is: its return.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Returns-to-go
#
# The Decision Transformer does not condition on the return of the whole episode but on what is **still to
# come**: at step $t$, the return-to-go
# $$
# \hat R_t = \sum_{k=t}^{T-1} \gamma^{\,k-t} r_k = r_t + \gamma \hat R_{t+1}, \qquad \hat R_{T-1} = r_{T-1}.
# $$
# The paper (and this hour) uses $\gamma = 1$: in CartPole $\hat R_t$ is then the number of steps left. At the start
# $\hat R_0$ is the episode's return; as the episode goes on it counts down. At test time we choose $\hat R_0$, the
# return we *ask for*, and after every reward subtract it: $\hat R_{t+1} = \hat R_t - r_t$.
#
# ### Exercise 18.1: Returns-to-go
#
# Write `returns_to_go(rewards, gamma=1.0)`: for one trajectory's rewards (a 1-d tensor `[T]`) the tensor `[T]` of
# $\hat R_t$, same dtype. The recursion from the end is the simplest; a reversed `cumsum` works for $\gamma = 1$
# only. Do not change `rewards`.

# %%
def returns_to_go(rewards: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    ### BEGIN SOLUTION
    out = torch.empty_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype)
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out
    ### END SOLUTION


# %%
returns_to_go = amla.checks.decision_transformer.check_returns_to_go(returns_to_go)

# %% [markdown]
# The training data are **windows** of $K$ consecutive steps cut from the log at random (`WindowSampler`): for each
# step of a window its return-to-go (your `returns_to_go`, divided by 500 so it is about 1 at most), the state
# (normalised with the log's mean and std), the action, and the timestep $t$ in its episode. A window that runs
# past the end of its episode is padded, with a mask so the loss ignores the padding. One window of a good episode:

# %%
K = MODEL["context"]
sampler = WindowSampler(log, K, returns_fn=returns_to_go, return_scale=MODEL["return_scale"])
example = sampler.sample(256, torch.Generator().manual_seed(1))
i = int(example["returns"][:, 0, 0].argmax())
print("timesteps     ", example["timesteps"][i].tolist())
print("returns-to-go ", [round(v * MODEL["return_scale"]) for v in example["returns"][i, :, 0].tolist()])
print("actions       ", example["actions"][i].tolist())
print("mask          ", example["mask"][i].int().tolist())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. A trajectory as tokens
#
# Each step becomes **three tokens**: an embedding of $\hat R_t$ (a linear map of one number), of $s_t$ (a linear map
# of the 4 state numbers) and of $a_t$ (a table of 2 actions). To each of the three we add an embedding of the
# timestep $t$ (a learned table of 500 rows: where in the episode we are, in place of a position embedding). The
# sequence the transformer reads is
# $$
# \hat R_1,\; s_1,\; a_1,\; \hat R_2,\; s_2,\; a_2,\; \ldots,\; \hat R_K,\; s_K,\; a_K
# $$
# and it is **causal** (Hour 06's mask): a token attends to itself and to what came before. The action $a_t$ is
# predicted from the output at the token $s_t$, which has seen $\hat R_{\le t}$, $s_{\le t}$ and $a_{<t}$, but not
# $a_t$ itself.
#
# ### Exercise 18.2: Interleaving the tokens
#
# Write `interleave_tokens(returns, states, actions)`: three `[B, T, C]` embeddings in, `[B, 3T, C]` out, with
# token $3t$ the return-to-go, $3t+1$ the state and $3t+2$ the action of step $t$. One line with `torch.stack` on a
# new axis and a `reshape` does it: which axis?

# %%
def interleave_tokens(returns: torch.Tensor, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    B, T, C = returns.shape
    return torch.stack((returns, states, actions), dim=2).reshape(B, 3 * T, C)
    ### END SOLUTION


# %%
interleave_tokens = amla.checks.decision_transformer.check_interleave_tokens(interleave_tokens)

# %% [markdown]
# The model (`amla.rl.decision_transformer.DecisionTransformer`) is the token embeddings above, **your
# `interleave_tokens`**, a LayerNorm, three of Hour 06's pre-norm causal blocks (`amla.transformers.gpt.Block`), and
# a linear head on the state tokens. It is small: 64 dimensions, 2 heads, a context of $K = 5$ steps (15 tokens).
# The paper used 128 dimensions and $K = 20$; on the course's CPU machine that was more than ten times slower per
# training step (measured while this hour was written), and CartPole's state already holds almost everything a
# policy needs: the context mostly carries the return-to-go and the recent actions.

# %%
def make_dt() -> DecisionTransformer:
    return DecisionTransformer(4, 2, **MODEL, state_mean=sampler.state_mean, state_std=sampler.state_std,
                               interleave=interleave_tokens).to(device)


torch.manual_seed(0)
print(f"{sum(p.numel() for p in make_dt().parameters()):,} parameters")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Training: predict the logged action
#
# Training is supervised: the cross-entropy between the predicted action and the logged one, at every (unpadded)
# step of a window,
# $$
# \mathcal L = -\frac{1}{|\text{mask}|} \sum_{b, t \,\in\, \text{mask}} \log p_\theta\big(a_t \mid \hat R_{\le t},
# s_{\le t}, a_{<t}\big),
# $$
# with AdamW, a linear warm-up of the learning rate over 100 steps and the gradient norm clipped at 0.25, as in the
# paper. Nothing here says "maximise the return". The return enters only as an input, and that is the trick: the
# model learns what *each kind* of behaviour looks like, labelled with what it went on to get. The loss cannot reach
# 0: the log's random actions are not predictable.
#
# The loop is written out below. The first seed feeds the live dashboard: the loss, and every `eval_every` steps the
# mean return of a few episodes conditioned on the best logged return.

# %%
def train_dt(seed: int, dash: Dashboard | None = None) -> tuple[DecisionTransformer, float]:
    torch.manual_seed(seed)
    model = make_dt()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(1, S.steps + 1):
        for group in opt.param_groups:
            group["lr"] = 3e-4 * min(1.0, step / 100)  # linear warm-up
        b = {k: v.to(device) for k, v in sampler.sample(S.batch, g).items()}
        logits = model(b["returns"], b["states"], b["actions"], b["timesteps"])  # [B, K, 2]
        loss = F.cross_entropy(logits[b["mask"]], b["actions"][b["mask"]])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        if dash is not None:
            dash.log(step, loss=loss.item())
            if step % S.eval_every == 0 or step == S.steps:
                ret = dt_rollout(model, ENV, [best_logged] * S.dash_episodes, seed=9_000,
                                 max_episode_steps=S.max_steps)
                dash.log_eval(step, ret=float(ret.mean()))
    return model.eval(), time.time() - t0


dash = Dashboard().start(S.steps)
dt, seconds0 = train_dt(S.seeds[0], dash)
dash.finish()
print(f"seed {S.seeds[0]}: {S.steps} steps of {S.batch} windows in {seconds0:.1f} s "
      f"({S.steps / seconds0:.1f} steps/s, evaluations included)")

# %% [markdown]
# (The returns on the dashboard use evaluation seeds 9,000 and up; the measurements below use 10,000 and up.) The
# trained weights are saved (atomically) and read back with `weights_only=True`, so a later session can skip
# training:

# %%
path = save_checkpoint("checkpoints/18_decision_transformer.pt", {"model": dt.state_dict(), "model_args": MODEL})
dt.load_state_dict(load_checkpoint(path)["model"])
print("saved and reloaded", path)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Conditioned on the best logged return, against behaviour cloning
#
# The test: ask for the best logged return, $\hat R_0 = 500$, and play 100 episodes (evaluation seeds 10,000 to
# 10,099, side by side: `dt_rollout` keeps every episode's last $K$ steps and feeds them all at once). The target is
# at least 90 % of it. Actions are **greedy**, the most likely one.
#
# Two baselines with the same log (`train_bc`: an MLP from state to action, cross-entropy, no return anywhere):
# - **BC on all data** imitates the average behaviour of the log;
# - **BC on the top 10 %** first keeps the 10 % of episodes with the highest returns: filtering by return by hand.
#
# Each is trained and measured with every seed.

# %%
results = {"DT (target = best logged)": [], "BC, all data": [], "BC, top 10 %": []}
seconds = {name: [] for name in results}
top10 = top_fraction(log, 0.1)
models = {S.seeds[0]: dt}
for seed in S.seeds:
    if seed not in models:
        models[seed], _ = train_dt(seed)
    t0 = time.time()
    results["DT (target = best logged)"].append(
        dt_rollout(models[seed], ENV, [best_logged] * S.episodes, max_episode_steps=S.max_steps).mean())
    seconds["DT (target = best logged)"].append(time.time() - t0)
    for name, data in (("BC, all data", log), ("BC, top 10 %", top10)):
        t0 = time.time()
        bc = train_bc(data, steps=S.bc_steps, seed=seed, device=device)
        results[name].append(evaluate(ENV, torch_policy(bc), episodes=S.episodes, max_episode_steps=S.max_steps).mean())
        seconds[name].append(time.time() - t0)

print(f"{len(S.seeds)} seeds x {S.episodes} evaluation episodes; log: {len(log)} episodes, {log_steps:,} steps "
      f"(top 10 %: {len(top10)} episodes, {sum(len(t) for t in top10):,} steps)")
print(f"{'':26s} {'mean return':>12s} {'std over seeds':>15s}   per seed")
for name, values in results.items():
    print(f"{name:26s} {np.mean(values):12.1f} {np.std(values):15.1f}   {[round(float(v), 1) for v in values]}")
dt_mean = float(np.mean(results["DT (target = best logged)"]))
target_met = dt_mean >= 0.9 * best_logged
print(f"target: >= 90 % of the best logged return {best_logged:g}, i.e. >= {0.9 * best_logged:g}: "
      f"{'met' if target_met else 'NOT met'} ({dt_mean:.1f})")

# %% [markdown]
# Read the table the run prints. Behaviour cloning on all data copies a log that is mostly the myopic controller and
# noisy PD: in each state it takes the action most of the log took there. BC on the best 10 % is the strong
# baseline: here the top 10 % are PD episodes, and copying them is easy. The Decision Transformer was not told which
# episodes to keep: it saw the whole log, and the return we ask for selects the behaviour. (The DT paper reports the same picture on its
# harder benchmarks: "%BC" on good data is a strong baseline, and DT matches or beats it where the log is mixed.)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The signature figure: achieved against target return
#
# If the model has learned what the return-to-go *means*, asking for less should give less. We ask for a range of
# returns with the first seed's model, with greedy actions and with actions **sampled** from the predicted
# probabilities. The log's medium returns come from *random* mistakes, so only a policy that can be random can repeat
# them.

# %%
targets = np.repeat(np.asarray(S.curve_targets, dtype=float), S.curve_episodes)
t0 = time.time()
curve = {mode: dt_rollout(dt, ENV, targets, greedy=(mode == "greedy"), max_episode_steps=S.max_steps)
         for mode in ("greedy", "sampled")}
curve_seconds = time.time() - t0
print(f"{len(targets)} episodes per mode in {curve_seconds:.1f} s")
print(f"{'target':>7s} " + " ".join(f"{m:>16s}" for m in curve))
for tg in S.curve_targets:
    print(f"{tg:7.0f} " + " ".join(f"{c[targets == tg].mean():9.1f} +- {c[targets == tg].std():4.0f}" for c in curve.values()))
sampled_corr = float(np.corrcoef(targets, curve["sampled"])[0, 1])
print(f"correlation of target and achieved return, sampled actions: {sampled_corr:.2f}")

# %%
fig = Figure(figsize=(5.5, 4), layout="constrained")
ax = fig.subplots()
lim = max(S.curve_targets) * 1.05
ax.plot([0, lim], [0, lim], color="0.6", ls="--", lw=1, label="achieved = target")
for mode, c in curve.items():
    means = [c[targets == tg].mean() for tg in S.curve_targets]
    stds = [c[targets == tg].std() for tg in S.curve_targets]
    ax.errorbar(S.curve_targets, means, yerr=stds, marker="o", capsize=3, label=f"DT, {mode} actions")
ax.axhline(best_logged, color="tab:green", lw=0.8, ls=":", label="best logged return")
ax.set_xlabel("target return (what we ask for)")
ax.set_ylabel("achieved return")
ax.set_xlim(0, lim)
ax.set_ylim(0, lim)
ax.legend(fontsize=7)
ax.set_title("Decision Transformer on CartPole: return conditioning", fontsize=9)
fig

# %% [markdown]
# With sampled actions the achieved return follows the target: the model reproduces the *kind* of noisy controller
# that got each return. Greedy actions remove the noise: below some target the most likely action is the myopic
# controller's (the short episodes), above it the PD controller's, and the curve becomes a step. For the best
# return greedy is what we want; sampled actions still make the occasional random mistake there.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. What the attention reads
#
# One window of a high-return episode of the log, its 15 tokens labelled $R_t$, $s_t$, $a_t$ by timestep. The rows of
# interest are the state tokens: the action is read there. Pick a layer, a head and a query token (the last state
# token is selected).

# %%
window = {k: v[i:i + 1].to(device) for k, v in example.items()}
with torch.no_grad():
    _, weights = dt.forward_with_attention(window["returns"], window["states"], window["actions"], window["timesteps"])
tokens = [f"{kind}_{t}" for t in window["timesteps"][0].tolist() for kind in ("R", "s", "a")]
n = 3 * int(window["mask"][0].sum())
viewer = AttentionViewer(weights[:, 0, :, :n, :n].cpu(), tokens[:n], title="Decision Transformer, one logged window")
viewer.select(query=n - 2)
viewer

# %% [markdown]
# Causal, so every row ends at its own token. Average over heads what one state token attends to, by kind of token
# (the run prints it for the last state token of this window, per layer):

# %%
row = weights[:, 0, :, n - 2, :n].mean(1).cpu()  # [layers, keys]
for layer, w in enumerate(row):
    share = {kind: float(w[k::3].sum()) for k, kind in enumerate(("R", "s", "a"))}
    print(f"layer {layer}: attention of {tokens[n - 2]} on return tokens {share['R']:.2f}, state tokens "
          f"{share['s']:.2f}, action tokens {share['a']:.2f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. An episode, conditioned on the best return
#
# The first seed's model asked for 500, greedy, rendered. Below the frames: the reward per step and, as the value,
# the return-to-go the model was fed at that step, counting down from 500.

# %%
played_returns, played = dt_rollout(dt, ENV, [best_logged], render=True, seed=10_000, frame_every=5,
                                    max_episode_steps=S.max_steps)
player = EpisodePlayer(played, title="Decision Transformer", values_label="return-to-go fed")
print(played[0])
player

# %% [markdown]
# (One frame every 5 steps keeps the notebook small; the reward and return-to-go curves have every step.) The hour's
# numbers, collected by `amla bench 18`:

# %%
total_seconds = time.time() - t_start
amla.report(
    dt_return_mean=dt_mean, dt_return_std=float(np.std(results["DT (target = best logged)"])),
    bc_all_return_mean=float(np.mean(results["BC, all data"])), bc_all_return_std=float(np.std(results["BC, all data"])),
    bc_top10_return_mean=float(np.mean(results["BC, top 10 %"])),
    bc_top10_return_std=float(np.std(results["BC, top 10 %"])),
    dt_per_seed=" ".join(f"{v:.1f}" for v in results["DT (target = best logged)"]),
    bc_all_per_seed=" ".join(f"{v:.1f}" for v in results["BC, all data"]),
    bc_top10_per_seed=" ".join(f"{v:.1f}" for v in results["BC, top 10 %"]),
    best_logged_return=best_logged, target_met=bool(target_met), seeds=len(S.seeds), eval_episodes=S.episodes,
    curve_corr_sampled=sampled_corr,
    curve_greedy=" ".join(f"{tg:g}:{curve['greedy'][targets == tg].mean():.0f}" for tg in S.curve_targets),
    curve_sampled=" ".join(f"{tg:g}:{curve['sampled'][targets == tg].mean():.0f}" for tg in S.curve_targets),
    attention_s_on_R_by_layer=" ".join(f"{float(w[0::3].sum()):.2f}" for w in row), log_episodes=len(log), log_steps=log_steps, train_steps=S.steps,
    train_seconds_seed0=seconds0, train_steps_per_s=S.steps / seconds0,
    dt_eval_seconds=float(np.mean(seconds["DT (target = best logged)"])), curve_seconds=curve_seconds,
    notebook_seconds_to_report=total_seconds,
)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. Why does the model predict $a_t$ from the output at the token $s_t$ and not at $a_t$? What would it learn if the
#    head read the output at $a_t$?
# 2. Your `returns_to_go` with $\gamma = 1$ gives 500, 499, ..., 1 for a 500-step episode. At test time we start
#    from a target and subtract each reward. What does the model see if we ask for 1,000 in CartPole-v1? Try it.
# 3. Behaviour cloning on all data picks, in each state, the action most of the log took there. Why does that
#    produce a worse policy than any of the good behaviour policies in the log?
# 4. BC on the top 10 % does as well as the Decision Transformer here. Describe a log where it would not, and what
#    the Decision Transformer could still do with it.
# 5. The greedy curve of section 6 is a step, the sampled one follows the target. Explain both from what the model
#    learned, $p_\theta(a_t \mid \hat R_t, s_t, \ldots)$.
# 6. The model never sees a reward as a training signal, only as an input. In what sense is this still
#    reinforcement learning? What can it not do that Q-learning (Hour 16) can, given the same log?

# %% [markdown] tags=["answer"]
# 1. The output at $s_t$ has seen $\hat R_{\le t}, s_{\le t}, a_{<t}$: exactly what the agent knows when it must act.
#    The output at $a_t$ has also seen $a_t$ (causal attention includes the token itself), so a head there would
#    learn to copy its input: zero loss, and useless at test time, where $a_t$ is not known yet.
# 2. The return-to-go fed starts at 1,000/500 = 2, twice anything it saw in training, and never reaches the counting
#    down region it knows until 500 steps later, when the episode is over. It extrapolates from inputs it never
#    saw, and whatever it does, CartPole-v1 stops at 500: asking for more than the log ever reached cannot make a
#    Decision Transformer better than the behaviour it imitates.
# 3. Where the good and the myopic policies disagree, the myopic one is in the majority (it wrote most of the log),
#    so BC mixes the PD controller's actions in some states with the myopic controller's in others. Mixing the
#    actions of two policies state by state is not either policy, and errors compound: one bad push leads to states
#    where the data is even more myopic.
# 4. A log without any complete good episode, e.g. episodes that are good in their first half and random later, or
#    short good segments inside bad episodes: the top 10 % by return then hold few good actions and many bad ones.
#    A Decision Transformer conditions step by step on the return *still to come*, so it can use a segment's label
#    wherever it sits in an episode (and, in the paper's sparse-reward experiments, use the return to assign credit
#    to actions long before the reward).
# 5. For a given history and target, $p_\theta$ is the mix of actions the log took in similar situations with a
#    similar return-to-go: for 200 that is mostly a PD controller with 40 to 50 % random actions (section 1's table:
#    their episodes averaged 151 and 243). Sampling reproduces that
#    mix, so the return follows. The argmax throws the randomness away: it is the PD action as soon as the PD
#    controller's trajectories dominate, however noisy they were, and the myopic controller's below; hence a step.
# 6. It is RL in the sense of the problem (learning a policy for a reward from experience), solved by conditioned
#    imitation. It cannot **stitch**: Q-learning propagates values backwards through the Bellman equation, so it can
#    combine the good half of one trajectory with the good half of another into a policy better than any logged
#    episode. A Decision Transformer only reproduces returns that some logged trajectory reached.

# %% [markdown]
# **The end of the course.** You have built attention, the Transformer, GPT, GANs, graph networks and RL agents
# from scratch, and here joined two of them: a GPT that acts.
