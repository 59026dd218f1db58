"""Mask decoding (OpenCV fast path = Pillow, bit for bit), mask boxes, and the eval mask cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import shared_dir
from wsol_lightning.data import OxfordPetsDataModule, WSOLDataset
from wsol_lightning.data import transforms as T
from wsol_lightning.data.fakes import write_pets_layout
from wsol_lightning.data.mask_cache import MaskCache
from wsol_lightning.data.masks import _png_gray8, mask_box, read_gray


def pillow_gray(path: Path, palette: bool = False) -> np.ndarray:
    """The reference: what Pillow alone gives (the library's reading before the OpenCV path)."""
    with Image.open(path) as im:
        if palette and im.mode == "P":
            return np.array(im)
        return np.array(im if im.mode == "L" else im.convert("L"))


def _files(tmp_path: Path) -> dict[str, tuple[Path, bool]]:
    """Mask files of every kind: name -> (path, whether the OpenCV path takes it)."""
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (23, 31), dtype=np.uint8)
    out: dict[str, tuple[Path, bool]] = {}

    def save(name: str, image: Image.Image, fast: bool, **kw) -> None:
        path = tmp_path / name
        image.save(path, **kw)
        out[name] = (path, fast)

    save("gray8.png", Image.fromarray(gray), True)
    save("gray8_trns.png", Image.fromarray(gray), False, transparency=7)
    save("bits1.png", Image.fromarray(gray > 127), False)
    save("gray16.png", Image.fromarray(gray.astype(np.uint16) * 200), False)
    pal = Image.fromarray(gray % 21, mode="L").convert("P")
    pal.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 3 % 256, i)])
    save("palette.png", pal, False)
    save("rgb.png", Image.fromarray(rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)), False)
    save("la.png", Image.fromarray(gray).convert("LA"), False)
    save("gray.jpg", Image.fromarray(gray), False, quality=90)
    save("gray.bmp", Image.fromarray(gray), False)
    return out


def test_read_gray_equals_pillow_on_every_kind_of_file(tmp_path):
    for name, (path, fast) in _files(tmp_path).items():
        assert _png_gray8(path.read_bytes()) == fast, name  # only 8-bit gray PNGs take the OpenCV path
        for palette in (False, True):
            ours = read_gray(path, palette=palette)
            assert ours.dtype == np.uint8 and np.array_equal(ours, pillow_gray(path, palette)), (name, palette)


def test_read_gray_equals_pillow_on_the_real_trimaps():
    shared = shared_dir()
    trimaps = shared / "data" / "oxford_pets_3class" / "annotations" / "trimaps" if shared else None
    if trimaps is None or not trimaps.is_dir():
        pytest.skip("the shared Pets trimaps (../shared/data/oxford_pets_3class) are not here")
    paths = sorted(trimaps.glob("*.png"))
    assert len(paths) >= 600
    for path in paths:
        assert np.array_equal(read_gray(path), pillow_gray(path)), path.name


def test_mask_box():
    mask = np.zeros((6, 9), dtype=np.uint8)
    assert mask_box(mask).shape == (0, 4) and mask_box(None).shape == (0, 4)
    mask[4, 2] = 255
    assert mask_box(mask).tolist() == [[2, 4, 2, 4]]
    mask[1, 7] = 1
    assert mask_box(mask).tolist() == [[2, 1, 7, 4]]
    assert mask_box(mask.astype(bool)).tolist() == [[2, 1, 7, 4]]


def test_cache_round_trip_and_budget():
    rng = np.random.default_rng(1)
    mask = rng.choice(np.array([0, 1, 255], dtype=np.uint8), size=(13, 17))
    cache = MaskCache(max_bytes=10_000)
    box = np.array([[1, 2, 3, 4]])
    cache.put(0, ("k",), mask, box)
    got, got_box = cache.get(0, ("k",))
    assert got.dtype == np.uint8 and np.array_equal(got, mask) and got_box is box
    assert cache.get(0, ("other",)) is None and cache.get(1, ("k",)) is None  # stale key, unknown sample
    no_ignore = (mask == 1).astype(np.uint8)
    cache.put(2, (), no_ignore, None)
    assert np.array_equal(cache.get(2, ())[0], no_ignore) and cache.entries[2].ignored is None
    small = MaskCache(max_bytes=cache.entries[0].nbytes)
    small.put(0, (), mask, None)
    small.put(1, (), mask, None)  # over budget: not kept
    assert list(small.entries) == [0] and small.nbytes <= small.max_bytes


def _pets_eval(tmp_path: Path, cache_mb: float) -> WSOLDataset:
    pets = write_pets_layout(tmp_path / "pets", num_classes=2, images_per_class=6, quirks=False)
    dm = OxfordPetsDataModule(pets, val_per_class=1, image_size=32, num_workers=0, eval_mask_cache_mb=cache_mb)
    dm.setup("test")
    return dm.make_dataset("test")


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def test_cached_eval_samples_equal_uncached_and_follow_file_changes(tmp_path):
    cached, plain = _pets_eval(tmp_path / "a", 1), _pets_eval(tmp_path / "b", 0)
    assert plain.mask_cache is None and isinstance(cached.mask_cache, MaskCache)
    n = len(cached)
    for _ in range(2):  # cold, then warm
        for i in range(n):
            assert _equal(cached[i], plain[i])
    assert cached.mask_cache.misses == n and cached.mask_cache.hits == n

    index = cached.index
    path = Path(index.mask_root) / index.mask_paths[0][0]
    before = cached[0]
    trimap = np.array(Image.open(path))
    trimap[:] = 2  # all background now: no object, no box
    Image.fromarray(trimap).save(path)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))  # a distinct mtime
    after = cached[0]
    assert before["mask"].any() and not after["mask"].any() and after["boxes"].shape == (0, 4)
    fresh = WSOLDataset(index, T.eval_transform(32))
    assert _equal(after, fresh[0])


def test_eval_loaders_keep_workers_only_with_a_cache(tmp_path):
    pets = write_pets_layout(tmp_path / "pets", num_classes=2, images_per_class=6, quirks=False)
    for cache_mb, workers, persistent in ((256, 2, True), (0, 2, False), (256, 0, False)):
        dm = OxfordPetsDataModule(pets, val_per_class=1, image_size=32, num_workers=workers,
                                  eval_mask_cache_mb=cache_mb)
        dm.setup("test")
        assert dm.test_dataloader().persistent_workers is persistent
    with pytest.raises(ValueError, match="eval_mask_cache_mb"):
        OxfordPetsDataModule(pets, eval_mask_cache_mb=-1)
