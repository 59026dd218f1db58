"""The CAM vertical slice end to end: CLI subcommands, a run that learns, a plain Trainer, unseen CUB data."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from wsol_lightning.cli import WSOLCLI
from wsol_lightning.data import SyntheticDataModule
from wsol_lightning.data.fakes import write_cub_layout
from wsol_lightning.methods import CAM
from wsol_lightning.methods.baselines import centre_baseline_scores

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cam_synthetic.yaml"


def small_synthetic_args(cache: Path) -> list[str]:
    return [
        "--data.data_dir", str(cache), "--data.images_per_class", "24", "--data.val_per_class", "4",
        "--data.batch_size", "8", "--trainer.enable_progress_bar", "false",
    ]


def test_cli_fit_validate_test_predict_fast_dev_run(tmp_path: Path, synthetic_cache: Path):
    common = ["--config", str(CONFIG), "--trainer.default_root_dir", str(tmp_path),
              *small_synthetic_args(synthetic_cache)]
    fit = WSOLCLI(args=["fit", *common, "--trainer.fast_dev_run", "true"])
    assert fit.trainer.state.finished
    assert "test/maxboxacc_v2" in fit.trainer.callback_metrics
    cli = WSOLCLI(args=["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"])
    ckpt = next(Path(cli.trainer.default_root_dir).rglob("*.ckpt"))  # <run dir>/checkpoints/last.ckpt
    threshold = float(cli.model.operating_threshold)
    assert 0.0 <= threshold < 1.0
    for sub in ("validate", "test"):
        run = WSOLCLI(args=[sub, *common, "--ckpt_path", str(ckpt)])
        assert f"{'val' if sub == 'validate' else 'test'}/gt_known_loc" in run.trainer.callback_metrics
        assert float(run.model.operating_threshold) == pytest.approx(threshold)
    pred = WSOLCLI(args=["predict", *common, "--ckpt_path", str(ckpt)])
    batches = pred.trainer.predict_loop.predictions
    assert batches, "predict returned nothing"
    first = batches[0]
    assert first["maps"].shape[-2:] == (64, 64)
    assert first["maps"].min() >= 0 and first["maps"].max() <= 1
    assert len(first["boxes"]) == first["logits"].shape[0]
    assert first["threshold"] == pytest.approx(threshold)


def test_repeated_runs_in_one_directory(tmp_path: Path, synthetic_cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(CONFIG), *small_synthetic_args(synthetic_cache), "--trainer.fast_dev_run",
            "true", "--trainer.default_root_dir", "."]
    WSOLCLI(args=args)
    WSOLCLI(args=args)  # a second run must not fail on the saved config.yaml


def test_plain_lightning_trainer_without_cli(tmp_path: Path, synthetic_cache: Path):
    data = SyntheticDataModule(data_dir=synthetic_cache, images_per_class=24, val_per_class=4, batch_size=8)
    model = CAM(backbone="test_resnet", num_classes=data.num_classes, cam_curve_interval=0.01)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, accelerator="cpu", default_root_dir=tmp_path,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, datamodule=data)
    results = trainer.test(model, datamodule=data, verbose=False)[0]
    assert {"test/maxboxacc_v2", "test/gt_known_loc", "test/top1_loc", "test/top5_loc", "test/top1_cls"} <= set(
        results)


def test_unseen_cub_layout_trains_through_cli(tmp_path: Path):
    root = write_cub_layout(tmp_path / "data", num_classes=3, images_per_class=8, seed=11)
    cli = WSOLCLI(args=[
        "fit", "--model", "CAM", "--model.backbone", "test_resnet", "--model.cam_curve_interval", "0.01",
        "--data", "CUBDataModule", "--data.data_dir", str(root), "--data.image_size", "64",
        "--data.batch_size", "4", "--data.val_per_class", "1", "--trainer.max_epochs", "1",
        "--trainer.log_every_n_steps", "1", "--trainer.accelerator", "cpu",
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
    ])
    assert cli.model.hparams.num_classes == 3
    assert cli.trainer.global_step > 0
    logged = (Path(cli.trainer.log_dir) / "metrics.csv").read_text().splitlines()
    column = logged[0].split(",").index("train/loss_cls")
    losses = [float(row.split(",")[column]) for row in logged[1:] if row.split(",")[column]]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert "test/maxboxacc_v2" in cli.trainer.callback_metrics


@pytest.mark.slow
def test_cam_synthetic_learns_beyond_centre_baseline(tmp_path: Path):
    cli = WSOLCLI(args=["fit", "--config", str(CONFIG), "--trainer.default_root_dir", str(tmp_path),
                        "--trainer.enable_progress_bar", "false", "--trainer.max_epochs", "2"])
    learned = float(cli.trainer.callback_metrics["test/maxboxacc_v2"])
    baseline = centre_baseline_scores(cli.datamodule)["maxboxacc_v2"]
    assert learned > baseline + 10, (learned, baseline)
    assert float(cli.trainer.callback_metrics["test/top1_cls"]) > 80


def test_cli_tests_a_checkpoint_saved_by_a_plain_trainer(tmp_path: Path, synthetic_cache: Path):
    data = SyntheticDataModule(data_dir=synthetic_cache, images_per_class=24, val_per_class=4, batch_size=8)
    model = CAM(backbone="test_resnet", num_classes=data.num_classes, cam_curve_interval=0.01, label_smoothing=0.1)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", default_root_dir=tmp_path, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=2)
    trainer.fit(model, datamodule=data)
    ckpt = tmp_path / "plain.ckpt"
    trainer.save_checkpoint(ckpt)
    run = WSOLCLI(args=["test", "--model", "CAM", "--data", "SyntheticDataModule", "--data.data_dir",
                        str(synthetic_cache), "--data.images_per_class", "24", "--data.val_per_class", "4",
                        "--data.batch_size", "8", "--ckpt_path", str(ckpt), "--trainer.accelerator", "cpu",
                        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"])
    assert run.model.hparams.backbone == "test_resnet"
    assert run.model.hparams.label_smoothing == 0.1
    assert "test/maxboxacc_v2" in run.trainer.callback_metrics
