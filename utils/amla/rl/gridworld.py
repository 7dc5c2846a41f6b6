"""The course gridworld (Hour 15): a small, optionally slippery grid as a real ``gymnasium.Env``.

``GridWorld(layout)`` reads a layout of strings, one per row: ``S`` start, ``.`` free, ``#`` wall, ``G`` goal (the
episode ends and ``goal_reward`` is added), ``X`` pit (the episode ends and ``pit_reward`` is added); every move
costs ``step_reward``. With probability ``1 - slip`` the agent moves as asked, else to one of the two perpendicular
directions (``slip / 2`` each); walls and the border keep it in place. The default layout is Russell and Norvig's
4x3 world (slip 0.2, step reward -0.04): with ``gamma = 1`` its values are the book's (figure 17.3: 0.812 in
the top-left corner, 0.705 at the start).

The environment exposes its tabular model as ``env.P[s][a] = [(prob, next_state, reward, terminated), ...]`` and
``initial_state_distrib``, exactly like gymnasium's FrozenLake and CliffWalking, so
``amla.rl.tabular.transition_model`` reads all three the same way. States are ``row * ncol + col`` (walls
included: a wall is never entered, and its row of ``P`` is a terminated self-loop of value 0). Actions follow
FrozenLake: 0 left, 1 down, 2 right, 3 up. ``render_mode="rgb_array"`` draws the grid with numpy (no pygame).

Registered as ``amla/GridWorld-v0`` (100 steps per episode) when this module is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["ACTION_DELTAS", "CLIFF_ACTION_DELTAS", "GridWorld", "RUSSELL_NORVIG", "layout_masks"]

RUSSELL_NORVIG = ("...G", ".#.X", "S...")
"""Russell and Norvig's 4x3 world (AIMA, figure 17.1): goal top right, pit below it, one wall."""

ACTION_DELTAS = ((0, -1), (1, 0), (0, 1), (-1, 0))
"""(d_row, d_col) per action, FrozenLake's order (and the course gridworld's): left, down, right, up."""

CLIFF_ACTION_DELTAS = ((-1, 0), (0, 1), (1, 0), (0, -1))
"""(d_row, d_col) per action of CliffWalking: up, right, down, left."""

_CELLS = set("S.#GX")
_COLOURS = {".": (245, 245, 240), "S": (210, 225, 245), "#": (70, 70, 70), "G": (120, 200, 120), "X": (225, 110, 100)}


def _layout(layout: Sequence[str]) -> tuple[str, ...]:
    if isinstance(layout, str) or not isinstance(layout, Sequence) or not layout:
        raise ValueError(f"GridWorld: layout must be a non-empty list of row strings, got {layout!r}")
    rows = tuple(layout)
    if not all(isinstance(r, str) and r for r in rows) or len({len(r) for r in rows}) != 1:
        raise ValueError(f"GridWorld: every row of the layout must be a non-empty string of the same length, got "
                         f"{list(rows)!r}")
    bad = sorted(set("".join(rows)) - _CELLS)
    if bad:
        raise ValueError(f"GridWorld: unknown cell(s) {bad} in the layout; expected S (start), . (free), # (wall), "
                         "G (goal) or X (pit)")
    if "".join(rows).count("S") != 1:
        raise ValueError(f"GridWorld: the layout needs exactly one start S, got {''.join(rows).count('S')}")
    return rows


def layout_masks(layout: Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean ``[nrow, ncol]`` masks of the layout's ``wall``, ``goal``, ``pit`` and ``start`` cells."""
    rows = _layout(layout)
    grid = np.array([list(r) for r in rows])
    return {"wall": grid == "#", "goal": grid == "G", "pit": grid == "X", "start": grid == "S"}


class GridWorld(gym.Env):
    """A gridworld with walls, goals, pits and slippery moves (see the module docstring).

    ``P``, ``initial_state_distrib``, ``nrow``, ``ncol`` and ``layout`` are public, like gymnasium's toy-text
    environments; observations are ``int`` state ids in ``Discrete(nrow * ncol)``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, layout: Sequence[str] = RUSSELL_NORVIG, *, slip: float = 0.2, step_reward: float = -0.04,
                 goal_reward: float = 1.0, pit_reward: float = -1.0, render_mode: str | None = None,
                 cell_px: int = 48) -> None:
        self.layout = _layout(layout)
        if not (isinstance(slip, (int, float)) and 0.0 <= slip <= 1.0):
            raise ValueError(f"GridWorld: slip must be a probability in [0, 1], got {slip!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"GridWorld: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.slip, self.cell_px = float(slip), int(cell_px)
        self.nrow, self.ncol = len(self.layout), len(self.layout[0])
        n = self.nrow * self.ncol
        self.observation_space = spaces.Discrete(n)
        self.action_space = spaces.Discrete(4)
        self.rewards = {"step": float(step_reward), "goal": float(goal_reward), "pit": float(pit_reward)}
        self.initial_state_distrib = np.zeros(n)
        self.initial_state_distrib["".join(self.layout).index("S")] = 1.0
        self.P: dict[int, dict[int, list[tuple[float, int, float, bool]]]] = {s: self._moves(s) for s in range(n)}
        self.s = int(np.argmax(self.initial_state_distrib))
        self.lastaction: int | None = None

    def cell(self, s: int) -> str:
        """The layout character of state ``s``."""
        return self.layout[s // self.ncol][s % self.ncol]

    def _target(self, s: int, a: int) -> int:
        row, col = divmod(s, self.ncol)
        dr, dc = ACTION_DELTAS[a]
        r2, c2 = row + dr, col + dc
        if not (0 <= r2 < self.nrow and 0 <= c2 < self.ncol) or self.layout[r2][c2] == "#":
            return s
        return r2 * self.ncol + c2

    def _moves(self, s: int) -> dict[int, list[tuple[float, int, float, bool]]]:
        if self.cell(s) in "#GX":  # the episode is over (or the cell is never entered): a self-loop of value 0
            return {a: [(1.0, s, 0.0, True)] for a in range(4)}
        moves = {}
        for a in range(4):
            probs: dict[int, float] = {}
            for b, p in ((a, 1.0 - self.slip), ((a - 1) % 4, self.slip / 2), ((a + 1) % 4, self.slip / 2)):
                if p > 0:
                    s2 = self._target(s, b)
                    probs[s2] = probs.get(s2, 0.0) + p
            out = []
            for s2, p in probs.items():
                kind = self.cell(s2)
                reward = self.rewards["step"] + (self.rewards["goal"] if kind == "G" else
                                                 self.rewards["pit"] if kind == "X" else 0.0)
                out.append((p, s2, reward, kind in "GX"))
            moves[a] = out
        return moves

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.s = int(np.flatnonzero(self.initial_state_distrib)[0])
        self.lastaction = None
        return self.s, {"prob": 1.0}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"GridWorld: action must be an int in 0..3 (left, down, right, up), got {action!r}")
        outcomes = self.P[self.s][int(action)]
        k = int(self.np_random.choice(len(outcomes), p=[o[0] for o in outcomes])) if len(outcomes) > 1 else 0
        p, s2, reward, terminated = outcomes[k]
        self.s, self.lastaction = int(s2), int(action)
        return self.s, float(reward), bool(terminated), False, {"prob": float(p)}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("GridWorld.render() without render_mode: make it with render_mode='rgb_array'")
            return None
        px = self.cell_px
        img = np.zeros((self.nrow * px, self.ncol * px, 3), dtype=np.uint8)
        for r, row in enumerate(self.layout):
            for c, ch in enumerate(row):
                img[r * px:(r + 1) * px, c * px:(c + 1) * px] = _COLOURS[ch]
        img[::px, :] = img[:, ::px] = 160  # grid lines
        img[-1, :] = img[:, -1] = 160
        r, c = divmod(self.s, self.ncol)
        yy, xx = np.mgrid[0:px, 0:px]
        disc = (yy - px / 2 + 0.5) ** 2 + (xx - px / 2 + 0.5) ** 2 <= (px * 0.3) ** 2
        img[r * px:(r + 1) * px, c * px:(c + 1) * px][disc] = (30, 80, 200)
        return img


if "amla/GridWorld-v0" not in gym.registry:
    gym.register(id="amla/GridWorld-v0", entry_point="amla.rl.gridworld:GridWorld", max_episode_steps=100)
