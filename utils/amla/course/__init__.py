"""The course machinery: what turns the sources into notebooks and runs them (no hour imports this).

- ``hours``: the 18 hours (number, slug, title, extras), the repository URL and the set-up cell
- ``build``: ``amla build``: the solution and student notebooks from one jupytext source
- ``readme``: the hour table of README.md
- ``runner``: ``amla run`` / ``amla bench``: execute notebooks in a kernel of this interpreter
- ``cli``: the ``amla`` command

The exercise contract (the self-checks and the end-of-hour summary) lives in ``amla.checks``.
"""

from amla._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, ("build", "cli", "hours", "readme", "runner"))
