"""PEP 562 lazy submodules: ``amla.views`` or ``amla.transformers.nn`` work without an import statement,
and ``import amla`` stays fast (torch is the only heavy import it pays for)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType


def lazy_submodules(package: str, names: tuple[str, ...]) -> Callable[[str], ModuleType]:
    """A module-level ``__getattr__`` for ``package`` that imports ``package.<name>`` on first use."""

    def __getattr__(name: str) -> ModuleType:
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
