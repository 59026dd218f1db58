"""save_pretrained / from_pretrained: safetensors + config.json + model card; identical outputs; clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
import torch

from wsol_lightning.methods import BAS, BCAM, CAM, ORNet, WSOLModule
from wsol_lightning.methods.pretrained import PretrainedError

NAMES = ["cat", "dog", "bird"]
SETTINGS = {"class_names": NAMES, "image_size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
METHODS = {
    "CAM": lambda: CAM(backbone="resnet10t", num_classes=3),
    "BAS": lambda: BAS(backbone="resnet10t", num_classes=3, head_channels=32, top_k=2),
    "BCAM": lambda: BCAM(backbone="resnet10t", num_classes=3, num_heads=4, aggregator_init="xavier"),
    "ORNet": lambda: ORNet(phase="refine", backbone="resnet10t", num_classes=3, init_from="coarse.ckpt",
                           evaluator_from="evaluator.ckpt", evaluator_backbone="resnet10t",
                           decoder_channels=(8, 16, 32), decoder_up_channels=(16, 8)),
}


def trained_like(name: str) -> Any:
    """A method whose weights differ from a fresh build's (so a round trip that forgot them would show)."""
    torch.manual_seed(0)
    method = METHODS[name]()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, tensor in method.state_dict().items():
            if tensor.is_floating_point() and "threshold" not in key:
                tensor.add_(torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype).abs() * 0.02)
        method.operating_threshold.fill_(0.42)
    return method.eval()


@pytest.mark.parametrize("name", list(METHODS))
def test_round_trip_gives_identical_logits_and_maps(name: str, tmp_path: Path):
    method = trained_like(name)
    folder = method.save_pretrained(tmp_path / name, settings=SETTINGS, metrics={"test/maxboxacc_v2": 58.4})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    for loader in (type(method), WSOLModule):  # the method's class, or any method
        loaded = loader.from_pretrained(folder)
        assert type(loaded) is type(method) and not loaded.training
        images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            before, after = method.predict_step({"image": images}, 0), loaded.predict_step({"image": images}, 0)
        assert torch.equal(before["logits"], after["logits"]) and torch.equal(before["maps"], after["maps"])
        assert before["boxes"][0].tolist() == after["boxes"][0].tolist() and after["threshold"] == 0.42
        assert loaded.wsol_settings["class_names"] == NAMES and loaded.wsol_settings["image_size"] == 64
        assert loaded.pretrained_metrics == {"test/maxboxacc_v2": 58.4}
        for key, value in method.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, equal_nan=True, msg=key)
    config = json.loads((folder / "config.json").read_text())
    assert config["method"].endswith(f".{name}") and config["init_args"]["backbone"] == "resnet10t"
    assert config["wsol"]["operating_threshold"] == 0.42 and config["wsol"]["map_interpolation"] == "bicubic"


def test_model_card_names_method_classes_metrics_citation_and_license(tmp_path: Path):
    folder = trained_like("BAS").save_pretrained(tmp_path, settings=SETTINGS, metrics={"test/pxap": 61.0},
                                                 license="mit")
    card = huggingface_hub.ModelCard.load(folder / "README.md")
    assert card.data.library_name == "wsol_lightning" and card.data.license == "mit"
    assert {"wsol", "bas", "resnet10t"} <= set(card.data.tags)
    text = card.text
    assert "# BAS (resnet10t) for weakly supervised object localization" in text
    assert "| classes | 3: `cat`, `dog`, `bird` |" in text and "| eval image size | 64 x 64" in text
    assert "| operating threshold | 0.420" in text and "| `test/pxap` | 61.00 |" in text
    assert "@inproceedings{wu2022background" in text and "pages={14248--14257}" in text
    assert "## License" in text and "BAS.from_pretrained" in text


def test_from_pretrained_never_unpickles(tmp_path: Path):
    """A folder with only a pickled pytorch_model.bin is refused before anything is read from it."""
    folder = trained_like("CAM").save_pretrained(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(PretrainedError, match=r"no weights file model\.safetensors"):
        CAM.from_pretrained(folder)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: (f / "config.json").unlink(), r"m: no config\.json"),
    (lambda f: (f / "config.json").write_text('{\n  "method": "x",\n  oops\n}'), r"config\.json, line 3: not valid"),
    (lambda f: _edit(f, lambda c: c.pop("init_args")), r"key 'init_args' is missing"),
    (lambda f: _edit(f, lambda c: c.update(format_version=1)), r"key 'format'/'format_version'"),
    (lambda f: _edit(f, lambda c: c.update(method="evil_pkg.Model")), r"'evil_pkg\.Model', whose module is not"),
    (lambda f: _edit(f, lambda c: c.update(method="subprocess.Popen")), r"'subprocess\.Popen' is not a wsol_"),
    (lambda f: _edit(f, lambda c: c["init_args"].update(num_classes=5)), r"model\.safetensors does not match the "
     r"CAM that config\.json describes: .*size mismatch for net\.classifier\.weight"),
    (lambda f: _edit(f, lambda c: c["init_args"].update(timm_head=True)), r"does not match the CAM.*missing keys"),
    (lambda f: _edit(f, lambda c: c["init_args"].update(no_such_arg=1)), r"key 'init_args' does not build a CAM"),
    (lambda f: (f / "model.safetensors").write_bytes(b"not safetensors"), r"model\.safetensors: not a readable"),
])
def test_bad_folders_give_a_clear_error_naming_the_file_or_key(damage: Any, message: str, tmp_path: Path):
    folder = trained_like("CAM").save_pretrained(tmp_path / "m")
    damage(folder)
    with pytest.raises(PretrainedError, match=message):
        CAM.from_pretrained(folder)


def _edit(folder: Path, change: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def test_another_methods_folder_is_refused_by_a_method_class(tmp_path: Path):
    folder = trained_like("CAM").save_pretrained(tmp_path / "cam")
    with pytest.raises(PretrainedError, match=r"holds a CAM, not a BAS; use CAM\.from_pretrained"):
        BAS.from_pretrained(folder)


def test_an_unreachable_repository_id_is_a_clear_error(tmp_path: Path):
    with pytest.raises(PretrainedError, match=r"user/no-such-model: not a local folder, and fetching it as a "
                                              r"Hugging Face Hub repository failed"):
        CAM.from_pretrained("user/no-such-model", cache_dir=tmp_path, local_files_only=True)


def test_push_to_hub_uploads_the_saved_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """No network: a stand-in HfApi records what would be uploaded (the real push is documented, not tested)."""
    uploaded: dict[str, Any] = {}

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            uploaded["token"] = token

        def create_repo(self, repo_id: str, private: bool | None = None, exist_ok: bool = False) -> Any:
            return type("Repo", (), {"repo_id": f"someone/{repo_id}"})()

        def upload_folder(self, repo_id: str, folder_path: Path, **kwargs: Any) -> str:
            uploaded.update(repo_id=repo_id, files=sorted(p.name for p in Path(folder_path).iterdir()))
            uploaded["config"] = json.loads((Path(folder_path) / "config.json").read_text())
            return "https://huggingface.co/someone/cam/commit/1"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = trained_like("CAM").push_to_hub("cam", settings=SETTINGS, token="t")
    assert url.endswith("/commit/1") and uploaded["repo_id"] == "someone/cam" and uploaded["token"] == "t"
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]
    assert uploaded["config"]["wsol"]["class_names"] == NAMES
