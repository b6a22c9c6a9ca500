"""Great Expectations as the gate imports it: Altair and scipy.stats loaded on first use, not at import.

``import great_expectations`` registers every core expectation, and one of them (the KL-divergence
expectation) imports Altair and scipy.stats at module level for its renderers and its statistic; two
bootstrap metrics import scipy.stats too. None of the expectations the gate runs touches either, yet
together they were most of the start-up of every ingest. During the import those two names are bound to
a stand-in module whose first attribute access imports the real one, so the expectations that use them
still work (``tests/ingest/test_quality.py`` runs one). The stand-ins leave ``sys.modules`` when the
import ends: any later ``import altair`` elsewhere loads the real package as usual.
"""

from __future__ import annotations

import importlib
import sys
import types

import handoffkit.record._jsonschema  # noqa: F401 - before anything that imports jsonschema

DEFERRED = ("altair", "scipy.stats")


class _OnFirstUse(types.ModuleType):
    """Stands for a module until an attribute is read, then hands over to the real one."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        # importlib reads ``__spec__`` of a module found in sys.modules; a real spec would mark it loaded.
        self.__spec__ = None

    def __getattr__(self, attr: str) -> object:
        if sys.modules.get(self.__name__) is self:  # used while Great Expectations is still importing
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def _import() -> types.ModuleType:
    standing = [name for name in DEFERRED if name not in sys.modules]
    for name in standing:
        sys.modules[name] = _OnFirstUse(name)
    try:
        import great_expectations
    finally:
        for name in standing:
            if isinstance(sys.modules.get(name), _OnFirstUse):
                del sys.modules[name]
    return great_expectations


gx = _import()

__all__ = ["gx"]
