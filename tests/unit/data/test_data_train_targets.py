"""Training reads image labels only: no datamodule opens a mask file for a train sample (issue 16, item 4).

WSOL methods train on image-level labels; nothing in the library's training reads boxes or masks, so the train
split skips them (``train_targets=False``) and its images and labels are those of the full read.
"""

from __future__ import annotations

import builtins
import io
from pathlib import Path

import pytest
import torch

import wsol_lightning.data.masks as masks_module
from wsol_lightning.data import (
    CUBDataModule,
    ImageNetDataModule,
    OpenImagesDataModule,
    OxfordPetsDataModule,
    SyntheticDataModule,
    VOCDataModule,
)
from wsol_lightning.data.coco import COCODataModule
from wsol_lightning.data.fakes import (
    write_coco_layout,
    write_cub_layout,
    write_imagenet_metadata_layout,
    write_openimages_layout,
    write_pets_layout,
    write_voc_layout,
)
from wsol_lightning.data.synthetic_clutter import ClutterSyntheticDataModule

COMMON = dict(image_size=32, batch_size=4, num_workers=0)


def _datamodule(name: str, tmp: Path, **kw):
    if name == "cub":
        return CUBDataModule(write_cub_layout(tmp, num_classes=2, images_per_class=6), **COMMON, **kw)
    if name == "pets":
        return OxfordPetsDataModule(write_pets_layout(tmp, num_classes=2, images_per_class=6), val_per_class=1,
                                    **COMMON, **kw)
    if name == "voc":
        return VOCDataModule(write_voc_layout(tmp, num_images=16), val_size=2, **COMMON, **kw)
    if name == "coco":
        return COCODataModule(write_coco_layout(tmp, num_images=12), train_ann="annotations/train.json",
                              train_images="images/train", test_ann="annotations/test.json",
                              test_images="images/test", val_fraction=0.2, **COMMON, **kw)
    if name == "imagenet":
        return ImageNetDataModule(write_imagenet_metadata_layout(tmp / "ILSVRC", num_classes=2, per_class=4),
                                  **COMMON, **kw)
    if name == "openimages":
        return OpenImagesDataModule(write_openimages_layout(tmp / "OI", num_classes=2, per_class=4), **COMMON, **kw)
    if name == "synthetic":
        return SyntheticDataModule(tmp, num_classes=2, images_per_class=8, val_per_class=1, **COMMON, **kw)
    return ClutterSyntheticDataModule(tmp, num_classes=2, images_per_class=8, val_per_class=1, **COMMON, **kw)


class OpenSpy:
    """Records every path opened through ``open``/``io.open`` (PIL, ``Path.read_bytes``) and every COCO decode."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        self.decoded = 0
        real_open = builtins.open

        def spy_open(file, *args, **kwargs):
            self.paths.append(str(file))
            return real_open(file, *args, **kwargs)

        def spy_decode(*args, **kwargs):
            self.decoded += 1
            return real_decode(*args, **kwargs)

        real_decode = masks_module.decode_segmentations
        monkeypatch.setattr(builtins, "open", spy_open)
        monkeypatch.setattr(io, "open", spy_open)
        monkeypatch.setattr(masks_module, "decode_segmentations", spy_decode)


def _mask_files(index) -> set[str]:
    files = set()
    for i in range(len(index)):
        files.update(str(p) for p, _ in masks_module.mask_files(index, i))
    return files


@pytest.mark.parametrize("name", ["cub", "pets", "voc", "coco", "imagenet", "openimages", "synthetic", "clutter"])
def test_train_samples_open_no_mask_and_keep_images_and_labels(tmp_path, monkeypatch, name):
    dm = _datamodule(name, tmp_path / "data")
    full = _datamodule(name, tmp_path / "data", train_targets=True)  # the same files, read with their targets
    for d in (dm, full):
        d.prepare_data()
        d.setup("fit")
    train = dm.index("train")
    mask_files = _mask_files(train)
    has_masks = bool(mask_files) or train.mask_data is not None
    assert has_masks == (name not in ("imagenet", "openimages"))  # the train splits that have masks at all

    spy = OpenSpy(monkeypatch)
    batches = list(dm.train_dataloader())
    opened = set(spy.paths)
    assert not opened & mask_files and spy.decoded == 0  # no mask file opened, no COCO mask decoded
    assert any(str(train.root / i) in opened for i in train.image_ids)  # the spy sees the image reads
    assert all("mask" not in b and "boxes" not in b for b in batches)

    reference = list(full.train_dataloader())
    if has_masks:  # the same spy sees the masks when the targets are read
        assert (set(spy.paths) & mask_files) if name != "coco" else spy.decoded > 0
        with_targets = full.make_dataset("train")
        assert any("mask" in with_targets[i] for i in range(len(train)))
    assert len(batches) == len(reference)
    for ours, theirs in zip(batches, reference):
        for key in ("image", "label", "index", "orig_size"):
            assert torch.equal(ours[key], theirs[key]), key
        assert ours["image_id"] == theirs["image_id"]


def test_eval_splits_keep_their_targets(tmp_path):
    dm = _datamodule("pets", tmp_path / "data")
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["mask"].shape == (len(batch["image"]), 32, 32) and len(batch["boxes"]) == len(batch["image"])
