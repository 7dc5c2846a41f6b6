"""Self-checks for the exercises: ``amla.checks.<topic>.check_<exercise>(student_function)``."""

from amla.checks.core import CheckFailed, Mistake, compare, fail, passed

__all__ = ["CheckFailed", "Mistake", "compare", "fail", "passed"]

_TOPICS = ("toolkit", "attention", "seq2seq", "gpt", "encoder_decoder", "transformer")


def __getattr__(name: str):  # `amla.checks.toolkit` imports the topic's checks on first use
    if name in _TOPICS:
        import importlib

        return importlib.import_module(f"amla.checks.{name}")
    raise AttributeError(f"module 'amla.checks' has no attribute {name!r}")
