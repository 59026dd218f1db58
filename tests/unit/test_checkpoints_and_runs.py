"""Checkpoint reading never runs code; the --ckpt_path settings rule; run directories and ``last`` lookup."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
import yaml

from wsol_lightning.checkpoints import (
    CheckpointError,
    check_method_class,
    check_num_classes,
    read_checkpoint,
    reconcile_settings,
    stored_values,
)
from wsol_lightning.runs import NoLastCheckpointError, find_last_checkpoint, resolve_last, run_directory

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


class MarkerPayload:
    """Unpickling this object runs ``touch <marker>`` (os.system): the code a hostile checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile_checkpoint(folder: Path) -> tuple[Path, Path]:
    """A checkpoint whose pickle would create ``marker`` when loaded without ``weights_only``."""
    marker = folder / "pwned"
    path = folder / "hostile.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"payload": MarkerPayload(marker)}}, path)
    return path, marker


# ------------------------------------------------------------------------------------ reading
def test_pickled_code_is_refused_and_never_runs(tmp_path: Path):
    path, marker = hostile_checkpoint(tmp_path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "refused to load" in message
    assert "a call to `posix.system`" in message  # names what the file would have run
    assert "weights_only=True" in message
    assert not marker.exists()
    # the payload is real: a trusting loader runs it (so the refusal above is what protects the user)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_plain_checkpoint_reads(tmp_path: Path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "hyper_parameters": {"backbone": "resnet10t"}}, path)
    checkpoint = read_checkpoint(path)
    assert torch.equal(checkpoint["state_dict"]["w"], torch.arange(3.0))


def test_missing_truncated_and_non_dict_files_are_named(tmp_path: Path):
    with pytest.raises(CheckpointError, match=r"checkpoint file not found: .*absent\.ckpt"):
        read_checkpoint(tmp_path / "absent.ckpt")
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt: not a readable PyTorch checkpoint"):
        read_checkpoint(truncated)
    listed = tmp_path / "list.ckpt"
    torch.save([1, 2], listed)
    with pytest.raises(CheckpointError, match=r"list\.ckpt: holds a list, not a checkpoint dict"):
        read_checkpoint(listed)


# ------------------------------------------------------------------------------------ the settings rule
CKPT = {"_class_path": "wsol_lightning.methods.CAM", "backbone": "resnet10t", "num_classes": 4, "lr": 0.02,
        "head_channels": 16, "operating_threshold": None, "cam_curve_interval": 0.01,
        "iou_thresholds": (30, 50, 70), "pretrained": False}


def test_same_values_have_no_conflict_and_the_checkpoint_fills_the_rest():
    settings, notes = reconcile_settings("ck", CKPT, {"backbone": "resnet10t", "iou_thresholds": [30, 50, 70],
                                                      "lr": 2e-2}, resuming=False)
    assert notes == []
    assert settings["head_channels"] == 16 and settings["backbone"] == "resnet10t"
    assert "_class_path" not in settings and "num_classes" not in settings  # num_classes comes from the data


def test_explicit_evaluation_setting_wins_and_is_reported():
    stored = stored_values({"state_dict": {"operating_threshold": torch.tensor(0.46, dtype=torch.float64)}})
    assert stored == {"operating_threshold": 0.46}  # the threshold chosen on val, not the hyperparameter None
    settings, notes = reconcile_settings("ck", CKPT, {"operating_threshold": 0.9, "cam_curve_interval": 0.05},
                                         resuming=False, stored=stored)
    assert settings["operating_threshold"] == 0.9 and settings["cam_curve_interval"] == 0.05
    assert notes == ["model.cam_curve_interval = 0.05 (given) instead of the checkpoint's 0.01",
                     "model.operating_threshold = 0.9 (given) instead of the checkpoint's 0.46"]
    assert stored_values({"state_dict": {"operating_threshold": torch.tensor(float("nan"))}}) == {}


def test_initialization_settings_keep_the_checkpoints_value_and_say_so():
    """A converted checkpoint says pretrained=False; a paper config's weights tag must not trigger a download."""
    for resuming in (False, True):
        settings, notes = reconcile_settings("ck", CKPT, {"pretrained": "resnet50.tv_in1k"}, resuming=resuming)
        assert settings["pretrained"] is False
        assert notes == ["model.pretrained: the checkpoint's weights replace the initial ones, so its False is kept "
                         "instead of 'resnet50.tv_in1k' (given)"]


def test_model_defining_conflicts_are_refused_naming_every_key():
    with pytest.raises(CheckpointError) as info:
        reconcile_settings("runs/x/last.ckpt", CKPT, {"backbone": "resnet18", "head_channels": 32, "lr": 0.1},
                           resuming=False)
    message = str(info.value)
    assert message.startswith("runs/x/last.ckpt conflicts with the settings given")
    assert "model.init_args.backbone: the checkpoint has 'resnet10t', the config or command line gives " \
           "'resnet18'" in message
    assert "model.init_args.head_channels: the checkpoint has 16, the config or command line gives 32" in message
    assert "lr" not in message  # a training setting does not matter for test/validate/predict


def test_resuming_refuses_other_training_settings_but_takes_evaluation_ones():
    with pytest.raises(CheckpointError, match=r"resuming continues the checkpoint's run(.|\n)*model\.init_args\.lr: "
                                              r"the checkpoint has 0\.02, the config or command line gives 0\.1"):
        reconcile_settings("ck", CKPT, {"lr": 0.1}, resuming=True)
    settings, _ = reconcile_settings("ck", CKPT, {"operating_threshold": 0.3}, resuming=True)
    assert settings["operating_threshold"] == 0.3


def test_other_method_class_is_refused_with_both_names():
    with pytest.raises(CheckpointError) as info:
        check_method_class("cam.ckpt", "wsol_lightning.methods.CAM", "wsol_lightning.methods.BAS")
    assert "cam.ckpt is a checkpoint of CAM (wsol_lightning.methods.CAM), but the config or command line names " \
           "BAS (wsol_lightning.methods.BAS)" in str(info.value)
    check_method_class("cam.ckpt", "wsol_lightning.methods.CAM", "wsol_lightning.methods.cam.module.CAM")


def test_class_count_mismatch_says_both_counts():
    with pytest.raises(CheckpointError, match=r"^ck: the checkpoint has 4 classes, the data has 3 "):
        check_num_classes("ck", 4, 3)
    check_num_classes("ck", 3, 3)
    check_num_classes("ck", None, 3)  # a checkpoint that does not record it: the state dict decides


# ------------------------------------------------------------------------------------ run directories
def test_run_directory_rule():
    assert run_directory("/data/runs/mine", ["configs/cam_cub.yaml"]) == Path("/data/runs/mine")
    assert run_directory(None, ["configs/cam_cub.yaml"]) == Path("runs/cam_cub")
    assert run_directory(None, ["configs/cam_cub.yaml", "my/lr.yaml"]) == Path("runs/cam_cub+lr")
    assert run_directory(None, [], "wsol_lightning.methods.BAS", "wsol_lightning.data.CUBDataModule") == \
        Path("runs/bas_cub")


def test_every_config_has_its_own_run_directory():
    """Two configs sharing a run directory would resume each other's last.ckpt."""
    dirs = {}
    for config in CONFIGS:
        trainer = yaml.safe_load(config.read_text()).get("trainer") or {}
        dirs[config.name] = run_directory(trainer.get("default_root_dir"), [config])
    shared = {d for d in dirs.values() if list(dirs.values()).count(d) > 1}
    assert not shared, {name: d for name, d in dirs.items() if d in shared}
    assert dirs["cam_cub.yaml"] == Path("runs/cam_cub") and dirs["cam_synthetic.yaml"] == Path("runs/cam_synthetic")


def test_last_is_the_newest_last_checkpoint_and_absent_is_an_error(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    with pytest.raises(NoLastCheckpointError, match=r"--ckpt_path last: no last checkpoint \(last\.ckpt\) in "
                                                    rf"{a}, {b}, where"):
        resolve_last([a, b])
    (a / "epoch=3.ckpt").write_bytes(b"x")  # not a last checkpoint
    assert find_last_checkpoint([a, b]) is None
    (a / "last.ckpt").write_bytes(b"x")
    time.sleep(0.01)
    (b / "last-v1.ckpt").write_bytes(b"x")
    assert resolve_last([a, b]) == b / "last-v1.ckpt"
    os.utime(a / "last.ckpt", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert resolve_last([a, b]) == a / "last.ckpt"
