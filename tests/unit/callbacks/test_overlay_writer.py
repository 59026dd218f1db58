"""OverlayWriter and COCOPredictionWriter(save_overlays): original frame, named after the source, labelled boxes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from wsol_lightning import predict as P
from wsol_lightning.callbacks import COCOPredictionWriter, OverlayWriter, render
from wsol_lightning.data.index import DatasetIndex, boxes_to_csr

RED, GREEN = list(render.PRED_COLOUR), list(render.GT_COLOUR)


def whitish(image: np.ndarray) -> np.ndarray:
    """Pixels of the (antialiased) white label text: every channel > 200, which no map blend reaches here."""
    return image.min(axis=-1) > 200


def fake_predict_run(tmp_path: Path) -> tuple[SimpleNamespace, dict, dict]:
    """Two source images (90 x 60, 40 x 50), an index (GT box on the first), a prediction of 32 x 32 maps."""
    (tmp_path / "src" / "pets").mkdir(parents=True)
    Image.fromarray(np.full((60, 90, 3), 200, np.uint8)).save(tmp_path / "src" / "pets" / "tom.png")
    Image.fromarray(np.full((50, 40, 3), 90, np.uint8)).save(tmp_path / "src" / "rex.jpg", format="PNG")
    offsets, boxes = boxes_to_csr([[[50, 10, 80, 50]], []])
    index = DatasetIndex(root=tmp_path / "src", image_ids=["pets/tom.png", "rex.jpg"], labels=np.array([-1, -1]),
                         box_offsets=offsets, boxes=boxes, sizes=np.full((2, 2), -1))
    trainer = SimpleNamespace(predict_dataloaders=SimpleNamespace(dataset=SimpleNamespace(index=index)),
                              datamodule=SimpleNamespace(class_names=["cat", "dog"]))
    maps = torch.zeros(2, 32, 32)
    maps[:, :, :16] = 1.0  # the left half is on
    prediction = {"maps": maps, "logits": torch.tensor([[0.0, 3.0], [1.0, 0.0]]), "pred_class": torch.tensor([1, 0]),
                  "threshold": 0.5}
    batch = {"image": torch.zeros(2, 3, 32, 32), "index": torch.tensor([0, 1]), "image_id": index.image_ids}
    return trainer, prediction, batch


def test_overlays_are_in_the_original_frame_named_after_the_source_with_labelled_boxes(tmp_path: Path):
    trainer, prediction, batch = fake_predict_run(tmp_path)
    writer = OverlayWriter(output_dir=str(tmp_path / "out"), save_masks=True)
    writer.write_on_batch_end(trainer, None, prediction, None, batch, 0)
    names = sorted(str(p.relative_to(tmp_path / "out")) for p in writer.written)
    assert names == ["masks/pets/tom.png", "masks/rex.png", "overlays/pets/tom.png", "overlays/rex.png"]
    assert not list((tmp_path / "out").rglob("*.tmp"))
    tom = np.asarray(Image.open(tmp_path / "out" / "overlays" / "pets" / "tom.png"))
    assert tom.shape == (60, 90, 3)  # the original size, not the 32 x 32 network frame
    # bilinear 32 -> 90: pixel x = 44 maps to 15.32 (value 0.68, on), x = 45 to 15.67 (0.33, off): box x 0..44
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "pets" / "tom.png"))
    assert mask.shape == (60, 90) and (mask[:, :45] == 255).all() and (mask[:, 45:] == 0).all()
    for y, x in ((59, 44), (30, 44), (59, 20), (30, 0)):  # the predicted box [0, 0, 44, 59], red, 1 pixel wide
        assert tom[y, x].tolist() == RED, (y, x)
    assert tom[30, 46].tolist() != RED and tom[30, 43].tolist() != RED
    for y, x in ((10, 60), (50, 80), (30, 50)):  # the GT box [50, 10, 80, 50] from the index, green
        assert tom[y, x].tolist() == GREEN, (y, x)
    assert whitish(tom[:16, :45]).sum() > 20 and not whitish(tom[20:, :]).any()  # "dog 0.95" in the corner only
    rex = np.asarray(Image.open(tmp_path / "out" / "overlays" / "rex.png"))
    assert rex.shape == (50, 40, 3) and not (rex == GREEN).all(axis=-1).any()  # no GT box on this one


def test_prediction_overlay_labels_every_box_with_the_text_given():
    image = np.full((40, 60, 3), 128, np.uint8)
    scoremap = np.zeros((40, 60))
    scoremap[5:15, 5:20] = 1.0
    scoremap[25:35, 35:55] = 0.9
    labelled, mask = render.prediction_overlay(image, scoremap, 0.5, "cat 0.90")
    plain = render.overlay(image, scoremap, None, np.array([[5, 5, 19, 14], [35, 25, 54, 34]]))
    assert mask.sum() == 10 * 15 + 10 * 20
    assert (plain == RED).all(axis=-1).any() and not whitish(plain).any()
    white = whitish(labelled)
    assert white[5:15, 5:20].any() and white[25:35, 35:55].any()  # both boxes carry the label


def test_coco_writer_overlays_and_mask_pngs_match_the_overlay_writer_and_the_rle(tmp_path: Path):
    """``COCOPredictionWriter(save_overlays, save_masks)`` draws as OverlayWriter does; the PNG mask is the RLE's."""
    trainer, prediction, batch = fake_predict_run(tmp_path)
    batch["orig_size"] = torch.tensor([[90, 60], [40, 50]])
    trainer.datamodule.category_ids = None
    trainer.__dict__.update(is_global_zero=True, global_rank=0, world_size=1, loggers=[], global_step=0)
    coco = COCOPredictionWriter(output_dir=str(tmp_path / "coco"), save_overlays=True, save_masks=True,
                                evaluate=False)
    coco.on_predict_start(trainer, None)
    coco.write_on_batch_end(trainer, None, prediction, None, batch, 0)
    coco.on_predict_epoch_end(trainer, None)
    reference = OverlayWriter(output_dir=str(tmp_path / "ref"), save_masks=True)
    reference.write_on_batch_end(trainer, None, prediction, None, batch, 0)
    for rel in ("overlays/pets/tom.png", "overlays/rex.png", "masks/pets/tom.png", "masks/rex.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "coco" / rel)),
                                      np.asarray(Image.open(tmp_path / "ref" / rel)), err_msg=rel)
    dataset = json.loads((tmp_path / "coco" / "predictions.json").read_text())
    assert [(im["file_name"], im["overlay"], im["mask_png"]) for im in dataset["images"]] == [
        ("pets/tom.png", "overlays/pets/tom.png", "masks/pets/tom.png"),
        ("rex.jpg", "overlays/rex.png", "masks/rex.png")]
    assert [c["name"] for c in dataset["categories"]] == ["cat", "dog"]
    for segm in json.loads((tmp_path / "coco" / "results_segm.json").read_text()):
        rel = dataset["images"][segm["image_id"]]["mask_png"]
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "coco" / rel)) == 255,
                                      P.decode_rle(segm["segmentation"]))
    assert not (tmp_path / "coco" / "overlays" / "00000000.png").exists()
