"""Download official archives once, verify their checksum, extract them safely.

Nothing here runs at import; datamodules call :func:`download_and_extract` from ``prepare_data``
only when ``download=True``. URLs and checksums are arguments so tests can serve a generated
archive from a loopback HTTP server.

Nothing incomplete is ever kept under a final name: a download goes to ``<name>.part`` and is renamed only when
it has the server's ``Content-Length`` (and the checksum, when given); an archive is extracted into a staging
folder and moved into place only when every member was read; a corrupt or truncated archive is named in the
error and deleted so the next run fetches it again. (torchvision's ``download_url``/``extract_archive`` write
straight to the final name, check no length and, on Python < 3.14, extract tar members unfiltered: not used.)
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import lzma
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
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


class DownloadError(OSError):
    """A download that did not complete (names the URL, the file and the byte counts)."""


def download(url: str, dest: Path, checksum: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (with a progress bar) unless a verified copy is there.

    The bytes go to ``dest.part``; only a complete download (as many bytes as the server's ``Content-Length``,
    and matching ``checksum`` when given) is renamed to ``dest``. A short or failed transfer removes the part
    file and raises :class:`DownloadError`, so a truncated archive is never kept under its final name.
    """
    if dest.is_file():
        try:
            verify(dest, checksum)
            return dest
        except ValueError:
            log.warning("re-downloading %s: existing copy fails its checksum", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        received, expected = _fetch(url, part, dest.name)
        if expected is not None and received != expected:
            raise DownloadError(
                f"incomplete download of {url}: received {received} of {expected} bytes (Content-Length) "
                f"before the server closed the connection; {dest} not written, run again to retry"
            )
        verify(part, checksum)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, name: str) -> tuple[int, int | None]:
    """Stream ``url`` into ``part``; return (bytes received, Content-Length or ``None``)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:  # noqa: S310
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(total=expected, unit="B", unit_scale=True, desc=name) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except (OSError, http.client.HTTPException) as err:
        if isinstance(err, DownloadError):
            raise
        raise DownloadError(f"download of {url} to {part} failed: {err}") from err
    return received, expected


def _inside(root: Path, target: Path) -> bool:
    root, target = root.resolve(), target.resolve()
    return target == root or root in target.parents


class ArchiveError(ValueError):
    """A corrupt or truncated archive (names the archive)."""


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a tar or zip archive into ``target``, refusing members that escape it.

    Rejected: absolute paths, ``..`` escapes, symlinks or hardlinks pointing outside ``target``,
    device files. The archive is extracted into a hidden staging folder inside ``target`` first and its
    entries are moved into ``target`` only once every member was read, so a truncated archive leaves nothing
    (in particular no "already extracted" marker file) behind.

    Raises:
        ValueError: naming the archive and the offending member.
        ArchiveError: the archive is corrupt or truncated (named in the message).

    """
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".extracting-{archive.name}-", dir=target))
    try:
        try:
            _extract_checked(archive, staging)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
            raise ArchiveError(f"corrupt or truncated archive {archive}: {type(err).__name__}: {err}") from err
        _merge_into(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_checked(archive: Path, target: Path) -> None:
    with open(archive, "rb") as f:
        looks_zip = f.read(4) == b"PK\x03\x04"  # a truncated zip has lost its central directory
    if looks_zip or zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if os.path.isabs(name) or not _inside(target, target / name):
                    raise ValueError(f"unsafe member {name!r} in {archive}: escapes the extraction folder")
            bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"bad CRC for member {bad!r}")
            zf.extractall(target)
        return
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            dest = target / m.name
            if os.path.isabs(m.name) or not _inside(target, dest):
                raise ValueError(f"unsafe member {m.name!r} in {archive}: escapes the extraction folder")
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


def _merge_into(src: Path, dst: Path) -> None:
    """Move every entry of ``src`` into ``dst`` (renames; folders merged, files replaced)."""
    for entry in src.iterdir():
        out = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and out.is_dir() and not out.is_symlink():
            _merge_into(entry, out)
            continue
        if out.is_dir() and not out.is_symlink():
            shutil.rmtree(out)
        os.replace(entry, out)


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
        try:
            safe_extract(archive, root)
        except ArchiveError as err:
            archive.unlink(missing_ok=True)  # never reused: the next run downloads it again
            raise ArchiveError(f"{err} (downloaded from {res.url}; deleted, run again to download it again)") from err
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
