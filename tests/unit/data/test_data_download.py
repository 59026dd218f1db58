import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from functools import partial

import pytest

from wsol_lightning.data.cub import CUBDataModule
from wsol_lightning.data.download import (
    ArchiveError,
    DownloadError,
    Resource,
    download_and_extract,
    safe_extract,
)
from wsol_lightning.data.fakes import write_cub_layout


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _tar(path, src, arcname):
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src, arcname=arcname)
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def test_cub_download_verify_extract_once(tmp_path, server):
    www, base = server
    src = write_cub_layout(tmp_path / "src", num_classes=2, images_per_class=4)
    checksum = _tar(www / "CUB_200_2011.tgz", src, "CUB_200_2011")
    target = tmp_path / "data"
    dm = CUBDataModule(target, download=True, url=f"{base}/CUB_200_2011.tgz", checksum=checksum)
    dm.prepare_data()
    assert (target / "CUB_200_2011" / "images.txt").is_file()
    assert dm.num_classes == 2 and len(dm.build_index("test")) == 4
    (www / "CUB_200_2011.tgz").unlink()  # a second prepare_data must not download again
    CUBDataModule(target / "CUB_200_2011", download=True, url=f"{base}/CUB_200_2011.tgz").prepare_data()


def test_checksum_mismatch_rejected(tmp_path, server):
    www, base = server
    src = write_cub_layout(tmp_path / "src", num_classes=1, images_per_class=2)
    _tar(www / "a.tgz", src, "CUB_200_2011")
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_and_extract([Resource(f"{base}/a.tgz", "md5:" + "0" * 32)], tmp_path / "out")
    assert not (tmp_path / "out" / "CUB_200_2011").exists()


def _evil_tar(path, member):
    with tarfile.open(path, "w") as tf:
        tf.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_unsafe_archives_rejected(tmp_path, kind):
    member = tarfile.TarInfo({"dotdot": "../escape.txt", "absolute": "/tmp/escape.txt"}.get(kind, "link"))
    if kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    elif kind == "hardlink":
        member.type, member.linkname = tarfile.LNKTYPE, "../outside"
    else:
        member.size = 1
    _evil_tar(tmp_path / "evil.tar", member)
    with pytest.raises(ValueError, match="unsafe"):
        safe_extract(tmp_path / "evil.tar", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


# -- issue 14 case 9: short transfers and truncated archives are never kept as final -------------------
class _EarlyClose(http.server.BaseHTTPRequestHandler):
    """Announces the whole file's Content-Length, sends only its first third, closes."""

    payload = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload[: len(self.payload) // 3])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_server_closing_early_leaves_no_archive_and_names_url(tmp_path):
    src = write_cub_layout(tmp_path / "src", num_classes=1, images_per_class=2)
    _tar(tmp_path / "a.tgz", src, "CUB_200_2011")
    handler = type("Handler", (_EarlyClose,), {"payload": (tmp_path / "a.tgz").read_bytes()})
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/a.tgz"
    try:
        with pytest.raises(DownloadError) as info:  # no checksum: only Content-Length can tell
            download_and_extract([Resource(url)], tmp_path / "out", marker="CUB_200_2011/images.txt")
    finally:
        httpd.shutdown()
        httpd.server_close()
    size = (tmp_path / "a.tgz").stat().st_size
    assert f"received {size // 3} of {size} bytes" in str(info.value) and url in str(info.value)
    downloads = tmp_path / "out" / ".downloads"
    assert list(downloads.iterdir()) == []  # neither a.tgz nor a.tgz.part
    assert not (tmp_path / "out" / "CUB_200_2011").exists()


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_truncated_archive_is_named_deleted_and_fetched_again(tmp_path, server, kind):
    www, base = server
    src = write_cub_layout(tmp_path / "src", num_classes=2, images_per_class=4)
    whole = tmp_path / f"whole.{kind}"
    if kind == "tgz":
        _tar(whole, src, "CUB_200_2011")
    else:
        with zipfile.ZipFile(whole, "w") as zf:
            for f in sorted(src.rglob("*")):
                zf.write(f, "CUB_200_2011/" + f.relative_to(src).as_posix())
    data = whole.read_bytes()
    (www / f"a.{kind}").write_bytes(data[: len(data) * 2 // 3])  # the server's own copy is truncated
    out = tmp_path / "out"
    marker = "CUB_200_2011/images.txt"
    with pytest.raises(ArchiveError, match=rf"(?s)corrupt or truncated archive .*a\.{kind}.*deleted"):
        download_and_extract([Resource(f"{base}/a.{kind}")], out, marker=marker)
    assert not (out / ".downloads" / f"a.{kind}").exists()  # not reused by the next run
    assert not (out / "CUB_200_2011").exists() and not list(out.glob(".extracting-*"))  # no half-extracted tree
    (www / f"a.{kind}").write_bytes(data)  # fixed upstream: the next run downloads and extracts it
    download_and_extract([Resource(f"{base}/a.{kind}")], out, marker=marker)
    assert (out / marker).is_file() and len(list((out / "CUB_200_2011" / "images").rglob("*.jpg"))) == 8
