"""``njit`` for the metric kernels, with an on-disk cache that is stale as soon as *any* kernel source changes.

numba's ``cache=True`` stamps a cached kernel with the content hash of the one file that defines it. The
sweeps of :mod:`._sweep` inline helpers from :mod:`._unionfind`, :mod:`._scoring` and :mod:`._fill`, so after
an edit (or a ``git pull``) that touches only a helper module, numba would load ``_sweep``'s old machine code
and silently compute the old metric. Importing this module puts cache locators in front of numba's own that
stamp every kernel of this package with the hashes of all of :data:`KERNEL_MODULES` as well, so any change
to any of them recompiles every kernel. Functions outside this package keep numba's locators.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from functools import lru_cache

from numba import njit
from numba.core import caching
from numba.core.caching import InTreeCacheLocator, UserProvidedCacheLocator, UserWideCacheLocator, _CacheLocator

__all__ = ["KERNEL_MODULES", "kernel_sources_stamp", "njit"]

#: The source files whose numba functions call each other (and so share one cache stamp).
KERNEL_MODULES: tuple[str, ...] = ("_fill.py", "_jit.py", "_scoring.py", "_sweep.py", "_unionfind.py")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def kernel_sources_stamp(paths: Iterable[str]) -> str:
    """SHA-256 over the names and contents of ``paths`` (in the given order); a missing file hashes as absent."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.basename(path).encode() + b"\0")
        try:
            with open(path, "rb") as handle:
                digest.update(handle.read())
        except OSError:
            digest.update(b"<absent>")
        digest.update(b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _package_stamp() -> str:
    return kernel_sources_stamp(os.path.join(_PACKAGE_DIR, name) for name in KERNEL_MODULES)


def _package_locator(base: type[_CacheLocator]) -> type[_CacheLocator]:
    """``base`` restricted to this package's files, its stamp extended with :func:`_package_stamp`."""

    class PackageStampLocator(base):  # type: ignore[valid-type, misc]
        wsol_kernel_locator = True

        @classmethod
        def from_function(cls, py_func, py_file):  # noqa: ANN001, ANN206 - numba's signature
            if os.path.dirname(os.path.abspath(py_file)) != _PACKAGE_DIR:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):  # noqa: ANN201 - numba's signature
            return (super().get_source_stamp(), _package_stamp())

    PackageStampLocator.__name__ = PackageStampLocator.__qualname__ = f"Package{base.__name__}"
    return PackageStampLocator


def _register() -> None:
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # numba >= 0.61 dropped the underscore
    classes = impl._locator_classes
    if any(getattr(cls, "wsol_kernel_locator", False) for cls in classes):
        return
    ours = [_package_locator(base) for base in (UserProvidedCacheLocator, InTreeCacheLocator, UserWideCacheLocator)]
    classes[:0] = ours


_register()
