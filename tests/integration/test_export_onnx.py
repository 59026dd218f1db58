"""`wsol export --format onnx`: every method's map-producing network, checked against PyTorch with onnxruntime.

The graph takes a normalised batch and gives ``logits``, ``maps`` (the top-1 class's map upsampled and min-max
normalised: what ``predict_step`` returns) and ``raw_maps``; batch (and H/W) are dynamic. Each method is exported
once (resnet10t, 64 px) and run by onnxruntime on batches of another size than the example.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from wsol_lightning import cli
from wsol_lightning.export_cli import SIDECAR, export_folder
from wsol_lightning.export_graph import ExportError, export_onnx, onnx_outputs
from wsol_lightning.methods import BAS, BCAM, CAM, ORNet

pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime, onnxscript) is not installed")

SIZE = 64
NAMES = ["cat", "dog", "bird"]
ORNET_SMALL = {"decoder_channels": (8, 16, 32), "decoder_up_channels": (16, 8)}


def seeded(method: torch.nn.Module, threshold: float = 0.35) -> torch.nn.Module:
    """Random (but not default-initialised) weights and BatchNorm statistics, a threshold, eval mode."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, tensor in method.state_dict().items():
            if tensor.is_floating_point() and "operating_threshold" not in name and "seed_bg" not in name:
                noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * 0.02
                tensor.copy_(noise.abs() + 0.9 if name.endswith("running_var") else tensor + noise)
        method.operating_threshold.fill_(threshold)
    return method.eval()


def images(batch: int, height: int = SIZE, width: int = SIZE, seed: int = 3) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def assert_matches_predict(method: torch.nn.Module, onnx_file: Path, batch: torch.Tensor) -> None:
    """onnxruntime's maps equal ``predict_step``'s to 1e-4 (max abs), its logits and raw maps to 1e-4 relative."""
    logits, maps, raw = onnx_outputs(onnx_file, batch)
    with torch.no_grad():
        expected = method.predict_step({"image": batch}, 0)
        outputs = method(batch)
        expected_raw = method.localization_maps(outputs, outputs["logits"].argmax(dim=1))
    assert logits.shape == expected["logits"].shape and maps.shape == expected["maps"].shape
    scale = max(1.0, float(expected["logits"].abs().max()))  # float32 round-off grows with the values
    assert (logits - expected["logits"]).abs().max() <= 1e-4 * scale
    assert torch.equal(logits.argmax(dim=1), expected["pred_class"])
    assert (maps - expected["maps"]).abs().max() <= 1e-4
    assert (raw - expected_raw.float()).abs().max() <= 1e-4 * max(1.0, float(expected_raw.abs().max()))
    assert float(maps.amin()) >= 0.0 and float(maps.amax()) == pytest.approx(1.0, abs=1e-6)


METHODS = {
    "CAM": lambda: CAM(backbone="resnet10t", num_classes=3),
    "BAS": lambda: BAS(backbone="resnet10t", num_classes=3, head_channels=32),
    # the official gradient map: its backward pass is traced into the graph
    "BCAM": lambda: BCAM(backbone="resnet10t", num_classes=3, num_heads=4, aggregator_init="xavier"),
    # the refined map and, for the class, the evaluator the test path uses
    "ORNet": lambda: ORNet(phase="refine", backbone="resnet10t", num_classes=3, init_from="coarse.ckpt",
                           evaluator_from="evaluator.ckpt", evaluator_backbone="resnet10t", **ORNET_SMALL),
    # stage 1: the generator's map gating the classifier, whose logits give the class
    "ORNet-coarse": lambda: ORNet(phase="coarse", backbone="resnet10t", num_classes=3, **ORNET_SMALL),
}
#: Both torch.onnx exporters are covered: torch.export (``dynamo``, the default; the only one for BCAM's traced
#: gradient map) and ``legacy`` (``dynamo=False``: the same graph, several times faster to export).
EXPORTERS = {"CAM": "dynamo", "BAS": "legacy", "BCAM": "dynamo", "ORNet": "legacy", "ORNet-coarse": "legacy"}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_exports_to_onnx_and_matches_pytorch(name: str, tmp_path: Path):
    torch.manual_seed(0)
    method = seeded(METHODS[name]())
    sidecar = export_folder(method, tmp_path, ["onnx"], {"class_names": NAMES, "image_size": SIZE,
                                                         "mean": [0.5] * 3, "std": [0.25] * 3},
                            exporter=EXPORTERS[name])
    info = sidecar["exports"]["onnx"]
    assert info["exporter"] == EXPORTERS[name] and info["dynamic_hw"] is True
    assert sorted(info["check_onnxruntime"]) == ["example", "other batch", "other size"]
    assert_matches_predict(method, tmp_path / "model.onnx", images(3))           # another batch size
    assert_matches_predict(method, tmp_path / "model.onnx", images(1, 96, 80))   # another image size
    stored = json.loads((tmp_path / SIDECAR).read_text())
    assert stored["wsol"]["class_names"] == NAMES and stored["wsol"]["image_size"] == SIZE
    assert stored["wsol"]["operating_threshold"] == pytest.approx(0.35)
    assert stored["wsol"]["map_interpolation"] == "bicubic" and stored["wsol"]["mean"] == [0.5] * 3
    method_name = name.split("-")[0]
    assert stored["method"].endswith(f".{method_name}")
    card = (tmp_path / "README.md").read_text()
    assert f"# {method_name} (resnet10t)" in card and "`cat`, `dog`, `bird`" in card and "model.onnx" in card


def test_wsol_export_command_from_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """The subcommand: a checkpoint with checkpoint['wsol'] -> ONNX + TorchScript + Hub folder, settings kept."""
    torch.manual_seed(0)
    method = seeded(CAM(backbone="resnet10t", num_classes=3, map_interpolation="bilinear"), threshold=0.4)
    hparams = {**dict(method.hparams), "_class_path": "wsol_lightning.methods.CAM",
               "_instantiator": "lightning.pytorch.cli.instantiate_module"}  # as `wsol fit` saves them
    settings = {"method": "wsol_lightning.methods.cam.module.CAM", "operating_threshold": 0.4,
                "class_names": NAMES, "image_size": SIZE, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": method.state_dict(), "hyper_parameters": hparams, "wsol": settings,
                "pytorch-lightning_version": "2.6.6"}, ckpt)
    out = tmp_path / "exported"
    cli.main(["export", "--ckpt_path", str(ckpt), "--format", "onnx", "torchscript", "safetensors",
              "--output", str(out), "--exporter", "legacy", "--metrics", '{"test/maxboxacc_v2": 61.25}'])
    printed = capsys.readouterr().out
    assert f"wsol export: {ckpt} -> {out}" in printed and "onnx: model.onnx (max abs diff vs PyTorch" in printed
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.onnx", "model.safetensors",
                                                     "model.torchscript.pt", "wsol.json"]
    stored = json.loads((out / SIDECAR).read_text())
    assert {k: stored["wsol"][k] for k in settings} == settings
    assert stored["wsol"]["map_interpolation"] == "bilinear" and stored["metrics"] == {"test/maxboxacc_v2": 61.25}
    assert_matches_predict(method, out / "model.onnx", images(2, 80, 64))
    batch = images(3)
    with torch.no_grad():
        logits, maps, _ = torch.jit.load(str(out / "model.torchscript.pt"))(batch)
        expected = method.predict_step({"image": batch}, 0)
    assert (logits - expected["logits"]).abs().max() <= 1e-5 and (maps - expected["maps"]).abs().max() <= 1e-5
    reloaded = CAM.from_pretrained(out)
    assert reloaded.wsol_settings["class_names"] == NAMES and float(reloaded.operating_threshold) == 0.4
    again = tmp_path / "again"  # a pretrained folder is a source too
    cli.main(["export", "--ckpt_path", str(out), "--format", "safetensors", "--output", str(again)])
    assert json.loads((again / SIDECAR).read_text())["wsol"] == stored["wsol"]
    card = (out / "README.md").read_text()
    assert "| `test/maxboxacc_v2` | 61.25 |" in card and "Learning Deep Features for Discriminative" in card
    assert "model.torchscript.pt" in card and "from_pretrained" in card


def test_a_method_without_a_map_is_refused_by_name(tmp_path: Path):
    evaluator = ORNet(phase="evaluator", backbone="resnet10t", num_classes=3).eval()
    with pytest.raises(ExportError, match="ORNet gives no localisation map to export.*evaluator"):
        export_onnx(evaluator, tmp_path / "model.onnx", images(2))


def test_missing_onnx_packages_give_an_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ExportError, match=r'onnxruntime is missing.*pip install "wsol_lightning\[export\]"'):
        export_onnx(CAM(backbone="resnet10t", num_classes=3), tmp_path / "model.onnx", images(2))


def test_the_command_reports_a_bad_checkpoint_without_a_traceback(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--ckpt_path", str(tmp_path / "missing.ckpt"), "--format", "onnx", "--output",
                  str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "wsol export: error: checkpoint file not found" in capsys.readouterr().err
