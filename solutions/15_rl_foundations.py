# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla[rl] @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=15, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 15: RL foundations, from the Bellman equations to Q-learning
#
# Reinforcement learning is learning to act from rewards. Before any neural network, this hour works on problems
# small enough to write down completely, a **Markov decision process** (MDP) whose every state and transition fits
# in a table. There the central equations of RL can be solved exactly, which gives us the ground truth that every
# learning method of the next hours only approximates. Then we take the model away and learn from experience
# alone, with Monte Carlo, TD(0), SARSA and Q-learning.
#
# **By the end of this hour you can**
# - write an MDP as arrays $P(s' \mid s, a)$ and $R(s, a)$, read them from a gymnasium environment, and define the
#   **return** and the **value** of a policy;
# - state the **Bellman expectation** and **optimality** equations; evaluate a policy by iteration and check it
#   against the exact linear solve $(I - \gamma P_\pi)^{-1} r_\pi$;
# - find optimal policies with **value iteration** and **policy iteration**, and watch them in the gridworld viewer;
# - solve slippery FrozenLake (the value-iteration policy succeeds about 74 % of the time, the optimum);
# - learn values from episodes with **Monte Carlo** and **TD(0)**, and control with **SARSA** and **Q-learning**,
#   reproducing Sutton and Barto's cliff-walking result (figure 6.4): Q-learning learns the optimal path along the
#   cliff, SARSA a safer one with better returns while it explores.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `policy_evaluation = amla.checks.rl.check_policy_evaluation(policy_evaluation)`. The check runs your function on
# ordinary and edge inputs against the course's reference (values, types, and whether your inputs were left alone):
# - right: the check returns your function, and **the rest of the hour runs on your code**: policy iteration uses
#   your policy evaluation, FrozenLake is solved by your value iteration, the cliff-walking agents learn with your
#   Q-learning update;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook on the course's 2-core CPU machine, idle): smoke profile 14 s (`amla run 15 --profile
# smoke`; the student version 12 s), cpu profile 15 s (`amla bench 15 --profile cpu`), of which 5 s are the 20
# cliff-walking runs (10 seeds of SARSA and of Q-learning, 500 episodes each, 238,000 environment steps). The `gpu`
# profile is the cpu one: nothing here needs a GPU.

# %%
import time

import numpy as np
import torch
from gymnasium.utils.env_checker import check_env
from matplotlib.figure import Figure

from amla.rl.episodes import evaluate, make_env, run_episode
from amla.rl.gridworld import CLIFF_ACTION_DELTAS, GridWorld, layout_masks
from amla.rl.tabular import (epsilon_greedy, exact_policy_evaluation, q_from_v, simulate, start_distribution,
                             transition_model)
from amla.views import Dashboard, EpisodePlayer
from amla.views.gridworld import GridworldViewer, plot_grid_values

if device.type == "cpu":
    torch.set_num_threads(1)  # nothing here is a neural network; one thread keeps the timings honest

S = amla.per_profile(
    smoke=dict(lake_episodes=1000, env_episodes=20, td_episodes=20, td_seeds=(0, 1), cliff_seeds=(0, 1),
               cliff_episodes=20, window=5),
    cpu=dict(lake_episodes=10_000, env_episodes=1000, td_episodes=300, td_seeds=(0, 1, 2, 3, 4),
             cliff_seeds=tuple(range(10)), cliff_episodes=500, window=10),
    gpu=dict(lake_episodes=10_000, env_episodes=1000, td_episodes=300, td_seeds=(0, 1, 2, 3, 4),
             cliff_seeds=tuple(range(10)), cliff_episodes=500, window=10),
)
print(amla.profile(), S)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Markov decision processes
#
# An MDP is a set of states $\mathcal S$, a set of actions $\mathcal A$, transition probabilities
# $P(s' \mid s, a)$ and rewards. At each step $t$ the agent in state $S_t$ picks $A_t$, the environment moves it to
# $S_{t+1} \sim P(\cdot \mid S_t, A_t)$ and pays $R_{t+1}$. **Markov** means that the next state depends on the
# past only through the current state and action. The agent wants a large **return**, the discounted sum of the
# rewards that follow,
# $$
# G_t = R_{t+1} + \gamma R_{t+2} + \gamma^2 R_{t+3} + \dots = R_{t+1} + \gamma G_{t+1}, \qquad 0 \le \gamma \le 1,
# $$
# and when an episode ends (a **terminal** state) nothing follows: $G = 0$ from there on.
#
# The course gridworld is Russell and Norvig's 4x3 world (AIMA, chapter 17): start bottom left, a goal worth
# $+1$ top right, a pit worth $-1$ below it, a wall in the middle, and $-0.04$ for every move. The floor is
# slippery: an action goes where it points with probability 0.8 and to either side with 0.1 each; bumping into a
# wall or the border keeps the agent in place. It is a real `gymnasium.Env`, so gymnasium's own checker accepts it:

# %%
grid_env = GridWorld()
check_env(make_env("amla/GridWorld-v0", render=True).unwrapped, skip_render_check=False)
print("check_env passed;", grid_env.observation_space, grid_env.action_space, "layout:", *grid_env.layout, sep="\n  ")

# %% [markdown]
# Like gymnasium's FrozenLake and CliffWalking, the environment exposes its model: `env.P[s][a]` is a list of
# `(probability, next_state, reward, terminated)`. `transition_model` turns it into arrays, the same code for all
# three environments: $P$ of shape `[S, A, S]`, the expected reward $R(s, a) = \sum_{s'} P(s' \mid s, a)\, r(s, a,
# s')$ of shape `[S, A]`, and a mask of the terminal states, whose rows of $P$ it sets to zero (nothing follows the
# end of an episode). States are numbered row by row, actions are 0 left, 1 down, 2 right, 3 up.

# %%
P, R, terminal = transition_model(grid_env)
n_states, n_actions = R.shape
masks = {k: m.ravel() for k, m in layout_masks(grid_env.layout).items()}
ends = terminal & ~masks["wall"]  # the goal and the pit (a wall is "terminal" too: it is never entered)
print("P", P.shape, "R", R.shape, "terminal states", np.flatnonzero(ends).tolist(), "walls",
      np.flatnonzero(masks["wall"]).tolist())
print("from state 10 (left of the bottom-right corner), action up:",
      {int(s2): round(float(p), 2) for s2, p in enumerate(P[10, 3]) if p > 0}, " R =", round(float(R[10, 3]), 3))
print("rows of P sum to", sorted(set(np.round(P.sum(2), 12).ravel().tolist())))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. The value of a policy
#
# A policy $\pi(a \mid s)$ gives each state a distribution over actions. Its **value** is the expected return
# from each state, $V^\pi(s) = \mathbb E_\pi[G_t \mid S_t = s]$. Putting $G_t = R_{t+1} + \gamma G_{t+1}$ inside the
# expectation gives the **Bellman expectation equation**, one equation per state:
# $$
# V^\pi(s) = \sum_a \pi(a \mid s) \Big[ R(s, a) + \gamma \sum_{s'} P(s' \mid s, a)\, V^\pi(s') \Big].
# $$
# With $r_\pi(s) = \sum_a \pi(a \mid s) R(s, a)$ and $P_\pi(s, s') = \sum_a \pi(a \mid s) P(s' \mid s, a)$ this is
# linear, $V = r_\pi + \gamma P_\pi V$, so $V^\pi = (I - \gamma P_\pi)^{-1} r_\pi$: one linear solve. That is fine
# for 12 states and hopeless for the $10^{20}$ states of a game, which is why RL computes values by repeated
# **backups** instead. The uniform random policy on the gridworld, exactly:

# %%
gamma = 1.0  # the book's setting: every episode of this gridworld ends, so no discount is needed
uniform = np.full((n_states, n_actions), 1 / n_actions)
V_uniform = exact_policy_evaluation(P, R, uniform, gamma)
print(np.round(V_uniform.reshape(grid_env.nrow, grid_env.ncol), 3))

# %% [markdown]
# ### Exercise 15.1: Policy evaluation by iteration
#
# Write `policy_evaluation(P, R, policy, gamma, theta=1e-10)`: start from $V = 0$ and repeat the backup
# $V \leftarrow r_\pi + \gamma P_\pi V$ until no value changes by `theta` or more, then return $V$ (a float numpy
# array `[S]`). `policy` is `[S, A]` (a row of action probabilities per state). Each sweep is a contraction by
# $\gamma$ (or, with $\gamma = 1$, shrinks as episodes end), so the values converge to the exact solve; the check
# compares yours with it to $10^{-6}$, including $\gamma = 0$, absorbing and terminal states, a single state and
# float32 inputs. Do not change `P`, `R` or `policy`. (`np.einsum("sa,sat->st", policy, P)` is $P_\pi$.)

# %%
def policy_evaluation(P: np.ndarray, R: np.ndarray, policy: np.ndarray, gamma: float,
                      theta: float = 1e-10) -> np.ndarray:
    ### BEGIN SOLUTION
    r_pi = (policy * R).sum(axis=1)
    P_pi = np.einsum("sa,sat->st", policy, P)
    V = np.zeros(len(r_pi))
    while True:
        V_new = r_pi + gamma * P_pi @ V
        if np.max(np.abs(V_new - V)) < theta:
            return V_new
        V = V_new
    ### END SOLUTION


# %%
policy_evaluation = amla.checks.rl.check_policy_evaluation(policy_evaluation)

# %% [markdown]
# Your iteration against the exact solve on the gridworld:

# %%
V_iter = policy_evaluation(P, R, uniform, gamma)
pe_gap = float(np.abs(V_iter - V_uniform).max())
print(f"uniform policy, gamma {gamma}: max |iteration - exact solve| = {pe_gap:.2e}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Optimal values: value iteration and policy iteration
#
# The best achievable value $V^*(s) = \max_\pi V^\pi(s)$ satisfies the **Bellman optimality equation**: the best
# action now, then optimal behaviour after it,
# $$
# V^*(s) = \max_a \Big[ R(s, a) + \gamma \sum_{s'} P(s' \mid s, a)\, V^*(s') \Big] = \max_a Q^*(s, a).
# $$
# The max makes it non-linear, so there is no single solve, but the backup is still a $\gamma$-contraction:
# **value iteration** repeats $V \leftarrow \max_a [R + \gamma P V]$ from $V = 0$. Acting greedily with respect to
# $V^*$, $\pi^*(s) = \arg\max_a Q^*(s, a)$, is optimal.
#
# ### Exercise 15.2: Value iteration
#
# Write `value_iteration(P, R, gamma, theta=1e-10)`: repeat the optimality backup from $V = 0$ until no value
# moves by `theta`, and return `(V, policy)`: the values (float `[S]`) and the greedy policy of those values
# (`[S]` integer actions, `argmax` over $R + \gamma P V$; where actions tie any of them is right). `P @ V` has
# shape `[S, A]`.

# %%
def value_iteration(P: np.ndarray, R: np.ndarray, gamma: float,
                    theta: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    ### BEGIN SOLUTION
    V = np.zeros(P.shape[0])
    while True:
        V_new = (R + gamma * P @ V).max(axis=1)
        delta = np.max(np.abs(V_new - V))
        V = V_new
        if delta < theta:
            break
    return V, (R + gamma * P @ V).argmax(axis=1)
    ### END SOLUTION


# %%
value_iteration = amla.checks.rl.check_value_iteration(value_iteration)

# %% [markdown]
# The gridworld's optimal values, which the book prints in its figure 17.3 (0.705 at the start, 0.812 in the top
# left corner), and the optimal policy. Note the bottom-right corner: next to the pit, the best move is *left*,
# the long way round, because "up" slips into the pit one time in ten.

# %%
V_star, pi_star = value_iteration(P, R, gamma)
print(np.round(V_star.reshape(grid_env.nrow, grid_env.ncol), 3))
arrows = np.array(["<", "v", ">", "^"])[pi_star]
arrows[ends] = "*"
arrows[masks["wall"]] = "#"
print(*("".join(row) for row in arrows.reshape(grid_env.nrow, grid_env.ncol)), sep="\n")

# %% [markdown] slideshow={"slide_type": "slide"}
# ### The gridworld viewer: value iteration sweep by sweep
#
# The loop below is value iteration written out, saving the values and their greedy policy after every sweep.
# In the viewer, colour is $V$ (one scale for all sweeps), arrows the greedy action, hatching the end states. Drag
# the slider or press play: the goal's value spreads backwards one step per sweep, and the arrows settle long
# before the values do. (Without a live kernel you see the last sweep as a picture.)

# %%
V = np.zeros(n_states)
vi_frames = []
for sweep in range(30):
    Q = q_from_v(P, R, V, gamma)  # R + gamma P V, [S, A]
    vi_frames.append((V.copy(), Q.argmax(axis=1)))
    V = Q.max(axis=1)
vi_policy_sweep = next(k for k, (_, pi) in enumerate(vi_frames)
                       if all(np.array_equal(p[~ends], vi_frames[-1][1][~ends]) for _, p in vi_frames[k:]))
print(f"after 30 sweeps max |V - V*| = {np.abs(V - V_star).max():.1e}; the greedy policy stops changing at sweep "
      f"{vi_policy_sweep}")
labels = {int(s): "goal" if masks["goal"][s] else "pit" for s in np.flatnonzero(ends)}
viewer = GridworldViewer(vi_frames, (grid_env.nrow, grid_env.ncol), walls=masks["wall"], terminals=ends,
                         labels=labels, names=[f"sweep {k}" for k in range(len(vi_frames))], title="value iteration")
viewer

# %% [markdown] slideshow={"slide_type": "slide"}
# ### Policy iteration
#
# Policy iteration alternates the two halves: **evaluate** the current policy exactly (your Exercise 15.1), then
# **improve** it by acting greedily with respect to its values. Each improvement is at least as good in every
# state (the policy improvement theorem), and there are finitely many deterministic policies, so it stops, at an
# optimal one, usually after very few iterations. We start from "always up", and stop when no state can do
# strictly better.

# %%
pi = np.full(n_states, 3)  # always up
pi_frames = []
for iteration in range(50):
    V = policy_evaluation(P, R, np.eye(n_actions)[pi], gamma)  # your Exercise 15.1
    pi_frames.append((V, pi.copy()))
    Q = q_from_v(P, R, V, gamma)
    if np.all(Q[np.arange(n_states), pi] >= Q.max(axis=1) - 1e-9):  # stable: no state improves
        break
    pi = Q.argmax(axis=1)
pi_iterations = len(pi_frames) - 1
pi_gap = float(np.abs(pi_frames[-1][0] - V_star).max())
print(f"policy iteration: stable after {pi_iterations} improvements; max |V_pi - V*| = {pi_gap:.1e}")
GridworldViewer(pi_frames, (grid_env.nrow, grid_env.ncol), walls=masks["wall"], terminals=ends, labels=labels,
                names=[f"policy {k}" for k in range(len(pi_frames))], title="policy iteration")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. FrozenLake: the same code on a gymnasium environment
#
# FrozenLake 4x4 is a frozen lake with four holes: reach the goal in the far corner (reward 1) without falling in
# (the episode ends with 0). The ice is very slippery: each action goes where it points with probability 1/3 and to
# either side with 1/3 each, and an episode stops after 100 steps. Even the best policy fails sometimes. Its model
# goes through the same `transition_model`, your value iteration finds the optimal policy ($\gamma = 0.99$), and we
# measure its success rate on 10,000 episodes simulated from the model (all at once, vectorised), then on real
# episodes of the gymnasium environment, which should agree.

# %%
lake = make_env("FrozenLake-v1")
P_lake, R_lake, term_lake = transition_model(lake)
V_lake, pi_lake = value_iteration(P_lake, R_lake, 0.99)
goal = int(np.flatnonzero(lake.unwrapped.desc.ravel() == b"G")[0])
t0 = time.perf_counter()
final, lengths, ended = simulate(P_lake, term_lake, start_distribution(lake), pi_lake, episodes=S.lake_episodes,
                                 max_steps=100, seed=0)
lake_seconds = time.perf_counter() - t0
lake_success = float(np.mean(final == goal))
lake_se = float(np.sqrt(lake_success * (1 - lake_success) / S.lake_episodes))
print(f"value-iteration policy on the model: success {100 * lake_success:.1f} % +- {100 * lake_se:.1f} over "
      f"{S.lake_episodes} episodes ({lake_seconds:.2f} s, mean length {lengths.mean():.1f} steps); "
      f"V*(start) = {V_lake[0]:.3f}")
final_nolimit, _, _ = simulate(P_lake, term_lake, start_distribution(lake), pi_lake, episodes=S.lake_episodes,
                               max_steps=10_000, seed=1)
lake_success_nolimit = float(np.mean(final_nolimit == goal))
print(f"the same policy without the 100-step limit (10,000 steps): success {100 * lake_success_nolimit:.1f} %")
t0 = time.perf_counter()
env_returns = evaluate("FrozenLake-v1", lambda obs: pi_lake[obs], episodes=S.env_episodes)
env_seconds = time.perf_counter() - t0
print(f"on the gymnasium environment: success {100 * env_returns.mean():.1f} % over {S.env_episodes} episodes "
      f"({env_seconds:.1f} s)")
print(np.array(["<", "v", ">", "^"])[pi_lake].reshape(4, 4))

# %% [markdown]
# $V^*(\text{start})$ with $\gamma = 0.99$ is the discounted chance of reaching the goal, so it is below the
# success rate. The policy looks odd at first: in the start state it pushes *left*, into the wall, because then
# the ice can only slide it down or keep it in place, never into a hole. One episode of this policy, played in the
# episode player (the reward below each frame):

# %%
lake_render = make_env("FrozenLake-v1", render=True)
lake_episode = run_episode(lake_render, lambda obs: int(pi_lake[obs]), seed=3,
                           value_fn=lambda obs: float(V_lake[obs]))
print(lake_episode)
EpisodePlayer([lake_episode], title="FrozenLake, the value-iteration policy", values_label="V*(s)")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Learning from experience: Monte Carlo and TD(0)
#
# Without $P$ and $R$, the agent only sees episodes. To estimate $V^\pi$ it can
# - average the returns that followed each visit to a state (**Monte Carlo**): unbiased, but it waits for the end
#   of the episode, and the return of a long episode is noisy;
# - **bootstrap** from its own estimate of the next state (**TD(0)**), after every step:
#   $V(s) \leftarrow V(s) + \alpha\,\big(r + \gamma V(s') - V(s)\big)$. The target uses one real reward and a
#   guess; it is biased while $V$ is wrong but far less noisy.
#
# Both estimate the uniform random policy on the gridworld below, over several seeds, against the exact values of
# section 2 (root mean square error over the non-terminal states).

# %%
grid_steps = make_env("amla/GridWorld-v0")
free = ~terminal


def rms(V: np.ndarray) -> float:
    return float(np.sqrt(np.mean((V - V_uniform)[free] ** 2)))


td_alphas = (0.1, 0.2)
curves = {"Monte Carlo": [], **{f"TD(0), alpha {al}": [] for al in td_alphas}}
t0 = time.perf_counter()
for seed in S.td_seeds:
    rng = np.random.default_rng(seed)
    V_mc, visits = np.zeros(n_states), np.zeros(n_states)
    V_td = {al: np.zeros(n_states) for al in td_alphas}
    errors = {name: [] for name in curves}
    for episode in range(S.td_episodes):
        s, _ = grid_steps.reset(seed=seed * 1000 + episode)
        states, rewards, done = [], [], False
        while not done:
            a = int(rng.integers(n_actions))
            s2, r, terminated, truncated, _ = grid_steps.step(a)
            for al, V in V_td.items():  # TD(0), after every step
                V[s] += al * (r + (0.0 if terminated else gamma * V[s2]) - V[s])
            states.append(s)
            rewards.append(r)
            s, done = s2, terminated or truncated
        G = 0.0
        for t in reversed(range(len(states))):  # Monte Carlo, at the end: every-visit running mean of G_t
            G = rewards[t] + gamma * G
            visits[states[t]] += 1
            V_mc[states[t]] += (G - V_mc[states[t]]) / visits[states[t]]
        errors["Monte Carlo"].append(rms(V_mc))
        for al, V in V_td.items():
            errors[f"TD(0), alpha {al}"].append(rms(V))
    for name in curves:
        curves[name].append(errors[name])
td_seconds = time.perf_counter() - t0
final_err = {k: np.array(v)[:, -1] for k, v in curves.items()}
for k, v in final_err.items():
    print(f"{k:18s} RMS error after {S.td_episodes} episodes: {v.mean():.3f} +- {v.std():.3f} over "
          f"{len(S.td_seeds)} seeds {np.round(v, 3).tolist()}")
print(f"({td_seconds:.1f} s)")

fig = Figure(figsize=(6, 3), layout="constrained")
ax = fig.subplots()
for k, v in curves.items():
    ax.plot(np.arange(1, S.td_episodes + 1), np.mean(v, axis=0), label=k)
ax.set_xlabel("episodes")
ax.set_ylabel("RMS error of V")
ax.set_title(f"estimating the random policy's values (mean of {len(S.td_seeds)} seeds)", fontsize=10)
ax.legend()
fig

# %% [markdown]
# Read the curves from the run above. Here, with $\gamma = 1$ and long random episodes, TD(0) starting from
# $V = 0$ needs many episodes to carry the end rewards back through the grid (each update moves information one
# step, by a fraction $\alpha$), while the very first Monte Carlo returns are already unbiased samples. A larger
# $\alpha$ learns faster, but a constant step size keeps TD jittering around the true values (it keeps chasing
# the latest episodes), so it levels off higher; Monte Carlo's running mean weighs every episode equally and keeps
# improving. With a decaying $\alpha$ TD converges as well; on other problems (short-horizon, or a good initial
# $V$) TD's lower variance wins, as in Sutton and Barto's random-walk example 6.2.
#
# ## 6. Control without a model: SARSA and Q-learning
#
# To *choose* actions without a model, learn action values $Q(s, a)$ instead: acting greedily on $Q$ needs no
# look-ahead through $P$. Both methods act **$\varepsilon$-greedily** (a random action with probability
# $\varepsilon$, else the best one) and update after every step with a TD target:
# - **SARSA** (on-policy): $Q(s,a) \leftarrow Q(s,a) + \alpha\,[r + \gamma Q(s', a') - Q(s,a)]$, where $a'$ is the
#   action it will actually take next, exploration included. It learns the value of the $\varepsilon$-greedy
#   policy it follows.
# - **Q-learning** (off-policy): $Q(s,a) \leftarrow Q(s,a) + \alpha\,[r + \gamma \max_{a'} Q(s', a') - Q(s,a)]$.
#   The target is the greedy action's value, whatever the agent does next: it learns $Q^*$, the values of the
#   optimal policy, while behaving $\varepsilon$-greedily.
#
# At a terminal step there is no next state: the target is $r$ alone.
#
# ### Exercise 15.3: The Q-learning update
#
# Write `q_learning_update(Q, s, a, r, s_next, terminated, alpha, gamma)`: one Q-learning step **in place** on the
# table `Q` (a float numpy array `[S, A]`): only the entry `Q[s, a]` changes, moved by `alpha` towards the target
# $r + \gamma \max_{a'} Q(s', a')\,(1 - \text{terminated})$. Return nothing. `s`, `a` and `s_next` may be numpy
# integers and `terminated` a numpy bool, as gymnasium returns them.

# %%
def q_learning_update(Q: np.ndarray, s: int, a: int, r: float, s_next: int, terminated: bool, alpha: float,
                      gamma: float) -> None:
    ### BEGIN SOLUTION
    target = r if terminated else r + gamma * Q[s_next].max()
    Q[s, a] += alpha * (target - Q[s, a])
    ### END SOLUTION


# %%
q_learning_update = amla.checks.rl.check_q_learning_update(q_learning_update)

# %% [markdown] slideshow={"slide_type": "slide"}
# ### Cliff walking
#
# Sutton and Barto's example 6.6: a 4x12 grid, start bottom left, goal bottom right, and between them along the
# bottom row a cliff. Every step costs $-1$; stepping into the cliff costs $-100$ and sends the agent back to the
# start. The shortest path runs along the edge of the cliff (13 steps, return $-13$). CliffWalking has no time limit
# of its own, so `make_env` caps each episode at 1,000 steps (the very first episodes wander).
#
# The loop below runs both algorithms side by side with the book's settings ($\varepsilon = 0.1$,
# $\alpha = 0.5$, $\gamma = 1$, 500 episodes), for several seeds, one episode of every run per round; Q-learning
# learns with **your** `q_learning_update`. The dashboard shows, as they come, the mean squared TD error of each
# episode (left: how far the targets still are from the table) and the mean online return per episode (middle:
# figure 6.4 being drawn), with the return of each algorithm's greedy path every 50 episodes.

# %%
cliff = make_env("CliffWalking-v1", max_episode_steps=1000)
P_cliff, R_cliff, term_cliff = transition_model(cliff)
n_cliff = R_cliff.shape[0]
epsilon, alpha, gamma_cliff = 0.1, 0.5, 1.0
algos, keys = ("SARSA", "Q-learning"), ("sarsa", "q_learning")
runs = [dict(algo=algo, seed=seed, Q=np.zeros((n_cliff, 4)), rng=np.random.default_rng(seed),
             env=make_env("CliffWalking-v1", max_episode_steps=1000))
        for algo in algos for seed in S.cliff_seeds]
online = {algo: np.zeros((len(S.cliff_seeds), S.cliff_episodes)) for algo in algos}


def greedy_path(Q: np.ndarray, max_steps: int = 100) -> tuple[float, list[int]]:
    """Follow argmax Q from the start; the return and the states visited (stops after max_steps: a loop)."""
    s, _ = cliff.reset(seed=0)
    path, G = [int(s)], 0.0
    for _ in range(max_steps):
        s, r, terminated, _, _ = cliff.step(int(Q[s].argmax()))
        path.append(int(s))
        G += r
        if terminated:
            break
    return G, path


env_steps = 0
td_loss = {algo: np.zeros((len(S.cliff_seeds), S.cliff_episodes)) for algo in algos}
dash = Dashboard().start(S.cliff_episodes)
t0 = time.perf_counter()
for episode in range(S.cliff_episodes):
    for k, run in enumerate(runs):
        Q, rng, env = run["Q"], run["rng"], run["env"]
        s, _ = env.reset(seed=run["seed"] * 1000 + episode)
        a = epsilon_greedy(Q[s], epsilon, rng)
        G, done, squared_td, n = 0.0, False, 0.0, 0
        while not done:
            s2, r, terminated, truncated, _ = env.step(a)
            before = Q[s, a]
            if run["algo"] == "Q-learning":
                q_learning_update(Q, s, a, r, s2, terminated, alpha, gamma_cliff)  # your Exercise 15.3
                a2 = epsilon_greedy(Q[s2], epsilon, rng)
            else:  # SARSA: the target uses the action a2 the agent is about to take
                a2 = epsilon_greedy(Q[s2], epsilon, rng)
                target = r + (0.0 if terminated else gamma_cliff * Q[s2, a2])
                Q[s, a] += alpha * (target - Q[s, a])
            squared_td += ((Q[s, a] - before) / alpha) ** 2  # the update moved Q[s, a] by alpha * TD error
            s, a, G, done, n = s2, a2, G + r, terminated or truncated, n + 1
        env_steps += n
        online[run["algo"]][k % len(S.cliff_seeds), episode] = G
        td_loss[run["algo"]][k % len(S.cliff_seeds), episode] = squared_td / n
    dash.log(episode + 1, **{f"{key}_td_loss": td_loss[algo][:, episode].mean() for algo, key in zip(algos, keys)})
    dash.log_eval(episode + 1, **{f"{key}_return": online[algo][:, episode].mean() for algo, key in zip(algos, keys)})
    if (episode + 1) % 50 == 0 or episode + 1 == S.cliff_episodes:
        dash.log_eval(episode + 1, **{f"{key}_greedy_return": np.mean(
            [greedy_path(run["Q"])[0] for run in runs if run["algo"] == algo]) for algo, key in zip(algos, keys)})
cliff_seconds = time.perf_counter() - t0
dash.finish()
print(f"{len(runs)} runs x {S.cliff_episodes} episodes: {env_steps} environment steps in {cliff_seconds:.1f} s "
      f"({env_steps / cliff_seconds:.0f} steps/s)")

# %% [markdown]
# Figure 6.4: the online return per episode (what the agent earned *while* exploring), averaged over the seeds and
# smoothed over a few episodes.

# %%
last = min(100, S.cliff_episodes)
fig = Figure(figsize=(7, 3.4), layout="constrained")
ax = fig.subplots()
kernel = np.ones(S.window) / S.window
for algo in algos:
    curve = np.convolve(online[algo].mean(axis=0), kernel, mode="valid")
    ax.plot(np.arange(S.window, S.cliff_episodes + 1), curve, label=algo)
ax.axhline(-13, color="grey", ls=":", lw=1, label="optimal path (-13)")
ax.set_ylim(-100, 0)
ax.set_xlabel("episodes")
ax.set_ylabel("sum of rewards during episode")
ax.set_title(f"cliff walking, epsilon 0.1, alpha 0.5 (mean of {len(S.cliff_seeds)} seeds)", fontsize=10)
ax.legend(loc="lower right")
fig

# %% [markdown]
# The numbers behind it, and the **greedy** path each run has learned (argmax $Q$ from the start, no exploration):

# %%
cliff_result = {}
for algo in algos:
    late = online[algo][:, -last:].mean(axis=1)
    paths = [greedy_path(run["Q"]) for run in runs if run["algo"] == algo]
    greedy_returns = [G for G, _ in paths]
    reached = [G for G, p in paths if p[-1] == 47]
    cliff_result[algo] = dict(online_last=late, greedy=greedy_returns, paths=[p for _, p in paths])
    print(f"{algo:10s} online return, last {last} episodes: {late.mean():.1f} +- {late.std():.1f} "
          f"(per seed {np.round(late, 1).tolist()})")
    print(f"{'':10s} greedy path return per seed: {greedy_returns}; reaches the goal in {len(reached)} of "
          f"{len(paths)}" + (f", {-np.mean(reached):.1f} steps on average" if reached else ""))
q_greedy_optimal = all(G == -13 for G in cliff_result["Q-learning"]["greedy"])
sarsa_online_better = bool(cliff_result["SARSA"]["online_last"].mean()
                           > cliff_result["Q-learning"]["online_last"].mean())
print("Q-learning's greedy path is the optimal one (-13) in every seed:", q_greedy_optimal)
print("SARSA's online return is higher than Q-learning's:", sarsa_online_better)

# %% [markdown]
# Where the two greedy paths go (seed 0 of each; colour: $\max_a Q(s, a)$, red hatching: the cliff). Q-learning's
# path hugs the cliff: optimal, but with $\varepsilon = 0.1$ the exploring agent falls off now and then, which is
# why its *online* return is worse. SARSA learned the values of the exploring policy, in which a state next to the
# cliff is dangerous, so it walks further away from the edge. With a constant $\alpha = 0.5$ its values stay noisy,
# and in some seeds the greedy path of the final table can even get stuck in a loop (the run above counts how many
# reach the goal); SARSA's strength is the return it earns while it learns.

# %%
cliff_hazards = np.zeros(n_cliff, dtype=bool)
cliff_hazards[37:47] = True  # never a state the agent stays in: drawn like walls, hatched red
fig = Figure(figsize=(12, 6), layout="constrained")
for ax, algo in zip(fig.subplots(2, 1), algos):
    Q0 = next(run["Q"] for run in runs if run["algo"] == algo)
    G0, path0 = greedy_path(Q0)
    plot_grid_values(Q0.max(axis=1), Q0.argmax(axis=1), (4, 12), terminals=term_cliff, hazards=cliff_hazards,
                     walls=cliff_hazards,
                     action_deltas=CLIFF_ACTION_DELTAS, path=path0, labels={47: "goal"}, ax=ax,
                     title=f"{algo}, seed 0: greedy return {G0:g}")
fig

# %% [markdown]
# The hour's numbers, collected by `amla bench 15`:

# %%
amla.report(
    policy_evaluation_max_gap=pe_gap, policy_iteration_improvements=pi_iterations, policy_iteration_gap=pi_gap,
    value_iteration_policy_stable_sweep=vi_policy_sweep, gridworld_v_start=float(V_star[8]),
    frozenlake_success=lake_success, frozenlake_success_se=lake_se, frozenlake_episodes=S.lake_episodes,
    frozenlake_success_without_time_limit=lake_success_nolimit,
    frozenlake_env_success=float(env_returns.mean()), frozenlake_env_episodes=S.env_episodes,
    mc_rms_final_mean=float(final_err["Monte Carlo"].mean()),
    td_rms_final_mean_alpha_01=float(final_err["TD(0), alpha 0.1"].mean()),
    td_rms_final_mean_alpha_02=float(final_err["TD(0), alpha 0.2"].mean()),
    q_learning_online_last_mean=float(cliff_result["Q-learning"]["online_last"].mean()),
    q_learning_online_last_std=float(cliff_result["Q-learning"]["online_last"].std()),
    sarsa_online_last_mean=float(cliff_result["SARSA"]["online_last"].mean()),
    sarsa_online_last_std=float(cliff_result["SARSA"]["online_last"].std()),
    q_learning_greedy_returns=" ".join(f"{G:g}" for G in cliff_result["Q-learning"]["greedy"]),
    sarsa_greedy_returns=" ".join(f"{G:g}" for G in cliff_result["SARSA"]["greedy"]),
    q_learning_online_last_per_seed=" ".join(f"{v:.1f}" for v in cliff_result["Q-learning"]["online_last"]),
    sarsa_online_last_per_seed=" ".join(f"{v:.1f}" for v in cliff_result["SARSA"]["online_last"]),
    q_learning_greedy_optimal=q_greedy_optimal, sarsa_online_better=sarsa_online_better,
    cliff_env_steps=env_steps, cliff_seconds=cliff_seconds, cliff_steps_per_s=env_steps / cliff_seconds,
    cliff_seeds=len(S.cliff_seeds), cliff_episodes=S.cliff_episodes,
)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. Why can policy evaluation be solved with one linear system but the Bellman optimality equation cannot? What
#    does one sweep of each cost for $S$ states and $A$ actions, and what does the solve cost?
# 2. With $\gamma = 1$, policy evaluation on the gridworld still converges. Which property of the gridworld and of
#    the policy makes that true? Give a policy for which it would not converge.
# 3. In the 4x3 world the optimal action in the bottom-right corner is *left* (away from the goal). Change the step
#    reward from $-0.04$ to $-2$: what should the policy do now, and why?
# 4. The FrozenLake policy succeeds about 74 % of the time (section 4), while $V^*(\text{start}) < 0.74$. Explain
#    both numbers;
#    what would the success rate be without the 100-step limit, and which $\gamma$ would you use to find that
#    policy?
# 5. Q-learning's greedy path is optimal, but its online return is worse than SARSA's. Why? What happens to both
#    algorithms if $\varepsilon$ decays to 0 over training?
# 6. Your `q_learning_update` drops the bootstrap term when `terminated` is true. Why must it *not* drop it when an
#    episode is only truncated (cut by a time limit)?
# 7. Monte Carlo needs complete episodes; TD(0) does not. Name a problem where that matters, and one way in which
#    TD's bootstrapping can hurt.

# %% [markdown] tags=["answer"]
# 1. $V = r_\pi + \gamma P_\pi V$ is linear in $V$; the max in $V = \max_a (R + \gamma P V)$ is not, so it is solved
#    by iteration (or by policy iteration, a sequence of linear solves). A sweep costs $O(S^2 A)$ for both (the
#    product $P V$ over all actions); the solve costs $O(S^3)$, fine for 16 states, impossible for large $S$.
# 2. Every episode of the policy ends with probability 1 (a **proper** policy: the terminal states are reachable
#    from every state, and the slips make the agent move). Then $\gamma P_\pi$ restricted to non-terminal states has
#    spectral radius below 1. "Always left" is improper: in the left column the agent only slides up and down, the
#    values go to $-\infty$ (step reward $-0.04$ for ever) and the iteration never settles.
# 3. With $-2$ per step, ending quickly matters more than how it ends: even the pit ($-1$) beats a few more steps,
#    so near the pit the policy walks into it, and elsewhere it takes the shortest way to either end state.
# 4. $V^*(\text{start})$ with $\gamma = 0.99$ is the *discounted* probability of success,
#    $\mathbb E[0.99^{T-1}\,\mathbb 1\{\text{goal reached}\}]$ with $T$ the number of steps (section 4 prints the
#    mean length), so it is below the plain success rate. The policy avoids holes at the cost of time, and the
#    100-step limit cuts some episodes: without it the same policy reaches the goal more often (the run prints the
#    rate without the limit, about 82 %). $\gamma$ close to 1 (0.999, or 1 with value iteration to convergence) finds
#    the policy that maximises the reach probability.
# 5. Q-learning evaluates the greedy policy, which walks on the edge; the agent actually follows the
#    $\varepsilon$-greedy policy, and one random step down there costs $-100$. SARSA evaluates the policy it
#    follows, exploration included, and learns to stay away from the edge, so it earns more while exploring. With
#    $\varepsilon \to 0$ both converge to the optimal path (SARSA's target becomes Q-learning's).
# 6. A truncated episode did not end: the state after the cut still has a future, and the target
#    $r + \gamma \max_{a'} Q(s', a')$ estimates it. Treating truncation as termination teaches the agent that the
#    state where the clock ran out is worth nothing, which is wrong (and makes values depend on time, which is not
#    in the state).
# 7. Continuing tasks without episodes (a thermostat, a trading agent), or very long episodes with a sparse reward:
#    Monte Carlo cannot update before the end. TD's target uses its own estimate: while it is wrong (or with function
#    approximation, Hour 16) the error propagates and can even diverge (the "deadly triad"), and a bad initial value
#    biases early learning.

# %% [markdown]
# **Next hour:** the states of CartPole are four real numbers, too many for a table. A neural network takes the
# table's place, and Q-learning becomes DQN, with a replay buffer and a target network to keep it stable.
