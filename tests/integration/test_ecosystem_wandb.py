"""An offline W&B run of the synthetic demo holds the config, every metric, the overlays and the curves."""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsol_lightning.cli import WSOLCLI

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cam_synthetic.yaml"


def wandb_records(path: Path) -> Iterator:
    """Records of a ``.wandb`` file (W&B's LevelDB-style log of protobuf ``Record`` messages)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:  # block padding
            pos += left
            continue
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def test_offline_wandb_run_holds_metrics_media_and_curves(tmp_path: Path, synthetic_cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "wb").mkdir()
    with caplog.at_level(logging.INFO):
        cli = WSOLCLI(args=[
            "fit", "--config", str(CONFIG), "--trainer.default_root_dir", str(tmp_path),
            "--data.data_dir", str(synthetic_cache), "--data.images_per_class", "24",
            "--data.val_per_class", "4", "--data.batch_size", "8", "--model.backbone", "test_resnet",
            "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
            "--trainer.log_every_n_steps", "1",
            "--trainer.enable_progress_bar", "false",
            "--test_after_fit", "false",
            "--trainer.logger", "wsol_lightning.loggers.WSOLWandbLogger",
            "--trainer.callbacks+=wsol_lightning.callbacks.MapVisualizer",
            "--trainer.callbacks.num_images", "4", "--trainer.callbacks.save_dir", str(tmp_path / "png"),
        ])
        cli.trainer.logger.experiment.finish()  # flushes the run file (wandb.run may be another run)
        wandb.finish()
    assert "W&B offline" in caplog.text and "wandb sync" in caplog.text
    runs = list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    run = runs[0]

    history: dict[str, int] = {}
    config_keys: set[str] = set()
    config_json = ""
    run_file = next(run.glob("run-*.wandb"))
    deadline = time.monotonic() + 30
    while run_file.stat().st_size <= 7 and time.monotonic() < deadline:  # header only: not flushed yet
        time.sleep(0.5)
    kinds: dict[str, int] = {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                history[key] = history.get(key, 0) + 1
        elif kind == "config":
            for item in record.config.update:
                config_keys.add(item.key)
                if item.key == "config":
                    config_json = item.value_json
    for key in ("train/loss", "train/loss_cls", "val/maxboxacc_v2", "val/pxap", "val/gt_known_loc",
                "val/operating_threshold", "val/top1_cls"):
        assert key in history, (key, sorted(history), kinds, run_file.stat().st_size)
    for key in ("val/maps", "val/box_acc_curve", "val/pixel_pr_curve"):
        assert f"{key}/_type" in history, key
    assert {"backbone", "lr", "num_classes", "config"} <= config_keys  # hparams and the full CLI config
    assert "SyntheticDataModule" in config_json and "MapVisualizer" in config_json

    media = run / "files" / "media" / "images" / "val"
    for stem in ("maps", "box_acc_curve", "pixel_pr_curve"):
        assert len(list(media.glob(f"{stem}_*.png"))) == 2, stem  # one per validation epoch
    pngs = sorted(p.name for p in (tmp_path / "png").glob("*.png"))
    stems = ("box_acc_curve", "maps", "pixel_pr_curve")
    assert pngs == [f"{s}_epoch{e:03d}.png" for s in stems for e in (0, 1)]
    assert cli.trainer.callback_metrics["val/operating_threshold"] >= 0
