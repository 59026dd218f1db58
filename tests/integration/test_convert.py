"""``load_official_checkpoint`` and ``wsol convert``: an official-format file -> a checkpoint ``wsol test`` reads."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from wsol_lightning.cli import WSOLCLI, main
from wsol_lightning.convert import CONVERTERS, find_converter, load_official_checkpoint, read_official_file
from wsol_lightning.methods import CAM
from wsol_lightning.methods.official import OfficialCheckpointError, remap_strict
from wsol_lightning.testing import key_shapes_of, seeded_state_dict

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cam_synthetic.yaml"
PREFIX = "official_net."


def _test_converter(official: Mapping[str, Tensor], module: nn.Module) -> dict[str, Tensor]:
    """A test-only official format: the module's ``net.*`` tensors under ``official_net.*``."""
    target = module.state_dict()
    return remap_strict(official, target, lambda k: "net." + k[len(PREFIX):] if k.startswith(PREFIX) else k,
                        source="test official file", fill_missing=lambda k: None if k.startswith("net.") else target[k])


@pytest.fixture
def cam_converter():
    CONVERTERS[CAM] = _test_converter
    yield
    del CONVERTERS[CAM]


def _official_file(path: Path, seed: int = 3) -> dict[str, Tensor]:
    """Seeded weights in the test format, wrapped like a released file ({'model': {'module.' + key}}, old format)."""
    net = {k: v for k, v in CAM(backbone="test_resnet", num_classes=4).state_dict().items() if k.startswith("net.")}
    shapes = [(PREFIX + k[4:], s) for k, s in key_shapes_of(net) if not k.endswith("num_batches_tracked")]
    official = seeded_state_dict(shapes, seed, dtype=torch.float32)
    official.update({PREFIX + k[4:]: torch.tensor(7) for k in net if k.endswith("num_batches_tracked")})
    torch.save({"epoch": 99, "model": {"module." + k: v for k, v in official.items()}}, path,
               _use_new_zipfile_serialization=False)
    return official


def test_read_unwraps_and_refuses_code(tmp_path: Path):
    official = _official_file(tmp_path / "a.pth.tar")
    read = read_official_file(tmp_path / "a.pth.tar")
    assert read.keys() == official.keys() and all(torch.equal(read[k], official[k]) for k in official)
    torch.save({"state_dict": {"w": torch.ones(1)}, "args": Path("x")}, tmp_path / "code.pth")  # pickles an object
    with pytest.raises(OfficialCheckpointError, match="needs code execution"):
        read_official_file(tmp_path / "code.pth")
    torch.save({"w": torch.ones(1), "lr": 0.1}, tmp_path / "mixed.pth")
    with pytest.raises(OfficialCheckpointError, match=r"not tensors: \['lr'\]"):
        read_official_file(tmp_path / "mixed.pth")
    with pytest.raises(FileNotFoundError):
        read_official_file(tmp_path / "missing.pth")


def test_method_without_converter_is_named(monkeypatch: pytest.MonkeyPatch):
    _, where = find_converter(CAM(backbone="test_resnet", num_classes=4))
    assert where == "wsol_lightning.methods.cam.official.convert_official_state_dict"
    monkeypatch.setitem(sys.modules, "wsol_lightning.methods.cam.official", None)  # as if CAM had no official.py
    with pytest.raises(OfficialCheckpointError, match=r"CAM has no converter.*wsol_lightning\.methods\.cam\.official"):
        find_converter(CAM(backbone="test_resnet", num_classes=4))


def test_wrong_keys_are_refused(tmp_path: Path, cam_converter: None):
    _official_file(tmp_path / "a.pth")
    with pytest.raises(OfficialCheckpointError, match="shape mismatches"):
        load_official_checkpoint(tmp_path / "a.pth", CAM(backbone="test_resnet", num_classes=5))


def test_convert_then_wsol_test(tmp_path: Path, synthetic_cache: Path, cam_converter: None):
    official = _official_file(tmp_path / "released.pth.tar")
    common = ["--config", str(CONFIG), "--model.init_args.backbone", "test_resnet", "--data.data_dir",
              str(synthetic_cache), "--data.images_per_class", "24", "--data.val_per_class", "4",
              "--data.batch_size", "8"]
    out = tmp_path / "converted.ckpt"
    main(["convert", *common, "--official", str(tmp_path / "released.pth.tar"), "--output", str(out)])
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["hyper_parameters"]["_class_path"] == "wsol_lightning.methods.CAM"
    assert ckpt["hyper_parameters"]["pretrained"] is False
    assert ckpt["official"]["num_tensors"] == len(official) and len(ckpt["official"]["sha256"]) == 64
    for key, value in official.items():
        assert torch.equal(ckpt["state_dict"]["net." + key[len(PREFIX):]], value), key

    reference = CAM(backbone="test_resnet", num_classes=4).eval()
    reference.load_state_dict(_test_converter(official, reference))
    run = WSOLCLI(args=["test", *common, "--ckpt_path", str(out), "--trainer.logger", "false",
                        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)])
    assert "test/maxboxacc_v2" in run.trainer.callback_metrics
    images = torch.randn(2, 3, 64, 64)
    run.model.eval()
    with torch.no_grad():
        assert torch.equal(run.model(images)["logits"], reference(images)["logits"])  # the converted weights ran


def test_bas_released_format_gives_the_official_logits(tmp_path: Path):
    """A file in the BAS release format (``module.`` keys, old serialisation) through the generic loader and
    ``methods/bas/official.py`` gives the official eval logits (fixture of tools/parity/bas.py, float64)."""
    from wsol_lightning.methods import BAS
    from wsol_lightning.testing import load_fixture, seeded_inputs

    fixture = load_fixture(Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "bas" / "cvpr_resnet50.pt")
    official = seeded_state_dict(fixture["key_shapes"], fixture["weight_seed"])
    path = tmp_path / "resnet50_cub.pth.tar"
    torch.save({"module." + k: v for k, v in official.items()}, path, _use_new_zipfile_serialization=False)
    module = BAS(backbone="resnet50.tv_in1k", num_classes=fixture["num_classes"], variant="cvpr").double()
    provenance = load_official_checkpoint(path, module)
    assert provenance["converter"] == "wsol_lightning.methods.bas.official.convert_official_state_dict"
    size = fixture["image_size"]
    images = seeded_inputs((fixture["batch"], 3, size, size), fixture["input_seed"])
    with torch.no_grad():
        logits = module.eval()(images)["logits"]
    torch.testing.assert_close(logits, fixture["eval_logits"].to(logits), rtol=1e-10, atol=0)
