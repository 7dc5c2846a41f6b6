# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla[rl] @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=17, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 17: Policy gradients, from REINFORCE to PPO
#
# Hour 16's DQN learned the *value* of each action and acted greedily on it. This hour learns the **policy
# itself**: a network $\pi_\theta(a \mid s)$ that outputs a probability for every action, trained by gradient
# ascent on the expected return. We go from the simplest estimator of that gradient (REINFORCE) to the algorithm
# most of deep RL runs on today (PPO), one idea at a time, all on CartPole-v1 (keep the pole up; +1 per step, at
# most 500 steps).
#
# **By the end of this hour you can**
# - derive the **policy gradient** with the log-derivative trick, and write REINFORCE with the **reward-to-go**;
# - train REINFORCE to a greedy return of **at least 400** on CartPole-v1, and **measure** how much a learned
#   **baseline** $V(s)$ reduces the variance of the gradient estimate, at the same parameters;
# - go from REINFORCE to **actor-critic** (bootstrap with the critic) and compute **GAE**, handling the two ways an
#   episode ends (**terminated**: no future; **truncated** by a time limit: bootstrap) with `gymnasium.vector`'s
#   autoreset;
# - write **PPO's clipped objective**, with advantage normalisation and an entropy bonus, and train PPO on 8
#   vectorised environments to a greedy mean of **at least 475** over 100 evaluation episodes (CleanRL's PPO:
#   490.0), over several seeds, with the environment steps and the wall time;
# - play back the trained agent with its critic's value estimate at every step.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `gae = amla.checks.policy_gradients.check_gae(gae)`. The check runs your function on ordinary and edge inputs
# against the course's reference:
# - right: the check returns your function, and **the rest of the hour runs on your code**: REINFORCE trains
#   with your reward-to-go, and PPO with your GAE and your clipped loss;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook on the course's 2-core CPU machine, idle): smoke profile 12 s (`amla run 17 --profile
# smoke`, the solution and the student version alike), cpu profile 129 s (`amla bench 17 --profile cpu`; 169 to 248 s
# on a shared machine), of which 97 s train PPO on 3 seeds of $10^5$ environment steps each and 18 s REINFORCE on 3
# seeds. The `gpu` profile runs 5 seeds of each algorithm (the networks are too small for a GPU to help: everything
# runs on the CPU).

# %%
import copy
import time

import numpy as np
import torch
from matplotlib.figure import Figure

from amla.rl.episodes import evaluate, make_env, run_episode, torch_policy
from amla.rl.policy_gradient import ActorCritic, EpisodeBatch, policy_gradient, sample_episodes, train_reinforce
from amla.rl.ppo import PPOConfig, make_vec_env, train_ppo
from amla.toolkit.checkpoint import load_checkpoint, save_checkpoint
from amla.views import Dashboard, EpisodePlayer

if device.type == "cpu":
    torch.set_num_threads(1)  # these networks are tiny: one thread is as fast, and the results are deterministic
device = torch.device("cpu")  # CartPole steps on the CPU, and 64-unit networks gain nothing from a GPU

ENV = "CartPole-v1"
S = amla.per_profile(
    smoke=dict(rf_updates=2, rf_seeds=(0,), rf_snapshot=1, var_episodes=8, ppo_steps=512, ppo_seeds=(0,),
               eval_every=1, eval_episodes=3, final_episodes=5, frame_every=25),
    cpu=dict(rf_updates=50, rf_seeds=(0, 1, 2), rf_snapshot=15, var_episodes=200, ppo_steps=100_000,
             ppo_seeds=(0, 1, 2), eval_every=20, eval_episodes=20, final_episodes=100, frame_every=5),
    gpu=dict(rf_updates=50, rf_seeds=(0, 1, 2, 3, 4), rf_snapshot=15, var_episodes=400, ppo_steps=100_000,
             ppo_seeds=(0, 1, 2, 3, 4), eval_every=20, eval_episodes=20, final_episodes=100, frame_every=5),
)
print(amla.profile(), S)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The policy gradient
#
# A policy $\pi_\theta(a \mid s)$ plays an episode $\tau = (s_0, a_0, r_0, s_1, a_1, r_1, \dots)$. We want to
# maximise the expected return $J(\theta) = \mathbb E_{\tau \sim \pi_\theta}[R(\tau)]$. The return does not depend on
# $\theta$ directly, only through which episodes are likely, so we differentiate the probabilities: with
# $\nabla_\theta p = p \, \nabla_\theta \log p$ (the **log-derivative trick**) and the environment's dynamics not
# depending on $\theta$,
# $$
# \nabla_\theta J(\theta) = \mathbb E_{\tau}\Big[\sum_t \nabla_\theta \log \pi_\theta(a_t \mid s_t)\; R(\tau)\Big].
# $$
# An action cannot change the rewards that came before it, and those terms average to zero, so each action is
# weighted only by the rewards from its own step on, the **reward-to-go**
# $$
# G_t = \sum_{k \ge t} \gamma^{k-t} r_k = r_t + \gamma\, G_{t+1}, \qquad
# \nabla_\theta J \approx \frac1{|B|} \sum_{\tau \in B} \sum_t \nabla_\theta \log \pi_\theta(a_t \mid s_t)\, G_t .
# $$
# That is **REINFORCE** (Williams, 1992): play a few episodes with the current policy, make each action more likely
# in proportion to what followed it, repeat. In code it is the gradient of the "loss"
# $-\frac1{|B|}\sum \log \pi_\theta(a_t \mid s_t)\, G_t$, with $G_t$ a constant.
#
# ### Exercise 17.1: The reward-to-go
#
# Write `reward_to_go(rewards, gamma)` for the rewards `[T]` of one episode: return `[T]` with
# $G_t = r_t + \gamma G_{t+1}$ and $G_{T-1} = r_{T-1}$ (a loop from the end, or a matrix of discounts), in the
# dtype of `rewards`.

# %%
def reward_to_go(rewards: torch.Tensor, gamma: float = 0.99) -> torch.Tensor:
    ### BEGIN SOLUTION
    out = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out
    ### END SOLUTION


# %%
reward_to_go = amla.checks.policy_gradients.check_reward_to_go(reward_to_go)

# %% [markdown]
# On CartPole every reward is 1, so $G_t$ counts the (discounted) steps the pole still stays up: large at the start
# of a long episode, 1 at its last step.

# %%
print("G of a 5-step episode, gamma 0.9:", reward_to_go(torch.ones(5), 0.9))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. REINFORCE on CartPole, with a baseline
#
# Subtracting any function $b(s_t)$ of the state from $G_t$ leaves the gradient's expectation unchanged,
# because $\mathbb E_{a \sim \pi}[\nabla_\theta \log \pi_\theta(a \mid s)] = \nabla_\theta \sum_a \pi_\theta(a \mid s)
# = \nabla_\theta 1 = 0$. But it can shrink its variance a lot: with $b(s) = V(s)$, the expected return from $s$,
# an action is pushed up only when what followed it was **better than expected**, $G_t - V(s_t) > 0$. We learn
# $V$ with a second network, the **critic**, by regression on $G_t$.
#
# The networks (`amla.rl.policy_gradient.ActorCritic`): an **actor** (4 inputs, two hidden layers of 64 with tanh,
# 2 logits) and a **critic** of the same shape with one output, with orthogonal initialisation as in CleanRL and
# Stable-Baselines3. Each update plays 8 whole episodes side by side in a `gymnasium.vector` environment
# (`sample_episodes`), steps the actor on the REINFORCE loss with your `reward_to_go` and the baseline, and the
# critic on $\tfrac12 (V(s_t) - G_t)^2$. After `rf_snapshot` updates we keep a copy of both networks: section 3
# measures the baseline's effect there.

# %%
GAMMA_RF = 0.99
torch.manual_seed(0)
envs = make_vec_env(ENV, num_envs=8, seed=0)
agent_rf = ActorCritic(obs_dim=4, n_actions=2, hidden=64)
opt_actor = torch.optim.Adam(agent_rf.actor.parameters(), lr=3e-3)
opt_critic = torch.optim.Adam(agent_rf.critic.parameters(), lr=1e-2)

dash = Dashboard().start(S.rf_updates)
rf_steps, start = 0, time.perf_counter()
for update in range(1, S.rf_updates + 1):
    batch = sample_episodes(envs, agent_rf)  # 8 whole episodes with the current policy
    rf_steps += batch.steps
    obs, actions = torch.cat(batch.obs), torch.cat(batch.actions)
    G = torch.cat([reward_to_go(r, GAMMA_RF) for r in batch.rewards])  # your reward-to-go, episode by episode
    V = agent_rf.value(obs)

    # the actor: REINFORCE with the critic as baseline (G - V is a constant for the actor: .detach())
    actor_loss = -(agent_rf.dist(obs).log_prob(actions) * (G - V).detach()).sum() / len(batch.rewards)
    opt_actor.zero_grad(set_to_none=True)
    actor_loss.backward()
    opt_actor.step()

    # the critic: regression of V(s_t) on G_t
    critic_loss = 0.5 * (V - G).pow(2).mean()
    opt_critic.zero_grad(set_to_none=True)
    critic_loss.backward()
    opt_critic.step()

    dash.log(update, actor_loss=actor_loss, critic_loss=critic_loss)
    dash.log_eval(update, episode_return=batch.returns.mean())
    if update == S.rf_snapshot:
        snapshot = copy.deepcopy(agent_rf)
rf_seconds = time.perf_counter() - start
dash.finish()
envs.close()
rf_greedy = evaluate(ENV, torch_policy(agent_rf), episodes=S.final_episodes)
print(f"REINFORCE, seed 0: {S.rf_updates} updates, {rf_steps:,} env steps in {rf_seconds:.1f} s "
      f"({rf_steps / rf_seconds:,.0f} steps/s); greedy return over {S.final_episodes} evaluation episodes: "
      f"{rf_greedy.mean():.1f} +- {rf_greedy.std():.1f}")

# %% [markdown]
# "Greedy" means the evaluation takes the most likely action ($\arg\max_a \pi_\theta(a \mid s)$) instead of
# sampling: the trained policy without its exploration noise, on 100 episodes with seeds 10,000 to 10,099 that
# training never saw (`amla.rl.episodes.evaluate`). One seed says little in RL; the same loop
# (`amla.rl.policy_gradient.train_reinforce`, with your `reward_to_go`) on the other seeds:

# %%
rf_runs = {0: (rf_greedy.mean(), rf_steps, rf_seconds)}
for seed in S.rf_seeds[1:]:
    run = train_reinforce(ENV, reward_to_go, seed=seed, updates=S.rf_updates, gamma=GAMMA_RF)
    rf_runs[seed] = (evaluate(ENV, torch_policy(run.agent), episodes=S.final_episodes).mean(), run.steps, run.seconds)
rf_means = np.array([m for m, _, _ in rf_runs.values()])
print(f"{'seed':>4s} {'greedy mean':>12s} {'env steps':>10s} {'wall s':>7s} {'steps/s':>8s}")
for seed, (m, steps, secs) in rf_runs.items():
    print(f"{seed:4d} {m:12.1f} {steps:10,d} {secs:7.1f} {steps / secs:8,.0f}")
rf_target = bool(rf_means.mean() >= 400)
print(f"REINFORCE over {len(rf_means)} seeds: {rf_means.mean():.1f} +- {rf_means.std():.1f} "
      f"(target >= 400 met: {rf_target})")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. What the baseline buys, measured
#
# Both estimators aim at the same gradient; the baseline's value is a smaller spread around it. We measure that
# directly at one set of parameters: the snapshot after `rf_snapshot` updates (a policy that is half-way, with
# episodes of very different lengths). We play `var_episodes` episodes with it and compute, for each episode
# alone, the REINFORCE gradient of the actor's parameters twice: weighted by $G_t$ and by $G_t - V(s_t)$ (the
# snapshot's critic). The total variance is $\frac1n \sum_i \lVert g_i - \bar g \rVert^2$ over the episodes; a
# batch of $B$ episodes has $1/B$ of it, for both estimators alike.

# %%
var_envs = make_vec_env(ENV, num_envs=8, seed=1234)
plain, based, lengths = [], [], []
torch.manual_seed(1)
while len(plain) < S.var_episodes:
    episodes = sample_episodes(var_envs, snapshot)
    for k in range(len(episodes.rewards)):
        one = EpisodeBatch([episodes.obs[k]], [episodes.actions[k]], [episodes.rewards[k]], [episodes.truncated[k]])
        plain.append(policy_gradient(snapshot, one, GAMMA_RF, reward_to_go, baseline=False))
        based.append(policy_gradient(snapshot, one, GAMMA_RF, reward_to_go, baseline=True))
        lengths.append(len(episodes.rewards[k]))
var_envs.close()
plain, based = torch.stack(plain), torch.stack(based)


def total_variance(g: torch.Tensor) -> float:
    return (g - g.mean(0)).pow(2).sum(1).mean().item()


var_plain, var_based = total_variance(plain), total_variance(based)
variance_ratio = var_plain / var_based
cosine = torch.nn.functional.cosine_similarity(plain.mean(0), based.mean(0), dim=0).item()
print(f"{len(plain)} episodes of the snapshot policy, lengths {min(lengths)} to {max(lengths)} "
      f"(mean {np.mean(lengths):.0f})")
print(f"total variance of the per-episode gradient, G_t         : {var_plain:.4g}")
print(f"total variance of the per-episode gradient, G_t - V(s_t): {var_based:.4g}")
print(f"the baseline divides the variance by {variance_ratio:.1f}; cosine between the two mean gradients "
      f"{cosine:.3f} (the same direction up to sampling noise)")

# %% [markdown]
# Read it as samples: to get the same precision without the baseline, each update would need
# `variance_ratio` times as many episodes. The two mean gradients point nearly the same way because the baseline
# changes no expectation, only the noise (with finitely many episodes they are not exactly equal).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Actor-critic, and GAE
#
# REINFORCE waits for the end of the episode. With a critic we do not have to: the **TD error**
# $$
# \delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)
# $$
# is itself an estimate of the advantage $A(s_t, a_t) = Q(s_t, a_t) - V(s_t)$, available after one step. Using it
# as the weight of $\nabla \log \pi$ is the one-step **actor-critic**: little variance (one reward), but biased by
# whatever the critic gets wrong. $G_t - V(s_t)$, section 2's weight, is the other end: unbiased, noisy.
# **Generalized advantage estimation** (Schulman et al., 2016) slides between them with one number $\lambda$:
# $$
# \hat A_t = \sum_{l \ge 0} (\gamma\lambda)^l \, \delta_{t+l} = \delta_t + \gamma\lambda\, \hat A_{t+1},
# $$
# $\lambda = 0$ gives $\delta_t$, $\lambda = 1$ gives $G_t - V(s_t)$ (bootstrapped at the end of the data). The
# critic's target is $\hat A_t + V(s_t)$, the **$\lambda$-return**.
#
# ### Two kinds of episode end
#
# Gymnasium reports two flags per step. **terminated**: the episode is over for good (the pole fell), nothing
# follows, so $\delta_t = r_t - V(s_t)$. **truncated**: a time limit cut it (CartPole stops at 500 steps), but the
# state still has a future, so we **bootstrap**: $\delta_t = r_t + \gamma V(s_{\text{final}})$. In both cases the
# recursion stops there: step $t+1$ of the data belongs to the next episode.
#
# PPO collects its data from 8 environments stepped side by side (`gymnasium.vector`), which **reset an episode
# that ends by themselves**. Gymnasium's default autoreset (`NEXT_STEP`) returns the final observation, then spends
# the *next* call on the reset, with its action ignored and reward 0: a step that is no transition, which a
# buffer would have to mask. We ask for `SAME_STEP` instead (`amla.rl.ppo.make_vec_env`): the step that ends an
# episode returns the **first observation of the next episode** and puts the real last one in
# `info["final_obs"]`. Every stored step is then a real transition, and we store the value of the state each step
# really led to:

# %%
demo = make_vec_env(ENV, num_envs=2, seed=3)
obs, _ = demo.reset(seed=3)
for t in range(200):
    next_obs, reward, terminated, truncated, info = demo.step(demo.action_space.sample())
    if (terminated | truncated).any():
        i = int(np.flatnonzero(terminated | truncated)[0])
        print(f"step {t}: env {i} ended (terminated={terminated[i]}, truncated={truncated[i]}), reward {reward[i]}")
        print("  observation returned (the next episode's first):", np.round(next_obs[i], 3))
        print("  info['final_obs'] (where this episode ended)   :", np.round(info["final_obs"][i], 3))
        break
    obs = next_obs
demo.close()

# %% [markdown]
# So GAE gets, for a rollout of $T$ steps of $N$ environments, all `[T, N]`: the rewards, `values[t]` $= V(s_t)$,
# `next_values[t]` $= V(s_{t+1})$ of the state step $t$ led to (the final observation where an episode ended), and
# the two flags.
#
# ### Exercise 17.2: Generalized advantage estimation
#
# Write `gae(rewards, values, next_values, terminated, truncated, gamma, lam)`, returning `(advantages, returns)`,
# both `[T, N]` in the dtype of `values`, with `returns = advantages + values`:
# - $\delta_t = r_t + \gamma\,(1 - \text{terminated}_t)\,\text{next\_values}_t - \text{values}_t$;
# - from the last step back: $\hat A_t = \delta_t + \gamma\lambda\,(1 - \text{done}_t)\,\hat A_{t+1}$ with
#   $\text{done} = \text{terminated} \lor \text{truncated}$ and $\hat A_T = 0$.
#
# The flags are bool tensors: `(~terminated).float()` or `1.0 - terminated.float()` turn them into numbers.

# %%
def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
        truncated: torch.Tensor, gamma: float = 0.99, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    ### BEGIN SOLUTION
    not_term = 1.0 - terminated.to(values.dtype)
    not_done = 1.0 - (terminated | truncated).to(values.dtype)
    deltas = rewards + gamma * not_term * next_values - values
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[0])
    for t in reversed(range(len(rewards))):
        last = deltas[t] + gamma * lam * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values
    ### END SOLUTION


# %%
gae = amla.checks.policy_gradients.check_gae(gae)

# %% [markdown]
# $\lambda$ trades variance for bias. On one rollout of 64 steps of 8 environments with section 3's snapshot (its
# critic half-trained), the spread of the advantages for four values of $\lambda$, computed with your `gae`:

# %%
rollout_envs = make_vec_env(ENV, num_envs=8, seed=77)
obs, _ = rollout_envs.reset(seed=77)
cols = {k: [] for k in ("rewards", "values", "next_values", "terminated", "truncated")}
with torch.no_grad():
    for t in range(64):
        o = torch.as_tensor(obs, dtype=torch.float32)
        action = snapshot.dist(o).sample()
        next_obs, reward, term, trunc, info = rollout_envs.step(action.numpy())
        real_next = next_obs.copy()
        for i in np.flatnonzero(term | trunc):
            real_next[i] = info["final_obs"][i]
        cols["rewards"].append(torch.as_tensor(reward, dtype=torch.float32))
        cols["values"].append(snapshot.value(o))
        cols["next_values"].append(snapshot.value(torch.as_tensor(real_next, dtype=torch.float32)))
        cols["terminated"].append(torch.as_tensor(term))
        cols["truncated"].append(torch.as_tensor(trunc))
        obs = next_obs
rollout_envs.close()
cols = {k: torch.stack(v) for k, v in cols.items()}
for lam in (0.0, 0.8, 0.95, 1.0):
    adv, _ = gae(cols["rewards"], cols["values"], cols["next_values"], cols["terminated"], cols["truncated"],
                 GAMMA_RF, lam)
    print(f"lam = {lam:4.2f}: advantages mean {adv.mean():+7.3f}, std {adv.std():6.3f}")

# %% [markdown]
# The spread grows with $\lambda$: more of the sampled future enters each estimate. PPO's CartPole settings below
# use $\lambda = 0.8$.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. PPO's clipped objective
#
# REINFORCE and actor-critic use each batch of data for **one** gradient step: after it the policy has changed, and
# the data no longer comes from it. **Proximal Policy Optimization** (Schulman et al., 2017) takes many steps on the
# same rollout, correcting with the probability ratio
# $r_t(\theta) = \pi_\theta(a_t \mid s_t) / \pi_{\text{old}}(a_t \mid s_t)
# = \exp(\log \pi_\theta - \log \pi_{\text{old}})$, and keeps the new policy close to the old one by
# **clipping** the ratio:
# $$
# L^{\text{CLIP}}(\theta) = \mathbb E_t\Big[\min\big(r_t \hat A_t,\;
#   \operatorname{clip}(r_t, 1-\epsilon, 1+\epsilon)\,\hat A_t\big)\Big].
# $$
# The $\min$ makes it a pessimistic bound: once an action with $\hat A > 0$ has become $1+\epsilon$ times more likely
# (or one with $\hat A < 0$ $1-\epsilon$ times as likely), the objective is flat and its gradient zero, so nothing
# pushes further; a move in the *wrong* direction is never clipped away.
#
# ### Exercise 17.3: The clipped objective
#
# Write `ppo_loss(new_logp, old_logp, advantages, clip)` for 1-D tensors of one minibatch: the loss to minimise,
# $-\operatorname{mean}\big(\min(r A, \operatorname{clip}(r, 1 - \text{clip}, 1 + \text{clip})\, A)\big)$, a 0-d
# tensor (`torch.clamp` clips). The update normalises the advantages before it calls your loss: use them as they
# come.

# %%
def ppo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
             clip: float = 0.2) -> torch.Tensor:
    ### BEGIN SOLUTION
    ratio = (new_logp - old_logp).exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
    return -torch.minimum(unclipped, clipped).mean()
    ### END SOLUTION


# %%
ppo_loss = amla.checks.policy_gradients.check_ppo_loss(ppo_loss)

# %% [markdown]
# Your loss as a function of the ratio, for one sample with $A = +1$ and one with $A = -1$ ($\epsilon = 0.2$), and
# its gradient: zero where the clip holds.

# %%
ratios = torch.linspace(0.5, 1.5, 201)
fig = Figure(figsize=(8, 2.8), layout="constrained")
ax_l, ax_g = fig.subplots(1, 2)
for a, color in ((1.0, "tab:blue"), (-1.0, "tab:orange")):
    new_logp = ratios.log().clone().requires_grad_(True)
    losses = torch.stack([ppo_loss(new_logp[i:i + 1], torch.zeros(1), torch.tensor([a]), 0.2)
                          for i in range(len(ratios))])
    (grad,) = torch.autograd.grad(losses.sum(), new_logp)
    ax_l.plot(ratios, -losses.detach(), color=color, label=f"A = {a:+.0f}")
    ax_g.plot(ratios, -grad, color=color, label=f"A = {a:+.0f}")
for ax, name in ((ax_l, "objective min(rA, clip(r)A)"), (ax_g, "d objective / d log pi")):
    ax.axvspan(0.8, 1.2, color="0.92")
    ax.set_xlabel("ratio r")
    ax.set_title(name, fontsize=9)
    ax.legend(fontsize=8)
fig

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. PPO on CartPole-v1, the loop in the open
#
# The settings are rl-zoo's tuned ones for CartPole-v1: 8 environments, rollouts of 32 steps (256 transitions),
# $\gamma = 0.98$, $\lambda = 0.8$, 20 epochs over each rollout in one minibatch of 256, Adam with learning rate
# $10^{-3}$ and clip $\epsilon = 0.2$, both decayed linearly to 0, $10^5$ environment steps. Two more pieces of
# the standard recipe sit in the update:
# - **advantage normalisation**: each minibatch's advantages are shifted to mean 0 and scaled to std 1, so the step
#   size does not depend on the scale of the rewards, and about half the actions are pushed up, half down;
# - the **entropy bonus**: $-c_{\text{ent}} \, \mathcal H[\pi_\theta(\cdot \mid s)]$ in the loss rewards keeping the
#   policy random, against premature certainty; rl-zoo's CartPole setting is $c_{\text{ent}} = 0$ (CartPole
#   needs no extra exploration), so it is written in but switched off;
#
# plus the value loss $\tfrac12 (V(s_t) - \text{returns}_t)^2$ (weight 0.5) and gradient clipping at norm 0.5. Every
# `eval_every` updates we evaluate the greedy policy on `eval_episodes` episodes (seeds from 50,000, apart from
# training and final evaluation) and keep the best snapshot: PPO's return on CartPole can dip late in training,
# and the final evaluation on 100 fresh episodes is of the kept snapshot. Every step below runs on your `gae` and
# your `ppo_loss`.

# %%
cfg = PPOConfig(total_steps=S.ppo_steps)  # rl-zoo's CartPole-v1 settings
print(cfg)
torch.manual_seed(0)
envs = make_vec_env(ENV, cfg.num_envs, seed=0)
agent = ActorCritic(obs_dim=4, n_actions=2, hidden=cfg.hidden)
opt = torch.optim.Adam(agent.parameters(), lr=cfg.lr, eps=1e-5)
shuffle = torch.Generator().manual_seed(0)
n_updates = cfg.total_steps // (cfg.num_envs * cfg.n_steps)
obs, _ = envs.reset(seed=0)
ep_return, train_returns = np.zeros(cfg.num_envs), []
evals, best, best_score, best_step = [], None, -np.inf, 0

dash = Dashboard().start(n_updates * cfg.num_envs * cfg.n_steps)
start = time.perf_counter()
for update in range(n_updates):
    frac = 1.0 - update / n_updates  # the learning rate and the clip range decay linearly to 0
    for group in opt.param_groups:
        group["lr"] = cfg.lr * frac
    clip = cfg.clip * frac

    # 1. the rollout: n_steps steps of the 8 environments with actions sampled from the current policy
    buf = {k: [] for k in ("obs", "actions", "logp", "rewards", "values", "next_values", "terminated", "truncated")}
    with torch.no_grad():
        for t in range(cfg.n_steps):
            o = torch.as_tensor(obs, dtype=torch.float32)
            dist = agent.dist(o)
            action = dist.sample()
            next_obs, reward, term, trunc, info = envs.step(action.numpy())
            real_next = next_obs.copy()  # where an episode ended: its final observation (SAME_STEP autoreset)
            for i in np.flatnonzero(term | trunc):
                real_next[i] = info["final_obs"][i]
            for k, v in (("obs", o), ("actions", action), ("logp", dist.log_prob(action)), ("values", agent.value(o)),
                         ("next_values", agent.value(torch.as_tensor(real_next, dtype=torch.float32))),
                         ("rewards", torch.as_tensor(reward, dtype=torch.float32)),
                         ("terminated", torch.as_tensor(term)), ("truncated", torch.as_tensor(trunc))):
                buf[k].append(v)
            ep_return += reward
            train_returns += ep_return[term | trunc].tolist()
            ep_return[term | trunc] = 0.0
            obs = next_obs
        buf = {k: torch.stack(v) for k, v in buf.items()}  # each [n_steps, num_envs]

        # 2. advantages and value targets with your GAE
        advantages, returns = gae(buf["rewards"], buf["values"], buf["next_values"], buf["terminated"],
                                  buf["truncated"], cfg.gamma, cfg.gae_lambda)

    # 3. n_epochs passes over the rollout in shuffled minibatches, each step on your clipped loss
    b_obs, b_actions, b_logp = buf["obs"].flatten(0, 1), buf["actions"].flatten(), buf["logp"].flatten()
    b_adv, b_ret = advantages.flatten(), returns.flatten()
    for epoch in range(cfg.n_epochs):
        order = torch.randperm(len(b_obs), generator=shuffle)
        for mb in order.split(cfg.batch_size):
            dist = agent.dist(b_obs[mb])
            new_logp = dist.log_prob(b_actions[mb])
            adv = (b_adv[mb] - b_adv[mb].mean()) / (b_adv[mb].std() + 1e-8)  # advantage normalisation
            policy_loss = ppo_loss(new_logp, b_logp[mb], adv, clip)
            value_loss = 0.5 * (agent.value(b_obs[mb]) - b_ret[mb]).pow(2).mean()
            entropy = dist.entropy().mean()
            loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
            opt.step()

    step = (update + 1) * cfg.num_envs * cfg.n_steps
    with torch.no_grad():
        clip_frac = (((new_logp - b_logp[mb]).exp() - 1).abs() > clip).float().mean()
    dash.log(step, policy_loss=policy_loss, value_loss=value_loss, entropy=entropy, clip_frac=clip_frac)
    if (update + 1) % S.eval_every == 0 or update + 1 == n_updates:
        score = evaluate(ENV, torch_policy(agent), episodes=S.eval_episodes, seed=50_000).mean()
        evals.append((step, score))
        if score >= best_score:  # a tie goes to the later snapshot
            best, best_score, best_step = copy.deepcopy(agent.state_dict()), score, step
        dash.log_eval(step, greedy_return=score, train_return=np.mean(train_returns[-20:]) if train_returns else 0.0)
ppo_seconds = time.perf_counter() - start
dash.finish()
envs.close()
ppo_steps = n_updates * cfg.num_envs * cfg.n_steps
print(f"{ppo_steps:,} env steps in {ppo_seconds:.1f} s ({ppo_steps / ppo_seconds:,.0f} steps/s, evaluations "
      f"included); best snapshot at step {best_step:,} (greedy {best_score:.1f} on {S.eval_episodes} episodes)")
save_checkpoint("checkpoints/17_ppo_cartpole_seed0.pt", {"agent": best, "step": best_step})

# %% [markdown]
# The kept snapshot, saved (atomically) and loaded back (`weights_only=True`), on the 100 evaluation episodes:

# %%
agent.load_state_dict(load_checkpoint("checkpoints/17_ppo_cartpole_seed0.pt")["agent"])
ppo_greedy = evaluate(ENV, torch_policy(agent), episodes=S.final_episodes)
print(f"PPO, seed 0: greedy return over {S.final_episodes} evaluation episodes {ppo_greedy.mean():.1f} +- "
      f"{ppo_greedy.std():.1f} (min {ppo_greedy.min():.0f}); the last snapshot's evaluations: "
      f"{[round(s) for _, s in evals[-5:]]}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Over several seeds
#
# The same loop as a function (`amla.rl.ppo.train_ppo`, with your `gae` and `ppo_loss` passed in), on the other
# seeds; the table is the hour's result.

# %%
ppo_runs = {0: (ppo_greedy.mean(), best_step, ppo_steps, ppo_seconds)}
for seed in S.ppo_seeds[1:]:
    run = train_ppo(ENV, gae_fn=gae, loss_fn=ppo_loss, cfg=cfg, seed=seed, eval_every=S.eval_every,
                    eval_episodes=S.eval_episodes)
    score = evaluate(ENV, torch_policy(run.agent), episodes=S.final_episodes).mean()
    ppo_runs[seed] = (score, run.best_step, run.steps, run.seconds)
ppo_means = np.array([r[0] for r in ppo_runs.values()])
print(f"{'seed':>4s} {'greedy mean':>12s} {'kept step':>10s} {'env steps':>10s} {'wall s':>7s} {'steps/s':>8s}")
for seed, (m, kept, steps, secs) in ppo_runs.items():
    print(f"{seed:4d} {m:12.1f} {kept:10,d} {steps:10,d} {secs:7.1f} {steps / secs:8,.0f}")
ppo_target = bool(ppo_means.mean() >= 475)
print(f"PPO over {len(ppo_means)} seeds: {ppo_means.mean():.1f} +- {ppo_means.std():.1f} (CleanRL's PPO: 490.0; "
      f"target >= 475 met: {ppo_target})")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. The trained agent, played back
#
# One evaluation episode of the kept PPO snapshot (seed 0), greedy, with the critic's value estimate $V(s_t)$ at
# every step below the frames. With $\gamma = 0.98$ a state that keeps the pole up forever is worth
# $1/(1 - 0.98) = 50$; watch the estimate stay near that while the cart is balanced (a truncated episode never
# tells the critic that the world ends at step 500).

# %%
env = make_env(ENV, render=True)
greedy = torch_policy(agent)
with torch.no_grad():
    value_fn = lambda o: agent.value(torch.as_tensor(o, dtype=torch.float32)).item()  # noqa: E731
    episode = run_episode(env, greedy, seed=10_000, value_fn=value_fn, frame_every=S.frame_every, label="PPO seed 0")
env.close()
print(episode, f"value estimate from {episode.values.min():.1f} to {episode.values.max():.1f}")
player = EpisodePlayer(episode, title="PPO on CartPole-v1 (greedy)", values_label="critic V(s)")
player

# %% [markdown]
# The hour's numbers, collected by `amla bench 17`:

# %%
amla.report(
    ppo_greedy_mean=ppo_means.mean(), ppo_greedy_std=ppo_means.std(),
    ppo_per_seed=" ".join(f"{m:.1f}" for m in ppo_means), ppo_target_met=ppo_target,
    ppo_env_steps=ppo_steps, ppo_seconds_seed0=ppo_seconds, ppo_steps_per_s=ppo_steps / ppo_seconds,
    ppo_seconds_all=sum(r[3] for r in ppo_runs.values()),
    reinforce_greedy_mean=rf_means.mean(), reinforce_greedy_std=rf_means.std(),
    reinforce_per_seed=" ".join(f"{m:.1f}" for m in rf_means), reinforce_target_met=rf_target,
    reinforce_env_steps_seed0=rf_steps, reinforce_seconds_seed0=rf_seconds,
    reinforce_seconds_all=sum(r[2] for r in rf_runs.values()),
    reinforce_steps_per_s=rf_steps / rf_seconds,
    baseline_variance_ratio=variance_ratio, grad_var_no_baseline=var_plain, grad_var_baseline=var_based,
    baseline_mean_grad_cosine=cosine, eval_episodes=S.final_episodes,
)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. Show that $\mathbb E_{a \sim \pi_\theta(\cdot \mid s)}[\nabla_\theta \log \pi_\theta(a \mid s)\, b(s)] = 0$. Why
#    may the baseline depend on the state but not on the action?
# 2. Why does REINFORCE weight $\nabla \log \pi(a_t \mid s_t)$ by the reward-to-go $G_t$ rather than by the whole
#    episode's return? Both are unbiased; which has the smaller variance, and why?
# 3. Section 3 measured the baseline's variance reduction at one set of parameters. How many episodes per update
#    would REINFORCE without the baseline need to match the gradient noise of 8 episodes with it?
# 4. In your `gae`, what goes wrong on CartPole if a truncated step is treated as terminated? Which states does the
#    critic then learn to undervalue?
# 5. With gymnasium's default `NEXT_STEP` autoreset, what is the transition stored at the step after an episode
#    ends, and why must a buffer drop or mask it?
# 6. With $\hat A > 0$ and the ratio already at 1.5 ($\epsilon = 0.2$), what gradient does the clipped objective
#    give $\log \pi_\theta(a \mid s)$? And with $\hat A < 0$ at the same ratio?
# 7. PPO takes 20 gradient steps on each rollout; REINFORCE takes one. What makes the 20 steps safe, and what
#    would happen with 20 steps of the plain surrogate $r_t \hat A_t$?

# %% [markdown] tags=["answer"]
# 1. $\mathbb E_a[\nabla \log \pi(a \mid s)]\, b(s) = b(s) \sum_a \pi(a \mid s) \nabla \log \pi(a \mid s)
#    = b(s) \nabla \sum_a \pi(a \mid s) = b(s) \nabla 1 = 0$. The step pulls $b(s)$ out of the expectation over
#    $a$; a $b$ that depended on $a$ could not be pulled out, and the term would in general not vanish (it would
#    bias the gradient).
# 2. The rewards before $t$ do not depend on $a_t$, so their terms average to zero (the same argument as in 1, with
#    the past rewards as the "baseline"). Leaving them out removes their noise: the reward-to-go has the smaller
#    variance, more so the later the step.
# 3. The variance of a batch mean falls as $1/B$, so $8 \times$ `variance_ratio` episodes (the ratio printed in
#    section 3) to match 8 episodes with the baseline.
# 4. A truncated step then gets $\delta = r - V(s)$: the critic learns that the states at step 500 are worth about
#    1 instead of about $1/(1-\gamma)$, although nothing about those states is different, only the clock (which the
#    observation does not show). The value targets of the whole tail of good episodes drop, and the advantages of
#    the actions there are wrong.
# 5. The stored step pairs the final observation (as $s_t$) with an action the environment ignores, reward 0 and
#    the next episode's first observation as $s_{t+1}$: it is not a transition of the environment. Learning from it
#    teaches the critic a jump that never happens and the actor the "consequence" of an action that had none.
# 6. Zero with $\hat A > 0$: past $1 + \epsilon$ the min selects the clipped, constant term. With $\hat A < 0$ the
#    unclipped term $r \hat A$ is the smaller one, so the gradient is $r \hat A = 1.5 \hat A$ (with respect to
#    $\log \pi$): it pulls the action's probability back down, and the clip never hides a move in the wrong
#    direction.
# 7. The clip: once a ratio has left $[1-\epsilon, 1+\epsilon]$ in the direction its advantage favours, its gradient
#    is zero, so the policy cannot move far from the one that collected the data, where the advantages are still
#    valid. With the plain surrogate nothing stops the ratios; 20 steps push the policy far from the data, the
#    importance-weighted estimate becomes meaningless, and training is unstable (the original paper's comparison
#    shows it).

# %% [markdown]
# **Next hour:** the capstone. Logged CartPole episodes train a Decision Transformer: attention, from Part 1,
# turned into a policy that is asked for a return and acts to reach it.
