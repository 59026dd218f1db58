"""Helpers shared by the parity tools: import modules from a local clone of an official repository.

Nothing here is official code: the tools import the official modules from the clone at run time (patching
in memory only) and write the numbers they produce as fixtures.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "parity"


def stub_munch() -> None:
    """Provide a minimal ``munch`` (attribute-access dict) when the package is not installed."""
    if "munch" in sys.modules:
        return
    try:
        importlib.import_module("munch")
    except ImportError:
        module = types.ModuleType("munch")

        class Munch(dict):
            def __getattr__(self, key: str) -> object:
                try:
                    return self[key]
                except KeyError as err:
                    raise AttributeError(key) from err

            def __setattr__(self, key: str, value: object) -> None:
                self[key] = value

        module.Munch = Munch  # type: ignore[attr-defined]
        sys.modules["munch"] = module


def import_from(clone: Path, module: str, subdir: str = "") -> types.ModuleType:
    """Import ``module`` from ``clone/subdir`` (prepended to ``sys.path``), checking the clone exists."""
    root = (Path(clone) / subdir).resolve()
    if not root.is_dir():
        raise SystemExit(f"not a directory: {root} (pass the path of a local clone of the official repository)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(module)
