"""The course gridworld (``amla.rl.gridworld``): a real gymnasium environment whose model ``P`` is the one it steps
with, and whose values are Russell and Norvig's."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from amla.rl.gridworld import RUSSELL_NORVIG, GridWorld, layout_masks
from amla.rl.tabular import transition_model, value_iteration


@pytest.mark.filterwarnings("ignore:.*alternative render modes:UserWarning")  # a bare GridWorld() has no spec
def test_gymnasium_env_checker_accepts_it() -> None:
    check_env(GridWorld())
    env = gym.make("amla/GridWorld-v0", render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    assert env.spec.max_episode_steps == 100


def test_the_model_is_a_distribution_and_walls_are_never_entered() -> None:
    env = GridWorld()
    P, R, terminal = transition_model(env)
    walls = layout_masks(RUSSELL_NORVIG)["wall"].ravel()
    live = ~terminal
    np.testing.assert_allclose(P[live].sum(-1), 1.0)
    assert P[:, :, walls].sum() == 0
    assert np.flatnonzero(terminal & ~walls).tolist() == [3, 7]
    for s in range(env.observation_space.n):
        for a in range(4):
            assert abs(sum(p for p, *_ in env.P[s][a]) - 1.0) < 1e-12


def test_values_match_russell_and_norvig_figure_17_3() -> None:
    P, R, _ = transition_model(GridWorld())
    V, pi = value_iteration(P, R, 1.0)
    book = {0: 0.812, 1: 0.868, 2: 0.918, 4: 0.762, 6: 0.660, 8: 0.705, 9: 0.655, 10: 0.611, 11: 0.388}
    for s, v in book.items():
        assert abs(V[s] - v) < 5e-4, (s, V[s], v)
    assert pi[11] == 0 and pi[10] == 0 and pi[6] == 3  # left next to the pit, the long way round


def test_steps_follow_the_model() -> None:
    env = GridWorld()
    counts: dict[int, int] = {}
    n = 4000
    for i in range(n):
        env.reset(seed=i)
        env.s = 10  # left of the bottom-right corner, action up
        s2, r, terminated, truncated, info = env.step(3)
        counts[s2] = counts.get(s2, 0) + 1
        assert not truncated
    want = {s2: p for p, s2, _, _ in env.P[10][3]}
    assert set(counts) == set(want)
    for s2, p in want.items():
        assert abs(counts[s2] / n - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-9


def test_episodes_are_reproducible_and_end_at_the_goal_or_pit() -> None:
    def play(seed: int) -> list[int]:
        env = GridWorld()
        s, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        states = [s]
        for _ in range(500):
            s, r, terminated, _, _ = env.step(int(rng.integers(4)))
            states.append(s)
            if terminated:
                break
        return states

    a, b = play(3), play(3)
    assert a == b and a[0] == 8 and a[-1] in (3, 7)


def test_no_slip_is_deterministic_and_rewards_add_up() -> None:
    env = GridWorld(slip=0.0)
    env.reset(seed=0)
    total = 0.0
    for action in (3, 3, 2, 2, 2):  # up, up, right, right, right: the goal in 5 moves
        s, r, terminated, _, _ = env.step(action)
        total += r
    assert s == 3 and terminated and abs(total - (1.0 - 5 * 0.04)) < 1e-12


def test_render_draws_the_agent() -> None:
    env = GridWorld(render_mode="rgb_array", cell_px=20)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (60, 80, 3) and frame.dtype == np.uint8
    assert tuple(frame[50, 10]) == (30, 80, 200)  # the agent's disc at the start (row 2, column 0)
    env.step(2)
    assert not np.array_equal(env.render(), frame) or env.s == 8


@pytest.mark.parametrize("kwargs, match", [
    (dict(layout=["S.", "..."]), "same length"),
    (dict(layout=["S.", ".Z"]), "unknown cell"),
    (dict(layout=["..", ".G"]), "exactly one start"),
    (dict(layout="S.G"), "list of row strings"),
    (dict(slip=1.5), "slip must be a probability"),
    (dict(render_mode="human"), "render_mode"),
])
def test_bad_arguments_say_what_was_expected(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        GridWorld(**kwargs)


def test_bad_action() -> None:
    env = GridWorld()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be an int in 0..3"):
        env.step(7)
