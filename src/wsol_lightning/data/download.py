"""Download official archives once, verify their checksum, extract them safely.

Nothing here runs at import; datamodules call :func:`download_and_extract` from ``prepare_data``
only when ``download=True``. URLs and checksums are arguments so tests can serve a generated
archive from a loopback HTTP server.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    """An archive to fetch: ``url`` and ``checksum`` (``"md5:<hex>"`` or ``"sha256:<hex>"``)."""

    url: str
    checksum: str | None = None


CUB_RESOURCES = (
    Resource(
        "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
        "md5:97eceeb196236b17998738112f37df78",
    ),
)
PETS_RESOURCES = (
    Resource(
        "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
        "md5:5c4f3ee8e5d25df40f4fd59a7f44e54c",
    ),
    Resource(
        "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
        "md5:95a8c909bbe2e81eed6a22bccdf3f68f",
    ),
)
VOC_RESOURCES = (
    Resource(
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "md5:6cd6e144f989b92b3379bac3b3de84fd",
    ),
)


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of ``path`` with ``algorithm`` (``md5`` or ``sha256``)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, checksum: str | None) -> None:
    """Raise ``ValueError`` when ``path`` does not match ``checksum`` (``None``: only warn)."""
    if checksum is None:
        log.warning("no checksum given for %s: not verified", path)
        return
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("md5", "sha256") or not expected:
        raise ValueError(f"checksum must look like 'md5:<hex>' or 'sha256:<hex>', got {checksum!r}")
    actual = file_digest(path, algorithm)
    if actual.lower() != expected.lower():
        raise ValueError(f"checksum mismatch for {path}: {algorithm} {actual}, expected {expected}")


def download(url: str, dest: Path, checksum: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (with a progress bar) unless a verified copy is there."""
    if dest.is_file():
        try:
            verify(dest, checksum)
            return dest
        except ValueError:
            log.warning("re-downloading %s: existing copy fails its checksum", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:  # noqa: S310
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))
    verify(part, checksum)
    os.replace(part, dest)
    return dest


def _inside(root: Path, target: Path) -> bool:
    root, target = root.resolve(), target.resolve()
    return target == root or root in target.parents


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a tar or zip archive into ``target``, refusing members that escape it.

    Rejected: absolute paths, ``..`` escapes, symlinks or hardlinks pointing outside ``target``,
    device files.

    Raises:
        ValueError: naming the archive and the offending member.

    """
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if os.path.isabs(name) or not _inside(target, target / name):
                    raise ValueError(f"unsafe member {name!r} in {archive}: escapes {target}")
            zf.extractall(target)
        return
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            dest = target / m.name
            if os.path.isabs(m.name) or not _inside(target, dest):
                raise ValueError(f"unsafe member {m.name!r} in {archive}: escapes {target}")
            if m.issym() or m.islnk():
                link = (dest.parent / m.linkname) if m.issym() else (target / m.linkname)
                if os.path.isabs(m.linkname) or not _inside(target, link):
                    raise ValueError(f"unsafe link {m.name!r} -> {m.linkname!r} in {archive}")
            if m.isdev():
                raise ValueError(f"device file {m.name!r} in {archive}")
        if hasattr(tarfile, "data_filter"):
            tf.extractall(target, members=members, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tf.extractall(target, members=members)  # noqa: S202 (members checked above)


def download_and_extract(
    resources: tuple[Resource, ...] | list[Resource], root: str | Path, marker: str | None = None
) -> Path:
    """Fetch and extract every resource into ``root`` once (skipped when ``root/marker`` exists).

    Args:
        resources: archives to fetch.
        root: extraction folder (archives are kept in ``root/.downloads``).
        marker: a path relative to ``root`` whose existence means "already extracted".

    Returns:
        ``root``.

    """
    root = Path(root).expanduser()
    if marker is not None and (root / marker).exists():
        return root
    for res in resources:
        name = Path(urllib.parse.urlparse(res.url).path).name or "archive"
        archive = download(res.url, root / ".downloads" / name, res.checksum)
        safe_extract(archive, root)
    return root


def prepare_official(
    data_dir: str | Path,
    folder: str,
    marker: str,
    resources: tuple[Resource, ...],
    url: str | None = None,
    checksum: str | None = None,
) -> Path:
    """Download a dataset's official archives unless ``data_dir`` already holds the data.

    ``data_dir`` may be the dataset folder (named ``folder``) or its parent.

    Args:
        data_dir: the datamodule's ``data_dir``.
        folder: path of the dataset folder inside the extraction root (``""``: the root itself).
        marker: file inside the dataset folder proving it is extracted.
        resources: the official archives.
        url: override of the (single) archive URL (mirrors, tests).
        checksum: checksum of ``url`` (``"md5:..."``/``"sha256:..."``).

    Returns:
        The extraction root.

    """
    data_dir = Path(data_dir).expanduser()
    if (data_dir / marker).exists():
        return data_dir
    root = data_dir
    if folder:
        parts = Path(folder).parts
        for k in range(len(parts), 0, -1):  # data_dir may end with part of ``folder``
            if data_dir.parts[-k:] == parts[:k]:
                root = data_dir.parents[k - 1]
                break
    if url is not None:
        resources = (Resource(url, checksum),)
    return download_and_extract(resources, root, marker=str(Path(folder) / marker) if folder else marker)
