"""Helpers shared by the parity tools: import modules from a local clone of an official repository.

Nothing here is official code: the tools import the official modules from the clone at run time (patching
in memory only) and write the numbers they produce as fixtures.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

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


def load_file(path: Path, name: str) -> types.ModuleType:
    """Import one official ``.py`` file under a unique module ``name`` (files of several clones share names)."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"missing official file: {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def official_block(path: Path, first: str, last: str) -> types.CodeType:
    """Compile the official script lines from the one containing ``first`` to the next containing ``last``.

    Used for evaluation logic the official scripts write inline (not as functions): it is read from the clone
    and executed at run time, never copied into this repository.
    """
    import textwrap

    lines = Path(path).read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if first in line), None)
    if start is None:
        raise SystemExit(f"{path}: no line containing {first!r} (another version of the official code?)")
    end = next((i for i in range(start, len(lines)) if last in lines[i]), None)
    if end is None:
        raise SystemExit(f"{path}: no line containing {last!r} after line {start + 1}")
    indent = len(lines[start]) - len(lines[start].lstrip())
    kept = ["" if not line.strip() or line.lstrip().startswith("#") else line[indent:]  # comments may be misindented
            for line in lines[start:end + 1]]
    source = textwrap.dedent("\n".join(kept))
    return compile(source, f"{path}:{start + 1}-{end + 1}", "exec")


def load_package(directory: Path, name: str) -> types.ModuleType:
    """Register an official folder (with or without ``__init__.py``) as package ``name`` for relative imports."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SystemExit(f"missing official folder: {directory}")
    package = types.ModuleType(name)
    package.__path__ = [str(directory)]  # type: ignore[attr-defined]
    sys.modules[name] = package
    return package


def gradient_record(model: torch.nn.Module, keep_slice: Callable[[str], bool],
                    slice_len: int) -> tuple[list[str], torch.Tensor, dict[str, torch.Tensor]]:
    """Gradient norms of every parameter that has a gradient, and slices of some.

    Returns the parameter names (in order), their gradient norms ``(P,)``, and the first ``slice_len``
    gradient values of the parameters ``keep_slice`` accepts.
    """
    import torch

    names: list[str] = []
    norms: list[torch.Tensor] = []
    slices: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        names.append(name)
        norms.append(param.grad.norm())
        if keep_slice(name):
            slices[name] = param.grad.flatten()[:slice_len].clone()
    return names, torch.stack(norms), slices
