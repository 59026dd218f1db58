"""``--ckpt_path`` through the CLI: explicit settings are used or refused (never silently dropped), a hostile
checkpoint is refused by the CLI and by the exporter, the class count is checked, and a default run writes
``last.ckpt`` in its stable run directory and says where its outputs went.

One small CAM run with ``configs/cam_synthetic.yaml`` (32 px, 1 epoch) provides the checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from wsol_lightning import export
from wsol_lightning.checkpoints import CheckpointError
from wsol_lightning.cli import WSOLCLI, main
from wsol_lightning.runs import NoLastCheckpointError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CAM_CONFIG = str(CONFIGS / "cam_synthetic.yaml")


def small(cache: Path, *extra: str) -> list[str]:
    """Overrides that make the synthetic configs a few-second run (3 classes, 32 px)."""
    return [
        "--data.init_args.data_dir", str(cache), "--data.init_args.num_classes", "3",
        "--data.init_args.images_per_class", "10", "--data.init_args.val_per_class", "2",
        "--data.init_args.image_size", "32", "--data.init_args.batch_size", "4",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", *extra,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic_cache: Path) -> dict[str, Any]:
    """``wsol fit -c configs/cam_synthetic.yaml`` (small) in a fresh working directory."""
    work = tmp_path_factory.mktemp("cam_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        cli = WSOLCLI(args=["fit", "-c", CAM_CONFIG, *small(synthetic_cache)])
    return {"work": work, "ckpt": work / "runs" / "cam_synthetic" / "checkpoints" / "last.ckpt",
            "threshold": float(cli.model.operating_threshold), "steps": cli.trainer.global_step}


def run_in(work: Path, args: list[str]) -> WSOLCLI:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        return WSOLCLI(args=args)


def test_default_run_writes_last_ckpt_in_its_run_directory_and_says_so(trained: dict[str, Any],
                                                                       capsys: pytest.CaptureFixture[str]):
    ckpt = trained["ckpt"]
    assert ckpt.is_file()
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["global_step"] == trained["steps"] > 0
    assert "optimizer_states" in saved and saved["optimizer_states"]  # a checkpoint to resume from, not weights
    assert not math.isnan(trained["threshold"])  # chosen on val and stored


def test_normal_test_of_the_config_has_no_conflict(trained: dict[str, Any], synthetic_cache: Path,
                                                   capsys: pytest.CaptureFixture[str]):
    cli = run_in(trained["work"], ["test", "-c", CAM_CONFIG, *small(synthetic_cache), "--ckpt_path",
                                   str(trained["ckpt"])])
    assert cli.checkpoint_notes == []
    assert cli.config["test"]["weights_only"] is True  # the Trainer's own load is weights-only too
    assert float(cli.model.operating_threshold) == pytest.approx(trained["threshold"])
    assert float(cli.trainer.callback_metrics["test/operating_threshold"]) == pytest.approx(trained["threshold"])
    out = capsys.readouterr().out
    assert "wsol test: outputs\n  run directory: runs/cam_synthetic\n  logs (CSVLogger): runs/cam_synthetic/" \
           "lightning_logs/version_" in out


def test_explicit_operating_threshold_wins_is_used_and_saved(trained: dict[str, Any], synthetic_cache: Path,
                                                            capsys: pytest.CaptureFixture[str]):
    assert trained["threshold"] != pytest.approx(0.9)
    cli = run_in(trained["work"], ["test", "-c", CAM_CONFIG, *small(synthetic_cache), "--ckpt_path",
                                   str(trained["ckpt"]), "--model.init_args.operating_threshold", "0.9"])
    assert float(cli.model.operating_threshold) == pytest.approx(0.9)  # not the checkpoint's value
    assert float(cli.trainer.callback_metrics["test/operating_threshold"]) == pytest.approx(0.9)
    assert cli.model.hparams.operating_threshold == 0.9
    saved = yaml.safe_load((trained["work"] / cli.trainer.log_dir / "config.yaml").read_text())
    assert saved["model"]["init_args"]["operating_threshold"] == 0.9
    note = f"model.operating_threshold = 0.9 (given) instead of the checkpoint's {round(trained['threshold'], 6)!r}"
    assert cli.checkpoint_notes == [note]
    assert f"--ckpt_path {trained['ckpt']}: {note}" in capsys.readouterr().out


def test_other_backbone_is_refused_naming_the_key(trained: dict[str, Any], synthetic_cache: Path):
    with pytest.raises(CheckpointError) as info:
        run_in(trained["work"], ["test", "-c", CAM_CONFIG, *small(synthetic_cache), "--ckpt_path",
                                 str(trained["ckpt"]), "--model.init_args.backbone", "resnet18"])
    assert "model.init_args.backbone: the checkpoint has 'resnet10t', the config or command line gives " \
           "'resnet18'" in str(info.value)


def test_checkpoint_of_another_method_is_refused_with_both_names(trained: dict[str, Any], synthetic_cache: Path):
    with pytest.raises(CheckpointError, match=r"is a checkpoint of CAM \(wsol_lightning\.methods\.CAM\), but the "
                                              r"config or command line names BAS \(wsol_lightning\.methods\.BAS\)"):
        run_in(trained["work"], ["test", "-c", str(CONFIGS / "bas_synthetic.yaml"), *small(synthetic_cache),
                                 "--ckpt_path", str(trained["ckpt"])])


def test_class_count_mismatch_is_named(trained: dict[str, Any], synthetic_cache: Path):
    with pytest.raises(CheckpointError, match=r"the checkpoint has 3 classes, the data has 4 \(data\.num_classes\)"):
        run_in(trained["work"], ["test", "-c", CAM_CONFIG, *small(synthetic_cache, "--data.init_args.num_classes",
                                                                   "4"), "--ckpt_path", str(trained["ckpt"])])


def test_resume_with_another_learning_rate_is_refused(trained: dict[str, Any], synthetic_cache: Path):
    with pytest.raises(CheckpointError, match=r"resuming continues the checkpoint's run(.|\n)*model\.init_args\.lr"):
        run_in(trained["work"], ["fit", "-c", CAM_CONFIG, *small(synthetic_cache), "--ckpt_path", "last",
                                 "--model.init_args.lr", "0.5"])


def test_ckpt_path_last_without_a_checkpoint_is_an_error(tmp_path: Path, synthetic_cache: Path):
    with pytest.raises(NoLastCheckpointError, match=r"no last checkpoint \(last\.ckpt\) in runs/cam_synthetic/"
                                                    r"checkpoints"):
        run_in(tmp_path, ["fit", "-c", CAM_CONFIG, *small(synthetic_cache), "--ckpt_path", "last"])
    assert not (tmp_path / "runs" / "cam_synthetic" / "checkpoints").exists()  # nothing was trained


def test_the_wsol_command_prints_a_refusal_without_a_traceback(tmp_path: Path, synthetic_cache: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["fit", "-c", CAM_CONFIG, *small(synthetic_cache), "--ckpt_path", "last"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "wsol: error: --ckpt_path last: no last checkpoint (last.ckpt) in runs/cam_synthetic/checkpoints" in err
    assert "Traceback" not in err


def hostile(folder: Path) -> tuple[Path, Path]:
    marker = folder / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = folder / "hostile.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "wsol_lightning.methods.CAM",
                                                       "x": Payload()}}, path)
    return path, marker


def test_hostile_checkpoint_is_refused_by_export_and_cli(tmp_path: Path, synthetic_cache: Path):
    path, marker = hostile(tmp_path)
    with pytest.raises(CheckpointError, match=r"refused to load: the file holds a call to `posix\.system`"):
        export.main([str(path), str(tmp_path / "exported")])
    assert not marker.exists() and not (tmp_path / "exported").exists()
    with pytest.raises(CheckpointError, match="refused to load"):
        run_in(tmp_path, ["test", "-c", CAM_CONFIG, *small(synthetic_cache), "--ckpt_path", str(path)])
    assert not marker.exists()


def test_cli_uses_only_imported_method_classes(tmp_path: Path, synthetic_cache: Path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "not_imported_pkg.CAM"}}, path)
    with pytest.raises(CheckpointError, match=r"names the class 'not_imported_pkg\.CAM', whose module is not "):
        run_in(tmp_path, ["test", "--model", "CAM", "--data", "SyntheticDataModule", "--data.data_dir",
                          str(synthetic_cache), "--ckpt_path", str(path)])


def test_export_names_only_imported_methods(tmp_path: Path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "subprocess.run"}}, path)
    with pytest.raises(CheckpointError, match=r"'subprocess\.run' is not a wsol_lightning method"):
        export.load_checkpoint(path)
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "not_imported_pkg.Evil"}}, path)
    with pytest.raises(CheckpointError, match=r"whose module is not imported"):
        export.load_checkpoint(path)


def test_export_is_atomic_and_round_trips(trained: dict[str, Any], tmp_path: Path):
    out = tmp_path / "exported"
    export.main([str(trained["ckpt"]), str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]  # no temp files left
    method = export.load_method(out)
    assert float(method.operating_threshold) == pytest.approx(trained["threshold"])
    original = export.load_checkpoint(trained["ckpt"])
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(method(images)["logits"], original(images)["logits"])


def test_a_fresh_run_of_the_same_config_keeps_the_earlier_last_ckpt(trained: dict[str, Any], tmp_path: Path,
                                                                     synthetic_cache: Path):
    earlier = tmp_path / "runs" / "cam_synthetic" / "checkpoints" / "last.ckpt"
    earlier.parent.mkdir(parents=True)
    shutil.copy2(trained["ckpt"], earlier)
    before = earlier.read_bytes()
    run_in(tmp_path, ["fit", "-c", CAM_CONFIG, *small(synthetic_cache, "--trainer.max_steps", "2",
                                                      "--test_after_fit", "false")])
    assert sorted(p.name for p in earlier.parent.iterdir()) == ["last-v1.ckpt", "last.ckpt"]
    assert earlier.read_bytes() == before  # the earlier run is not overwritten
    assert torch.load(earlier.parent / "last-v1.ckpt", weights_only=True)["global_step"] == 2


def test_predict_says_where_the_predictions_went(trained: dict[str, Any], synthetic_cache: Path,
                                                 capsys: pytest.CaptureFixture[str]):
    run_in(trained["work"], ["predict", "-c", CAM_CONFIG, *small(synthetic_cache), "--ckpt_path",
                             str(trained["ckpt"]), "--trainer.callbacks+=wsol_lightning.callbacks.COCOPredictionWriter",
                             "--trainer.callbacks.output_dir", "preds", "--return_predictions", "false"])
    out = capsys.readouterr().out
    assert "wsol predict: outputs\n  run directory: runs/cam_synthetic\n" in out
    assert "\n  predictions: preds\n" in out
    assert (trained["work"] / "preds" / "predictions.json").is_file()


def test_an_export_failing_midway_leaves_the_previous_export_whole(trained: dict[str, Any], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / "exported"
    export.main([str(trained["ckpt"]), str(out)])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_open = export.atomic_open

    @contextlib.contextmanager
    def disk_full_on_config(path: Path, mode: str = "wb", **kwargs: Any) -> Iterator[Any]:
        with real_open(path, mode, **kwargs) as f:
            if Path(path).name == export.CONFIG:
                raise OSError(28, "No space left on device")
            yield f

    changed = export.load_checkpoint(trained["ckpt"])
    with torch.no_grad():
        next(changed.net.parameters()).add_(1.0)  # new weights, so a half-done export would show
    monkeypatch.setattr(export, "atomic_open", disk_full_on_config)
    with pytest.raises(OSError, match="No space left"):
        export.export_network(changed, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old pair intact, no temporary files
