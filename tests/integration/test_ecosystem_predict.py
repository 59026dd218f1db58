"""`wsol predict` to COCO: a plain folder (RLE masks = thresholded maps, original frame) and a labelled split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from tests.images import write_photo_folder
from wsol_lightning import predict as P
from wsol_lightning.cli import WSOLCLI

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cam_synthetic.yaml"
WRITER = "wsol_lightning.callbacks.COCOPredictionWriter"
SIZES = [(120, 90), (70, 100), (64, 64)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic_cache: Path) -> tuple[list[str], Path, float]:
    root = tmp_path_factory.mktemp("fit")
    common = ["--config", str(CONFIG), "--data.data_dir", str(synthetic_cache), "--data.images_per_class", "24",
              "--data.val_per_class", "4", "--data.batch_size", "8", "--model.backbone", "test_resnet",
              "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root)]
    cli = WSOLCLI(args=["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
                        "--test_after_fit", "false"])
    ckpt = next(Path(cli.trainer.default_root_dir).rglob("*.ckpt"))  # <run dir>/checkpoints/last.ckpt
    return common, ckpt, float(cli.model.operating_threshold)


def write_folder(root: Path) -> Path:
    return write_photo_folder(root, SIZES)


def test_predict_on_a_folder_writes_coco_with_masks_in_the_original_frame(trained, tmp_path: Path):
    common, ckpt, threshold = trained
    out = tmp_path / "out"
    WSOLCLI(args=["predict", *common, "--ckpt_path", str(ckpt),
                  "--data", "wsol_lightning.data.folder.ImageFolderDataModule",
                  "--data.data_dir", str(write_folder(tmp_path / "imgs")), "--data.num_classes", "4",
                  "--data.image_size", "64", "--data.num_workers", "0", "--data.batch_size", "2",
                  f"--trainer.callbacks+={WRITER}", "--trainer.callbacks.output_dir", str(out),
                  "--trainer.callbacks.save_maps", "true", "--trainer.callbacks.save_overlays", "true",
                  "--trainer.callbacks.map_dtype", "float32", "--return_predictions", "false"])
    coco = COCO(str(out / "predictions.json"))
    images = sorted(coco.dataset["images"], key=lambda im: im["id"])
    assert [(im["file_name"], im["width"], im["height"]) for im in images] == [
        (f"img_{k}.png", w, h) for k, (w, h) in enumerate(SIZES)]
    assert not (out / "coco_eval.json").exists()  # no ground truth in a plain folder
    results = json.loads((out / "results_segm.json").read_text())
    assert len(results) == len(SIZES)  # every image has something above threshold
    for im in images:
        assert im["threshold"] == pytest.approx(threshold)  # the one chosen on val, from the checkpoint
        scoremap = np.load(out / "maps" / f"{im['id']:08d}.npy")
        assert scoremap.shape == (im["height"], im["width"])  # original frame, not 64x64
        expected = P.threshold_mask(scoremap, threshold)
        segm = next(r for r in results if r["image_id"] == im["id"])
        np.testing.assert_array_equal(P.decode_rle(segm["segmentation"]), expected)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[im["id"]]))
        np.testing.assert_array_equal(coco.annToMask(anns[0]).astype(bool), expected)
        ys, xs = np.nonzero(expected)
        for ann in anns:
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and x + w <= im["width"] and y + h <= im["height"]
            assert xs.min() <= x and x + w - 1 <= xs.max() and ys.min() <= y and y + h - 1 <= ys.max()
        overlay = Image.open(out / im["overlay"])  # original frame, named after the source file
        assert im["overlay"] == f"overlays/{Path(im['file_name']).stem}.png"
        assert overlay.size == (im["width"], im["height"])
    dets = coco.loadRes(str(out / "results_bbox.json"))
    assert len(dets.anns) == len(coco.anns)


def test_predict_on_a_labelled_split_reports_cocoeval(trained, tmp_path: Path):
    common, ckpt, _ = trained
    out = tmp_path / "out"
    WSOLCLI(args=["predict", *common, "--ckpt_path", str(ckpt), f"--trainer.callbacks+={WRITER}",
                  "--trainer.callbacks.output_dir", str(out), "--trainer.callbacks.threshold", "0.25",
                  "--trainer.callbacks.max_boxes", "1", "--return_predictions", "false"])
    stats = json.loads((out / "coco_eval.json").read_text())
    assert set(stats) == {"bbox", "segm"}
    for iou_type in ("bbox", "segm"):
        assert 0.0 <= stats[iou_type]["AP"] <= stats[iou_type]["AP50"] <= 1.0
    dataset = json.loads((out / "predictions.json").read_text())
    assert {im["threshold"] for im in dataset["images"]} == {0.25}
    per_image = np.bincount([a["image_id"] for a in dataset["annotations"]])
    assert per_image.max() == 1  # max_boxes=1
    names = {c["name"] for c in dataset["categories"]}
    assert names == {"disc", "square", "triangle", "cross"}
