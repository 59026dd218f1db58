"""A map from a pretrained timm classifier without training: the README's five lines and `wsol predict`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from wsol_lightning.cli import WSOLCLI
from wsol_lightning.data.folder import ImageFolderDataModule

README = Path(__file__).resolve().parents[2] / "README.md"


def seeded_classifier(name: str, path: Path) -> torch.nn.Module:
    """A timm classifier with seeded weights, saved where a test makes the hub look."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    torch.save(model.state_dict(), path)
    return model


def photo(path: Path, seed: int, size: tuple[int, int] = (80, 60)) -> Path:
    rng = np.random.default_rng(seed)
    image = np.zeros((size[1], size[0], 3), dtype=np.uint8) + rng.integers(0, 60, 3, dtype=np.uint8)
    image[10:40, 20:50] = rng.integers(120, 255, 3, dtype=np.uint8)
    Image.fromarray(image).save(path)
    return path


def test_readme_map_from_a_pretrained_classifier_in_five_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    block = next(b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if "from_timm" in b)
    assert len(block.strip().splitlines()) <= 5
    reference = seeded_classifier("resnet50", tmp_path / "resnet50.pth")
    create = timm.create_model

    def hub_is_a_local_file(name: str, pretrained: bool = False, **kwargs: object) -> torch.nn.Module:
        if pretrained:  # timm's own loading path, pointed at the file instead of the hub
            kwargs["pretrained_cfg_overlay"] = {"file": str(tmp_path / f"{name}.pth")}
        return create(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", hub_is_a_local_file)
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "photo.jpg", seed=1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    out, cam = namespace["out"], namespace["cam"]
    with torch.no_grad():
        expected = reference(cam.preprocess(Image.open(tmp_path / "photo.jpg")))
    assert int(out["pred_class"][0]) == int(expected.argmax())
    torch.testing.assert_close(out["logits"].detach(), expected, rtol=1e-5, atol=1e-5)
    assert out["maps"].shape == (1, 224, 224) and float(out["maps"].max()) == 1.0


def test_wsol_predict_runs_a_timm_head_cam_on_a_folder(tmp_path: Path):
    reference = seeded_classifier("resnet10t", tmp_path / "w.pth")
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(2):
        photo(folder / f"p{k}.png", seed=k)
    out = tmp_path / "preds"
    WSOLCLI(args=["predict", "--model", "CAM", "--model.backbone", "resnet10t", "--model.timm_head", "true",
                  "--model.pretrained", str(tmp_path / "w.pth"),
                  "--data", "wsol_lightning.data.folder.ImageFolderDataModule", "--data.data_dir", str(folder),
                  "--data.num_classes", "1000", "--data.image_size", "64", "--data.num_workers", "0",
                  "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                  "--trainer.default_root_dir", str(tmp_path / "runs"),
                  "--trainer.callbacks+=wsol_lightning.callbacks.COCOPredictionWriter",
                  "--trainer.callbacks.output_dir", str(out),
                  "--trainer.callbacks+=wsol_lightning.callbacks.OverlayWriter",
                  "--trainer.callbacks.output_dir", str(out), "--trainer.callbacks.save_masks", "true",
                  "--return_predictions", "false"])
    images = json.loads((out / "predictions.json").read_text())["images"]
    data = ImageFolderDataModule(data_dir=str(folder), num_classes=1000, image_size=64, num_workers=0)
    data.setup("predict")
    batch = next(iter(data.predict_dataloader()))
    with torch.no_grad():
        expected = reference(batch["image"]).argmax(dim=1).tolist()
    by_name = {im["file_name"]: im["pred_class"] for im in images}
    assert [by_name[name] for name in batch["image_id"]] == expected
    for k in range(2):  # overlays and masks in each photo's own 80 x 60 frame, named after it
        assert np.asarray(Image.open(out / "overlays" / f"p{k}.png")).shape == (60, 80, 3)
        assert np.asarray(Image.open(out / "masks" / f"p{k}.png")).shape == (60, 80)
