"""Through the CLI, each datamodule trains CAM for a few steps on a tiny copy of its real layout and is tested."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsol_lightning.cli import WSOLCLI
from wsol_lightning.data.fakes import (
    write_coco_layout,
    write_cub_layout,
    write_imagenet_metadata_layout,
    write_imagenet_official_layout,
    write_openimages_layout,
    write_pets_layout,
    write_voc_layout,
)


def layouts(root: Path) -> dict[str, tuple[str, list[str], set[str]]]:
    """name -> (datamodule class, extra CLI args, metric keys the test stage must log)."""
    loc = {"test/maxboxacc_v2", "test/gt_known_loc", "test/top1_loc"}
    return {
        "cub": ("CUBDataModule", ["--data.data_dir", str(write_cub_layout(root / "cub", seed=1)),
                                  "--data.val_per_class", "1"], loc | {"test/pxap"}),
        "imagenet_metadata": ("ImageNetDataModule", ["--data.data_dir", str(write_imagenet_metadata_layout(
            root / "ilsvrc"))], loc),
        "imagenet_official": ("ImageNetDataModule", ["--data.data_dir", str(write_imagenet_official_layout(
            root / "ilsvrc_official"))], loc),
        "openimages": ("OpenImagesDataModule", ["--data.data_dir", str(write_openimages_layout(root / "oi"))],
                       {"test/pxap", "test/piou"}),
        "voc": ("VOCDataModule", ["--data.data_dir", str(write_voc_layout(root / "voc")), "--data.val_size", "4"],
                loc | {"test/miou", "test/miou_best", "test/pxap"}),
        "pets": ("OxfordPetsDataModule", ["--data.data_dir", str(write_pets_layout(root / "pets")),
                                          "--data.val_per_class", "1"], loc | {"test/pxap"}),
        "coco": ("COCODataModule", ["--data.data_dir", str(write_coco_layout(root / "coco")),
                                    "--data.train_ann", "annotations/train.json", "--data.train_images", "images/train",
                                    "--data.test_ann", "annotations/test.json", "--data.test_images", "images/test",
                                    "--data.val_fraction", "0.25"], loc | {"test/pxap"}),
    }


NAMES = ["cub", "imagenet_metadata", "imagenet_official", "openimages", "voc", "pets", "coco"]


@pytest.mark.parametrize("name", NAMES)
def test_datamodule_trains_cam_through_cli(name: str, tmp_path: Path):
    data_class, data_args, expected = layouts(tmp_path / "data")[name]
    cli = WSOLCLI(args=[
        "fit", "--model", "CAM", "--model.backbone", "test_resnet", "--model.cam_curve_interval", "0.01",
        "--data", data_class, *data_args, "--data.image_size", "48", "--data.batch_size", "4",
        "--data.num_workers", "0", "--trainer.max_steps", "3", "--trainer.accelerator", "cpu",
        "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ])
    assert cli.trainer.global_step == 3
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes
    logged = set(cli.trainer.callback_metrics)
    assert expected <= logged, sorted(expected - logged)
