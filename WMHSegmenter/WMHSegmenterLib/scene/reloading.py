"""Reloading the library while developing in Slicer (the module's Reload button).

Reloading modules one by one with importlib.reload leaves stale references wherever one module
did ``from .x import y``; forgetting every loaded module of the package and importing them again,
parents first, gives a consistent fresh copy of all of them.
"""

from __future__ import annotations

import importlib
import sys


def reload_package(package: str) -> list[str]:
    """Re-import every loaded module of ``package``; returns their names, parents first."""
    names = sorted(name for name in sys.modules if name == package or name.startswith(package + "."))
    for name in names:
        del sys.modules[name]
    importlib.invalidate_caches()
    for name in names:
        importlib.import_module(name)
    return names
