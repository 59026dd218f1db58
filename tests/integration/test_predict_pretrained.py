"""`wsol predict --ckpt_path FOLDER`: a save_pretrained / `wsol export` folder predicts like its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.images import write_photo_folder
from wsol_lightning.cli import WSOLCLI
from wsol_lightning.methods import CAM

NAMES = ["disc", "square", "triangle", "cross"]


def test_predict_from_a_pretrained_folder(tmp_path: Path):
    torch.manual_seed(0)
    model = CAM(backbone="resnet10t", num_classes=4).eval()
    model.operating_threshold.fill_(0.3)  # as chosen on val (state, not an argument)
    folder = model.save_pretrained(tmp_path / "cam", settings={"class_names": NAMES, "image_size": 48,
                                                                "mean": [0.5] * 3, "std": [0.25] * 3})
    photos = write_photo_folder(tmp_path / "photos", [(90, 70), (64, 100)], name="photo_{k}.jpg")
    out = tmp_path / "out"
    cli = WSOLCLI(args=["predict", "--ckpt_path", str(folder), "--data.data_dir", str(photos),
                        "--data.num_workers", "0",
                        "--trainer.callbacks+=wsol_lightning.callbacks.COCOPredictionWriter",
                        "--trainer.callbacks.output_dir", str(out), "--trainer.default_root_dir", str(tmp_path / "r"),
                        "--trainer.enable_progress_bar", "false", "--return_predictions", "false"])
    assert type(cli.model).__name__ == "CAM" and cli.datamodule.image_size == 48
    assert cli.datamodule.eval_transform().mean == (0.5, 0.5, 0.5)
    assert float(cli.model.operating_threshold) == 0.3
    for key, value in model.state_dict().items():  # the folder's weights, not a fresh build
        torch.testing.assert_close(cli.model.state_dict()[key].cpu(), value, rtol=0, atol=0, equal_nan=True)
    coco = json.loads((out / "predictions.json").read_text())
    assert [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])] == NAMES
    assert sorted(im["file_name"] for im in coco["images"]) == ["photo_0.jpg", "photo_1.jpg"]
