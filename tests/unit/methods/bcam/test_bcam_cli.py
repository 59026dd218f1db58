"""B-CAM through the CLI: every config parses, unseen CUB-layout data trains, the synthetic demo learns."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

from wsol_lightning.cli import WSOLCLI
from wsol_lightning.data.fakes import write_cub_layout

CONFIG_DIR = Path(__file__).resolve().parents[4] / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("bcam_*.yaml"))
PAPER = ("bcam_cub.yaml", "bcam_cub_vgg16.yaml", "bcam_cub_inception_v3.yaml", "bcam_imagenet.yaml",
         "bcam_openimages.yaml", "bcam_voc.yaml")


def test_every_bcam_config_exists():
    assert {*PAPER, "bcam_synthetic.yaml"} <= {p.name for p in CONFIGS}


def _data_class_available(config: Path) -> bool:
    path = yaml.safe_load(config.read_text())["data"]["class_path"]
    module, name = path.rsplit(".", 1)
    return hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_bcam_config_parses(config: Path, capsys: pytest.CaptureFixture[str]):
    assert _data_class_available(config), config.name
    with pytest.raises(SystemExit) as exit_info:
        WSOLCLI(args=["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "wsol_lightning.methods.BCAM"
    if config.name in PAPER:
        assert printed["trainer"]["logger"]["class_path"] == "wsol_lightning.loggers.WSOLWandbLogger"
        assert printed["trainer"]["logger"]["init_args"]["project"] == "wsol"


def test_unseen_cub_layout_trains_through_cli(tmp_path: Path):
    root = write_cub_layout(tmp_path / "data", num_classes=3, images_per_class=8, seed=5)
    cli = WSOLCLI(args=[
        "fit", "--model", "BCAM", "--model.backbone", "resnet10t", "--model.num_heads", "4",
        "--model.cam_curve_interval", "0.01", "--data", "CUBDataModule", "--data.data_dir", str(root),
        "--data.image_size", "64", "--data.batch_size", "4", "--data.val_per_class", "1",
        "--data.num_workers", "0", "--test_after_fit", "false",
        "--trainer.max_steps", "3", "--trainer.accelerator", "cpu",
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
    ])
    assert cli.model.hparams.num_classes == 3
    assert cli.trainer.global_step == 3
    metrics = cli.trainer.callback_metrics
    for term in ("loss_obj_cls", "loss_bg_on_obj", "loss_bg_on_bg", "loss_obj_on_bg", "loss"):
        assert torch.isfinite(metrics[f"train/{term}"]), term
    metrics = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    for key in ("test/maxboxacc_v2", "test/pxap", "test/mask_gt_known_loc", "test/mask_piou"):
        assert key in metrics, key
        assert 0.0 <= float(metrics[key]) <= 100.0


@pytest.mark.slow
def test_bcam_synthetic_learns_beyond_centre_baseline(tmp_path: Path):
    """The CPU demo (about 4.5 CPU-minutes) beats the centre baseline and logs the threshold-free mask."""
    from wsol_lightning.methods.baselines import centre_baseline_scores

    cli = WSOLCLI(args=["fit", "--config", str(CONFIG_DIR / "bcam_synthetic.yaml"),
                        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"])
    metrics = cli.trainer.callback_metrics
    baseline = centre_baseline_scores(cli.datamodule)["maxboxacc_v2"]
    assert float(metrics["test/maxboxacc_v2"]) > baseline + 20, (float(metrics["test/maxboxacc_v2"]), baseline)
    assert float(metrics["test/mask_gt_known_loc"]) > 50
    assert float(metrics["test/mask_piou"]) > 40


def test_voc_multi_label_variant_gives_seed_miou(tmp_path: Path):
    """The VOC recipe's model settings on a fake VOC layout: multi-hot training, seed mIoU at test."""
    from wsol_lightning.data.fakes import write_voc_layout

    root = write_voc_layout(tmp_path / "data", num_images=16, seed=3)
    cli = WSOLCLI(args=[
        "fit", "--config", str(CONFIG_DIR / "bcam_voc.yaml"), "--model.backbone", "resnet10t",
        "--model.pretrained", "false", "--model.cam_curve_interval", "0.01", "--data.data_dir", str(root),
        "--data.image_size", "64", "--data.batch_size", "4", "--data.num_workers", "0", "--data.val_size", "2",
        "--trainer.max_steps", "2", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
        "--test_after_fit", "false",
    ])
    assert cli.model.hparams.multi_label and cli.model.hparams.num_heads == 20
    assert not cli.model.net.detach_obj_for_bg and cli.model.net.head.classifier_obj.bias is None
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss_obj_cls"])
    metrics = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    assert "test/miou" in metrics or "test/miou_best" in metrics, sorted(metrics)
