"""Self-contained checkpoints: `wsol predict --ckpt_path CK --data.data_dir DIR` alone (issue 15, item 2).

A `wsol fit` checkpoint carries the class names, eval image size, normalisation, method and threshold
(``checkpoint["wsol"]``, plain values readable with ``weights_only=True``); `wsol predict` then needs neither
``--model`` nor ``--data`` nor a config: the data defaults to ``ImageFolderDataModule`` with the checkpoint's
settings, on a folder or on one image file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.images import record_overlay_labels, write_photo_folder
from wsol_lightning.cli import WSOLCLI
from wsol_lightning.data.folder import ImageFolderDataModule
from wsol_lightning.data.synthetic import class_names
from wsol_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cam_synthetic.yaml"
SIZE = 48  # neither the config's 64 nor ImageFolderDataModule's default 224


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, synthetic_cache: Path) -> Path:
    root = tmp_path_factory.mktemp("fit")
    cli = WSOLCLI(args=["fit", "--config", str(CONFIG), "--data.data_dir", str(synthetic_cache),
                        "--data.images_per_class", "16", "--data.val_per_class", "4", "--data.batch_size", "8",
                        "--data.image_size", str(SIZE), "--model.backbone", "test_resnet",
                        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root),
                        "--test_after_fit", "false"])
    return Path(cli.trainer.default_root_dir) / "checkpoints" / "last.ckpt"


def photos(root: Path, sizes: list[tuple[int, int]]) -> Path:
    return write_photo_folder(root, sizes, name="photo_{k}.jpg", seed=5)


def predict(checkpoint: Path, data: Path, out: Path, monkeypatch: pytest.MonkeyPatch,
            *extra: str) -> tuple[WSOLCLI, list[str]]:
    """Run the one-command predict; return the CLI and every overlay label drawn."""
    labels = record_overlay_labels(monkeypatch)
    cli = WSOLCLI(args=["predict", "--ckpt_path", str(checkpoint), "--data.data_dir", str(data),
                        "--data.num_workers", "0",
                        "--trainer.callbacks+=wsol_lightning.callbacks.COCOPredictionWriter",
                        "--trainer.callbacks.output_dir", str(out),
                        "--trainer.callbacks+=wsol_lightning.callbacks.OverlayWriter",
                        "--trainer.callbacks.output_dir", str(out),
                        "--trainer.default_root_dir", str(out / "run"), "--trainer.enable_progress_bar", "false",
                        "--return_predictions", "false", *extra])
    return cli, labels


def test_fit_checkpoint_carries_what_prediction_needs(checkpoint: Path):
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)["wsol"]
    threshold = float(torch.load(checkpoint, weights_only=True)["state_dict"]["operating_threshold"])
    assert stored == {"method": "wsol_lightning.methods.cam.module.CAM", "operating_threshold": threshold,
                      "class_names": class_names(4), "image_size": SIZE,
                      "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    assert 0.0 <= threshold <= 1.0  # chosen on val during fit


def test_predict_from_the_checkpoint_alone_on_a_folder(checkpoint: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    folder = photos(tmp_path / "photos", [(90, 70), (64, 100), (80, 80)])
    cli, labels = predict(checkpoint, folder, tmp_path / "out", monkeypatch)
    assert type(cli.model).__name__ == "CAM"
    assert isinstance(cli.datamodule, ImageFolderDataModule)
    assert cli.datamodule.image_size == SIZE  # the checkpoint's, not the default 224
    assert cli.datamodule.eval_transform().image_size == SIZE
    assert cli.datamodule.predict_dataloader().dataset[0]["image"].shape == (3, SIZE, SIZE)
    coco = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])] == class_names(4)
    assert sorted(im["file_name"] for im in coco["images"]) == ["photo_0.jpg", "photo_1.jpg", "photo_2.jpg"]
    assert sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir()) == [
        "photo_0.png", "photo_1.png", "photo_2.png"]
    assert len(labels) == 3 and all(label.split(" ")[0] in class_names(4) for label in labels)


def test_predict_from_the_checkpoint_alone_on_one_image(checkpoint: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    folder = photos(tmp_path / "photos", [(90, 70), (64, 100)])
    cli, labels = predict(checkpoint, folder / "photo_1.jpg", tmp_path / "out", monkeypatch)
    assert cli.datamodule.image_size == SIZE
    coco = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [(im["file_name"], im["width"], im["height"]) for im in coco["images"]] == [("photo_1.jpg", 64, 100)]
    assert [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])] == class_names(4)
    assert [p.name for p in (tmp_path / "out" / "overlays").iterdir()] == ["photo_1.png"]
    assert len(labels) == 1 and labels[0].split(" ")[0] in class_names(4)


def test_explicit_data_settings_win_over_the_checkpoint(checkpoint: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    folder = photos(tmp_path / "photos", [(90, 70)])
    cli, labels = predict(checkpoint, folder, tmp_path / "out", monkeypatch,
                          "--data.image_size", "64", "--data.class_names", '["a","b","c","d"]')
    assert cli.datamodule.image_size == 64
    coco = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])] == ["a", "b", "c", "d"]
    assert labels[0].split(" ")[0] in ["a", "b", "c", "d"]


def test_the_wsol_command_on_one_photo(checkpoint: Path, tmp_path: Path):
    """The README's one command, as a user types it (a real process, sys.argv)."""
    photo = photos(tmp_path / "photos", [(70, 90)]) / "photo_0.jpg"
    work = tmp_path / "cwd"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "wsol_lightning.cli", "predict", "--ckpt_path", str(checkpoint),
         "--data.data_dir", str(photo), "--data.num_workers", "0",
         "--trainer.callbacks+=wsol_lightning.callbacks.COCOPredictionWriter", "--trainer.callbacks.output_dir",
         str(tmp_path / "out"), "--trainer.enable_progress_bar", "false", "--return_predictions", "false"],
        cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"image_size={SIZE}" in done.stdout  # says where the settings came from
    coco = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [(im["file_name"], im["width"], im["height"]) for im in coco["images"]] == [("photo_0.jpg", 70, 90)]
    assert [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])] == class_names(4)
