import hashlib
import http.server
import io
import tarfile
import threading
from functools import partial

import pytest

from wsol_lightning.data.cub import CUBDataModule
from wsol_lightning.data.download import Resource, download_and_extract, safe_extract
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
