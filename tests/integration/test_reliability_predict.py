"""Issue 14 case 7: `predict` survives bad files, keeps what it did on a crash or a kill, says where it wrote,
caps the maps of huge images."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from wsol_lightning import predict as P
from wsol_lightning.callbacks import COCOPredictionWriter, prediction_records
from wsol_lightning.data.folder import ImageFolderDataModule
from wsol_lightning.data.index import DataError
from wsol_lightning.methods import CAM

REPO = Path(__file__).resolve().parents[2]


class CrashingCAM(CAM):
    """CAM whose prediction fails at batch ``crash_at`` (an exception, or ``os._exit`` when ``hard``)."""

    crash_at = 2
    hard = False

    def predict_step(self, batch, batch_idx, dataloader_idx=0):  # noqa: D102
        if batch_idx == self.crash_at:
            if self.hard:
                os._exit(9)  # like SIGKILL: no exception hook, no cleanup
            raise RuntimeError("injected crash")
        return super().predict_step(batch, batch_idx, dataloader_idx)


def model(cls: type = CAM) -> CAM:
    torch.manual_seed(0)
    net = cls(backbone="test_resnet", num_classes=3, pretrained=False)
    net.operating_threshold.fill_(0.3)
    return net.eval()


def write_images(root: Path, names: list[str], size: tuple[int, int] = (40, 30)) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / name)
    return root


def run(folder: Path, out: Path, net: CAM | None = None, batch_size: int = 2, **kwargs) -> COCOPredictionWriter:
    data_kwargs = {k: kwargs.pop(k) for k in ("skip_bad",) if k in kwargs}
    writer = COCOPredictionWriter(output_dir=str(out), **kwargs)
    data = ImageFolderDataModule(folder, image_size=64, batch_size=batch_size, num_workers=0, num_classes=3,
                                 **data_kwargs)
    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[writer], enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.predict(net or model(), datamodule=data, return_predictions=False)
    return writer


@pytest.fixture
def lightning_log():
    """Messages of Lightning's rank-zero logger (the one the CLI prints)."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("lightning.pytorch")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_bad_files_are_skipped_listed_with_the_reason_and_the_run_says_where(tmp_path, lightning_log):
    folder = write_images(tmp_path / "imgs", [f"img_{k}.jpg" for k in range(5)])
    good = (folder / "img_0.jpg").read_bytes()
    (folder / "a_truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "b_text.png").write_text("not an image")
    (folder / "c_empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    run(folder, out, save_maps=True)  # batch 0 = two bad files only, batch 1 = one bad + one good
    dataset = json.loads((out / "predictions.json").read_text())
    assert [im["file_name"] for im in dataset["images"]] == [f"img_{k}.jpg" for k in range(5)]
    assert [s["file_name"] for s in dataset["skipped"]] == ["a_truncated.jpg", "b_text.png", "c_empty.jpg"]
    for record in dataset["skipped"]:
        assert str(folder / record["file_name"]) in record["reason"] and "unreadable" in record["reason"]
    assert dataset["info"]["complete"] is True and dataset["info"]["num_skipped"] == 3
    assert {p.name for p in (out / "maps").iterdir()} == {f"{im['id']:08d}.npy" for im in dataset["images"]}
    assert not list(out.glob("records_rank*.jsonl")) and not list(out.rglob("*.tmp"))
    message = next(m for m in lightning_log if "predictions written to" in m)
    assert str(out.resolve()) in message and "3 unreadable input(s) skipped" in message
    assert "a_truncated.jpg" in message


def test_fail_fast_names_the_file_and_keeps_the_images_done_before(tmp_path):
    folder = write_images(tmp_path / "imgs", [f"img_{k}.jpg" for k in range(4)])
    (folder / "z_bad.jpg").write_bytes(b"\xff\xd8 broken")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"unreadable or truncated image: .*z_bad\.jpg"):
        run(folder, out, skip_bad=False)
    dataset = json.loads((out / "predictions.json").read_text())
    assert dataset["info"]["complete"] is False and "z_bad.jpg" in dataset["info"]["stopped_by"]
    assert [im["file_name"] for im in dataset["images"]] == [f"img_{k}.jpg" for k in range(4)]


def test_a_crash_mid_run_keeps_every_finished_image_and_removes_stale_results(tmp_path):
    folder = write_images(tmp_path / "imgs", [f"img_{k}.jpg" for k in range(6)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.json").write_text(json.dumps({"images": [{"id": 99, "file_name": "old.jpg"}]}))
    with pytest.warns(UserWarning, match="INCOMPLETE") as warned, pytest.raises(RuntimeError, match="injected"):
        run(folder, out, model(CrashingCAM), save_maps=True)
    dataset = json.loads((out / "predictions.json").read_text())
    assert [im["file_name"] for im in dataset["images"]] == [f"img_{k}.jpg" for k in range(4)]  # batches 0, 1
    assert dataset["info"]["complete"] is False and "injected crash" in dataset["info"]["stopped_by"]
    assert len(json.loads((out / "results_segm.json").read_text())) == len(dataset["images"])
    for im in dataset["images"]:
        assert np.load(out / im["map"]["file"]).shape == (30, 40)
    assert any(str(out.resolve()) in str(w.message) and "records_rank0.jsonl" in str(w.message) for w in warned)


def test_a_hard_kill_keeps_flushed_records_that_rebuild_the_coco_files(tmp_path, capsys):
    folder = write_images(tmp_path / "imgs", [f"img_{k}.jpg" for k in range(6)])
    out = tmp_path / "out"
    script = f"""
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_reliability_predict import CrashingCAM, model, run
CrashingCAM.hard = True
run({str(folder)!r}, {str(out)!r}, model(CrashingCAM))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert not (out / "predictions.json").exists()  # never a half-written JSON
    lines = (out / "records_rank0.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["kind"] == "image" for line in lines) == 4  # batches 0 and 1 were flushed
    prediction_records.main([str(out)])  # = python -m wsol_lightning.callbacks.prediction_records OUT
    printed = capsys.readouterr().out
    assert "INCOMPLETE" in printed and str(out.resolve()) in printed
    dataset = json.loads((out / "predictions.json").read_text())
    assert [im["file_name"] for im in dataset["images"]] == [f"img_{k}.jpg" for k in range(4)]
    assert dataset["info"]["complete"] is False


def test_maps_of_a_huge_image_are_capped_by_default_and_exact_on_request(tmp_path):
    folder = write_images(tmp_path / "imgs", ["huge.jpg"], size=(3000, 2000))
    capped = run(folder, tmp_path / "capped", save_maps=True)
    (image,) = capped.images
    stored = np.load(tmp_path / "capped" / image["map"]["file"])
    assert stored.shape == (683, 1024) and stored.dtype == np.float16  # default: long side 1024, float16
    assert (tmp_path / "capped" / image["map"]["file"]).stat().st_size < 1.5e6  # float32 full frame: 24 MB
    assert capped.masks[0]["segmentation"]["size"] == [2000, 3000]  # masks stay in the full original frame
    exact = run(folder, tmp_path / "exact", save_maps=True, map_max_side=None, map_dtype="uint8")
    stored = np.load(tmp_path / "exact" / exact.images[0]["map"]["file"])
    assert stored.shape == (2000, 3000) and stored.dtype == np.uint8
    # uint8 maps are the metrics' quantisation: thresholding them gives the written mask exactly
    expected = stored > int(0.3 * int(stored.max()))
    np.testing.assert_array_equal(P.decode_rle(exact.masks[0]["segmentation"]), expected)


def test_a_bad_ground_truth_file_is_named_before_any_prediction(tmp_path):
    folder = write_images(tmp_path / "imgs", ["a.jpg", "b.jpg"])
    (tmp_path / "gt.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"COCO ground truth .*gt\.json cannot be read"):
        run(folder, tmp_path / "out", ground_truth=str(tmp_path / "gt.json"))
    assert not list((tmp_path / "out").glob("records_rank*.jsonl"))  # stopped before predicting anything
