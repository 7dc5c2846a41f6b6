"""amla: the shared package of *Advanced ML Architectures, hour by hour*.

Small and explicit on purpose. Three kinds of code, one folder each:

- the **toolkit**, what every hour trains and draws with: ``amla.toolkit`` (device, seeding, profiles,
  the ``Trainer``, mixed precision, checkpoints, data, ``report``) and ``amla.views`` (plots, interactive
  views with a static fallback, the live dashboard, the attention viewer);
- the **course machinery**: ``amla.checks`` (the exercise contract: self-checks that return the
  implementation the rest of an hour uses, and the end-of-hour summary) and ``amla.course`` (the hours,
  ``amla build``, ``amla run`` / ``bench``, the command line);
- one **part of the course** per subpackage: ``amla.transformers`` (Hours 02-06), ``amla.gan`` (Hours 10-12),
  ``amla.graphs`` (Hours 13-14), ``amla.rl`` (Hours 15-18).

Every notebook starts with ``device = amla.setup(hour=N)``; the names below are what the hours use most.
"""

from amla._lazy import lazy_submodules
from amla.toolkit.env import env_report, per_profile, pick_device, profile, seed_everything, setup
from amla.toolkit.report import report
from amla.toolkit.train import Callback, History, TrainConfig, Trainer

__version__ = "0.1.0"

__getattr__ = lazy_submodules(__name__, ("checks", "course", "gan", "graphs", "rl", "toolkit", "transformers", "views"))


__all__ = [
    "Callback",
    "History",
    "TrainConfig",
    "Trainer",
    "env_report",
    "per_profile",
    "pick_device",
    "profile",
    "report",
    "seed_everything",
    "setup",
]
