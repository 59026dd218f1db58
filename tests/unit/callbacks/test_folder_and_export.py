"""ImageFolderDataModule on a plain folder; export/reload of every method; load_from_checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

import wsol_lightning.methods as methods
from wsol_lightning.data.folder import ImageFolderDataModule
from wsol_lightning.data.index import DataError
from wsol_lightning.export import export_network, load_checkpoint, load_method, load_network, network_of

#: every method class of wsol_lightning.methods (a new method is enrolled without editing this file)
METHODS = [n for n in methods.__all__ if n != "WSOLModule" and isinstance(getattr(methods, n), type)
           and issubclass(getattr(methods, n), L.LightningModule)]


def write_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    for name, (w, h) in {"a.jpg": (40, 30), "b.png": (25, 50), "sub/c.jpeg": (33, 33)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / name)
    (root / "notes.txt").write_text("not an image")
    return root


def test_image_folder_datamodule_serves_unlabelled_images_with_their_sizes(tmp_path: Path):
    data = ImageFolderDataModule(write_folder(tmp_path / "imgs"), image_size=32, batch_size=2, num_workers=0,
                                 num_classes=3)
    assert data.num_classes == 3
    data.setup("predict")
    batch = next(iter(data.predict_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32)
    assert batch["image_id"] == ["a.jpg", "b.png"]
    assert batch["orig_size"].tolist() == [[40, 30], [25, 50]]
    assert batch["label"].tolist() == [-1, -1] and all(len(b) == 0 for b in batch["boxes"])
    assert data.datasets["predict"].index.image_ids[2] == "sub/c.jpeg"
    with pytest.raises(ValueError, match="predict"):
        data.setup("fit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image"):
        ImageFolderDataModule(tmp_path / "empty").image_paths()


def build(name: str) -> L.LightningModule:
    torch.manual_seed(0)
    cls = getattr(methods, name)
    try:
        model = cls(backbone="test_resnet", num_classes=3, pretrained=False)
    except ValueError as error:  # methods cut for the reference's families only (SPG): the smallest ResNet
        assert "test_resnet" in str(error), error
        model = cls(backbone="resnet10t", num_classes=3, pretrained=False)
    model.operating_threshold.fill_(0.37)
    return model.eval()


@pytest.mark.parametrize("name", METHODS)
def test_checkpoint_and_export_round_trips(name: str, tmp_path: Path):
    model = build(name)
    images = torch.randn(1, 3, 64, 64)
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": L.__version__}, ckpt)
    reloaded = type(model).load_from_checkpoint(ckpt).eval()
    assert float(reloaded.operating_threshold) == pytest.approx(0.37)
    with torch.no_grad():
        expected = model(images)["logits"]
        torch.testing.assert_close(reloaded(images)["logits"], expected)

    out = export_network(model, tmp_path / "export", class_names=["a", "b", "c"])
    config = json.loads((out / "config.json").read_text())
    assert config["method"].endswith(name) and config["operating_threshold"] == pytest.approx(0.37)
    assert config["hparams"]["num_classes"] == 3 and config["class_names"] == ["a", "b", "c"]
    method = load_method(out)
    assert float(method.operating_threshold) == pytest.approx(0.37)
    net = network_of(method)
    assert isinstance(net, torch.nn.Module) and not isinstance(net, L.LightningModule) and not net.training
    with torch.no_grad():
        torch.testing.assert_close(net(images)["logits"], expected)


def test_export_refuses_a_checkpoint_that_does_not_name_its_class(tmp_path: Path):
    model = build("CAM")
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": L.__version__}
    torch.save(ckpt, tmp_path / "m.ckpt")
    with pytest.raises(ValueError, match="method_class"):
        export_network(tmp_path / "m.ckpt", tmp_path / "out")
    with torch.no_grad():
        images = torch.randn(1, 3, 32, 32)
        torch.testing.assert_close(load_checkpoint(tmp_path / "m.ckpt", type(model))(images)["logits"],
                                   model(images)["logits"])
    out = export_network(model, tmp_path / "out")
    torch.testing.assert_close(load_network(out).classifier.weight, model.net.classifier.weight)
