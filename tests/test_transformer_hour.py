"""Hour 04: the reversal task. (The self-checks of the hour's exercises are tested in test_checks_transformer.py.)"""

import pytest
import torch

from amla.transformers.tasks import reversal_task

# --- the reversal task -------------------------------------------------------------------------------


def test_reversal_task_pairs_splits_and_determinism():
    task = reversal_task(300, 50, 80, min_len=4, max_len=7, n_symbols=6, seed=3)
    assert (len(task.train), len(task.val), len(task.test)) == (300, 50, 80)
    for split in (task.train, task.val, task.test):
        for s, t, tag in zip(split.sources, split.targets, split.tags):
            assert t == s[::-1] and 4 <= len(s) <= 7 and tag == f"len {len(s)}" and set(s) <= set("012345")
    all_sources = task.train.sources + task.val.sources + task.test.sources
    assert len(set(all_sources)) == len(all_sources)  # no sequence in two splits (nor twice in one)
    again = reversal_task(300, 50, 80, min_len=4, max_len=7, n_symbols=6, seed=3)
    assert (again.train, again.val, again.test, again.vocab.itos) == (task.train, task.val, task.test, task.vocab.itos)
    assert reversal_task(300, 50, 80, min_len=4, max_len=7, n_symbols=6, seed=4).test != task.test
    x, y = task.vocab.encode_batch(task.test.sources), task.vocab.encode_batch(task.test.targets)
    assert x.shape == y.shape and torch.equal(x != 0, y != 0)  # same padding on both sides
    state = torch.random.get_rng_state()
    reversal_task(10, 0, 0)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_train=0), "n_train must be an int >= 1"),
    (dict(n_symbols=1), "n_symbols must be an int >= 2"),
    (dict(n_symbols=40), "n_symbols <= 36"),
    (dict(min_len=5, max_len=3), "min_len <= max_len"),
    (dict(n_train=100, min_len=2, max_len=2, n_symbols=3), "give only 9"),
])
def test_reversal_task_rejects_bad_input_in_one_line(kwargs, message):
    args = dict(n_train=10, n_val=0, n_test=0) | kwargs
    with pytest.raises(ValueError, match=message) as info:
        reversal_task(args.pop("n_train"), args.pop("n_val"), args.pop("n_test"), **args)
    assert "\n" not in str(info.value)
