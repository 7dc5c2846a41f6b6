"""The self-checks of the exercises, on the exercise contract (``amla.checks.contract``).

In a notebook: ``softmax = amla.checks.attention.check_softmax(softmax)`` returns the function the rest of the
hour uses (yours once it passes, the course's reference while the exercise is not done), and raises
``CheckFailed`` on a wrong answer. ``amla.checks.summary()`` at the end of an hour prints one line per exercise.

- ``engine``: the one engine every check runs on (cases, known mistakes, properties, gradients)
- ``values``: how results are described and compared, and how changed arguments are noticed
- ``contract``: what a check returns, the exercises of each hour, the end-of-hour summary
- one package per hour, one module per exercise: ``toolkit`` (01), ``attention`` (02), ``seq2seq`` (03),
  ``transformer`` (04), ``encoder_decoder`` (05), ``gpt`` (06), ``pretrained`` (07), ``vit`` (08), ``efficient`` (09),
  ``gan`` (10), ``dcgan`` (11), ``gan_stability`` (12),
  ``graphs`` (13), ``gnn`` (14), ``rl`` (15), ``dqn`` (16), ``policy_gradients`` (17), ``decision_transformer`` (18)
"""

from amla._lazy import lazy_submodules
from amla.checks.contract import exercises, summary, yours
from amla.checks.engine import Case, CheckFailed, Mistake, Property, Spec

__all__ = ["Case", "CheckFailed", "Mistake", "Property", "Spec", "exercises", "summary", "yours"]

_TOPICS = ("toolkit", "attention", "seq2seq", "transformer", "encoder_decoder", "gpt", "pretrained", "vit", "efficient",
           "gan", "dcgan", "gan_stability", "graphs", "gnn", "rl", "dqn", "policy_gradients", "decision_transformer")

__getattr__ = lazy_submodules(__name__, (*_TOPICS, "contract", "engine", "values"))
