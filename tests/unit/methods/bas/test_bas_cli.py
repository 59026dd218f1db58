"""BAS through the CLI: an unseen CUB-layout dataset, and the synthetic demo config learning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wsol_lightning.cli import WSOLCLI
from wsol_lightning.data.fakes import write_cub_layout
from wsol_lightning.methods.baselines import centre_baseline_scores

CONFIG = Path(__file__).resolve().parents[4] / "configs" / "bas_synthetic.yaml"
TERMS = ("loss_cls", "loss_frg", "loss_bas", "loss_ac")


def test_bas_trains_on_an_unseen_cub_layout_through_the_cli(tmp_path: Path):
    root = write_cub_layout(tmp_path / "data", num_classes=3, images_per_class=6, seed=5)
    cli = WSOLCLI(args=[
        "fit", "--model", "BAS", "--model.backbone", "resnet10t", "--model.head_channels", "16",
        "--model.top_k", "2", "--model.cam_curve_interval", "0.01",
        "--data", "CUBDataModule", "--data.data_dir", str(root), "--data.image_size", "64",
        "--data.batch_size", "4", "--data.val_per_class", "1",
        "--trainer.max_steps", "3", "--trainer.accelerator", "cpu",
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
        "--trainer.enable_checkpointing", "false", "--test_after_fit", "false",
    ])
    assert cli.model.hparams.num_classes == 3
    assert cli.trainer.global_step == 3
    metrics = cli.trainer.callback_metrics
    for term in TERMS:
        assert torch.isfinite(metrics[f"train/{term}"]), term
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    assert {"test/maxboxacc_v2", "test/gt_known_loc", "test/top1_loc"} <= set(results)


@pytest.mark.slow
def test_bas_synthetic_config_learns_beyond_the_centre_baseline(tmp_path: Path):
    cli = WSOLCLI(args=["fit", "--config", str(CONFIG), "--trainer.default_root_dir", str(tmp_path),
                        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                        "--trainer.max_epochs", "3",  # half the demo's epochs keeps the suite short
                        "--model.init_args.warmup_epochs", "1"])  # and about half of them warm-up, as the demo
    learned = float(cli.trainer.callback_metrics["test/maxboxacc_v2"])
    baseline = centre_baseline_scores(cli.datamodule)["maxboxacc_v2"]
    assert learned > baseline + 10, (learned, baseline)
    assert float(cli.trainer.callback_metrics["test/top1_cls"]) > 80


def test_bas_wsss_mode_trains_on_a_voc_layout_and_scores_seeds(tmp_path: Path):
    from wsol_lightning.data.fakes import write_voc_layout

    voc = write_voc_layout(tmp_path / "voc", num_images=16, seed=2)
    cli = WSOLCLI(args=[
        "fit", "--model", "BAS", "--model.backbone", "resnet10t", "--model.multilabel", "true",
        "--model.variant", "ijcv", "--model.alpha", "0.2", "--model.detach_frg_features", "true",
        "--model.stride_one_taps", "[4]", "--model.pool_between", "none", "--model.head_convs", "0",
        "--model.cam_curve_interval", "0.01",
        "--data", "VOCDataModule", "--data.data_dir", str(voc), "--data.val_size", "4",
        "--data.image_size", "64", "--data.batch_size", "4",
        "--trainer.max_steps", "2", "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
        "--trainer.enable_checkpointing", "false", "--test_after_fit", "false",
    ])
    assert cli.model.hparams.num_classes == 20 and cli.trainer.global_step == 2
    for term in TERMS:
        assert torch.isfinite(cli.trainer.callback_metrics[f"train/{term}"]), term
    results = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    assert "val/miou" in results or "val/miou_best" in results, sorted(results)
