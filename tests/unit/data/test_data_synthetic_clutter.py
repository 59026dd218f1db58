"""The cluttered synthetic generator: reproducible, cached, disjoint splits, exact masks/boxes, a measurable bias."""

from __future__ import annotations

import filecmp
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsol_lightning.data import ClutterSyntheticDataModule
from wsol_lightning.data.synthetic import palette

SMALL = {"num_classes": 4, "images_per_class": 12, "val_per_class": 2, "batch_size": 8}


def hue_class(pixels: np.ndarray, colours: np.ndarray) -> int:
    """The palette colour whose hue is nearest the mean colour of ``(n, 3)`` RGB pixels (circular distance)."""
    def hue(rgb: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(rgb.reshape(1, -1, 3).astype(np.uint8), cv2.COLOR_RGB2HSV)[0, :, 0].astype(int)

    h, ref = hue(pixels.mean(axis=0)[None]), hue(colours)
    d = np.abs(ref - h)
    return int(np.argmin(np.minimum(d, 180 - d)))


def raw_samples(dm: ClutterSyntheticDataModule, split: str):
    """(label, RGB image, 0/1 mask, box x0 y0 x1 y1) of each sample of a split, read from disk."""
    index = dm.build_index(split)
    for i, image_id in enumerate(index.image_ids):
        image = cv2.cvtColor(cv2.imread(str(Path(index.root) / image_id)), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(Path(index.mask_root) / index.mask_paths[i][0]), cv2.IMREAD_GRAYSCALE) > 127
        box = index.boxes[index.box_offsets[i]:index.box_offsets[i + 1]]
        yield int(index.labels[i]), image, mask, box


def test_reproducible_and_cached(tmp_path: Path) -> None:
    a = ClutterSyntheticDataModule(tmp_path / "a", **SMALL).ensure_generated()
    b = ClutterSyntheticDataModule(tmp_path / "b", **SMALL).ensure_generated()
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert len([f for f in files if f.endswith(".jpg")]) == 48
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    stamp = (a / "params.json").stat().st_mtime_ns
    ClutterSyntheticDataModule(tmp_path / "a", **SMALL).ensure_generated()
    assert (a / "params.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert ClutterSyntheticDataModule(tmp_path / "a", **SMALL, seed=1).dataset_root != a
    assert ClutterSyntheticDataModule(tmp_path / "a", **SMALL, background_bias=0.7).dataset_root != a


def test_splits_are_disjoint_and_load_through_the_cub_path(tmp_path: Path) -> None:
    dm = ClutterSyntheticDataModule(tmp_path, image_size=32, **SMALL)
    assert dm.num_classes == 4 and dm.class_names[0] == "disc_stripes"
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    ids = [set(dm.datasets[s].index.image_ids) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert [len(i) for i in ids] == [4 * (12 - 4 - 2), 4 * 2, 4 * 4]
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 3, 32, 32) and "mask" not in batch  # training reads labels only
    assert next(iter(dm.test_dataloader()))["mask"].shape == (8, 32, 32)


def test_masks_and_boxes_are_the_drawn_target(tmp_path: Path) -> None:
    dm = ClutterSyntheticDataModule(tmp_path, **SMALL)
    objects = palette(4, 0.9, 0.95)
    for split in ("train", "test"):
        for label, image, mask, box in raw_samples(dm, split):
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [[xs.min(), ys.min(), xs.max(), ys.max()]]  # the box is the mask's
            assert hue_class(image[mask], objects) == label  # the masked pixels are the target's colour
            assert 0.01 < mask.mean() < 0.6


def background_hit_rate(dm: ClutterSyntheticDataModule, split: str, k: int) -> tuple[float, int]:
    """Share of a split's images whose background colour (nearest background-palette hue) names its label."""
    backgrounds = palette(k, 0.45, 0.6, offset=0.5 / k)
    hits = [hue_class(image[~mask], backgrounds) == label for label, image, mask, _ in raw_samples(dm, split)]
    return float(np.mean(hits)), len(hits)


def assert_rate(rate: float, n: int, expected: float) -> None:
    sd = np.sqrt(expected * (1 - expected) / n)
    assert abs(rate - expected) < 4 * sd + 0.02, (rate, expected, n)


@pytest.mark.parametrize("bias", [0.7, None])
def test_background_predicts_the_label_at_the_set_rate(tmp_path: Path, bias: float | None) -> None:
    k = 10
    dm = ClutterSyntheticDataModule(tmp_path, num_classes=k, images_per_class=40, background_bias=bias,
                                    unbiased_test=True)
    rate, n = background_hit_rate(dm, "train", k)
    assert n == k * (40 - 12 - 6)
    assert_rate(rate, n, 0.7 if bias else 1 / k)
    rate, n = background_hit_rate(dm, "test", k)  # unbiased_test: the background says nothing on test
    assert_rate(rate, n, 1 / k)


def test_cli_trains_on_it_by_class_name(tmp_path: Path) -> None:
    from wsol_lightning.cli import WSOLCLI

    cli = WSOLCLI(args=[
        "fit", "--model", "CAM", "--model.backbone", "test_resnet", "--model.cam_curve_interval", "0.01",
        "--data", "ClutterSyntheticDataModule", "--data.data_dir", str(tmp_path), "--data.num_classes", "4",
        "--data.images_per_class", "12", "--data.val_per_class", "2", "--data.image_size", "48",
        "--data.batch_size", "8", "--data.background_bias", "0.7", "--trainer.max_steps", "2",
        "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path / "run"),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ])
    assert isinstance(cli.datamodule, ClutterSyntheticDataModule) and cli.datamodule.params["background_bias"] == 0.7
    assert cli.model.hparams.num_classes == 4
    assert {"test/maxboxacc_v2", "test/baseline_centre_maxboxacc_v2", "test/warn_chance_classifier"} <= set(
        cli.trainer.callback_metrics)
