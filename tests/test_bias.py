"""WEAT (Hour 07): effect size and permutation p-value on synthetic embeddings with and without an association."""

import itertools

import pytest
import torch

from amla.transformers.bias import association, seat_sentences, weat_effect_size, weat_p_value


def _planted(seed=0, n=8, d=16, strength=2.0):
    g = torch.Generator().manual_seed(seed)
    a_dir, b_dir = torch.zeros(d), torch.zeros(d)
    a_dir[0], b_dir[1] = 1.0, 1.0
    noise = lambda k: torch.randn(k, d, generator=g, dtype=torch.float64) * 0.5  # noqa: E731
    a, b = noise(n) + strength * a_dir, noise(n) + strength * b_dir
    x, y = noise(n) + strength * a_dir, noise(n) + strength * b_dir  # X goes with A, Y with B
    return x, y, a, b


def test_a_planted_association_gives_a_large_effect_and_a_small_p():
    x, y, a, b = _planted()
    assert weat_effect_size(x, y, a, b) > 1.5
    assert weat_p_value(x, y, a, b, n_perm=2000) < 0.01
    assert weat_effect_size(y, x, a, b) == pytest.approx(-weat_effect_size(x, y, a, b))


def test_random_embeddings_give_no_small_p():
    g = torch.Generator().manual_seed(1)
    x, y, a, b = (torch.randn(8, 16, generator=g, dtype=torch.float64) for _ in range(4))
    assert weat_p_value(x, y, a, b, n_perm=2000) > 0.05
    assert abs(weat_effect_size(x, y, a, b)) < 2.0


def test_the_p_value_is_exact_for_a_tiny_case():
    g = torch.Generator().manual_seed(2)
    x, y, a, b = (torch.randn(n, 5, generator=g, dtype=torch.float64) for n in (3, 4, 3, 3))
    s = torch.cat([association(x, a, b), association(y, a, b)]).tolist()
    observed = sum(s[:3]) - sum(s[3:])
    stats = [sum(s[i] for i in c) - sum(s[i] for i in range(7) if i not in c) for c in itertools.combinations(range(7), 3)]
    brute = sum(v >= observed - 1e-12 for v in stats) / len(stats)  # 35 partitions
    assert weat_p_value(x, y, a, b, n_perm=35) == pytest.approx(brute, abs=1e-12)
    sampled = weat_p_value(x, y, a, b, n_perm=34)  # fewer allowed than there are partitions: sampled, seeded
    assert sampled == weat_p_value(x, y, a, b, n_perm=34) and abs(sampled - brute) < 0.3


def test_association_is_the_difference_of_mean_cosines():
    w, a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, -3.0]])
    assert association(w, a, b).tolist() == pytest.approx([0.5])


def test_bad_input_is_refused_in_one_line():
    x = torch.randn(3, 4)
    for call, phrase in [(lambda: association(x, torch.randn(2, 5), x), "share their size d"),
                         (lambda: weat_p_value(x, x, x, x, n_perm=0), "n_perm"),
                         (lambda: weat_effect_size(x[:1], x[:0], x, x), "float tensor"),
                         (lambda: seat_sentences([]), "non-empty")]:
        with pytest.raises(ValueError, match=phrase) as info:
            call()
        assert "\n" not in str(info.value)
    assert seat_sentences(["doctor"])[0][0] == "This is doctor."
