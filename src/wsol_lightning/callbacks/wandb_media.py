"""W&B-native media from evaluation records: images with boxes and masks, a results table, line charts.

``wandb`` is imported inside each function (it is an optional logger). Boxes are W&B's pixel-domain
``box_data`` (``maxX``/``maxY`` exclusive, so an inclusive ``x1`` becomes ``x1 + 1``), captioned with the class
and, for predicted boxes, the IoU with the best-matching GT box. Masks are W&B ``masks`` (class-id images):
the GT mask (object / ignored) and the map binarised at the operating threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from wsol_lightning.callbacks.tiles import Tile

#: Class ids of the W&B mask layers.
MASK_LABELS = {0: "background", 1: "object", 255: "ignored"}
TABLE_COLUMNS = ["image", "image_id", "class", "pred_class", "score", "iou", "hit", "threshold"]


def box_record(box: Sequence[int], class_id: int, caption: str, iou: float | None = None) -> dict[str, Any]:
    """One W&B ``box_data`` entry for an inclusive pixel box ``x0, y0, x1, y1``."""
    x0, y0, x1, y1 = (int(v) for v in box)
    record: dict[str, Any] = {
        "position": {"minX": x0, "minY": y0, "maxX": x1 + 1, "maxY": y1 + 1}, "domain": "pixel",
        "class_id": int(class_id), "box_caption": caption,
    }
    if iou is not None and math.isfinite(iou):
        record["scores"] = {"iou": float(iou)}
    return record


def tile_boxes(tile: Tile, class_labels: Mapping[int, str]) -> dict[str, Any]:
    """The ``boxes`` argument of ``wandb.Image``: ``ground_truth`` and ``predictions`` groups."""
    gt = [box_record(b, tile.label, f"GT {tile.class_name}") for b in tile.gt_boxes]
    pred = [
        box_record(b, tile.label, f"{tile.class_name} IoU {iou:.2f}" if math.isfinite(iou) else tile.class_name, iou)
        for b, iou in zip(tile.pred_boxes, tile.pred_ious)
    ]
    labels = dict(class_labels)
    return {"ground_truth": {"box_data": gt, "class_labels": labels},
            "predictions": {"box_data": pred, "class_labels": labels}}


def tile_masks(tile: Tile) -> dict[str, Any]:
    """The ``masks`` argument of ``wandb.Image``: the predicted mask and, where it exists, the GT mask."""
    masks = {"prediction": {"mask_data": tile.pred_mask.astype(np.uint8), "class_labels": dict(MASK_LABELS)}}
    if tile.mask is not None:
        masks["ground_truth"] = {"mask_data": tile.mask.astype(np.uint8), "class_labels": dict(MASK_LABELS)}
    return masks


def tile_caption(tile: Tile) -> str:
    """``<image id>: <class> (pred <class> <score>) IoU <iou>``."""
    iou = "" if math.isnan(tile.iou) else f", IoU {tile.iou:.2f}"
    return f"{tile.image_id}: {tile.class_name} (pred {tile.pred_name} {tile.score:.2f}){iou}"


def wandb_image(tile: Tile, picture: np.ndarray, class_labels: Mapping[int, str]) -> Any:
    """``wandb.Image`` of ``picture`` (the tile's map overlay) with native boxes, masks and a caption."""
    import wandb

    return wandb.Image(picture, boxes=tile_boxes(tile, class_labels), masks=tile_masks(tile),
                       caption=tile_caption(tile))


def result_row(tile: Tile, image: Any = None) -> list[Any]:
    """One results-table row (:data:`TABLE_COLUMNS`).

    The picture (``None`` for images not shown), id, class, predicted class, score, IoU (``None`` without GT
    boxes), hit at IoU 0.5, threshold.
    """
    iou = None if math.isnan(tile.iou) else tile.iou
    return [image, tile.image_id, tile.class_name, tile.pred_name, tile.score, iou, tile.hit(), tile.threshold]


def results_table(rows: Sequence[list[Any]]) -> Any:
    """``wandb.Table`` of :func:`result_row` rows (one per image)."""
    import wandb

    return wandb.Table(columns=TABLE_COLUMNS, data=[list(r) for r in rows])


def box_accuracy_chart(curves: Mapping[str, np.ndarray], title: str) -> Any:
    """A native line chart of GT-known box accuracy (%) against the CAM threshold, one line per IoU."""
    import wandb

    keys = sorted(k for k in curves if k.startswith("box_acc@"))
    xs = np.asarray(curves["thresholds"], dtype=np.float64).tolist()
    ys = [np.nan_to_num(np.asarray(curves[k], dtype=np.float64)).tolist() for k in keys]
    return wandb.plot.line_series(xs=xs, ys=ys, keys=[f"BoxAcc IoU>={k.split('@')[1]}%" for k in keys],
                                  title=title, xname="CAM threshold")


def pixel_pr_chart(curve: Mapping[str, np.ndarray], title: str) -> Any:
    """A native line chart of pixel precision against recall (undefined points dropped)."""
    import wandb

    recall = np.asarray(curve["recall"], dtype=np.float64)
    precision = np.asarray(curve["precision"], dtype=np.float64)
    ok = np.isfinite(recall) & np.isfinite(precision)
    table = wandb.Table(columns=["recall", "precision"], data=np.stack([recall[ok], precision[ok]], 1).tolist())
    return wandb.plot.line(table, "recall", "precision", title=title)
