"""Extra pytest hooks, one module per feature; ``ptq.pytest_plugin`` loads every module here
(through ``pytest_plugins``), so a feature adds options and hooks without editing the core plugin."""

from __future__ import annotations

import pkgutil

__all__ = ["discover"]


def discover() -> list[str]:
    return sorted(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
