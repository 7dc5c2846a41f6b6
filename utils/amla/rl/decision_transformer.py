"""A Decision Transformer (Chen et al., 2021) built from the course's GPT block, its return-conditioned rollout,
and the behaviour-cloning baselines it is compared with (Hour 18).

- ``interleave_tokens(returns, states, actions) -> [B, 3T, C]``: the token sequence ``R_1, s_1, a_1, R_2, ...``
  (Exercise 18.2's reference).
- ``DecisionTransformer``: one embedding per kind of token (a linear map of the return-to-go, of the state, a
  table of actions) plus a learned embedding of the episode's timestep, the tokens interleaved, ``n_layer`` causal
  ``amla.transformers.gpt.Block``\\ s (Hour 06), and a head that reads the action ``a_t`` off the hidden state of
  the token ``s_t`` (which sees ``R_1, s_1, a_1, ..., R_t, s_t``, never ``a_t`` itself).
- ``dt_rollout(model, env_id, targets)``: one episode per target return, all played side by side; at every step the
  model sees the last ``context`` steps of each episode's history and the return-to-go left (``target`` minus the
  rewards so far); returns the achieved returns (and, with ``render=True``, the ``Episode``\\ s with their frames and
  the return-to-go the model was fed as the per-step value, for ``amla.views.EpisodePlayer``).
- ``MLPPolicy`` and ``train_bc``: behaviour cloning, a state -> action classifier trained by cross-entropy on the
  logged (state, action) pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.rl.episodes import EVAL_SEED, Episode, make_env
from amla.rl.trajectories import Trajectory
from amla.toolkit.errors import check_hook
from amla.transformers.gpt import Block, GPTConfig

__all__ = ["DecisionTransformer", "MLPPolicy", "dt_rollout", "interleave_tokens", "train_bc"]

InterleaveFn = Callable[[Tensor, Tensor, Tensor], Tensor]
_INTERLEAVE_SIGNATURE = "interleave_tokens(returns, states, actions) -> tokens"


def interleave_tokens(returns: Tensor, states: Tensor, actions: Tensor) -> Tensor:
    """Three ``[B, T, C]`` embeddings -> ``[B, 3T, C]`` ordered ``R_1, s_1, a_1, R_2, s_2, a_2, ...``
    (token ``3t`` is ``returns[:, t]``, ``3t + 1`` is ``states[:, t]``, ``3t + 2`` is ``actions[:, t]``)."""
    if not (returns.shape == states.shape == actions.shape) or returns.dim() != 3:
        raise ValueError(f"interleave_tokens: expected three [B, T, C] tensors of one shape, got "
                         f"{tuple(returns.shape)}, {tuple(states.shape)}, {tuple(actions.shape)}")
    B, T, C = returns.shape
    return torch.stack((returns, states, actions), dim=2).reshape(B, 3 * T, C)


class DecisionTransformer(nn.Module):
    """``model(returns [B, T, 1], states [B, T, obs_dim], actions [B, T], timesteps [B, T]) -> logits [B, T, A]``:
    the logits of ``a_t`` read at the token ``s_t``. ``T <= context``; ``timesteps < max_timestep``.

    ``state_mean`` / ``state_std`` (buffers) normalise raw observations in ``act``-style callers (``dt_rollout``);
    ``forward`` takes states already normalised. ``interleave`` builds the token sequence (Hour 18 passes the
    student's ``interleave_tokens``)."""

    def __init__(self, obs_dim: int, n_actions: int, *, context: int = 20, max_timestep: int = 500,
                 n_layer: int = 3, n_head: int = 4, n_embd: int = 128, dropout: float = 0.1,
                 return_scale: float = 500.0, state_mean: Tensor | None = None, state_std: Tensor | None = None,
                 interleave: InterleaveFn | None = None) -> None:
        super().__init__()
        check_hook("DecisionTransformer", "interleave", interleave, _INTERLEAVE_SIGNATURE)
        self.obs_dim, self.n_actions, self.context, self.max_timestep = obs_dim, n_actions, context, max_timestep
        self.return_scale = float(return_scale)
        self.interleave = interleave or interleave_tokens
        self.config = GPTConfig(vocab_size=n_actions, block_size=3 * context, n_layer=n_layer, n_head=n_head,
                                n_embd=n_embd, dropout=dropout)
        self.embed_return = nn.Linear(1, n_embd)
        self.embed_state = nn.Linear(obs_dim, n_embd)
        self.embed_action = nn.Embedding(n_actions, n_embd)
        self.embed_timestep = nn.Embedding(max_timestep, n_embd)
        self.embed_ln = nn.LayerNorm(n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(self.config) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, n_actions)
        self.register_buffer("state_mean", torch.zeros(obs_dim) if state_mean is None else state_mean.float().clone())
        self.register_buffer("state_std", torch.ones(obs_dim) if state_std is None else state_std.float().clone())
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, returns: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor) -> Tensor:
        return self._run(returns, states, actions, timesteps, need_weights=False)[0]

    def forward_with_attention(self, returns: Tensor, states: Tensor, actions: Tensor,
                               timesteps: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and every layer's attention weights over the ``3T`` tokens: ``[n_layer, B, heads, 3T, 3T]``."""
        logits, weights = self._run(returns, states, actions, timesteps, need_weights=True)
        return logits, torch.stack(weights)

    def _run(self, returns: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor,
             need_weights: bool) -> tuple[Tensor, list[Tensor]]:
        if states.dim() != 3 or states.size(-1) != self.obs_dim:
            raise ValueError(f"DecisionTransformer: states must be [B, T, {self.obs_dim}], got {tuple(states.shape)}")
        B, T, _ = states.shape
        if T > self.context:
            raise ValueError(f"DecisionTransformer: {T} steps exceed the context of {self.context}; keep the last "
                             f"{self.context}")
        want = {"returns": (returns, (B, T, 1)), "actions": (actions, (B, T)), "timesteps": (timesteps, (B, T))}
        for name, (value, shape) in want.items():
            if tuple(value.shape) != shape:
                raise ValueError(f"DecisionTransformer: {name} must have shape {shape}, got {tuple(value.shape)}")
        time = self.embed_timestep(timesteps.clamp(0, self.max_timestep - 1))
        tokens = self.interleave(self.embed_return(returns) + time, self.embed_state(states) + time,
                                 self.embed_action(actions) + time)
        if tuple(tokens.shape) != (B, 3 * T, self.config.n_embd):
            raise ValueError(f"DecisionTransformer: interleave returned shape {tuple(tokens.shape)}, expected "
                             f"{(B, 3 * T, self.config.n_embd)}")
        x = self.drop(self.embed_ln(tokens))
        weights = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, None, i, need_weights)
            if w is not None:
                weights.append(w)
        hidden = self.ln_f(x)[:, 1::3]  # the state tokens s_1 .. s_T
        return self.head(hidden), weights


def dt_rollout(model: DecisionTransformer, env_id: str, targets: Sequence[float] | np.ndarray, *,
               seed: int = EVAL_SEED, greedy: bool = True, render: bool = False, frame_every: int = 1,
               max_episode_steps: int | None = None) -> np.ndarray | tuple[np.ndarray, list[Episode]]:
    """Play one episode per target return, all side by side (episode ``i`` seeded ``seed + i``): greedy actions
    (the argmax of the logits), or with ``greedy=False`` actions sampled from their softmax (a generator seeded
    with ``seed``).

    At step ``t`` every running episode feeds the model its last ``context`` steps: returns-to-go (the target minus
    the rewards so far, divided by ``model.return_scale``), normalised states, actions (the current one a
    placeholder the model cannot see: its logits are read at ``s_t``) and timesteps. Returns the achieved returns
    ``[len(targets)]``; with ``render=True`` also the ``Episode``\\ s (frames, and as ``values`` the return-to-go the
    model was conditioned on at each step; a frame every ``frame_every`` steps and the last)."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    n, K = len(targets), model.context
    if n < 1:
        raise ValueError("dt_rollout: give at least one target return")
    if not isinstance(frame_every, int) or isinstance(frame_every, bool) or frame_every < 1:
        raise ValueError(f"dt_rollout: frame_every must be a positive int, got {frame_every!r}")
    device = next(model.parameters()).device
    envs = [make_env(env_id, render=render, max_episode_steps=max_episode_steps) for _ in range(n)]
    horizon = envs[0].spec.max_episode_steps if envs[0].spec and envs[0].spec.max_episode_steps else model.max_timestep
    first = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    S = torch.zeros(n, horizon + 1, model.obs_dim)
    R = torch.zeros(n, horizon + 1, 1)
    A = torch.zeros(n, horizon + 1, dtype=torch.long)
    S[:, 0] = torch.as_tensor(np.stack(first), dtype=torch.float32)
    R[:, 0, 0] = torch.as_tensor(targets, dtype=torch.float32)
    returns = np.zeros(n)
    frames: list[list[np.ndarray]] = [[np.asarray(env.render())] if render else [] for env in envs]
    frame_steps: list[list[int]] = [[0] if render else [] for _ in envs]
    ended = [(False, False)] * n
    lengths = np.zeros(n, dtype=np.int64)
    running = list(range(n))
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        t = 0
        while running and t < horizon:
            lo = max(0, t + 1 - K)
            idx = torch.tensor(running)
            states = ((S[idx, lo:t + 1] - model.state_mean.cpu()) / model.state_std.cpu()).to(device)
            steps = torch.arange(lo, t + 1).expand(len(running), -1).to(device)
            with torch.no_grad():
                logits = model(R[idx, lo:t + 1].to(device) / model.return_scale, states, A[idx, lo:t + 1].to(device),
                               steps)
            if greedy:
                actions = logits[:, -1].argmax(-1).cpu()
            else:
                actions = torch.multinomial(logits[:, -1].float().softmax(-1).cpu(), 1, generator=gen).squeeze(-1)
            still = []
            for i, action in zip(running, actions.tolist()):
                obs, reward, terminated, truncated, _ = envs[i].step(action)
                returns[i] += float(reward)
                A[i, t] = action
                S[i, t + 1] = torch.as_tensor(obs, dtype=torch.float32)
                R[i, t + 1, 0] = R[i, t, 0] - float(reward)
                lengths[i] = t + 1
                done = terminated or truncated
                if render and (done or (t + 1) % frame_every == 0):
                    frames[i].append(np.asarray(envs[i].render()))
                    frame_steps[i].append(t + 1)
                if done:
                    ended[i] = (bool(terminated), bool(truncated))
                else:
                    still.append(i)
            running, t = still, t + 1
    finally:
        model.train(was_training)
        for env in envs:
            env.close()
    if not render:
        return returns
    episodes = []
    for i in range(n):
        T = int(lengths[i])
        episodes.append(Episode(observations=S[i, :T].numpy(), actions=A[i, :T].numpy(),
                                rewards=_rewards(R[i, :T + 1, 0]), frames=frames[i],
                                frame_steps=frame_steps[i],
                                values=R[i, :T, 0].double().numpy(), terminated=ended[i][0], truncated=ended[i][1],
                                label=f"DT, target {targets[i]:g}"))
    return returns, episodes


def _rewards(rtg: Tensor) -> np.ndarray:
    """The rewards a sequence of returns-to-go ``[T + 1]`` implies: ``r_t = R_t - R_{t+1}``."""
    return (rtg[:-1] - rtg[1:]).double().numpy()


# --- behaviour cloning ---------------------------------------------------------------------------------------


class MLPPolicy(nn.Module):
    """Behaviour cloning: raw observation -> action logits (normalised inside with the log's mean and std)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 128, *, state_mean: Tensor | None = None,
                 state_std: Tensor | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_actions))
        self.register_buffer("state_mean", torch.zeros(obs_dim) if state_mean is None else state_mean.float().clone())
        self.register_buffer("state_std", torch.ones(obs_dim) if state_std is None else state_std.float().clone())

    def forward(self, obs: Tensor) -> Tensor:
        return self.net((obs - self.state_mean) / self.state_std)


def train_bc(trajectories: Sequence[Trajectory], n_actions: int = 2, *, steps: int = 2000, batch: int = 256,
             lr: float = 1e-3, hidden: int = 128, seed: int = 0, device: torch.device | str = "cpu") -> MLPPolicy:
    """Behaviour cloning on every (state, action) pair of ``trajectories``: Adam on the cross-entropy."""
    if not trajectories:
        raise ValueError("train_bc: no trajectories")
    states = torch.from_numpy(np.concatenate([t.observations for t in trajectories]).astype(np.float32))
    actions = torch.from_numpy(np.concatenate([t.actions for t in trajectories]).astype(np.int64))
    torch.manual_seed(seed)
    if int(actions.max()) >= n_actions or int(actions.min()) < 0:
        raise ValueError(f"train_bc: the log holds actions {int(actions.min())}..{int(actions.max())}, expected "
                         f"0..{n_actions - 1} (n_actions={n_actions})")
    policy = MLPPolicy(states.size(1), n_actions, hidden, state_mean=states.mean(0),
                       state_std=states.std(0) + 1e-6).to(device)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    states, actions = states.to(device), actions.to(device)
    for _ in range(steps):
        pick = torch.randint(len(actions), (batch,), generator=g).to(device)
        loss = F.cross_entropy(policy(states[pick]), actions[pick])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return policy.eval()
