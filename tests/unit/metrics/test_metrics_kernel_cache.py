"""The metric kernels' numba disk cache goes stale when *any* kernel module changes, not only the defining one."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from numba.core.caching import FunctionCache

from wsol_lightning.metrics import _fill, _jit, _scoring, _sweep, _unionfind

KERNEL_MODULES = (_fill, _scoring, _sweep, _unionfind)


def _cached_dispatchers(module):
    return [value for value in vars(module).values()
            if getattr(value, "_cache", None) is not None and getattr(value, "__module__", "") == module.__name__]


def test_every_kernel_of_the_package_is_stamped_with_all_kernel_sources():
    paths = [os.path.join(os.path.dirname(_jit.__file__), name) for name in _jit.KERNEL_MODULES]
    expected = _jit.kernel_sources_stamp(paths)
    dispatchers = [d for module in KERNEL_MODULES for d in _cached_dispatchers(module)]
    assert len(dispatchers) >= 10  # every @njit(cache=True) kernel of _sweep, _scoring, _unionfind, _fill
    for dispatcher in dispatchers:
        locator = dispatcher._cache._impl.locator
        assert getattr(locator, "wsol_kernel_locator", False), dispatcher
        own, package = locator.get_source_stamp()
        assert package == expected
        assert own  # numba's own stamp of the defining file is kept beside it


def test_stamp_changes_when_one_helper_file_changes(tmp_path: Path):
    names = ("_sweep.py", "_scoring.py")
    for name in names:
        (tmp_path / name).write_text(f"# {name}\n")
    paths = [str(tmp_path / name) for name in names]
    before = _jit.kernel_sources_stamp(paths)
    assert _jit.kernel_sources_stamp(paths) == before
    (tmp_path / "_scoring.py").write_text("# _scoring.py, edited\n")
    assert _jit.kernel_sources_stamp(paths) != before
    (tmp_path / "_scoring.py").unlink()
    assert _jit.kernel_sources_stamp(paths) not in (before, "")


def test_index_written_before_a_helper_edit_is_not_loaded_after_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """numba's own check would load ``_sweep``'s old machine code here; the package stamp refuses it."""
    monkeypatch.setattr(_jit, "_package_stamp", lambda: "before-the-edit")
    kernel = _sweep._sweep_batch if hasattr(_sweep, "_sweep_batch") else _cached_dispatchers(_sweep)[0]
    cache = FunctionCache(kernel.py_func)
    cache._cache_file._index_path = str(tmp_path / "kernel.nbi")  # keep the real cache untouched
    cache._cache_file._save_index({"signature": "data-file"})
    assert cache._cache_file._load_index() == {"signature": "data-file"}

    monkeypatch.setattr(_jit, "_package_stamp", lambda: "after-editing-_scoring.py")
    edited = FunctionCache(kernel.py_func)
    edited._cache_file._index_path = cache._cache_file._index_path
    assert edited._cache_file._load_index() == {}


def test_functions_outside_the_package_keep_numbas_locators(tmp_path: Path):
    source = tmp_path / "outside_kernels.py"
    source.write_text("from numba import njit\n\n@njit(cache=True)\ndef twice(x):\n    return 2 * x\n")
    spec = importlib.util.spec_from_file_location("outside_kernels", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules["outside_kernels"] = module
    try:
        spec.loader.exec_module(module)
        locator = module.twice._cache._impl.locator
        assert not getattr(locator, "wsol_kernel_locator", False)
        assert module.twice(np.int64(3)) == 6
    finally:
        sys.modules.pop("outside_kernels", None)
        shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
