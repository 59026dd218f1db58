"""An offline W&B run of the synthetic demo, read back: config once, metrics, native boxes, masks, tables, charts."""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightning.pytorch.loggers import WandbLogger

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


def history_values(run_file: Path) -> tuple[dict[str, list[str]], set[str]]:
    """``{history key: [value_json per step]}`` and the config keys of a finished ``.wandb`` file.

    W&B's service writes the file asynchronously: it is read again until its ``exit`` record is there.
    """
    deadline = time.monotonic() + 60
    while True:
        records = list(wandb_records(run_file)) if run_file.stat().st_size > 7 else []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    history: dict[str, list[str]] = {}
    config_keys: set[str] = set()
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                history.setdefault(item.key or "/".join(item.nested_key), []).append(item.value_json)
        elif kind == "config":
            config_keys |= {item.key or "/".join(item.nested_key) for item in record.config.update}
    return history, config_keys


def test_offline_wandb_run_holds_native_boxes_masks_tables_and_charts(
        tmp_path: Path, synthetic_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture):
    import wandb

    from wsol_lightning.loggers import WSOLWandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))  # not created: the logger makes it (no git-root warning)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    sent: list[set[str]] = []
    original = WandbLogger.log_hyperparams

    def spy(self, params):  # what reaches W&B's config, after the logger's de-duplication
        sent.append(set(params))
        return original(self, params)

    monkeypatch.setattr(WandbLogger, "log_hyperparams", spy)
    with caplog.at_level(logging.INFO):
        cli = WSOLCLI(args=[
            "fit", "--config", str(CONFIG), "--trainer.default_root_dir", str(tmp_path),
            "--data.data_dir", str(synthetic_cache), "--data.images_per_class", "24",
            "--data.val_per_class", "4", "--data.batch_size", "8", "--model.backbone", "test_resnet",
            "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
            "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "wsol_lightning.loggers.WSOLWandbLogger",
            "--trainer.callbacks+=wsol_lightning.callbacks.MapVisualizer",
            "--trainer.callbacks.num_images", "4", "--trainer.callbacks.save_dir", str(tmp_path / "png"),
        ])  # fit, then the test split (test_after_fit)
        assert isinstance(cli.trainer.logger, WSOLWandbLogger)
        split_ids = {stage: list(loader.dataset.index.image_ids) for stage, loader in
                     (("val", cli.datamodule.val_dataloader()), ("test", cli.datamodule.test_dataloader()))}
        class_names = list(cli.datamodule.class_names)
        cli.trainer.logger.experiment.finish()  # flushes the run file (wandb.run may be another run)
        wandb.finish()
    assert "W&B offline" in caplog.text and "wandb sync" in caplog.text
    output = capfd.readouterr().err + caplog.text
    assert "anonymous setting has no effect" not in output and "git root" not in output
    assert sum("config" in keys for keys in sent) == 1 and sum("lr" in keys for keys in sent) == 1, sent

    runs = list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    run = runs[0]
    history, config_keys = history_values(next(run.glob("run-*.wandb")))
    for key in ("train/loss", "train/loss_cls", "val/maxboxacc_v2", "val/pxap", "val/gt_known_loc",
                "val/operating_threshold", "val/top1_cls", "test/maxboxacc_v2", "test/pxap"):
        assert key in history, (key, sorted(history))
    assert {"backbone", "lr", "num_classes", "config"} <= config_keys  # hparams and the full CLI config

    for stage, steps in (("val", 2), ("test", 1)):
        # per-image wandb.Image with native boxes (GT + predicted) and masks (GT + predicted), one list per step
        assert f"{stage}/maps/_type" in history, sorted(k for k in history if k.startswith(stage))
        assert len(history[f"{stage}/maps/_type"]) == steps and history[f"{stage}/maps/count"][-1] == "4"
        boxes = json.loads(history[f"{stage}/maps/all_boxes"][-1])
        masks = json.loads(history[f"{stage}/maps/all_masks"][-1])
        assert len(boxes) == len(masks) == 4
        assert all({"ground_truth", "prediction"} <= set(m) for m in masks)
        first = json.loads((run / "files" / boxes[0]["predictions"]["path"]).read_text())
        gt = json.loads((run / "files" / boxes[0]["ground_truth"]["path"]).read_text())
        assert gt["box_data"] and gt["box_data"][0]["box_caption"].startswith("GT ")
        assert all("IoU" in b["box_caption"] and "iou" in b["scores"] for b in first["box_data"])
        captions = json.loads(history[f"{stage}/maps/captions"][-1])
        # the per-image table: a row for EVERY image of the split (in dataset order), the picture on the 4 drawn
        # ones; their IoU and hit consistent with the captions
        table = json.loads((run / "files" / json.loads(history[f"{stage}/results/path"][-1])).read_text())
        assert table["columns"] == ["image", "image_id", "class", "pred_class", "score", "iou", "hit", "threshold"]
        assert [row[1] for row in table["data"]] == split_ids[stage] and len(split_ids[stage]) > 4
        shown = [row for row in table["data"] if row[0] is not None]
        assert len(shown) == 4  # the drawn images (W&B writes the cell as "Image" in an offline table file)
        for row, caption in zip(shown, captions):
            assert row[1] in caption and f"IoU {row[5]:.2f}" in caption
        for row in table["data"]:
            assert row[6] == (row[5] >= 0.5) and 0.0 <= row[5] <= 1.0 and 0.0 < row[4] <= 1.0
            assert row[2] in class_names and row[3] in class_names  # class names, not indices
        assert len({row[7] for row in table["data"]}) == 1  # one operating threshold for the whole split
        # native charts: W&B custom charts (a vega spec over a logged table), not PNG images
        for chart in ("box_acc_curve", "pixel_pr_curve"):
            assert f"_wandb/visualize/{stage}/{chart}" in config_keys or any(
                k.startswith(f"_wandb/visualize/{stage}/{chart}") for k in config_keys), (chart, sorted(config_keys))
            assert f"{stage}/{chart}_table/_type" in history
            assert f"{stage}/{chart}/_type" not in history  # no static image under the chart's key
    curve = json.loads((run / "files" / json.loads(history["val/box_acc_curve_table/path"][-1])).read_text())
    assert {"BoxAcc IoU>=30%", "BoxAcc IoU>=50%", "BoxAcc IoU>=70%"} <= {row[1] for row in curve["data"]}
    pngs = sorted(p.name for p in (tmp_path / "png").glob("*.png"))  # the local files stay, for any logger
    stems = ("box_acc_curve", "maps", "pixel_pr_curve")
    assert pngs == sorted([f"{s}_epoch{e:03d}.png" for s in stems for e in (0, 1)] + [f"test_{s}.png" for s in stems])
