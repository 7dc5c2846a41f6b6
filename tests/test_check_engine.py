"""The engine and the contract behind every self-check (amla.checks.engine, amla.checks.contract)."""

import time

import pytest
import torch

from amla.checks import CheckFailed, summary
from amla.checks.contract import check, exercise, exercises, start_hour, status
from amla.checks.engine import Case, Mistake, Property, Spec, evaluate

EX = exercise(99, "99.1", "double it", "double")
EX2 = exercise(99, "99.2", "count them", "count")


def _double(x):
    return 2 * x


def _cases():
    return [Case("a vector of 3", (torch.tensor([1.0, 2.0, 3.0]),)), Case("a matrix (2, 2)", (torch.ones(2, 2),)),
            Case("zeros", (torch.zeros(4),))]


SPEC = Spec(reference=_double, cases=_cases, differentiable=True,
            mistakes=[Mistake("x is added to itself twice (3x).", lambda x: 3 * x),
                      Mistake("x is squared.", lambda x: x * x)],
            properties=[Property("'f(-x) = -f(x)'", lambda case, out, rerun: None if torch.allclose(
                rerun(-case.args[0]), -out) else "f(-x) is not -f(x)")])


def _run(fn):
    return check(EX, SPEC, (fn,), (_double,))


def test_pass_returns_the_students_function_and_records_it(capsys):
    start_hour(99)
    mine = lambda x: x + x  # noqa: E731
    assert _run(mine) is mine
    assert "passed" in capsys.readouterr().out
    assert status(EX)[0] == "passed"


def test_not_done_returns_the_reference_and_never_raises(capsys):
    def unfinished(x):
        raise NotImplementedError("Exercise 99.1 (double it): replace this line with your code")

    assert _run(unfinished) is _double
    assert capsys.readouterr().out.strip() == ("Exercise 99.1 (double it) is not done yet: the cells below use the "
                                               "course's reference `double`.")
    assert status(EX)[0] == "open"


def test_a_not_implemented_error_from_a_library_is_a_failure_not_an_unfinished_exercise():
    def calls_a_module_without_forward(x):
        return torch.nn.Module()(x)  # torch raises NotImplementedError: not the exercise template's

    with pytest.raises(CheckFailed, match="your code raised NotImplementedError"):
        _run(calls_a_module_without_forward)


def test_a_mistake_is_named_only_when_it_matches_every_case():
    with pytest.raises(CheckFailed, match=r"it looks like x is added to itself twice"):
        _run(lambda x: 3 * x)
    # x * x equals 2x where x = 2 and x = 0 only; this answer is x * x on the first case and wrong elsewhere
    with pytest.raises(CheckFailed) as info:
        _run(lambda x: x * x if x.numel() == 3 else x + 1)
    assert "squared" not in str(info.value)


def test_a_property_localises_a_bug_no_mistake_explains():
    with pytest.raises(CheckFailed, match=r"with a vector of 3, 'f\(-x\) = -f\(x\)' does not hold"):
        _run(lambda x: 2 * x + 0.5)


def test_wrong_kinds_of_result_are_named_not_blamed_on_the_student():
    with pytest.raises(CheckFailed, match=r"returned None.*forget the `return`"):
        _run(lambda x: None)
    with pytest.raises(CheckFailed, match=r"should be a tensor"):
        _run(lambda x: (2 * x).tolist())
    with pytest.raises(CheckFailed, match=r"dtype torch\.float64, expected torch\.float32"):
        _run(lambda x: 2 * x.double())
    with pytest.raises(CheckFailed, match=r"shape \(1, 3\), expected \(3\,\)"):
        _run(lambda x: 2 * x[None])


def test_changed_arguments_and_gradients():
    def in_place(x):
        return x.mul_(2)

    with pytest.raises(CheckFailed, match=r"changed its argument `x` in place"):
        _run(in_place)
    with pytest.raises(CheckFailed, match=r"values are right but the result is detached"):
        _run(lambda x: (2 * x).detach())

    class Half(torch.autograd.Function):  # right values, half the gradient
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(CheckFailed, match=r"gradient with respect to `x` differs"):
        _run(Half.apply)


def test_a_gradient_into_an_input_that_must_not_matter_fails_but_rounding_noise_does_not():
    def ignores_y(x, y):
        return 2 * x

    spec = Spec(reference=ignores_y, differentiable=True, arg_names=("x", "y"),
                cases=lambda: [Case("two vectors", (torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])))])
    leaks = evaluate(spec, lambda x, y: 2 * x + (y - y.detach()))  # the same values, a real gradient into y
    assert leaks.status == "failed" and "a gradient reaches `y`, which should not influence" in leaks.message
    assert evaluate(spec, lambda x, y: 2 * x + 1e-9 * (y - y.detach())).status == "passed"  # float rounding's size


def test_the_line_that_raised_is_shown():
    def crashes(x):
        y = x.reshape(7)  # fails for every case
        return y

    with pytest.raises(CheckFailed, match=r"your code raised RuntimeError: .*\(line \d+ of your code: `y = x\.reshape\(7\)  # fails for every case`"):
        _run(crashes)


def test_an_endless_loop_is_stopped():
    spec = Spec(reference=_double, cases=_cases, time_limit=0.3)

    def endless(x):
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # a student's catch-all cannot swallow the time limit
                pass

    verdict = evaluate(spec, endless)
    assert verdict.status == "failed" and "did not return within" in verdict.message


def test_a_check_leaves_the_global_random_state_alone():
    before = torch.get_rng_state()
    _run(lambda x: x * 2)
    assert torch.equal(before, torch.get_rng_state())


def test_check_refuses_something_that_is_not_a_function():
    with pytest.raises(CheckFailed, match=r"pass your function `double` to the check, got NoneType"):
        _run(None)


def test_summary_prints_one_line_per_exercise(capsys, monkeypatch):
    monkeypatch.delenv("AMLA_EXPECT_EXERCISES", raising=False)
    start_hour(99)
    _run(lambda x: x * 2)
    with pytest.raises(CheckFailed):
        _run(lambda x: x * 3)
    result = summary()
    out = capsys.readouterr().out.splitlines()
    assert result == {"99.1": "failed", "99.2": "unchecked"}
    assert out[-3] == "Hour 99 exercises: 0 of 2 passed."
    assert out[-2].startswith("\u2717 Exercise 99.1 (double it): failed, fix it and run its check again: ")
    assert out[-1] == "? Exercise 99.2 (count them): not checked: its check cell has not run"
    assert [e.id for e in exercises(99)] == ["99.1", "99.2"]


def test_each_hour_has_its_own_package_of_checks_and_summary_imports_only_it():
    """exercises(h) imports _TOPICS[h - 1] alone: an hour's summary must not need another part's extra."""
    import subprocess
    import sys

    code = (
        "import sys, importlib\n"
        "sys.modules['gymnasium'] = None  # as on a Colab session without the rl extra: importing it fails\n"
        "from amla.checks import _TOPICS, exercises\n"
        "from amla.checks.contract import _REGISTRY\n"
        "assert [e.id for e in exercises(2)][:1] == ['2.1'], exercises(2)\n"
        "assert not any(m.startswith('amla.checks.rl') for m in sys.modules)\n"
        "del sys.modules['gymnasium']\n"
        "for h, topic in enumerate(_TOPICS, 1):\n"
        "    before = set(_REGISTRY)\n"
        "    importlib.import_module('amla.checks.' + topic)\n"
        "    hours = {_REGISTRY[k].hour for k in set(_REGISTRY) - before}\n"
        "    assert hours <= {h}, (topic, h, hours)\n"
        "    assert exercises(h), (topic, h)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_an_exercise_cannot_be_declared_twice_differently():
    with pytest.raises(ValueError, match="declared twice"):
        exercise(99, "99.1", "something else", "other")


def test_summary_raises_when_the_test_suite_expects_another_state(monkeypatch):
    start_hour(99)
    _run(lambda x: x * 2)
    monkeypatch.setenv("AMLA_EXPECT_EXERCISES", "passed")
    with pytest.raises(RuntimeError, match=r"should be passed, but 99\.2 unchecked"):
        summary()
