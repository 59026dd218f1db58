"""Atomic file writes: a reader sees the old file or the whole new one, never half of it.

Every write goes to a temporary file in the destination's folder (same filesystem), is flushed and
``fsync``-ed, then renamed over the destination with :func:`os.replace` (atomic on POSIX and Windows). A crash
leaves at most a ``*.tmp`` file behind, never a truncated output under its final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)
#: Permissions of written files (``mkstemp`` would leave them private: 0600).
FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path``, on error it is removed.

    Args:
        path: final destination (parent folders are created).
        mode: ``"wb"`` or ``"w"``.
        **kwargs: forwarded to :func:`open` (e.g. ``encoding``).

    Yields:
        The open temporary file.

    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def atomic_write_with(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(binary_file)`` on a temporary file that then replaces ``path`` (e.g. ``np.save``)."""
    with atomic_open(path, "wb") as f:
        write(f)
    return Path(path)
